/**
 * The CUDA part of a compiled artifact: which module files hold the kernels (PTX or cubin built by
 * nvcc) and, for each kernel of the ProgramSpec (same order), the `extern "C"` function to launch.
 * The grid is the ProgramSpec kernel's `dispatch` (2-D folded as the kernels expect) and the block
 * its `workgroupSize`. JSON-serializable; imports nothing from the compiler.
 */
import type { ProgramSpec } from '../program.js';

export interface CudaModuleSpec {
  /** Path relative to the artifact directory, e.g. kernels/frcnn-small.0.sm_90.ptx. */
  readonly file: string;
  readonly format: 'ptx' | 'cubin';
  /** The nvcc -arch it was built for (sm_90, sm_80, ...). PTX JIT-compiles for that or newer GPUs. */
  readonly arch: string;
  /** Translation unit it came from (kernels of one unit share every module built from it). */
  readonly unit: number;
}

export interface CudaKernelEntry {
  /** The ProgramSpec kernel's name (k12_conv2d_add). */
  readonly name: string;
  /** The function in the module (name + hash of its source). */
  readonly function: string;
  /** Translation unit (see CudaModuleSpec.unit). */
  readonly unit: number;
  /** Threads per block; equals the ProgramSpec kernel's workgroupSize. */
  readonly block: readonly [number, number, number];
  /** Pointer parameters in binding order: element type and whether the kernel writes it. */
  readonly params: readonly { readonly t: 'f32' | 'i32' | 'u32'; readonly write: boolean }[];
  /** Run-time sizes the kernel reads: a last `const unsigned*` parameter points to them (absent: none). */
  readonly sizes?: number;
}

export interface CudaProgramSection {
  readonly format: 'wgflow-cuda';
  readonly version: 1;
  /** ProgramSpec.name of the program these kernels belong to. */
  readonly program: string;
  readonly modules: readonly CudaModuleSpec[];
  /** Parallel to the kernels of the program they run (`spec` when present, else the artifact's). */
  readonly kernels: readonly CudaKernelEntry[];
  /**
   * The program the CUDA kernels run, when it is not the artifact's WGSL program: compiled from the
   * same graph with the CUDA target's tuning tables (`wgflow compile --target cuda`), so its kernels,
   * buffers and steps differ, while its inputs, outputs and params/state are the artifact's (checked
   * when a session is created). Its kernels carry no WGSL.
   */
  readonly spec?: ProgramSpec;
}
