/**
 * Kernel emitters of the float32 IoU shared by NMS and the target layers, in the order of the float32
 * reference {@link iouF32} (ops/kit/iou.ts): extent = hi − lo (+1), area = w·h,
 * inter = max(w, 0)·max(h, 0), iou = inter / ((area_a + area_c) − inter). Same order, same roundings:
 * the GPU and the reference agree exactly, also at a threshold.
 */

import type { Expr } from '../../compiler/kernel/ast.js';
import * as K from '../../compiler/kernel/build.js';

/** A box as four f32 expressions (x1, y1, x2, y2). */
export type BoxK = readonly [Expr, Expr, Expr, Expr];

/**
 * The +1 of the PFR convention as a value the shader compiler cannot see as a constant: with a
 * literal 1.0, drivers reassociate (x2 - x1) + 1.0 (Mesa does: it became x2 + (1 - x1), off by an
 * ulp), which breaks the exact float32 agreement with the reference. NaN only where x is NaN, which
 * then poisons the result anyway.
 */
export function emitOne(kb: K.KernelBuilder, x: Expr): Expr {
  return kb.let('one', K.select(K.call('isnan', x), K.f32(Number.NaN), K.f32(1)));
}

/** hi − lo, plus `one` when given (the PFR +1 from {@link emitOne}). */
const extent = (lo: Expr, hi: Expr, one: Expr | undefined): Expr => (one ? K.add(K.sub(hi, lo), one) : K.sub(hi, lo));

/** Area (x2 − x1 [+1]) · (y2 − y1 [+1]) in float32. */
export function emitArea(kb: K.KernelBuilder, b: BoxK, one: Expr | undefined): Expr {
  return kb.let('area', K.mul(kb.let('w', extent(b[0], b[2], one)), kb.let('h', extent(b[1], b[3], one))));
}

/**
 * IoU of boxes a and c whose areas are given ({@link emitArea}); NaN for 0/0 (two empty boxes), or 0
 * whenever the intersection is not positive with `zeroIfDisjoint` (the target layers' rule).
 */
export function emitIou(
  kb: K.KernelBuilder,
  a: BoxK,
  areaA: Expr,
  c: BoxK,
  areaC: Expr,
  one: Expr | undefined,
  opts: { readonly zeroIfDisjoint?: boolean } = {},
): Expr {
  const w = kb.let('dw', extent(kb.let('xx1', K.max(a[0], c[0])), kb.let('xx2', K.min(a[2], c[2])), one));
  const h = kb.let('dh', extent(kb.let('yy1', K.max(a[1], c[1])), kb.let('yy2', K.min(a[3], c[3])), one));
  const inter = kb.let('inter', K.mul(K.max(w, K.f32(0)), K.max(h, K.f32(0))));
  const uni = kb.let('uni', K.sub(K.add(areaA, areaC), inter));
  const iou = K.div(inter, uni);
  return kb.let('iou', opts.zeroIfDisjoint ? K.select(K.gt(inter, K.f32(0)), iou, K.f32(0)) : iou);
}
