/**
 * The DSL: a GraphBuilder declares inputs, parameters and ops; Tensor is a handle to one node.
 * Shapes and dtypes are inferred as each op is declared; a bad shape throws a ShapeError naming the
 * op, the input types and the user's own call site.
 */
import { userCallSite } from './callsite.js';
import { type Dim, dimProd, isSym, SymDim, sizeSymbol } from './dims.js';
import { RuleError, ShapeError } from './errors.js';
import { type Attrs, type AttrValue, fmtValue, Graph, type Node } from './ir.js';
import { getOp } from './registry.js';
import {
  type DimShape,
  DTYPES,
  type DType,
  dimsOf,
  fmtType,
  isDynamic,
  numel,
  type Shape,
  type TensorType,
  typeOf,
} from './types.js';

/** Parameter initializers. fan_in = shape[1]·(kernel area); fan_out = shape[0]·(kernel area). */
export type Init =
  | { readonly kind: 'zeros' }
  | { readonly kind: 'constant'; readonly value: number }
  | { readonly kind: 'normal'; readonly std: number; readonly mean?: number }
  | { readonly kind: 'uniform'; readonly low: number; readonly high: number }
  | { readonly kind: 'he' }
  | { readonly kind: 'xavier' };

export const init = {
  zeros: (): Init => ({ kind: 'zeros' }),
  constant: (value: number): Init => ({ kind: 'constant', value }),
  normal: (std: number, mean = 0): Init => ({ kind: 'normal', std, mean }),
  uniform: (low: number, high: number): Init => ({ kind: 'uniform', low, high }),
  /** He (Kaiming) normal, std = sqrt(2 / fan_in). */
  he: (): Init => ({ kind: 'he' }),
  /** Xavier (Glorot) uniform, limit = sqrt(6 / (fan_in + fan_out)). */
  xavier: (): Init => ({ kind: 'xavier' }),
};

export type ScalarLike = Tensor | number;

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
  dilation?: number | readonly [number, number];
  groups?: number;
}

export interface Pool2dOptions {
  kernel: number | readonly [number, number];
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
  ceilMode?: boolean;
}

const pair = (v: number | readonly [number, number]): [number, number] =>
  typeof v === 'number' ? [v, v] : [v[0], v[1]];

/** Rejects a dtype this compiler does not have (f64, 'float32', …) where a tensor is declared. */
function checkDType(op: string, what: string, dtype: unknown, site: string): asserts dtype is DType {
  if (!DTYPES.includes(dtype as DType))
    throw new ShapeError(
      op,
      `${what}: dtype ${fmtValue(dtype)} is not supported (use one of ${DTYPES.join(', ')})`,
      [],
      site,
    );
}

/** The first attribute value (by path, e.g. `pads[0][1]`) that no attribute may hold: NaN, a bigint, a function. */
function badAttr(v: unknown, path: string): string | undefined {
  if (typeof v === 'number') return Number.isNaN(v) ? `${path} must be a number, not NaN` : undefined;
  if (typeof v === 'bigint' || typeof v === 'function' || typeof v === 'symbol') return `${path} is a ${typeof v}`;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const b = badAttr(v[i], `${path}[${i}]`);
      if (b) return b;
    }
  } else if (typeof v === 'object' && v !== null && !isSym(v as Dim)) {
    for (const [k, x] of Object.entries(v)) {
      const b = badAttr(x, `${path}.${k}`);
      if (b) return b;
    }
  }
  return undefined;
}

