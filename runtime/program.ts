/**
 * The compiled-program format the runtime executes: buffers, WGSL kernels, a dispatch schedule and
 * the names of inputs, outputs and persistent tensors. JSON-serializable (it is the artifact's manifest
 * core), and it imports nothing from the compiler.
 */
import type { DimJson, SymbolSpec } from './dims.js';

export type DTypeName = 'f32' | 'i32' | 'u32';

/** Workgroups of a kernel whose grid depends on run-time sizes. */
export type GridJson = { readonly linear: DimJson } | { readonly xyz: readonly [DimJson, DimJson, DimJson] };

/** How a persistent tensor gets its first value. fanIn/fanOut are filled by the compiler. */
export interface InitSpec {
  readonly kind: 'zeros' | 'constant' | 'normal' | 'uniform' | 'he' | 'xavier';
  readonly value?: number;
  readonly std?: number;
  readonly mean?: number;
  readonly low?: number;
  readonly high?: number;
  readonly fanIn: number;
  readonly fanOut: number;
  readonly seed: number;
}

export interface BufferSpec {
  readonly id: number;
  readonly bytes: number;
  /** input: written by run(); param/state: persistent; const: uploaded once; temp: planner-managed. */
  readonly role: 'input' | 'param' | 'state' | 'const' | 'temp';
  readonly init?: InitSpec;
  /** const buffers: their values. */
  readonly data?: readonly number[];
  readonly dtype: DTypeName;
}

export interface KernelSpec {
  readonly name: string;
  readonly wgsl: string;
  readonly workgroupSize: readonly [number, number, number];
  /** Workgroups per dimension; with `grid`, those of the largest sizes (an upper bound). */
  readonly dispatch: readonly [number, number, number];
  /**
   * Present when the grid depends on run-time sizes: evaluated at each run; a `linear` count larger
   * than the per-dimension limit is folded into 2-D (the kernel reads the folded index).
   */
  readonly grid?: GridJson;
  /** Run-time sizes the kernel reads, in slot order: bound as one uniform array after the buffers. */
  readonly sizes?: readonly DimJson[];
  /** Buffer ids in binding order (binding i = bindings[i]). */
  readonly bindings: readonly number[];
  /**
   * Per binding, [offset, size] in bytes of the part of the buffer bound (absent: whole buffers). A
   * tensor over maxStorageBufferBindingSize is bound as several windows of its buffer.
   */
  readonly windows?: readonly (readonly [number, number])[];
  /** Which bindings the kernel writes (same order). */
  readonly writes: readonly boolean[];
  /** The model stage of the kernel's nodes (GraphBuilder.stage), when the model declared stages. */
  readonly stage?: string;
}

export type StepSpec =
  | { readonly kind: 'dispatch'; readonly kernel: number }
  | {
      readonly kind: 'copy';
      readonly src: number;
      readonly dst: number;
      /** Bytes to copy (the upper bound when `bytesDim` is given). */
      readonly bytes: number;
      /** Bytes as a run-time size. */
      readonly bytesDim?: DimJson;
    };

export interface TensorSpec {
  readonly name: string;
  readonly buffer: number;
  readonly dtype: DTypeName;
  /** The shape; the upper bound when `dims` is given. */
  readonly shape: readonly number[];
  /** Present when some axis is a run-time size: every axis as a size expression. */
  readonly dims?: readonly DimJson[];
  /** A tensor over maxBufferSize: its buffers in order (`buffer` is the first). */
  readonly chunks?: readonly number[];
  /**
   * Inputs read as indices (gather indices, class labels): the values a feed may hold, checked on the
   * host by the session before upload (the kernels clamp an out-of-range index instead of failing).
   */
  readonly valueRange?: ValueRange;
}

/** Allowed values of an index input: min ≤ v ≤ max, or v = allow (e.g. an ignore index). */
export interface ValueRange {
  readonly min: number;
  readonly max: number;
  readonly allow?: number;
  /** Why, for the message: e.g. 'indices of gather along axis 0 of size 5 (declared at …)'. */
  readonly rule: string;
}

export interface ProgramStats {
  readonly dispatches: number;
  readonly kernels: number;
  /** Most bytes of temporaries live at once. */
  readonly peakTempBytes: number;
  /** Bytes of all temp buffers after reuse. */
  readonly tempBufferBytes: number;
  /** Bytes temporaries would take with no reuse. */
  readonly tempBytesUnplanned: number;
  readonly persistentBytes: number;
  /** Largest binding (window) of any kernel. */
  readonly maxBindingBytes: number;
  /** Largest buffer (absent in programs from before split bindings: then maxBindingBytes). */
  readonly maxBufferBytes?: number;
  readonly maxBindingsPerKernel: number;
}

export interface ProgramSpec {
  readonly format: 'wgflow-program';
  readonly version: 1;
  readonly name: string;
  readonly buffers: readonly BufferSpec[];
  readonly kernels: readonly KernelSpec[];
  readonly steps: readonly StepSpec[];
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Params and state: persistent across runs, readable and writable by name. */
  readonly persistent: readonly (TensorSpec & { readonly role: 'param' | 'state'; readonly trainable: boolean })[];
  /** The run-time size symbols (absent: every size is static); each input axis names one or is static. */
  readonly symbols?: readonly SymbolSpec[];
  readonly stats: ProgramStats;
}
