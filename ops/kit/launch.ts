/** Launch helpers shared by the op lowerings: the linear thread index and one-thread-per-item kernels. */

import { type Dim, dimCeilDiv } from '../../compiler/dims.js';
import type { Expr, Kernel } from '../../compiler/kernel/ast.js';
import * as K from '../../compiler/kernel/build.js';

/** The default workgroup size of the linear (one thread per item) kernels. */
export const WG = 256;

/** Thread id = wg_linear·wg + lidx (u32), bound to a variable named `name`. */
export function threadIndex(kb: K.KernelBuilder, wg = WG, name = 'idx'): Expr {
  return kb.let(name, K.add(K.mul(K.builtin('wg_linear'), K.u32(wg)), K.builtin('lidx')));
}

/**
 * Workgroups of `wg` threads covering `n` items (at least one); a run-time size when `n` is one (its
 * lower bound is at least 1 for a tensor's element count, so the grid is never empty).
 */
export function linearGroups(n: number, wg?: number): number;
export function linearGroups(n: Dim, wg?: number): Dim;
export function linearGroups(n: Dim, wg = WG): Dim {
  return typeof n === 'number' ? Math.max(1, Math.ceil(n / wg)) : dimCeilDiv(n, wg);
}

/**
 * A kernel with one thread per index in [0, n): thread id as {@link threadIndex}, bounds-checked (the
 * lowering may fold the grid into 2-D and launch extra workgroups).
 */
export function perThread(name: string, n: Dim, body: (kb: K.KernelBuilder, t: Expr) => void, wg = WG): Kernel {
  const kb = new K.KernelBuilder(name);
  const t = threadIndex(kb, wg, 't');
  kb.if(K.lt(t, K.size(n)), () => body(kb, t));
  return kb.finish([wg, 1, 1], { linear: linearGroups(n, wg) });
}