/** Rejects initializers whose numbers would make NaN or infinite parameters. */
function checkInit(op: string, name: string, initializer: Init, site: string): void {
  const bad = (detail: string): never => {
    throw new ShapeError(op, `"${name}": bad initializer ${fmtValue(initializer)} (${detail})`, [], site);
  };
  if (typeof initializer !== 'object' || initializer === null) bad('expected one of init.*()');
  const finite = (k: string, v: unknown) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${k} must be a finite number`);
  };
  switch (initializer.kind) {
    case 'zeros':
    case 'he':
    case 'xavier':
      return;
    case 'constant':
      finite('value', initializer.value);
      return;
    case 'normal':
      finite('std', initializer.std);
      finite('mean', initializer.mean ?? 0);
      if (initializer.std < 0) bad('std must be ≥ 0');
      return;
    case 'uniform':
      finite('low', initializer.low);
      finite('high', initializer.high);
      if (initializer.low > initializer.high) bad('low must be ≤ high');
      return;
    default:
      bad(`unknown kind ${fmtValue((initializer as { kind: unknown }).kind)}`);
  }
}

export class GraphBuilder {
  readonly graph = new Graph();
  private readonly names = new Set<string>();

  private readonly symbols = new Map<string, SymDim>();

  /**
   * Runs `build` with every node it declares tagged as model stage `name` (e.g. "backbone",
   * "proposals", "head"): the compiled kernels carry the stage (KernelSpec.stage), so a profile can sum
   * GPU time per stage (runtime/profile.ts stageTimes). Stages nest; the innermost names the node.
   */
  stage<T>(name: string, build: () => T): T {
    if (typeof name !== 'string' || name.trim() === '')
      throw new ShapeError(
        'stage',
        `the stage name must be a non-empty string, got ${fmtValue(name)}`,
        [],
        userCallSite(),
      );
    const outer = this.graph.currentStage;
    this.graph.currentStage = name;
    try {
      return build();
    } finally {
      this.graph.currentStage = outer;
    }
  }

  private source(op: 'input' | 'param' | 'state', name: string, shape: DimShape, dtype: DType, attrs: Attrs): Tensor {
    const site = userCallSite();
    if (typeof name !== 'string' || name.trim() === '')
      throw new ShapeError(op, `the name must be a non-empty string, got ${fmtValue(name)}`, [], site);
    if (this.names.has(name)) throw new ShapeError(op, `the name "${name}" is already used`, [], site);
    checkDType(op, `"${name}"`, dtype, site);
    const rule = `dimensions must be positive integers${op === 'input' ? ' or size symbols from g.dim()' : ''}`;
    if (!Array.isArray(shape))
      throw new ShapeError(
        op,
        `"${name}": the shape must be an array of dimensions, got ${fmtValue(shape)} (${rule})`,
        [],
        site,
      );
    const ok = (d: unknown) =>
      d instanceof SymDim
        ? op === 'input' && d.symbolName !== undefined
        : typeof d === 'number' && Number.isSafeInteger(d) && d > 0;
    const bad = (shape as readonly unknown[]).findIndex((d) => !ok(d));
    if (bad >= 0) {
      throw new ShapeError(
        op,
        `"${name}" has a bad shape ${fmtValue(shape)}: axis ${bad} is ${fmtValue(shape[bad])} (${rule})`,
        [],
        site,
      );
    }
    for (const d of shape)
      if (isSym(d) && this.symbols.get(d.symbolName as string) !== d)
        throw new ShapeError(op, `"${name}": size symbol ${d.key} was not declared by this builder's dim()`, [], site);
    this.names.add(name);
    return this.wrap(this.graph.add(op, [], attrs, typeOf(shape, dtype), site, name));
  }

  /**
   * A size known only at run time, 1 ≤ value ≤ max (min to change the lower end): use it in input
   * shapes, e.g. `const H = g.dim('H', { max: 1344 }); g.input('image', [1, 3, H, W])`. One compiled
   * program then runs every size in range; memory is planned for `max`.
   */
  dim(name: string, range: { readonly max: number; readonly min?: number }): SymDim {
    if (typeof name !== 'string' || name === '')
      throw new ShapeError('dim', `the name must be a non-empty string, got ${fmtValue(name)}`, [], userCallSite());
    if (typeof range !== 'object' || range === null)
      throw new ShapeError(
        'dim',
        `${name}: expected a range { max, min? }, got ${fmtValue(range)}`,
        [],
        userCallSite(),
      );
    if (this.symbols.has(name))
      throw new ShapeError('dim', `size symbol ${name} is already declared`, [], userCallSite());
    let d: SymDim;
    try {
      d = sizeSymbol(name, range.max, range.min ?? 1);
    } catch (e) {
      throw new ShapeError('dim', (e as Error).message, [], userCallSite());
    }
    this.symbols.set(name, d);
    return d;
  }

  /** A tensor fed at run time; axes may be size symbols (see `dim`). */
  input(name: string, shape: DimShape, dtype: DType = 'f32'): Tensor {
    return this.source('input', name, shape, dtype, {});
  }

  /** A trainable parameter with an initializer. */
  param(name: string, shape: Shape, initializer: Init = init.he(), opts: { trainable?: boolean } = {}): Tensor {
    checkInit('param', name, initializer, userCallSite());
    return this.source('param', name, shape, 'f32', {
      init: initializer as unknown as AttrValue,
      trainable: opts.trainable ?? true,
    });
  }

  /** Persistent non-trainable state (e.g. optimizer momentum), kept on the device across steps. */
  state(name: string, shape: Shape, initializer: Init = init.zeros()): Tensor {
    checkInit('state', name, initializer, userCallSite());
    return this.source('state', name, shape, 'f32', { init: initializer as unknown as AttrValue });
  }

  /** A constant: a scalar, or a flat array with a shape. */
  constant(value: number | readonly number[], shape: Shape = [], dtype: DType = 'f32'): Tensor {
    const site = userCallSite();
    checkDType('const', 'a constant', dtype, site);
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d > 0))
      throw new ShapeError('const', `bad shape ${fmtValue(shape)} (dimensions must be positive integers)`, [], site);
    if (typeof value !== 'number' && !Array.isArray(value) && !ArrayBuffer.isView(value))
      throw new ShapeError(
        'const',
        `the value must be a number or an array of numbers, got ${fmtValue(value)}`,
        [],
        site,
      );
    const values = typeof value === 'number' ? [value] : [...(value as ArrayLike<number> as number[])];
    const badAt = values.findIndex((v) => typeof v !== 'number');
    if (badAt >= 0)
      throw new ShapeError('const', `value ${badAt} is ${fmtValue(values[badAt])}, not a number`, [], site);
    if (dtype !== 'f32') {
      const [lo, hi] = dtype === 'i32' ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
      const at = values.findIndex((v) => !Number.isInteger(v) || v < lo || v > hi);
      if (at >= 0)
        throw new ShapeError(
          'const',
          `value ${at} is ${fmtValue(values[at])}, not a ${dtype} (integers in [${lo}, ${hi}])`,
          [],
          site,
        );
    }
    if (values.length !== numel(shape)) {
      throw new ShapeError('const', `${values.length} values do not fill shape [${shape.join(',')}]`, [], site);
    }
    const attrs: Attrs = values.length === 1 && shape.length === 0 ? { value: values[0] as number } : { data: values };
    return this.wrap(this.graph.add('const', [], attrs, { shape: [...shape], dtype }, site));
  }

  /** Declares an op application: runs the op's shape rule, records the user's call site. */
  apply(op: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor {
    let def: ReturnType<typeof getOp>;
    try {
      def = getOp(op);
    } catch (e) {
      throw new ShapeError(String(op), (e as Error).message, [], userCallSite());
    }
    if (!Array.isArray(inputs))
      throw new ShapeError(op, `the inputs must be an array of tensors, got ${fmtValue(inputs)}`, [], userCallSite());
    inputs.forEach((t: unknown, i) => {
      if (!(t instanceof Tensor))
        throw new ShapeError(op, `input ${i} is ${fmtValue(t)}, not a Tensor of this GraphBuilder`, [], userCallSite());
      if (t.builder !== this)
        throw new ShapeError(
          op,
          `input ${i} (${t.toString()}) belongs to another GraphBuilder; tensors cannot be shared between graphs`,
          [],
          userCallSite(),
        );
    });
    if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs))
      throw new ShapeError(op, `the attributes must be an object, got ${fmtValue(attrs)}`, [], userCallSite());
    for (const [k, v] of Object.entries(attrs)) {
      const b = badAttr(v, `attribute ${k}`);
      if (b)
        throw new ShapeError(
          op,
          `${b} (${fmtValue(v)}); attributes must be numbers, strings, booleans or lists of them, without NaN`,
          inputs.map((t) => t.type),
          userCallSite(),
        );
    }
    const types = inputs.map((t) => t.type);
    if (!def.dynamic && types.some(isDynamic))
      throw new ShapeError(
        op,
        'this op does not support run-time sizes yet (an input has a size symbol); use static shapes for it',
        types,
        userCallSite(),
      );
    let type: TensorType;
    try {
      type = def.infer(types, attrs);
    } catch (e) {
      if (e instanceof RuleError) throw new ShapeError(op, e.message, types, userCallSite());
      throw e;
    }
    return this.wrap(
      this.graph.add(
        op,
        inputs.map((t) => t.id),
        attrs,
        type,
        userCallSite(),
      ),
    );
  }

  wrap(node: Node): Tensor {
    return new Tensor(this, node);
  }

  tensor(id: number): Tensor {
    if (!(Number.isInteger(id) && id >= 0 && id < this.graph.nodes.length))
      throw new ShapeError(
        'tensor',
        `no node %${fmtValue(id)} in this GraphBuilder (it has ${this.graph.nodes.length} nodes)`,
        [],
        userCallSite(),
      );
    return this.wrap(this.graph.node(id));
  }

  /** Lifts a number to a scalar constant of the given dtype. */
  lift(x: ScalarLike, dtype: DType): Tensor {
    return typeof x === 'number' ? this.constant(x, [], dtype) : x;
  }

  /** where(cond, a, b): cond is u32 (nonzero = true) and broadcasts with a and b. */
  where(cond: Tensor, a: ScalarLike, b: ScalarLike): Tensor {
    const dt = typeof a !== 'number' ? a.dtype : typeof b !== 'number' ? b.dtype : 'f32';
    return this.apply('where', [cond, this.lift(a, dt), this.lift(b, dt)]);
  }

  /** A run-time size as an f32 scalar (e.g. to divide by an element count that is only known at run time). */
  sizeValue(d: Dim, dtype: DType = 'f32'): Tensor {
    return typeof d === 'number' ? this.constant(d, [], dtype) : this.apply('size_value', [], { dim: d, dtype });
  }

  concat(tensors: readonly Tensor[], axis: number): Tensor {
    return this.apply('concat', tensors, { axis });
  }
}

