/** Cross-checks of peer outputs: normwise relative error of float tensors, and kept-index lists. */
import type { Check, Outputs } from './types.js';

/** max |got − ref| / max |ref| over the given keys (NaN when a tensor is missing or has another size). */
export function relErr(ref: Outputs, got: Outputs, keys: readonly string[] = Object.keys(ref)): number {
  let maxRef = 0;
  let maxDiff = 0;
  for (const k of keys) {
    const r = ref[k];
    const o = got[k];
    if (!r || !o || o.length !== r.length) return Number.NaN;
    for (let i = 0; i < r.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(r[i] as number));
      const d = Math.abs((r[i] as number) - (o[i] as number));
      maxDiff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(maxDiff, d);
    }
  }
  return maxDiff / (maxRef || 1);
}

/** A float comparison that passes when the relative error is below `tol`. */
export function floatCheck(
  against: string,
  ref: Outputs,
  got: Outputs,
  keys: readonly string[] = Object.keys(ref),
  tol = 1e-4,
): Check {
  const e = relErr(ref, got, keys);
  return { against, result: `rel err ${e.toExponential(1)}`, value: e, pass: e < tol };
}

/** Compares two kept-index lists (same order expected). */
export function indexListCheck(against: string, ref: ArrayLike<number>, got: ArrayLike<number>): Check {
  const n = Math.max(ref.length, got.length);
  let differ = 0;
  for (let i = 0; i < n; i++) if (ref[i] !== got[i]) differ++;
  return {
    against,
    result:
      differ === 0
        ? `${ref.length}/${ref.length} kept indices identical`
        : `${differ} of ${n} positions differ (${ref.length} vs ${got.length} kept)`,
    value: differ,
    pass: differ === 0,
  };
}

/** Several checks as one (all must pass; the value is the largest). */
export function allChecks(against: string, parts: readonly Check[]): Check {
  return {
    against,
    result: parts.map((p) => `${p.against}: ${p.result}`).join('; '),
    value: Math.max(...parts.map((p) => p.value)),
    pass: parts.every((p) => p.pass),
  };
}

/** The first `count` entries (a fixed-capacity result's valid prefix). */
export function prefix(x: ArrayLike<number>, count: number): number[] {
  return Array.from({ length: Math.max(0, Math.min(count, x.length)) }, (_, i) => x[i] as number);
}
