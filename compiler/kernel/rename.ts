/** Renames buffers in a kernel AST (used when two logical buffers share one physical buffer). */
import type { BufRef, Kernel } from './ast.js';
import { mapKernel } from './visit.js';

export function renameBuffers(k: Kernel, rename: (name: string) => string): Kernel {
  return mapKernel(k, { buf: (b: BufRef): BufRef => ({ name: rename(b.name), t: b.t }) });
}