/** A handle to one node of a graph. Methods declare ops; they never compute anything. */
export class Tensor {
  constructor(
    readonly builder: GraphBuilder,
    readonly node: Node,
  ) {}

  get id(): number {
    return this.node.id;
  }
  get type(): TensorType {
    return this.node.type;
  }
  /** The shape; for a tensor with run-time sizes, its upper bound (see `dims`). */
  get shape(): Shape {
    return this.node.type.shape;
  }
  /** The axes, run-time sizes (SymDim) included. */
  get dims(): DimShape {
    return dimsOf(this.node.type);
  }
  /** True when some axis is a run-time size. */
  get dynamic(): boolean {
    return isDynamic(this.node.type);
  }
  get dtype(): DType {
    return this.node.type.dtype;
  }
  get rank(): number {
    return this.node.type.shape.length;
  }
  toString(): string {
    return `%${this.id}: ${fmtType(this.type)}`;
  }

  private un(op: string, attrs: Attrs = {}): Tensor {
    return this.builder.apply(op, [this], attrs);
  }
  private bin(op: string, other: ScalarLike): Tensor {
    return this.builder.apply(op, [this, this.builder.lift(other, this.dtype)]);
  }

  add(o: ScalarLike): Tensor {
    return this.bin('add', o);
  }
  sub(o: ScalarLike): Tensor {
    return this.bin('sub', o);
  }
  mul(o: ScalarLike): Tensor {
    return this.bin('mul', o);
  }
  div(o: ScalarLike): Tensor {
    return this.bin('div', o);
  }
  pow(o: ScalarLike): Tensor {
    return this.bin('pow', o);
  }
  maximum(o: ScalarLike): Tensor {
    return this.bin('maximum', o);
  }
  minimum(o: ScalarLike): Tensor {
    return this.bin('minimum', o);
  }
  lt(o: ScalarLike): Tensor {
    return this.bin('lt', o);
  }
  le(o: ScalarLike): Tensor {
    return this.bin('le', o);
  }
  gt(o: ScalarLike): Tensor {
    return this.bin('gt', o);
  }
  ge(o: ScalarLike): Tensor {
    return this.bin('ge', o);
  }
  eq(o: ScalarLike): Tensor {
    return this.bin('eq', o);
  }
  ne(o: ScalarLike): Tensor {
    return this.bin('ne', o);
  }
  neg(): Tensor {
    return this.un('neg');
  }
  abs(): Tensor {
    return this.un('abs');
  }
  exp(): Tensor {
    return this.un('exp');
  }
  log(): Tensor {
    return this.un('log');
  }
  sqrt(): Tensor {
    return this.un('sqrt');
  }
  relu(): Tensor {
    return this.un('relu');
  }
  sigmoid(): Tensor {
    return this.un('sigmoid');
  }
  tanh(): Tensor {
    return this.un('tanh');
  }
  /** min(max(x, 0), 6), as torch.nn.ReLU6. */
  relu6(): Tensor {
    return this.un('relu6');
  }
  /** relu6(x + 3) / 6, as torch.nn.Hardsigmoid. */
  hardsigmoid(): Tensor {
    return this.un('hardsigmoid');
  }
  /** x · relu6(x + 3) / 6, as torch.nn.Hardswish. */
  hardswish(): Tensor {
    return this.un('hardswish');
  }
  cast(dtype: DType): Tensor {
    return this.un('cast', { dtype });
  }
  stopGradient(): Tensor {
    return this.un('stop_gradient');
  }

