/**
 * Movement ops: reshape and stop_gradient (views, no kernel), transpose, slice, pad, concat and
 * gather (opaque kernels, one thread per output element), plus the gradient helpers slice_grad and
 * gather_grad (gather formulations: every output element is written by exactly one thread, no atomics).
 */

import {
  type Dim,
  dimAdd,
  dimDivExact,
  dimEq,
  dimEval,
  dimFmt,
  dimMax,
  dimMin,
  dimMul,
  dimProd,
  dimSub,
  SymDim,
} from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import { type Attrs, type AttrValue, fmtValue, type Node } from '../compiler/ir.js';
import type { Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import {
  type DimShape,
  type DType,
  dimStrides,
  dimsOf,
  fmtShape,
  normAxis,
  numel,
  numelDims,
  type Shape,
  sameDims,
  stridesOf,
  type TensorType,
  typeOf,
} from '../compiler/types.js';
import { sizeI32, unravel } from './kit/indexing.js';
import { perThread } from './kit/launch.js';
import { storeOut } from './kit/store.js';

// ---------------------------------------------------------------- attribute helpers

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function intList(attrs: Attrs, key: string, allowNull = false): (number | null)[] {
  const v = attrs[key];
  if (!Array.isArray(v) || !v.every((x) => isInt(x) || (allowNull && x === null))) {
    fail(`attribute ${key} must be a list of integers${allowNull ? ' (or nulls)' : ''}, got ${fmtValue(v)}`);
  }
  return v as (number | null)[];
}

function axisAttr(attrs: Attrs, rank: number): number {
  const a = attrs.axis;
  if (!isInt(a)) fail(`attribute axis must be an integer, got ${fmtValue(a)}`);
  const ax = normAxis(a, rank);
  if (ax < 0) fail(`axis ${a} is out of range for rank ${rank}`);
  return ax;
}

/** A shape attribute (a gradient op's inputShape): positive integers or run-time sizes. */
function shapeAttr(attrs: Attrs, key: string): Dim[] {
  const v = attrs[key];
  if (!Array.isArray(v) || !v.every((d) => (isInt(d) && d > 0) || d instanceof SymDim))
    fail(`attribute ${key} must be a shape (positive integers or sizes), got ${fmtValue(v)}`);
  return v as Dim[];
}

const prod = (s: Shape, from = 0, to = s.length): number => {
  let n = 1;
  for (let i = from; i < to; i++) n *= s[i] as number;
  return n;
};
const prodDims = (s: DimShape, from = 0, to = s.length): Dim => dimProd(s.slice(from, to));

// ---------------------------------------------------------------- CPU helpers

/** out[flat] = fn(coords) over a row-major shape (coords reused between calls). */
function cpuMap(shape: Shape, fn: (coords: readonly number[]) => number): Float64Array {
  const n = numel(shape);
  const out = new Float64Array(n);
  const rank = shape.length;
  const c = new Array<number>(rank).fill(0);
  for (let flat = 0; flat < n; flat++) {
    out[flat] = fn(c);
    for (let d = rank - 1; d >= 0; d--) {
      c[d] = (c[d] as number) + 1;
      if ((c[d] as number) < (shape[d] as number)) break;
      c[d] = 0;
    }
  }
  return out;
}

const dataOf = (t: RefTensor | undefined): Float64Array => (t as RefTensor).data;

// ---------------------------------------------------------------- kernel helpers

const isLit = (e: Expr, v: number): boolean => e.k === 'lit' && e.v === v;
/** e * c with trivial cases folded (u32); c may be a run-time size. */
const mulC = (e: Expr, c: Dim): Expr =>
  c === 0 || isLit(e, 0) ? K.u32(0) : c === 1 ? e : K.mul(e, typeof c === 'number' ? K.u32(c) : K.size(c));
const addE = (a: Expr, b: Expr): Expr => (isLit(a, 0) ? b : isLit(b, 0) ? a : K.add(a, b));
const dot = (terms: readonly Expr[], strides: readonly Dim[]): Expr =>
  terms.reduce<Expr>((acc, t, i) => addE(acc, mulC(t, strides[i] as Dim)), K.u32(0));

const zeroOf = (dt: DType): Expr => K.lit(0, dt);

// ---------------------------------------------------------------- views

/**
 * Resolves a reshape target (at most one -1; axes may be run-time sizes) against the input's axes;
 * fails with both shapes. Element counts are compared symbolically.
 */
export function resolveReshape(from: DimShape, target: AttrValue | undefined): Dim[] {
  if (!Array.isArray(target) || !target.every((d) => typeof d === 'number' || d instanceof SymDim)) {
    fail(`attribute shape must be a list of numbers or sizes, got ${fmtValue(target)}`);
  }
  const shape = target as Dim[];
  let infer = -1;
  let known: Dim = 1;
  shape.forEach((d, i) => {
    if (d === -1) {
      if (infer >= 0) fail(`shape ${fmtShape(shape)} has more than one -1`);
      infer = i;
    } else if (typeof d === 'number' && (!Number.isInteger(d) || d <= 0)) {
      fail(`shape ${fmtShape(shape)} has a bad dimension ${d} (dimensions must be positive integers or a single -1)`);
    } else known = dimMul(known, d);
  });
  const n = numelDims(from);
  if (infer >= 0) {
    const q = dimDivExact(n, known);
    if (q === undefined)
      fail(
        `cannot reshape ${fmtShape(from)} (${dimFmt(n)} elements) to ${fmtShape(shape)}: ${dimFmt(n)} is not a multiple of ${dimFmt(known)}`,
      );
    const out = [...shape];
    out[infer] = q;
    return out;
  }
  if (!dimEq(known, n))
    fail(`cannot reshape ${fmtShape(from)} (${dimFmt(n)} elements) to ${fmtShape(shape)} (${dimFmt(known)} elements)`);
  return [...shape];
}

registerOp({
  name: 'reshape',
  kind: 'view',
  dynamic: true,
  infer: ([x], attrs) => {
    const t = x as TensorType;
    return typeOf(resolveReshape(dimsOf(t), attrs.shape), t.dtype);
  },
  cpu: ({ inputs }) => dataOf(inputs[0]).slice(),
  grad: ({ inputs, dy }) => [dy.reshape((inputs[0] as Tensor).dims)],
});

registerOp({
  name: 'stop_gradient',
  kind: 'view',
  dynamic: true,
  infer: ([x]) => x as TensorType,
  cpu: ({ inputs }) => dataOf(inputs[0]).slice(),
  grad: () => [null],
});

// ---------------------------------------------------------------- transpose

function permAttr(attrs: Attrs, rank: number): number[] {
  const v = attrs.perm;
  const ok =
    Array.isArray(v) &&
    v.length === rank &&
    v.every(isInt) &&
    [...(v as number[])].sort((a, b) => a - b).every((p, i) => p === i);
  if (!ok) fail(`perm ${fmtValue(v)} is not a permutation of the ${rank} axes 0..${rank - 1}`);
  return v as number[];
}

registerOp({
  name: 'transpose',
  kind: 'opaque',
  dynamic: true,
  infer: ([x], attrs) => {
    const t = x as TensorType;
    const dims = dimsOf(t);
    const perm = permAttr(attrs, dims.length);
    return typeOf(
      perm.map((p) => dims[p] as Dim),
      t.dtype,
    );
  },
  cpu: ({ inputs, attrs, out }) => {
    const x = inputs[0] as RefTensor;
    const perm = attrs.perm as number[];
    const xs = stridesOf(x.shape);
    const st = perm.map((p) => xs[p] as number);
    return cpuMap(out.shape, (c) => x.data[c.reduce((acc, v, i) => acc + v * (st[i] as number), 0)] as number);
  },
  grad: ({ attrs, dy }) => {
    const perm = attrs.perm as number[];
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [dy.transpose(inv)];
  },
  lower: (a) => {
    const perm = a.attrs.perm as number[];
    const x = a.inputs[0] as LowerArgs['output'];
    const xs = dimStrides(dimsOf(x.type));
    const st = perm.map((p) => xs[p] as Dim);
    const outDims = dimsOf(a.output.type);
    return [
      perThread(a.name, numelDims(outDims), (kb, flat) => {
        const c = unravel(kb, flat, outDims);
        storeOut(kb, a, flat, K.load(x.buf, dot(c, st)), { coords: c });
      }),
    ];
  },
});

// ---------------------------------------------------------------- slice

interface AxisSlice<D extends Dim = number> {
  readonly start: D;
  readonly step: number;
  readonly len: D;
}

/** Python slice semantics per axis (negative indices count from the end, clamped); null = default. */
function resolveSlice(shape: Shape, attrs: Attrs): AxisSlice[] {
  return resolveSliceDims(shape, attrs) as AxisSlice[];
}

/**
 * {@link resolveSlice} over axes that may be run-time sizes. A run-time-size axis n can be taken whole
 * (start 0, end null or ≥ its largest value, step 1), cut to a range within its smallest value (static
 * length), or cut between a start and an end that may be size expressions, 0 ≤ start < end ≤ n for
 * every size (the gradients of pad and concat); Python's clamping of other ends would depend on the
 * run-time size.
 */
function resolveSliceDims(shape: DimShape, attrs: Attrs): AxisSlice<Dim>[] {
  const starts = boundList(attrs, 'starts');
  const ends = boundList(attrs, 'ends');
  const steps = attrs.steps === null || attrs.steps === undefined ? null : intList(attrs, 'steps', true);
  const rank = shape.length;
  if (starts.length !== ends.length)
    fail(`starts ${fmtValue(starts)} and ends ${fmtValue(ends)} have different lengths`);
  if (starts.length > rank) fail(`${starts.length} starts/ends for a rank-${rank} tensor ${fmtShape(shape)}`);
  if (steps && steps.length !== starts.length)
    fail(`steps ${fmtValue(steps)} must have one entry per start (${starts.length})`);
  return shape.map((n, d) => {
    if (d >= starts.length) return { start: 0, step: 1, len: n };
    const step = steps?.[d] ?? 1;
    if (step <= 0) fail(`step ${step} on axis ${d} must be a positive integer`);
    const end = ends[d] ?? null;
    const start = starts[d] ?? 0;
    if (typeof n !== 'number' || end instanceof SymDim || start instanceof SymDim)
      return runTimeAxisSlice(shape, d, start, end, step);
    const norm = (v: number): number => (v < 0 ? Math.max(0, v + n) : Math.min(v, n));
    const st = norm(start);
    const e = norm(end ?? n);
    const len = e > st ? Math.ceil((e - st) / step) : 0;
    if (len === 0) {
      fail(
        `axis ${d} of ${fmtShape(shape)} sliced [${starts[d]}:${ends[d]}:${step}] is empty (zero-size tensors are not supported)`,
      );
    }
    return { start: st, step, len };
  });
}

/** Slice starts or ends: integers, nulls, or (from gradient rules) size expressions. */
function boundList(attrs: Attrs, key: 'starts' | 'ends'): (number | SymDim | null)[] {
  const v = attrs[key];
  if (!Array.isArray(v) || !v.every((x) => isInt(x) || x === null || x instanceof SymDim))
    fail(`attribute ${key} must be a list of integers (or nulls), got ${fmtValue(v)}`);
  return v as (number | SymDim | null)[];
}

function runTimeAxisSlice(
  shape: DimShape,
  d: number,
  start: Dim,
  end: number | SymDim | null,
  step: number,
): AxisSlice<Dim> {
  const n = shape[d] as Dim;
  const what = `axis ${d} of ${fmtShape(shape)} sliced [${dimFmt(start)}:${end === null ? '' : dimFmt(end)}:${step}]`;
  if (dimMin(start) < 0) fail(`${what}: a run-time-size axis takes no negative start`);
  if (step === 1 && start === 0 && (end === null || (typeof end === 'number' && end >= dimMax(n))))
    return { start: 0, step: 1, len: n };
  if (typeof end === 'number' && typeof start === 'number') {
    if (end < 0 || end > dimMin(n) || end <= start)
      fail(`${what}: a run-time-size axis is cut only within its smallest size ${dimMin(n)}, or taken whole`);
    return { start, step, len: Math.ceil((end - start) / step) };
  }
  if (end === null || step !== 1 || dimMin(dimSub(end, start)) < 1 || dimMin(dimSub(n, end)) < 0)
    fail(`${what}: the end must lie after the start and within the axis for every size`);
  return { start, step: 1, len: dimSub(end, start) };
}

/** The slice attributes with size-expression ends evaluated (the CPU reference runs at one size). */
function atSizes(attrs: Attrs, env: Readonly<Record<string, number>>): Attrs {
  const at = (v: AttrValue | undefined): AttrValue | undefined =>
    Array.isArray(v) ? (v.map((e) => (e instanceof SymDim ? dimEval(e, env) : e)) as number[]) : v;
  return { ...attrs, starts: at(attrs.starts) as AttrValue, ends: at(attrs.ends) as AttrValue };
}

/** The slice attributes of a node, without inputShape (as passed on to slice_grad and back). */
const sliceAttrs = (attrs: Attrs): Attrs => ({
  starts: attrs.starts ?? [],
  ends: attrs.ends ?? [],
  steps: attrs.steps ?? null,
});

function cpuSlice(x: RefTensor, ax: readonly AxisSlice[], outShape: Shape): Float64Array {
  const xs = stridesOf(x.shape);
  const base = ax.reduce((acc, s, d) => acc + s.start * (xs[d] as number), 0);
  const st = ax.map((s, d) => s.step * (xs[d] as number));
  return cpuMap(outShape, (c) => x.data[c.reduce((acc, v, i) => acc + v * (st[i] as number), base)] as number);
}

registerOp({
  name: 'slice',
  kind: 'opaque',
  dynamic: true,
  infer: ([x], attrs) => {
    const t = x as TensorType;
    return typeOf(
      resolveSliceDims(dimsOf(t), attrs).map((s) => s.len),
      t.dtype,
    );
  },
  cpu: ({ inputs, attrs, out, env }) => {
    const x = inputs[0] as RefTensor;
    return cpuSlice(x, resolveSlice(x.shape, atSizes(attrs, env)), out.shape);
  },
  grad: ({ inputs, attrs, dy }) => [
    dy.builder.apply('slice_grad', [dy], { ...sliceAttrs(attrs), inputShape: [...(inputs[0] as Tensor).dims] }),
  ],
  lower: (a) => {
    const x = a.inputs[0] as LowerArgs['output'];
    const ax = resolveSliceDims(dimsOf(x.type), a.attrs);
    const xs = dimStrides(dimsOf(x.type));
    const base = ax.reduce<Dim>((acc, s, d) => dimAdd(acc, dimMul(s.start, xs[d] as Dim)), 0);
    const st = ax.map((s, d) => dimMul(s.step, xs[d] as Dim));
    const outDims = dimsOf(a.output.type);
    return [
      perThread(a.name, numelDims(outDims), (kb, flat) => {
        const c = unravel(kb, flat, outDims);
        storeOut(kb, a, flat, K.load(x.buf, addE(K.size(base), dot(c, st))), { coords: c });
      }),
    ];
  },
});

// ---------------------------------------------------------------- embed: slice_grad and pad

/**
 * out[c] = in[(c - off) / step] where every axis has c >= off, (c - off) % step == 0 and
 * (c - off) / step < in.shape; `fill` elsewhere. slice_grad is an embed with the slice's
 * start/step; pad one with off = before, step 1.
 */
function cpuEmbed(
  x: RefTensor,
  outShape: Shape,
  off: readonly number[],
  step: readonly number[],
  fill: number,
): Float64Array {
  const xs = stridesOf(x.shape);
  return cpuMap(outShape, (c) => {
    let idx = 0;
    for (let d = 0; d < c.length; d++) {
      const r = (c[d] as number) - (off[d] as number);
      const q = r / (step[d] as number);
      if (r < 0 || !Number.isInteger(q) || q >= (x.shape[d] as number)) return fill;
      idx += q * (xs[d] as number);
    }
    return x.data[idx] as number;
  });
}

function lowerEmbed(a: LowerArgs, off: readonly Dim[], step: readonly number[], fill: Expr): Kernel[] {
  const x = a.inputs[0] as LowerArgs['output'];
  const inShape = dimsOf(x.type);
  const outShape = dimsOf(a.output.type);
  const xs = dimStrides(inShape);
  return [
    perThread(a.name, numelDims(outShape), (kb, flat) => {
      const c = unravel(kb, flat, outShape);
      const conds: Expr[] = [];
      const q = c.map((cd, d) => {
        const o = off[d] as Dim;
        const s = step[d] as number;
        const n = inShape[d] as Dim;
        // An axis copied whole needs no test.
        if (o === 0 && s === 1 && dimEq(n, outShape[d] as Dim)) return cd;
        if (o !== 0) conds.push(K.ge(cd, K.size(o)));
        const r = o !== 0 ? kb.let('r', K.sub(K.max(cd, K.size(o)), K.size(o))) : cd;
        if (s !== 1) conds.push(K.eq(K.mod(r, K.u32(s)), K.u32(0)));
        const qd = s !== 1 ? kb.let('q', K.div(r, K.u32(s))) : r;
        conds.push(K.lt(qd, K.size(n)));
        return qd;
      });
      if (conds.length === 0) {
        storeOut(kb, a, flat, K.load(x.buf, dot(q, xs)), { coords: c });
        return;
      }
      const ok = kb.let(
        'inside',
        conds.reduce((p, e) => K.and(p, e)),
      );
      const v = kb.var('v', fill);
      kb.if(ok, () => kb.assign(v, K.load(x.buf, dot(q, xs))));
      storeOut(kb, a, flat, v, { coords: c });
    }),
  ];
}

registerOp({
  name: 'slice_grad',
  kind: 'opaque',
  dynamic: true,
  infer: ([dy], attrs) => {
    const t = dy as TensorType;
    const inShape = shapeAttr(attrs, 'inputShape');
    const want = resolveSliceDims(inShape, attrs).map((s) => s.len);
    if (!sameDims(dimsOf(t), want)) {
      fail(`dy has shape ${fmtShape(dimsOf(t))}, but slicing ${fmtShape(inShape)} gives ${fmtShape(want)}`);
    }
    return typeOf(inShape, t.dtype);
  },
  cpu: ({ inputs, attrs, out, env }) => {
    const ax = resolveSlice(out.shape, atSizes(attrs, env));
    return cpuEmbed(
      inputs[0] as RefTensor,
      out.shape,
      ax.map((s) => s.start),
      ax.map((s) => s.step),
      0,
    );
  },
  grad: ({ attrs, dy }) => [dy.builder.apply('slice', [dy], sliceAttrs(attrs))],
  lower: (a) => {
    const ax = resolveSliceDims(dimsOf(a.output.type), a.attrs);
    return lowerEmbed(
      a,
      ax.map((s) => s.start),
      ax.map((s) => s.step),
      zeroOf(a.output.type.dtype),
    );
  },
});

function padsAttr(attrs: Attrs, shape: DimShape): [number, number][] {
  const v = attrs.pads;
  const ok =
    Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => isInt(x) && x >= 0));
  if (!ok) fail(`pads ${fmtValue(v)} must be a list of [before, after] pairs of non-negative integers`);
  const pads = v as [number, number][];
  if (pads.length > shape.length) fail(`${pads.length} pads for a rank-${shape.length} tensor ${fmtShape(shape)}`);
  return shape.map((_, d) => pads[d] ?? [0, 0]);
}

