/**
 * Reductions: sum and max over a sorted list of axes (kind 'reduce': the compiler generates their
 * kernels and fuses an elementwise prologue/epilogue into them), and argmax (its own kernel).
 */

import type { Dim } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import * as K from '../compiler/kernel/build.js';
import { type CpuArgs, type GradArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import {
  type DimShape,
  dimsOf,
  fmtShape,
  normAxis,
  numel,
  type Shape,
  sameDims,
  stridesOf,
  type TensorType,
  typeOf,
} from '../compiler/types.js';
import { storeOut } from './kit/store.js';
import { rowGeom, rowGeomDims, rowKernel } from './rows.js';
import { boolAttr, numAttr, numsAttr } from './util.js';

/** Checks `attrs.axes` against a rank: integers in [0, rank), ascending, no repeats. */
export function checkAxes(attrs: Attrs, shape: DimShape): number[] {
  const axes = numsAttr(attrs, 'axes');
  const rank = shape.length;
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= rank) {
      fail(
        `axis ${a} is out of range for rank ${rank} (shape ${fmtShape(shape)}; axes [${axes.join(',')}] must lie in [-${rank}, ${rank}))`,
      );
    }
  }
  for (let i = 1; i < axes.length; i++) {
    const prev = axes[i - 1] as number;
    const cur = axes[i] as number;
    if (cur === prev) fail(`axis ${cur} is repeated in axes [${axes.join(',')}] (shape ${fmtShape(shape)})`);
    if (cur < prev) fail(`axes [${axes.join(',')}] must be sorted ascending`);
  }
  return axes;
}

/** Output shape of a reduction over `axes` (axes may be run-time sizes). */
export function reducedShape<D extends Dim>(shape: readonly D[], axes: readonly number[], keepDims: boolean): D[] {
  const out: D[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1 as D);
  });
  return out;
}

/** Float64 reduction of x over `axes` (output in keepDims layout, which has the same order either way). */
export function cpuReduce(x: RefTensor, axes: readonly number[], op: 'sum' | 'max'): Float64Array {
  const shape = x.shape;
  const rank = shape.length;
  const keepShape = reducedShape(shape, axes, true);
  const ks = stridesOf(keepShape);
  const outStride = shape.map((_, d) => (axes.includes(d) ? 0 : (ks[d] as number)));
  const out = new Float64Array(numel(keepShape)).fill(op === 'sum' ? 0 : Number.NEGATIVE_INFINITY);
  const coord = new Array<number>(rank).fill(0);
  const n = x.data.length;
  let o = 0;
  for (let flat = 0; flat < n; flat++) {
    const v = x.data[flat] as number;
    const cur = out[o] as number;
    out[o] = op === 'sum' ? cur + v : Number.isNaN(v) || v > cur ? v : cur;
    for (let d = rank - 1; d >= 0; d--) {
      coord[d] = (coord[d] as number) + 1;
      o += outStride[d] as number;
      if ((coord[d] as number) < (shape[d] as number)) break;
      o -= (coord[d] as number) * (outStride[d] as number);
      coord[d] = 0;
    }
  }
  if (x.dtype === 'i32') return out.map((v) => v | 0);
  if (x.dtype === 'u32') return out.map((v) => v >>> 0);
  return out;
}

/** `t` with size-1 axes re-inserted at `axes` (a no-op when it already has them). */
function keepDimsOf(t: Tensor, inShape: DimShape, axes: readonly number[], keepDims: boolean): Tensor {
  if (keepDims || axes.length === 0) return t;
  return t.reshape(reducedShape(inShape, axes, true));
}

/** Broadcasts `t` to the shape of `like` (an elementwise select, exact for every value, inf and NaN included). */
export function broadcastLike(t: Tensor, like: Tensor): Tensor {
  if (sameDims(t.dims, like.dims)) return t;
  const g = t.builder;
  return g.where(g.constant(1, [], 'u32'), t, like);
}

function reduceInfer(inputs: readonly TensorType[], attrs: Attrs): TensorType {
  if (inputs.length !== 1) fail(`takes one input, got ${inputs.length}`);
  const x = inputs[0] as TensorType;
  const axes = checkAxes(attrs, dimsOf(x));
  const keepDims = boolAttr(attrs, 'keepDims');
  return typeOf(reducedShape(dimsOf(x), axes, keepDims), x.dtype);
}

