/**
 * The compiled-program format the runtime executes: buffers, WGSL kernels, a dispatch schedule and
 * the names of inputs, outputs and persistent tensors. JSON-serializable (it is the artifact's manifest
 * core), and it imports nothing from the compiler.
 */
export type DTypeName = 'f32' | 'i32' | 'u32';

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
  readonly dispatch: readonly [number, number, number];
  /** Buffer ids in binding order (binding i = bindings[i]). */
  readonly bindings: readonly number[];
  /** Which bindings the kernel writes (same order). */
  readonly writes: readonly boolean[];
}

export type StepSpec =
  | { readonly kind: 'dispatch'; readonly kernel: number }
  | { readonly kind: 'copy'; readonly src: number; readonly dst: number; readonly bytes: number };

export interface TensorSpec {
  readonly name: string;
  readonly buffer: number;
  readonly dtype: DTypeName;
  readonly shape: readonly number[];
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
  readonly maxBindingBytes: number;
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
  readonly stats: ProgramStats;
}