function padValue(attrs: Attrs, dt: DType): number {
  const v = attrs.value ?? 0;
  if (typeof v !== 'number') fail(`pad value must be a number, got ${fmtValue(v)}`);
  if (
    dt !== 'f32' &&
    !(Number.isInteger(v) && (dt === 'i32' ? v >= -(2 ** 31) && v < 2 ** 31 : v >= 0 && v < 2 ** 32))
  ) {
    fail(`pad value ${v} does not fit dtype ${dt}`);
  }
  return v;
}

registerOp({
  name: 'pad',
  kind: 'opaque',
  dynamic: true,
  infer: ([x], attrs) => {
    const t = x as TensorType;
    const dims = dimsOf(t);
    const pads = padsAttr(attrs, dims);
    padValue(attrs, t.dtype);
    return typeOf(
      dims.map((d, i) => dimAdd(d, (pads[i] as [number, number])[0] + (pads[i] as [number, number])[1])),
      t.dtype,
    );
  },
  cpu: ({ inputs, attrs, out }) => {
    const x = inputs[0] as RefTensor;
    const pads = padsAttr(attrs, x.shape);
    return cpuEmbed(
      x,
      out.shape,
      pads.map((p) => p[0]),
      pads.map(() => 1),
      padValue(attrs, x.dtype),
    );
  },
  grad: ({ inputs, attrs, dy }) => {
    const x = inputs[0] as Tensor;
    const pads = padsAttr(attrs, x.dims);
    const ends = pads.map((p, d) => dimAdd(p[0], x.dims[d] as Dim));
    return [dy.builder.apply('slice', [dy], { starts: pads.map((p) => p[0]), ends, steps: null })];
  },
  lower: (a) => {
    const x = a.inputs[0] as LowerArgs['output'];
    const pads = padsAttr(a.attrs, dimsOf(x.type));
    const dt = x.type.dtype;
    return lowerEmbed(
      a,
      pads.map((p) => p[0]),
      pads.map(() => 1),
      K.lit(padValue(a.attrs, dt), dt),
    );
  },
});

