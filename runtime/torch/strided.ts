/**
 * A torch tensor is a view of a storage: element offset, sizes and strides (in elements). This file
 * checks a view against its storage and copies it out contiguously (row-major), for any strides:
 * transposed, sliced, broadcast (stride 0), or one of many tensors sharing a storage.
 */
import { WgflowError } from '../errors.js';
import type { TorchTensorData } from './state-tensor.js';

export interface StridedView {
  readonly offset: number;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
}

/** Storage elements the view reaches: 1 + the largest index it reads (0 for an empty tensor). */
export function viewExtent(v: StridedView): number {
  if (v.shape.some((d) => d === 0)) return 0;
  let last = v.offset;
  for (let i = 0; i < v.shape.length; i++) last += ((v.shape[i] as number) - 1) * (v.stride[i] as number);
  return last + 1;
}

/** True when the view's elements are the storage's, in order, from `offset` (dims of size 1 have any stride). */
export function isContiguous(v: StridedView): boolean {
  let expect = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    const d = v.shape[i] as number;
    if (d !== 1 && v.stride[i] !== expect) return false;
    expect *= d;
  }
  return true;
}

/** Checks sizes, strides and offset (non-negative integers, same rank); `what` names the tensor. */
export function checkView(v: StridedView, what: string): void {
  const ok = (x: number) => Number.isSafeInteger(x) && x >= 0;
  if (!ok(v.offset)) throw new WgflowError(`${what}: bad storage offset ${v.offset}`);
  if (!v.shape.every(ok)) throw new WgflowError(`${what}: bad size [${v.shape.join(', ')}]`);
  if (v.stride.length !== v.shape.length || !v.stride.every(ok))
    throw new WgflowError(`${what}: bad stride [${v.stride.join(', ')}] for size [${v.shape.join(', ')}]`);
}

/**
 * The view's values, contiguous. `storage` holds the whole storage; `adopt`: the caller gives the
 * storage away, so a view that is exactly the whole storage returns it without a copy.
 */
export function gatherView<T extends TorchTensorData>(storage: T, v: StridedView, adopt: boolean): T {
  const n = v.shape.reduce((a, b) => a * b, 1);
  if (isContiguous(v)) {
    if (adopt && v.offset === 0 && n === storage.length) return storage;
    return storage.slice(v.offset, v.offset + n) as T;
  }
  const out = new (storage.constructor as { new (n: number): T })(n);
  const rank = v.shape.length;
  const inner = v.shape[rank - 1] as number;
  const innerStride = v.stride[rank - 1] as number;
  const index = new Array<number>(rank - 1).fill(0);
  let base = v.offset;
  const src = storage as unknown as { [i: number]: number | bigint };
  const dst = out as unknown as { [i: number]: number | bigint };
  for (let o = 0; o < n; o += inner) {
    for (let j = 0, s = base; j < inner; j++, s += innerStride) dst[o + j] = src[s] as number | bigint;
    // Odometer over the outer dimensions.
    for (let d = rank - 2; d >= 0; d--) {
      const i = (index[d] as number) + 1;
      if (i < (v.shape[d] as number)) {
        index[d] = i;
        base += v.stride[d] as number;
        break;
      }
      index[d] = 0;
      base -= (i - 1) * (v.stride[d] as number);
    }
  }
  return out;
}
