/**
 * Limits and host-side checks of the eager detection ops (ops/detection-eager.ts). Every value that
 * reaches the GPU from an eager call is checked here first, so a bad box fails with a WgflowError
 * naming the op, the value and the rule instead of hanging the device or giving NaNs:
 * - boxes and RoIs must be finite (after conversion to f32: 1e39 is +Infinity there);
 * - the number of boxes of one NMS call and of RoIs of one RoI op is capped;
 * - RoIAlign's work per RoI is capped: with the adaptive sampling ratio (torchvision's default) a RoI
 *   of h×w feature pixels takes about h·w bilinear samples per channel (PH·PW bins of
 *   ceil(h/PH)·ceil(w/PW) samples), so one RoI [0, 0, 0, 1e30, 1e30] would never finish. Boxes within
 *   the cap are computed exactly as torchvision does (the cap never changes a result, it only refuses).
 * Each limit can be raised per call with the option named in {@link EAGER_LIMITS}.
 */
import { WgflowError } from '../compiler/errors.js';
import { fmtValue } from '../compiler/ir.js';

export const EAGER_LIMITS = {
  /** Boxes of one `nms` / `batchedNms` call (option `maxBoxes`). */
  nmsBoxes: 50_000,
  /** RoIs of one `roiAlign` / `roiPool` call (option `maxRois`). */
  rois: 20_000,
  /**
   * RoIAlign sampling points per RoI and channel, PH·PW·grid_h·grid_w (option `maxSamplesPerRoi`):
   * 2^20, a RoI of 1024×1024 feature pixels with the adaptive sampling ratio.
   */
  samplesPerRoi: 1 << 20,
} as const;

/** Options that raise the eager limits for one call. */
export interface EagerLimitOptions {
  /** NMS: most boxes (default {@link EAGER_LIMITS}.nmsBoxes). */
  readonly maxBoxes?: number;
  /** RoI ops: most RoIs (default {@link EAGER_LIMITS}.rois). */
  readonly maxRois?: number;
  /** RoIAlign: most sampling points per RoI and channel (default {@link EAGER_LIMITS}.samplesPerRoi). */
  readonly maxSamplesPerRoi?: number;
}

/** A limit option (a positive integer, or Infinity for none) or its default. */
export function limitOption(op: string, key: keyof EagerLimitOptions, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v === Number.POSITIVE_INFINITY || (Number.isInteger(v) && v >= 1)))
    throw new WgflowError(`${op}: option ${key} must be a positive integer (or Infinity), got ${fmtValue(v)}`);
  return v;
}

/** Rejects a count over its limit, naming the option that raises it. */
export function checkCount(op: string, n: number, what: string, limit: number, option: keyof EagerLimitOptions): void {
  if (n > limit)
    throw new WgflowError(
      `${op}: ${n} ${what} is over the limit of ${limit} per call (raise it with the option ${option})`,
    );
}

/** Rejects a non-finite value of row-major rows of `cols` values (boxes: 4, RoIs: 5), naming the row. */
export function checkFiniteRows(what: string, data: ArrayLike<number>, cols: number, rule: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (!Number.isFinite(v)) {
      const row = Math.floor(i / cols);
      throw new WgflowError(
        `${what}: row ${row} has the non-finite value ${fmtValue(v)} at column ${i % cols}${Math.abs(v) === Number.POSITIVE_INFINITY ? ' (as f32)' : ''}; ${rule}`,
      );
    }
  }
}

/** outputSize as [PH, PW]: positive integers (one number for both). */
export function outputSizeOption(op: string, v: unknown): [number, number] {
  const pair = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? v : undefined;
  if (!pair?.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 1))
    throw new WgflowError(
      `${op}: outputSize must be a positive integer or a pair [PH, PW] of them, got ${fmtValue(v)}`,
    );
  return [pair[0] as number, pair[1] as number];
}

/** A number option that must be finite and > 0 (spatialScale). */
export function positiveOption(op: string, key: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new WgflowError(`${op}: ${key} must be a positive finite number, got ${fmtValue(v)}`);
  return v;
}

/** A boolean option. */
export function boolOption(op: string, key: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new WgflowError(`${op}: ${key} must be true or false, got ${fmtValue(v)}`);
  return v;
}

/** Box-coder weights: 4 finite nonzero numbers. */
export function weightsOption(op: string, v: unknown): [number, number, number, number] {
  if (v === undefined) return [1, 1, 1, 1];
  if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x !== 0))
    throw new WgflowError(`${op}: weights must be 4 finite nonzero numbers [wx, wy, ww, wh], got ${fmtValue(v)}`);
  return [v[0], v[1], v[2], v[3]];
}

/** An image size [H, W]: positive finite numbers. */
export function imageSizeOption(op: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0))
    throw new WgflowError(`${op}: size must be [H, W], two positive finite numbers, got ${fmtValue(v)}`);
  return [v[0], v[1]];
}

/** The IoU threshold of NMS: a number, not NaN (±Infinity keep every box / only the first). */
export function iouThresholdOption(op: string, v: unknown): number {
  if (typeof v !== 'number' || Number.isNaN(v))
    throw new WgflowError(`${op}: iouThreshold must be a number (IoU > threshold suppresses), got ${fmtValue(v)}`);
  return v;
}

/**
 * RoIAlign's sampling points per RoI and channel, as torchvision's kernel takes them (float64 here; the
 * f32 kernel's grid may differ by one where roi / P is within an ulp of an integer, which the cap's
 * margin does not care about).
 */
export function roiAlignSamples(
  roi: ArrayLike<number>,
  at: number,
  p: { PH: number; PW: number; scale: number; samplingRatio: number; aligned: boolean },
): number {
  const off = p.aligned ? 0.5 : 0;
  const r = (j: number) => roi[at + j] as number;
  const rawW = r(3) * p.scale - off - (r(1) * p.scale - off);
  const rawH = r(4) * p.scale - off - (r(2) * p.scale - off);
  const roiW = p.aligned ? rawW : Math.max(rawW, 1);
  const roiH = p.aligned ? rawH : Math.max(rawH, 1);
  const gh = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(roiH / p.PH);
  const gw = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(roiW / p.PW);
  return p.PH * p.PW * Math.max(gh, 0) * Math.max(gw, 0);
}
