/**
 * Binding: each kernel's logical buffers become physical bindings. Logical buffers that share one
 * physical buffer (the memory plan reused it, or an in-place update) become one binding, so a kernel
 * never binds a buffer twice. Also lists the run-time sizes each kernel reads, in slot order, and
 * checks the per-stage storage-buffer limit.
 */
import type { SymDim } from '../dims.js';
import { WgflowError } from '../errors.js';
import type { Kernel } from '../kernel/ast.js';
import { kernelBuffers, kernelSizes } from '../kernel/build.js';
import { renameBuffers } from '../kernel/rename.js';
import type { DeviceLimits } from '../limits.js';

export interface BoundKernel {
  /** The kernel with one name per physical buffer. */
  readonly kernel: Kernel;
  /** Physical buffer ids in binding order. */
  readonly bindings: readonly number[];
  readonly writes: readonly boolean[];
  /** Run-time sizes the kernel reads, in slot order (kernelSizes). */
  readonly sizes: readonly SymDim[];
}

export function bindKernel(k0: Kernel, physicalOf: (logical: string) => number, limits: DeviceLimits): BoundKernel {
  const canon = new Map<number, string>();
  const kernel = renameBuffers(k0, (name) => {
    const id = physicalOf(name);
    const c = canon.get(id);
    if (c !== undefined) return c;
    canon.set(id, name);
    return name;
  });
  const bufs = kernelBuffers(kernel);
  if (bufs.length > limits.maxStorageBuffersPerShaderStage)
    throw new WgflowError(
      `kernel ${kernel.name} binds ${bufs.length} storage buffers, over the device's ${limits.maxStorageBuffersPerShaderStage}`,
    );
  return {
    kernel,
    bindings: bufs.map((b) => physicalOf(b.buf.name)),
    writes: bufs.map((b) => b.write),
    sizes: kernelSizes(kernel),
  };
}
