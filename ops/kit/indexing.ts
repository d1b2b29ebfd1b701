/** Index helpers shared by the op lowerings: row-major coordinates of a flat index. */

import { coordsOf } from '../../compiler/codegen.js';
import type { Dim } from '../../compiler/dims.js';
import type { Expr } from '../../compiler/kernel/ast.js';
import * as K from '../../compiler/kernel/build.js';
import type { DimShape } from '../../compiler/types.js';

/** A size as an i32 expression: a literal when static, else the run-time size converted. */
export const sizeI32 = (d: Dim): Expr => (typeof d === 'number' ? K.i32(d) : K.cast('i32', K.size(d)));

/** Row-major coordinates (u32 expressions) of a flat u32 index; size-1 axes give the literal 0. */
export function unflatten(flat: Expr, shape: DimShape): Expr[] {
  const at = coordsOf(flat, shape);
  return shape.map((d, i) => (d === 1 ? K.u32(0) : at(i)));
}

/** {@link unflatten}, each coordinate bound to a variable (size-1 axes stay the literal 0). */
export function unravel(kb: K.KernelBuilder, flat: Expr, shape: DimShape): Expr[] {
  return unflatten(flat, shape).map((c) => (c.k === 'lit' ? c : kb.let('c', c)));
}