// ---------------------------------------------------------------- concat

registerOp({
  name: 'concat',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    const first = inputs[0];
    if (!first) fail('needs at least one input');
    const fd = dimsOf(first);
    const rank = fd.length;
    if (rank === 0) fail('cannot concatenate scalars (rank 0)');
    const axis = axisAttr(attrs, rank);
    let total: Dim = 0;
    inputs.forEach((t, k) => {
      if (t.dtype !== first.dtype) fail(`input ${k} has dtype ${t.dtype}, input 0 has ${first.dtype}`);
      const td = dimsOf(t);
      const same = td.length === rank && td.every((d, i) => i === axis || dimEq(d, fd[i] as Dim));
      if (!same)
        fail(`input ${k} has shape ${fmtShape(td)}, which differs from input 0's ${fmtShape(fd)} outside axis ${axis}`);
      total = dimAdd(total, td[axis] as Dim);
    });
    const shape = [...fd];
    shape[axis] = total;
    return typeOf(shape, first.dtype);
  },
  cpu: ({ inputs, attrs, out }) => {
    const rank = out.shape.length;
    const axis = normAxis(attrs.axis as number, rank);
    const outer = prod(out.shape, 0, axis);
    const inner = prod(out.shape, axis + 1);
    const total = out.shape[axis] as number;
    const res = new Float64Array(numel(out.shape));
    let off = 0;
    for (const t of inputs) {
      const len = t.shape[axis] as number;
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < len * inner; j++)
          res[(o * total + off) * inner + j] = t.data[o * len * inner + j] as number;
      }
      off += len;
    }
    return res;
  },
  grad: ({ inputs, attrs, dy }) => {
    const axis = normAxis(attrs.axis as number, dy.rank);
    let off: Dim = 0;
    return inputs.map((t) => {
      const len = t.dims[axis] as Dim;
      const starts = t.dims.map((_, d) => (d === axis ? off : 0));
      const ends = t.dims.map((_, d) => (d === axis ? dimAdd(off, len) : null));
      off = dimAdd(off, len);
      return dy.builder.apply('slice', [dy], { starts, ends, steps: null });
    });
  },
  lower: (a) => {
    const shape = dimsOf(a.output.type);
    const axis = normAxis(a.attrs.axis as number, shape.length);
    const outer = prodDims(shape, 0, axis);
    const inner = prodDims(shape, axis + 1);
    const total = shape[axis] as Dim;
    // The output binding counts against the per-stage storage buffer limit.
    const perKernel = Math.max(1, a.limits.maxStorageBuffersPerShaderStage - 1);
    const kernels: Kernel[] = [];
    let off: Dim = 0;
    for (let g = 0; g < a.inputs.length; g += perKernel) {
      const group = a.inputs.slice(g, g + perKernel);
      const groupOff = off;
      const lens = group.map((t) => dimsOf(t.type)[axis] as Dim);
      const groupLen = lens.reduce<Dim>((p, q) => dimAdd(p, q), 0);
      off = dimAdd(off, groupLen);
      const name = a.inputs.length > perKernel ? `${a.name}_part${g / perKernel}` : a.name;
      kernels.push(
        perThread(name, dimProd([outer, groupLen, inner]), (kb, flat) => {
          // flat = (o * groupLen + j) * inner + i over this group's region of the output
          const i = inner === 1 ? K.u32(0) : kb.let('i', K.mod(flat, K.size(inner)));
          const oj = inner === 1 ? flat : kb.let('oj', K.div(flat, K.size(inner)));
          const j = groupLen === 1 ? K.u32(0) : kb.let('j', K.mod(oj, K.size(groupLen)));
          const o = outer === 1 ? K.u32(0) : kb.let('o', K.div(oj, K.size(groupLen)));
          const dst = kb.let(
            'dst',
            addE(mulC(o, dimMul(total, inner)), addE(mulC(addE(j, K.size(groupOff)), inner), i)),
          );
          const emit = (k: number, start: Dim): void => {
            const t = group[k] as LowerArgs['output'];
            const len = lens[k] as Dim;
            const src = addE(
              mulC(o, dimMul(len, inner)),
              addE(mulC(start === 0 ? j : K.sub(j, K.size(start)), inner), i),
            );
            const v = K.load(t.buf, src);
            kb.store(a.output.buf, dst, a.hasEpilogue ? a.epilogue(v, unravel(kb, dst, shape), dst) : v);
          };
          // if (j < end0) copy input 0 else if (j < end1) copy input 1 ... else copy the last
          const chain = (k: number, start: Dim): void => {
            if (k === group.length - 1) {
              emit(k, start);
              return;
            }
            const end = dimAdd(start, lens[k] as Dim);
            kb.if(
              K.lt(j, K.size(end)),
              () => emit(k, start),
              () => chain(k + 1, end),
            );
          };
          chain(0, 0);
        }),
      );
    }
    return kernels;
  },
});