  /** Sum over axes (all when omitted). */
  sum(axes?: number | readonly number[], keepDims = false): Tensor {
    return this.un('sum', { axes: normAxes(axes, this.rank), keepDims });
  }
  max(axes?: number | readonly number[], keepDims = false): Tensor {
    return this.un('max', { axes: normAxes(axes, this.rank), keepDims });
  }
  mean(axes?: number | readonly number[], keepDims = false): Tensor {
    const ax = normAxes(axes, this.rank);
    const count = dimProd(ax.map((a) => this.dims[a] ?? 1));
    const s = this.sum(ax, keepDims);
    return typeof count === 'number' ? s.mul(1 / count) : s.div(this.builder.sizeValue(count));
  }
  /** Index (i32) of the first maximum along one axis. */
  argmax(axis: number, keepDims = false): Tensor {
    return this.un('argmax', { axis, keepDims });
  }

  /** Reshape; axes may be run-time sizes, and one axis may be -1 (inferred). */
  reshape(shape: DimShape): Tensor {
    return this.un('reshape', { shape: [...shape] });
  }
  transpose(perm?: readonly number[]): Tensor {
    const p = perm ?? [...Array(this.rank).keys()].reverse();
    return this.un('transpose', { perm: [...p] });
  }
  /**
   * Python-style slice per axis: starts/ends (ends exclusive), optional steps (positive). On a run-time
   * size, an end may be a size expression (e.g. the first H rows of a table built for the largest H).
   */
  slice(starts: readonly Dim[], ends: readonly Dim[], steps?: readonly number[]): Tensor {
    return this.un('slice', { starts: [...starts], ends: [...ends], steps: steps ? [...steps] : null });
  }
  /** Constant padding: pads[i] = [before, after] for axis i. */
  pad(pads: readonly (readonly [number, number])[], value = 0): Tensor {
    return this.un('pad', { pads: pads.map((p) => [p[0], p[1]]), value });
  }
  /**
   * Gathers slices along `axis` at i32 `indices` (like torch.index_select / tf.gather). Indices must lie
   * in [0, size of the axis). Where they are fed from the host (an input, possibly reshaped), the session
   * checks every feed and rejects an out-of-range index; the CPU interpreter rejects one too. Indices
   * computed on the GPU are not checked: the kernel clamps each into [0, size − 1], so an out-of-range
   * index reads the first or last slice (and its gradient goes there).
   */
  gather(indices: Tensor, axis = 0): Tensor {
    return this.builder.apply('gather', [this, indices], { axis });
  }

