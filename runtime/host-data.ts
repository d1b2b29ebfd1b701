/** Host-side tensor data shared by the WebGPU and CUDA sessions: typed arrays for dtypes and shapes. */
import { WgflowError } from './errors.js';
import type { DTypeName, ProgramSpec, TensorSpec } from './program.js';

export type TypedArray = Float32Array | Int32Array | Uint32Array;
/** What a caller may pass as a tensor's values. */
export type Feed = ArrayLike<number> | TypedArray;

/** `values` as the typed array of `dtype` (no copy when it already is one), checking the count. */
export function toTyped(dtype: DTypeName, values: Feed, count: number, what: string): TypedArray {
  if (values.length !== count) throw new WgflowError(`${what}: expected ${count} values, got ${values.length}`);
  if (dtype === 'f32') return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  if (dtype === 'i32') return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  return values instanceof Uint32Array ? values : Uint32Array.from(values as ArrayLike<number>);
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