// ---------------------------------------------------------------- gather

/**
 * Out-of-range indices: the CPU references reject them; the kernels clamp them into [0, n − 1] (no
 * out-of-bounds read, but a wrong index silently reads or accumulates into the first or last slice).
 * Indices fed from the host are checked before upload instead (compiler/index-ranges.ts records the
 * range on the input, the session checks each feed); indices computed on the GPU are clamped.
 */
function gatherIndex(v: number, n: number, shape: Shape, node: Node): number {
  if (!(Number.isInteger(v) && v >= 0 && v < n)) {
    const at = node.site ? ` (declared at ${node.site})` : '';
    throw new WgflowError(
      `${node.op}: index ${v} is out of range for axis ${node.attrs.axis} of size ${n} (x ${fmtShape(shape)})${at}`,
    );
  }
  return v;
}

/** x (for gather_grad, dx) viewed as [outer, n, inner] around the gather axis; y (dy) is [outer, ni, inner]. */
interface GatherGeom<D extends Dim = number> {
  readonly outer: D;
  readonly n: D;
  readonly inner: D;
  readonly ni: D;
}

function gatherGeom(xShape: Shape, axis: number, ni: number): GatherGeom {
  return gatherGeomDims(xShape, axis, ni) as GatherGeom;
}

function gatherGeomDims(xShape: DimShape, axis: number, ni: Dim): GatherGeom<Dim> {
  const ax = normAxis(axis, xShape.length);
  return { outer: prodDims(xShape, 0, ax), n: xShape[ax] as Dim, inner: prodDims(xShape, ax + 1), ni };
}

