/**
 * Per-target tuning tables. Each kernel family that makes structural choices (tile sizes, split-K, …)
 * declares its table's type here by interface merging from its own module:
 *
 *   declare module '../compiler/tuning.js' { interface TuningTables { gemm: GemmTuning } }
 *
 * and reads `args.tuning.gemm` in its lowering; each target supplies its own values, so choices fitted
 * on one device (lavapipe) do not flow into another target's kernels (CUDA).
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging from the op families
export interface TuningTables {}

export type TargetName = 'webgpu' | 'cuda';

const tables = new Map<TargetName, Partial<TuningTables>>();

/** Sets (or replaces) a family's table for a target; families call it once for each target. */
export function setTuning<F extends keyof TuningTables>(target: TargetName, family: F, table: TuningTables[F]): void {
  tables.set(target, { ...(tables.get(target) ?? {}), [family]: table });
}

/** The tables of a target (families that registered none are absent). */
export function tuningFor(target: TargetName): Partial<TuningTables> {
  return tables.get(target) ?? {};
}
