/** Epilogue stores shared by the op lowerings. */

import type { BufRef, Expr } from '../../compiler/kernel/ast.js';
import type * as K from '../../compiler/kernel/build.js';
import type { LowerArgs } from '../../compiler/registry.js';
import { dimsOf } from '../../compiler/types.js';
import { unflatten } from './indexing.js';

/**
 * Stores `value` at flat index `flat` of the op's output (or of `buf`), through the fused epilogue when
 * there is one. `coords` are the output coordinates of `flat` when the caller has them already.
 */
export function storeOut(
  kb: K.KernelBuilder,
  a: LowerArgs,
  flat: Expr,
  value: Expr,
  opts: { readonly coords?: readonly Expr[]; readonly buf?: BufRef } = {},
): void {
  const v = a.hasEpilogue ? a.epilogue(value, opts.coords ?? unflatten(flat, dimsOf(a.output.type)), flat) : value;
  kb.store(opts.buf ?? a.output.buf, flat, v);
}
