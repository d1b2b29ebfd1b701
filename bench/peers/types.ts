/** The peer benchmark's vocabulary: runners (one library running one workload), cross-checks, workloads, rows. */

/** Named outputs of one run, as host arrays (int64 results converted to numbers). */
export type Outputs = Record<string, ArrayLike<number>>;

export interface Runner {
  /** One timed run (see each workload for what it covers). */
  run(): Promise<void>;
  /** One untimed run that returns the outputs the cross-checks need. */
  outputs(): Promise<Outputs>;
  dispose(): void;
}

/** The result of comparing one library's outputs with a reference. */
export interface Check {
  /** What was compared, e.g. "features, RPN scores and deltas vs wgflow" or "CPU crop-and-resize". */
  readonly against: string;
  /** Short human-readable result, e.g. "rel 1.2e-6" or "300/300 indices identical". */
  readonly result: string;
  /** The headline number of the result (a relative error, or a count of mismatches). */
  readonly value: number;
  readonly pass: boolean;
}

export interface PeerEntry {
  readonly runner: Runner;
  /** Compares the peer's outputs (and possibly wgflow's). */
  check(wgflow: Outputs, peer: Outputs): Check;
}

/** A peer that cannot run the workload, and why. */
export interface Unavailable {
  readonly unavailable: string;
}

export type PeerSlot = PeerEntry | Unavailable;

export const isUnavailable = (p: PeerSlot): p is Unavailable => 'unavailable' in p;

export interface Prepared {
  readonly wgflow: Runner;
  /** Optional check of wgflow itself (e.g. against a CPU reference). */
  readonly wgflowCheck?: (wgflow: Outputs) => Check;
  readonly tf: PeerSlot;
  readonly ort: PeerSlot;
  /** Workload-specific notes for the table (what a run covers, semantic differences). */
  readonly notes?: readonly string[];
  /** Useful GFLOP per run when only known once the workload is built (overrides Workload.gflop). */
  readonly gflop?: number;
}

export interface Workload {
  /** Short id (used for selection on the command line). */
  readonly id: string;
  readonly name: string;
  /** Useful GFLOP per run (conv + matmul work); undefined where the workload is not FLOP-bound. */
  readonly gflop?: number;
  readonly warmup: number;
  readonly runs: number;
  prepare(): Promise<Prepared>;
}

export interface Timing {
  readonly medianMs: number;
  readonly minMs: number;
  readonly runs: number;
}

export interface PeerResult {
  readonly timing?: Timing;
  readonly check?: Check;
  /** Set when the peer did not run this workload. */
  readonly unavailable?: string;
}

export interface WorkloadRow {
  readonly id: string;
  readonly workload: string;
  readonly gflop: number | null;
  readonly wgflow: Timing & { readonly gflops: number | null; readonly check?: Check };
  readonly tf: PeerResult;
  readonly ort: PeerResult;
  /** wgflow median / TF.js median (< 1: wgflow is faster); null when TF.js did not run. */
  readonly wgflowOverTf: number | null;
  /** wgflow median / onnxruntime median; null when onnxruntime did not run. */
  readonly wgflowOverOrt: number | null;
  /** The same ratios of the minima (less sensitive to other processes' load, which only adds time). */
  readonly wgflowOverTfMin: number | null;
  readonly wgflowOverOrtMin: number | null;
  readonly notes: readonly string[];
}
