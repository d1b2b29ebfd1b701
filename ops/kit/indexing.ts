/** Index helpers shared by the op lowerings: row-major coordinates of a flat index, division by sizes. */

import { coordsOf } from '../../compiler/codegen.js';
import type { Dim } from '../../compiler/dims.js';
import type { Expr } from '../../compiler/kernel/ast.js';
import * as K from '../../compiler/kernel/build.js';
import type { DimShape } from '../../compiler/types.js';

/** A size as an i32 expression: a literal when static, else the run-time size converted. */
export const sizeI32 = (d: Dim): Expr => (typeof d === 'number' ? K.i32(d) : K.cast('i32', K.size(d)));

/** A size as an f32 expression (a literal when static). */
export const sizeF32 = (d: Dim): Expr => (typeof d === 'number' ? K.f32(d) : K.cast('f32', K.size(d)));

/** size − 1 as an i32 expression (the last index along an axis). */
export const lastI32 = (d: Dim): Expr => (typeof d === 'number' ? K.i32(d - 1) : K.sub(sizeI32(d), K.i32(1)));

/** Row-major coordinates (u32 expressions) of a flat u32 index; size-1 axes give the literal 0. */
export function unflatten(flat: Expr, shape: DimShape): Expr[] {
  const at = coordsOf(flat, shape);
  return shape.map((d, i) => (d === 1 ? K.u32(0) : at(i)));
}

/** {@link unflatten}, each coordinate bound to a variable (size-1 axes stay the literal 0). */
export function unravel(kb: K.KernelBuilder, flat: Expr, shape: DimShape): Expr[] {
  return unflatten(flat, shape).map((c) => (c.k === 'lit' ? c : kb.let('c', c)));
}

const isPow2 = (d: number): boolean => d > 0 && (d & (d - 1)) === 0;

/** u32 x / d for a constant d (a shift when d is a power of two). */
export function divC(x: Expr, d: number): Expr {
  if (d === 1) return x;
  return isPow2(d) ? K.shr(x, Math.log2(d)) : K.div(x, K.u32(d));
}

/** u32 x % d for a constant d (a mask when d is a power of two). */
export function modC(x: Expr, d: number): Expr {
  if (d === 1) return K.u32(0);
  return isPow2(d) ? K.bitAnd(x, K.u32(d - 1)) : K.mod(x, K.u32(d));
}

/** u32 x / d for a size that may be a run-time size. */
export function divD(x: Expr, d: Dim): Expr {
  return typeof d === 'number' ? divC(x, d) : K.div(x, K.size(d));
}

/** u32 x % d for a size that may be a run-time size. */
export function modD(x: Expr, d: Dim): Expr {
  return typeof d === 'number' ? modC(x, d) : K.mod(x, K.size(d));
}