registerOp({
  name: 'sum',
  kind: 'reduce',
  reduce: 'sum',
  dynamic: true,
  infer: reduceInfer,
  cpu: ({ inputs, attrs }: CpuArgs) => cpuReduce(inputs[0] as RefTensor, numsAttr(attrs, 'axes'), 'sum'),
  grad: ({ inputs, attrs, dy }: GradArgs) => {
    const x = inputs[0] as Tensor;
    if (x.dtype !== 'f32') return [null];
    const axes = numsAttr(attrs, 'axes');
    return [broadcastLike(keepDimsOf(dy, x.dims, axes, boolAttr(attrs, 'keepDims')), x)];
  },
});

registerOp({
  name: 'max',
  kind: 'reduce',
  reduce: 'max',
  dynamic: true,
  infer: reduceInfer,
  cpu: ({ inputs, attrs }: CpuArgs) => cpuReduce(inputs[0] as RefTensor, numsAttr(attrs, 'axes'), 'max'),
  grad: ({ inputs, attrs, output, dy }: GradArgs) => {
    const x = inputs[0] as Tensor;
    if (x.dtype !== 'f32') return [null];
    const axes = numsAttr(attrs, 'axes');
    const keepDims = boolAttr(attrs, 'keepDims');
    if (axes.length === 0) return [dy];
    // dy goes to the positions holding the maximum, split evenly among ties (PyTorch's amax rule).
    const mask = x.eq(keepDimsOf(output, x.dims, axes, keepDims));
    const count = mask.cast('f32').sum(axes, true);
    const share = keepDimsOf(dy, x.dims, axes, keepDims).div(count);
    return [x.builder.where(mask, share, 0)];
  },
});

/** Normalized axis of an `{axis}` attribute against a shape, or a failure naming both. */
export function axisAttr(attrs: Attrs, shape: Shape): number {
  const axis = numAttr(attrs, 'axis');
  const a = normAxis(axis, shape.length);
  if (a < 0) fail(`axis ${axis} is out of range for shape ${fmtShape(shape)} (rank ${shape.length})`);
  return a;
}

registerOp({
  name: 'argmax',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    if (inputs.length !== 1) fail(`takes one input, got ${inputs.length}`);
    const x = inputs[0] as TensorType;
    const axis = axisAttr(attrs, x.shape);
    return typeOf(reducedShape(dimsOf(x), [axis], boolAttr(attrs, 'keepDims')), 'i32');
  },
  cpu: ({ inputs, attrs }) => {
    const x = inputs[0] as RefTensor;
    const { outer, len, inner } = rowGeom(x.shape, axisAttr(attrs, x.shape));
    const out = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * len * inner + i;
        let best = x.data[base] as number;
        let pos = 0;
        for (let j = 1; j < len; j++) {
          const v = x.data[base + j * inner] as number;
          if (v > best) {
            best = v;
            pos = j;
          }
        }
        out[o * inner + i] = pos;
      }
    }
    return out;
  },
  lower: (args) => {
    const x = args.inputs[0]?.buf;
    if (!x) throw new Error('internal: argmax without an input');
    const xt = args.inputs[0]?.type as TensorType;
    const geom = rowGeomDims(dimsOf(xt), axisAttr(args.attrs, xt.shape));
    const kernel = rowKernel(`${args.name}`, geom, args.limits, (c) => {
      const { kb } = c;
      // Every invocation starts from element 0, so ties resolve to the first index without sentinels.
      const best = kb.var('best', K.load(x, c.base));
      const pos = kb.var('pos', K.u32(0));
      c.forEach((j, idx) => {
        const v = kb.let('v', K.load(x, idx));
        kb.if(K.gt(v, best), () => {
          kb.assign(best, v);
          kb.assign(pos, j);
        });
      });
      const r = c.reduceArgmax(best, pos);
      kb.if(K.and(c.valid, c.leader), () => {
        storeOut(kb, args, c.row, K.cast('i32', r.pos));
      });
    });
    return [kernel];
  },
});
