/**
 * size_value: a run-time size (compiler/dims.ts) as a scalar tensor, e.g. the element count a mean
 * divides by when some axis is only known at run time. Elementwise with no inputs: it fuses into its
 * consumer as a read of the kernel's size table.
 */

import { type Dim, dimEval, SymDim } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import * as K from '../compiler/kernel/build.js';
import { registerOp } from '../compiler/registry.js';
import type { GraphBuilder, Tensor } from '../compiler/tensor.js';
import { DTYPES, type DType, numel, typeOf } from '../compiler/types.js';

/** The dtype attribute of a source op, one of `allowed`. */
function sourceDType(inputs: readonly unknown[], attrs: Attrs, allowed: readonly DType[]): DType {
  if (inputs.length !== 0) fail(`takes no inputs, got ${inputs.length}`);
  const dt = attrs.dtype as DType;
  if (!allowed.includes(dt)) fail(`dtype must be ${allowed.join(', ')}, got ${fmtValue(attrs.dtype)}`);
  return dt;
}

registerOp({
  name: 'size_value',
  kind: 'elementwise',
  dynamic: true,
  infer: (inputs, attrs) => {
    const dt = sourceDType(inputs, attrs, DTYPES);
    if (!(attrs.dim instanceof SymDim)) fail(`attribute dim must be a run-time size, got ${fmtValue(attrs.dim)}`);
    return { shape: [], dtype: dt };
  },
  cpu: ({ attrs, env }) => Float64Array.of(dimEval(attrs.dim as SymDim, env)),
  expr: ({ attrs, out }) => K.cast(out.dtype, K.size(attrs.dim as SymDim)),
});

/**
 * arange: i32 (or f32, u32) [n] holding 0, 1, …, n − 1, where n may be a run-time size (e.g. the image
 * index of each row of a batch whose size is only known at run time). Elementwise with no inputs: it
 * fuses into its consumer as the element's own index.
 */
registerOp({
  name: 'arange',
  kind: 'elementwise',
  dynamic: true,
  infer: (inputs, attrs) => {
    const dt = sourceDType(inputs, attrs, ['i32', 'u32', 'f32']);
    const n = attrs.length;
    if (!(n instanceof SymDim || (typeof n === 'number' && Number.isInteger(n) && n >= 1)))
      fail(`attribute length must be a positive integer or a run-time size, got ${fmtValue(n)}`);
    return typeOf([n as Dim], dt);
  },
  cpu: ({ out }) => Float64Array.from({ length: numel(out.shape) }, (_, i) => i),
  expr: ({ index, out }) => (out.dtype === 'u32' ? index : K.cast(out.dtype, index)),
});

/** DSL: [n] = 0, 1, …, n − 1 (n a number or a run-time size). */
export function arange(g: GraphBuilder, n: Dim, dtype: 'i32' | 'u32' | 'f32' = 'i32'): Tensor {
  return g.apply('arange', [], { length: n, dtype });
}

/**
 * Zeros of shape [n, 1, …, 1] (`rank` axes) to broadcast a tensor over n images: a constant when n is
 * static, else built from arange (no buffer, fused into the consumer).
 */
export function zerosAlong(g: GraphBuilder, n: Dim, rank: number, dtype: 'i32' | 'f32' = 'f32'): Tensor {
  const shape = [n, ...new Array<number>(rank - 1).fill(1)];
  if (typeof n === 'number') return g.constant(new Array<number>(n).fill(0), shape as number[], dtype);
  return arange(g, n, dtype).mul(0).reshape(shape);
}

/** i32 [n, 1]: row r holds r·stride (the first flat row of image r), for a static or run-time n. */
export function rowStarts(g: GraphBuilder, n: Dim, stride: number): Tensor {
  if (typeof n === 'number')
    return g.constant(
      Array.from({ length: n }, (_, r) => r * stride),
      [n, 1],
      'i32',
    );
  return arange(g, n).mul(stride).reshape([n, 1]);
}
