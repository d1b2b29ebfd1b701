/** Host-side tensor data shared by the WebGPU and CUDA sessions: typed arrays for dtypes and shapes. */
import { WgflowError } from './errors.js';
import type { DTypeName, ProgramSpec, TensorSpec } from './program.js';

export type TypedArray = Float32Array | Int32Array | Uint32Array;
/** What a caller may pass as a tensor's values. */
export type Feed = ArrayLike<number> | TypedArray;

/** A value in a message: NaN, ±Infinity and -0 as themselves, strings quoted, other kinds by name. */
function show(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

const INT_RANGE = { i32: [-(2 ** 31), 2 ** 31 - 1], u32: [0, 2 ** 32 - 1] } as const;

/**
 * `values` as the typed array of `dtype` (no copy when it already is one), checking what was fed:
 * - the kind: a typed array of numbers or an array of numbers (not a string, an object, a BigInt64Array,
 *   a DataView, an array holding something else);
 * - the count;
 * - for i32 and u32, that every value is an integer in the dtype's range (Int32Array.from would
 *   truncate 1.5 and wrap -1 to 4294967295 without a word).
 * f32 values are not checked for finiteness here: NaN and ±Infinity are valid f32 data.
 */
export function toTyped(dtype: DTypeName, values: Feed, count: number, what: string): TypedArray {
  const v: unknown = values;
  if (v instanceof BigInt64Array || v instanceof BigUint64Array)
    throw new WgflowError(
      `${what}: a ${v.constructor.name} cannot be fed (64-bit integers are not supported); give a ${dtype === 'f32' ? 'Float32Array' : dtype === 'i32' ? 'Int32Array' : 'Uint32Array'}`,
    );
  const typed = ArrayBuffer.isView(v) && !(v instanceof DataView);
  if (!typed && !Array.isArray(v))
    throw new WgflowError(`${what}: expected a typed array or an array of numbers, got ${show(v)}`);
  const arr = v as ArrayLike<unknown>;
  if (arr.length !== count) throw new WgflowError(`${what}: expected ${count} values, got ${arr.length}`);
  if (!typed)
    for (let i = 0; i < arr.length; i++)
      if (typeof arr[i] !== 'number') throw new WgflowError(`${what}: value ${i} is ${show(arr[i])}, not a number`);
  const nums = arr as ArrayLike<number>;
  if (dtype === 'f32') return nums instanceof Float32Array ? nums : Float32Array.from(nums);
  if (dtype === 'i32' && nums instanceof Int32Array) return nums;
  if (dtype === 'u32' && nums instanceof Uint32Array) return nums;
  const [lo, hi] = dtype === 'i32' ? INT_RANGE.i32 : INT_RANGE.u32;
  for (let i = 0; i < nums.length; i++) {
    const x = nums[i] as number;
    if (!(Number.isInteger(x) && x >= lo && x <= hi))
      throw new WgflowError(`${what}: value ${i} is ${show(x)}, not a ${dtype} (integers in [${lo}, ${hi}])`);
  }
  return dtype === 'i32' ? Int32Array.from(nums) : Uint32Array.from(nums);
}

/**
 * The bounds an index input's values must lie in (TensorSpec.valueRange), checked on the host before
 * upload: the kernels that read indices clamp them (or give NaN), which would hide a wrong index.
 */
export function checkValueRange(t: TensorSpec, values: TypedArray, what: string): void {
  const r = t.valueRange;
  if (!r) return;
  for (let i = 0; i < values.length; i++) {
    const x = values[i] as number;
    if ((x < r.min || x > r.max) && x !== r.allow)
      throw new WgflowError(
        `${what}: value ${i} is ${show(x)}, out of range: ${r.rule} (${r.min} ≤ value ≤ ${r.max}${r.allow !== undefined ? `, or ${r.allow}` : ''})`,
      );
  }
}

/** Number of elements of a tensor. */
export const elementCount = (t: TensorSpec): number => t.shape.reduce((a, b) => a * b, 1);

/** One buffer's part of a tensor: `elems` elements from element `offset` of the tensor. */
export interface TensorPiece {
  readonly buffer: number;
  readonly offset: number;
  readonly elems: number;
}

/**
 * Where the first `count` elements of a tensor live: its buffer, or, for a tensor over maxBufferSize,
 * its chunks in order (each chunk's size from the program's buffers).
 */
export function tensorPieces(spec: ProgramSpec, t: TensorSpec, count: number): TensorPiece[] {
  if (!t.chunks) return [{ buffer: t.buffer, offset: 0, elems: count }];
  const out: TensorPiece[] = [];
  let at = 0;
  for (const id of t.chunks) {
    if (at >= count) break;
    const cap = Math.floor((spec.buffers[id]?.bytes ?? 0) / 4);
    const elems = Math.min(cap, count - at);
    out.push({ buffer: id, offset: at, elems });
    at += elems;
  }
  return out;
}