/** The gather kernels' index clamp into [0, n − 1] (see above). */
const clampIndex = (i: Expr, n: Dim): Expr => K.cast('u32', K.call('clamp', i, K.i32(0), K.sub(sizeI32(n), K.i32(1))));

/** Calls f(xi, yi) for every element the gather copies from x[xi] to y[yi], in the order (j, o, i). */
function forEachGathered(
  geom: GatherGeom,
  ind: RefTensor,
  xShape: Shape,
  node: Node,
  f: (xi: number, yi: number) => void,
): void {
  const { outer, n, inner, ni } = geom;
  for (let j = 0; j < ni; j++) {
    const k = gatherIndex(ind.data[j] as number, n, xShape, node);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) f((o * n + k) * inner + i, (o * ni + j) * inner + i);
    }
  }
}

registerOp({
  name: 'gather',
  kind: 'opaque',
  dynamic: true,
  infer: ([x, idx], attrs) => {
    const tx = x as TensorType;
    const ti = idx as TensorType;
    if (!ti) fail('needs inputs (x, indices)');
    if (ti.dtype !== 'i32') fail(`indices must be i32, got ${ti.dtype}${fmtShape(dimsOf(ti))}`);
    const xd = dimsOf(tx);
    const axis = axisAttr(attrs, xd.length);
    return typeOf([...xd.slice(0, axis), ...dimsOf(ti), ...xd.slice(axis + 1)], tx.dtype);
  },
  cpu: ({ inputs, attrs, node }) => {
    const [x, ind] = inputs as [RefTensor, RefTensor];
    const geom = gatherGeom(x.shape, attrs.axis as number, ind.data.length);
    const res = new Float64Array(geom.outer * geom.ni * geom.inner);
    forEachGathered(geom, ind, x.shape, node, (xi, yi) => {
      res[yi] = x.data[xi] as number;
    });
    return res;
  },
  grad: ({ inputs, attrs, dy }) => {
    const [x, ind] = inputs as [Tensor, Tensor];
    return [dy.builder.apply('gather_grad', [dy, ind], { axis: attrs.axis ?? 0, inputShape: [...x.dims] }), null];
  },
  lower: (a) => {
    const [x, ind] = a.inputs as [LowerArgs['output'], LowerArgs['output']];
    const { outer, n, inner, ni } = gatherGeomDims(dimsOf(x.type), a.attrs.axis as number, numelDims(dimsOf(ind.type)));
    return [
      perThread(a.name, dimProd([outer, ni, inner]), (kb, flat) => {
        const i = inner === 1 ? K.u32(0) : kb.let('i', K.mod(flat, K.size(inner)));
        const oj = inner === 1 ? flat : kb.let('oj', K.div(flat, K.size(inner)));
        const j = ni === 1 ? K.u32(0) : kb.let('j', K.mod(oj, K.size(ni)));
        const o = outer === 1 ? K.u32(0) : kb.let('o', K.div(oj, K.size(ni)));
        // out-of-range indices are clamped (the CPU reference rejects them)
        const k = kb.let('k', clampIndex(K.load(ind.buf, j), n));
        const src = addE(mulC(o, dimMul(n, inner)), addE(mulC(k, inner), i));
        storeOut(kb, a, flat, K.load(x.buf, src));
      }),
    ];
  },
});

