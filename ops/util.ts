/** Helpers shared by op files: broadcasting on the CPU, gradient reduction, attribute access. */

import type { Dim } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { type Attrs, type AttrValue, fmtValue } from '../compiler/ir.js';
import type { RefTensor } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { broadcastDims, type DimShape, fmtShape, numel, type Shape, sameDims, stridesOf } from '../compiler/types.js';

/** Strides of `inShape` read at the coordinates of a broadcast `outShape` (0 on broadcast axes). */
export function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const s = stridesOf(inShape);
  const off = outShape.length - inShape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return 0;
    return inShape[j] === 1 && d !== 1 ? 0 : (s[j] as number);
  });
}

/** Evaluates fn element by element over the broadcast of the inputs' shapes. */
export function cpuBroadcast(
  inputs: readonly RefTensor[],
  outShape: Shape,
  fn: (vals: number[], flat: number) => number,
): Float64Array {
  const n = numel(outShape);
  const out = new Float64Array(n);
  const strides = inputs.map((t) => broadcastStrides(t.shape, outShape));
  const rank = outShape.length;
  const coord = new Array<number>(rank).fill(0);
  const vals = new Array<number>(inputs.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    for (let k = 0; k < inputs.length; k++) {
      let idx = 0;
      const st = strides[k] as number[];
      for (let d = 0; d < rank; d++) idx += (coord[d] as number) * (st[d] as number);
      vals[k] = (inputs[k] as RefTensor).data[idx] as number;
    }
    out[flat] = fn(vals, flat);
    for (let d = rank - 1; d >= 0; d--) {
      coord[d] = (coord[d] as number) + 1;
      if ((coord[d] as number) < (outShape[d] as number)) break;
      coord[d] = 0;
    }
  }
  return out;
}

/** Broadcast of shapes whose axes may be run-time sizes (a size symbol broadcasts only with itself or 1). */
export function broadcastOrFail(shapes: readonly DimShape[]): Dim[] {
  let out: Dim[] = [...(shapes[0] ?? [])];
  for (const s of shapes.slice(1)) {
    const b = broadcastDims(out, s);
    if (!b) fail(`shapes ${shapes.map(fmtShape).join(' and ')} do not broadcast`);
    out = b;
  }
  return out;
}

/** Sums a gradient over the axes along which `shape` was broadcast, then reshapes to `shape`. */
export function sumToShape(g: Tensor, shape: DimShape): Tensor {
  const gs = g.dims;
  if (sameDims(gs, shape)) return g;
  const off = gs.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < gs.length; i++) {
    const j = i - off;
    if (j < 0 || (shape[j] === 1 && gs[i] !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? g.sum(axes, true) : g;
  return summed.reshape(shape);
}

export function numAttr(attrs: Attrs, key: string): number {
  const v = attrs[key];
  if (typeof v !== 'number') fail(`attribute ${key} must be a number, got ${fmtValue(v)}`);
  return v;
}

export function boolAttr(attrs: Attrs, key: string): boolean {
  const v = attrs[key];
  if (typeof v !== 'boolean') fail(`attribute ${key} must be a boolean, got ${fmtValue(v)}`);
  return v;
}

export function numsAttr(attrs: Attrs, key: string): number[] {
  const v = attrs[key] as AttrValue;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number'))
    fail(`attribute ${key} must be a list of numbers, got ${fmtValue(v)}`);
  return v as number[];
}

/** Rounds a float64 to float32, as a value stored on the GPU would be. */
export const f32round = Math.fround;
