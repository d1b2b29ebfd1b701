/** Guarded reads shared by the op lowerings: a value where its conditions hold, else 0. */

import type { Expr } from '../../compiler/kernel/ast.js';
import * as K from '../../compiler/kernel/build.js';

/**
 * `read()` (an f32 expression, which may emit statements and read memory) where every condition holds,
 * else 0: a padded or out-of-range operand element. With no conditions, `read()` itself, unguarded.
 */
export function orZero(kb: K.KernelBuilder, conds: readonly Expr[], read: () => Expr, name = 'v'): Expr {
  if (conds.length === 0) return read();
  const v = kb.var(name, K.f32(0));
  kb.if(
    conds.reduce((p, q) => K.and(p, q)),
    () => kb.assign(v, read()),
  );
  return v;
}