registerOp({
  name: 'gather_grad',
  kind: 'opaque',
  dynamic: true,
  infer: ([dy, idx], attrs) => {
    const td = dy as TensorType;
    const ti = idx as TensorType;
    if (!ti) fail('needs inputs (dy, indices)');
    if (ti.dtype !== 'i32') fail(`indices must be i32, got ${ti.dtype}${fmtShape(dimsOf(ti))}`);
    const inShape = shapeAttr(attrs, 'inputShape');
    const axis = axisAttr(attrs, inShape.length);
    const want = [...inShape.slice(0, axis), ...dimsOf(ti), ...inShape.slice(axis + 1)];
    if (!sameDims(dimsOf(td), want)) {
      fail(
        `dy has shape ${fmtShape(dimsOf(td))}, but gathering ${fmtShape(inShape)} along axis ${axis} gives ${fmtShape(want)}`,
      );
    }
    return typeOf(inShape, td.dtype);
  },
  cpu: ({ inputs, attrs, out, node }) => {
    const [dy, ind] = inputs as [RefTensor, RefTensor];
    const res = new Float64Array(numel(out.shape));
    forEachGathered(gatherGeom(out.shape, attrs.axis as number, ind.data.length), ind, out.shape, node, (xi, yi) => {
      res[xi] = (res[xi] as number) + (dy.data[yi] as number);
    });
    return res;
  },
  grad: ({ inputs, attrs, dy }) => [dy.gather(inputs[1] as Tensor, attrs.axis as number), null],
  lower: (a) => {
    const [dy, ind] = a.inputs as [LowerArgs['output'], LowerArgs['output']];
    const shape = dimsOf(a.output.type);
    const { outer, n, inner, ni } = gatherGeomDims(shape, a.attrs.axis as number, numelDims(dimsOf(ind.type)));
    const dt = a.output.type.dtype;
    return [
      perThread(a.name, numelDims(shape), (kb, flat) => {
        // flat = (o * n + k) * inner + i; sum dy[o, j, i] over every j whose index is k
        const i = inner === 1 ? K.u32(0) : kb.let('i', K.mod(flat, K.size(inner)));
        const ok = inner === 1 ? flat : kb.let('ok', K.div(flat, K.size(inner)));
        const k = n === 1 ? K.u32(0) : kb.let('k', K.mod(ok, K.size(n)));
        const o = outer === 1 ? K.u32(0) : kb.let('o', K.div(ok, K.size(n)));
        const base = kb.let('base', addE(mulC(o, dimMul(ni, inner)), i));
        const acc = kb.var('acc', zeroOf(dt));
        kb.for(
          'j',
          0,
          K.size(ni),
          (j) => {
            const kj = clampIndex(K.load(ind.buf, j), n);
            kb.if(K.eq(kj, k), () => kb.assign(acc, K.add(acc, K.load(dy.buf, addE(base, mulC(j, inner))))));
          },
          { t: 'u32' },
        );
        storeOut(kb, a, flat, acc);
      }),
    ];
  },
});
