/**
 * Eager execution for the torchvision-style API: a small graph is built per call signature, compiled
 * once (cached by key and input shapes/dtypes), and run on the shared GPU device. Inputs and outputs
 * are host tensors.
 */
import { compile } from '../compiler/compile.js';
import { WgflowError } from '../compiler/errors.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import type { DType } from '../compiler/types.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session, type TypedArray } from '../runtime/session.js';

/** A host tensor as the eager programs take it: typed data plus a shape (dtype follows the array type). */
export interface HostInput {
  readonly data: TypedArray;
  readonly shape: readonly number[];
}

/** Numbers nested in arrays, one level per dimension: `[[x1, y1, x2, y2], …]` is an [N,4] tensor. */
export type NestedArray = readonly (number | NestedArray)[];

/** Any typed array of numbers. */
export type NumericArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray;

/** Values with an explicit row-major shape, e.g. a previous eager result (a HostTensor). */
export interface ShapedArray {
  readonly data: NumericArray | readonly number[];
  readonly shape: readonly number[];
}

/**
 * What the eager ops (`ops.*`) take, as torchvision takes tensors: `{ data, shape }` (e.g. the result of
 * another op), a typed array (1-D; for a boxes argument, N×4 values are read as [N,4]), or nested
 * arrays (`[[0, 0, 10, 10], [5, 5, 15, 15]]`).
 */
export type TensorLike = ShapedArray | NumericArray | NestedArray;

const isNumericArray = (x: unknown): x is NumericArray => ArrayBuffer.isView(x) && !(x instanceof DataView);

/** The shape of nested arrays (rectangular, numbers at the leaves). */
function nestedShape(x: NestedArray, what: string): number[] {
  const shape: number[] = [];
  let level: unknown = x;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  if (level !== undefined && typeof level !== 'number')
    throw new WgflowError(`${what}: nested arrays must hold numbers, found ${typeof level}`);
  return shape;
}

function flatten(x: NestedArray, shape: readonly number[], what: string): number[] {
  const out: number[] = [];
  const walk = (v: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number') throw new WgflowError(`${what}${path}: expected a number, got ${typeof v}`);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth])
      throw new WgflowError(
        `${what}${path}: nested arrays must be rectangular (shape [${shape.join(',')}]); this one has ${Array.isArray(v) ? `${v.length} entries` : `a ${typeof v}`}`,
      );
    v.forEach((e, i) => walk(e, depth + 1, `${path}[${i}]`));
  };
  walk(x, 0, '');
  return out;
}

/**
 * A {@link TensorLike} as a HostInput of `dtype` (f32 data is not copied when it is a Float32Array
 * already). i32: the values must be integers. A bare typed array has no shape: it is 1-D, or with
 * `rowsOf: 4` (a boxes argument) [length / 4, 4]; with `rowsOf`, `[]` is [0, rowsOf] (no boxes).
 * `what` names the argument in errors.
 */
export function toHostInput(
  x: TensorLike,
  what: string,
  dtype: 'f32' | 'i32' = 'f32',
  opts: { readonly rowsOf?: number } = {},
): HostInput {
  let values: ArrayLike<number>;
  let shape: readonly number[];
  const bigints = (v: unknown) => v instanceof BigInt64Array || v instanceof BigUint64Array;
  if (bigints(x) || (typeof x === 'object' && x !== null && 'data' in x && bigints((x as { data: unknown }).data)))
    throw new WgflowError(
      `${what}: 64-bit integer arrays (BigInt64Array, BigUint64Array) are not supported; give a Float32Array, an Int32Array or numbers`,
    );
  if (Array.isArray(x)) {
    // [] is an empty list of rows (0 boxes), not a 1-D tensor, where rows are expected
    shape = x.length === 0 && opts.rowsOf !== undefined ? [0, opts.rowsOf] : nestedShape(x as NestedArray, what);
    values = flatten(x as NestedArray, shape, what);
  } else if (isNumericArray(x)) {
    values = x;
    const r = opts.rowsOf;
    shape = r !== undefined && x.length % r === 0 ? [x.length / r, r] : [x.length];
  } else if (typeof x === 'object' && x !== null && 'data' in x && 'shape' in x) {
    const t = x as ShapedArray;
    if (!(Array.isArray(t.data) || isNumericArray(t.data)))
      throw new WgflowError(`${what}: data must be a typed array or an array of numbers`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new WgflowError(`${what}: shape must be an array of non-negative integers`);
    values = t.data;
    shape = t.shape;
    if (Array.isArray(values)) {
      const bad = values.findIndex((v) => typeof v !== 'number');
      if (bad >= 0) throw new WgflowError(`${what}: data[${bad}] is ${typeof values[bad]}, not a number`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) throw new WgflowError(`${what}: ${values.length} values for shape [${shape.join(',')}]`);
  } else {
    throw new WgflowError(
      `${what}: expected a typed array, nested arrays of numbers or { data, shape }, got ${x === null ? 'null' : typeof x}`,
    );
  }
  if (dtype === 'f32') return { data: values instanceof Float32Array ? values : Float32Array.from(values), shape };
  const ints = values instanceof Int32Array ? values : Int32Array.from(values);
  for (let i = 0; i < values.length; i++)
    if (ints[i] !== values[i]) throw new WgflowError(`${what} must hold integers, got ${values[i]} at ${i}`);
  return { data: ints, shape };
}

export function dtypeOf(t: HostInput): DType {
  if (t.data instanceof Float32Array) return 'f32';
  if (t.data instanceof Int32Array) return 'i32';
  if (t.data instanceof Uint32Array) return 'u32';
  throw new WgflowError('eager: data must be a Float32Array, Int32Array or Uint32Array');
}

const sessions = new Map<string, Promise<Session>>();

/**
 * Runs `build` on the GPU with `inputs` (declared as graph inputs of the same names, shapes and dtypes)
 * and returns its outputs. `key` names the computation and must encode every attribute that changes
 * the graph (thresholds, sizes...).
 */
export async function runEager(
  key: string,
  inputs: Readonly<Record<string, HostInput>>,
  build: (g: GraphBuilder, inputs: Record<string, Tensor>) => Record<string, Tensor>,
): Promise<Record<string, HostTensor>> {
  const sig = Object.entries(inputs)
    .map(([n, t]) => `${n}:${dtypeOf(t)}[${t.shape.join(',')}]`)
    .join(';');
  const cacheKey = `${key}|${sig}`;
  let s = sessions.get(cacheKey);
  if (!s) {
    s = (async () => {
      const dev = await getDevice();
      const g = new GraphBuilder();
      const ins: Record<string, Tensor> = {};
      for (const [n, t] of Object.entries(inputs)) {
        const expected = t.shape.reduce((a, b) => a * b, 1);
        if (t.data.length !== expected)
          throw new WgflowError(`${key}: input "${n}" has ${t.data.length} values for shape [${t.shape.join(',')}]`);
        ins[n] = g.input(n, t.shape, dtypeOf(t));
      }
      const outputs = build(g, ins);
      const { spec } = compile(g, { outputs, limits: limitsFrom(dev.limits), name: key });
      return Session.create(spec, { gpu: dev });
    })();
    sessions.set(cacheKey, s);
    s.catch(() => sessions.delete(cacheKey));
  }
  const session = await s;
  const feeds: Record<string, TypedArray> = {};
  for (const inp of session.spec.inputs) feeds[inp.name] = (inputs[inp.name] as HostInput).data;
  return session.run(feeds);
}

/** Drops cached eager programs (their GPU buffers are freed). */
export async function clearEagerCache(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  for (const p of all) (await p.catch(() => undefined))?.destroy();
}
