/**
 * Code-generation targets: a renderer over the shared C-style visitor, the text each kernel file needs
 * first, and the tuning tables the lowerings read for this target.
 */
import type { Kernel } from './kernel/ast.js';
import { CUDA_PRELUDE, renderCuda } from './kernel/cuda.js';
import { renderWgsl } from './kernel/wgsl.js';
import { type TargetName, type TuningTables, tuningFor } from './tuning.js';

export interface Target {
  readonly name: TargetName;
  /** The source text of one bound kernel. */
  render(k: Kernel): string;
  /** Text that precedes the kernels in a source file ('' when none is needed). */
  readonly prelude: string;
  /** The tuning tables of this target (read at lowering time). */
  tuning(): Partial<TuningTables>;
}

export const webgpuTarget: Target = {
  name: 'webgpu',
  render: renderWgsl,
  prelude: '',
  tuning: () => tuningFor('webgpu'),
};

export const cudaTarget: Target = {
  name: 'cuda',
  render: (k) => renderCuda(k).source,
  prelude: CUDA_PRELUDE,
  tuning: () => tuningFor('cuda'),
};

export function targetByName(name: TargetName): Target {
  return name === 'cuda' ? cudaTarget : webgpuTarget;
}