  /** Matrix product over the last two axes (leading axes batch). */
  matmul(other: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor {
    return this.builder.apply('matmul', [this, other], { transA: opts.transA ?? false, transB: opts.transB ?? false });
  }

  /** NCHW convolution with an OIHW weight (O = out channels, I = in channels / groups). */
  conv2d(weight: Tensor, opts: Conv2dOptions = {}): Tensor {
    return this.builder.apply('conv2d', [this, weight], {
      stride: pair(opts.stride ?? 1),
      padding: pair(opts.padding ?? 0),
      dilation: pair(opts.dilation ?? 1),
      groups: opts.groups ?? 1,
    });
  }

  maxPool2d(opts: Pool2dOptions): Tensor {
    const kernel = pair(opts.kernel);
    return this.un('max_pool2d', {
      kernel,
      stride: pair(opts.stride ?? kernel),
      padding: pair(opts.padding ?? 0),
      ceilMode: opts.ceilMode ?? false,
    });
  }

  softmax(axis = -1): Tensor {
    return this.un('softmax', { axis });
  }
  logSoftmax(axis = -1): Tensor {
    return this.un('log_softmax', { axis });
  }
  /**
   * Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p); the mask is a hash of
   * (seed, index), XORed with `stepSeed` (a one-element u32 input) when given, for a new mask each step.
   */
  dropout(p: number, seed: number, stepSeed?: Tensor): Tensor {
    if (stepSeed) return this.builder.apply('dropout', [this, stepSeed], { p, seed });
    return this.un('dropout', { p, seed });
  }
}

function normAxes(axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return list.map((a) => (a < 0 ? a + rank : a)).sort((x, y) => x - y);
}
