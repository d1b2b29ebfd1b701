/**
 * CPU IoU references shared by the box ops, NMS and the target layers. `plusOne` adds py-faster-rcnn's
 * +1 to widths, heights and intersections.
 * - {@link iouF64}: float64, the reference of `box_iou` (0/0 is NaN without `plusOne`, 0 with it);
 * - {@link iouF32}: float32, one rounding per operation in the kernels' order (area = w·h;
 *   inter = max(w, 0)·max(h, 0); iou = inter / ((area_a + area_b) − inter)), so that the reference and
 *   the GPU agree exactly, also at a threshold.
 */

/** One box (x1, y1, x2, y2). */
export type Box = readonly [number, number, number, number];

const fr = Math.fround;

/** IoU of two boxes in float64. */
export function iouF64(a: Box, b: Box, plusOne: boolean): number {
  const off = plusOne ? 1 : 0;
  const areaA = (a[2] - a[0] + off) * (a[3] - a[1] + off);
  const areaB = (b[2] - b[0] + off) * (b[3] - b[1] + off);
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]) + off);
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]) + off);
  const inter = w * h;
  if (plusOne) return inter > 0 ? inter / (areaA + areaB - inter) : 0;
  return inter / (areaA + areaB - inter);
}

/** hi − lo (+1 with `plusOne`) in float32. */
const extentF32 = (lo: number, hi: number, plusOne: boolean): number => (plusOne ? fr(fr(hi - lo) + 1) : fr(hi - lo));

/** Area of box k of flat float32 [n, 4] coordinates `b`, in float32. */
export function boxAreaF32(b: ArrayLike<number>, k: number, plusOne: boolean): number {
  const x = (j: number): number => b[4 * k + j] as number;
  return fr(extentF32(x(0), x(2), plusOne) * extentF32(x(1), x(3), plusOne));
}

export interface IouF32Options {
  /** The areas of the two boxes when the caller has them already ({@link boxAreaF32}). */
  readonly areaA?: number;
  readonly areaC?: number;
  /** 0 when the intersection is not positive, instead of inter / union (the target layers' rule). */
  readonly zeroIfDisjoint?: boolean;
}

/** IoU of box a of `ba` and box c of `bc` (flat float32 [n, 4] arrays) in the kernels' float32 arithmetic. */
export function iouF32(
  ba: ArrayLike<number>,
  a: number,
  bc: ArrayLike<number>,
  c: number,
  plusOne: boolean,
  opts: IouF32Options = {},
): number {
  const p = (j: number): number => ba[4 * a + j] as number;
  const q = (j: number): number => bc[4 * c + j] as number;
  const w = extentF32(Math.max(p(0), q(0)), Math.min(p(2), q(2)), plusOne);
  const h = extentF32(Math.max(p(1), q(1)), Math.min(p(3), q(3)), plusOne);
  const inter = fr(Math.max(w, 0) * Math.max(h, 0));
  if (opts.zeroIfDisjoint && !(inter > 0)) return 0;
  const areaA = opts.areaA ?? boxAreaF32(ba, a, plusOne);
  const areaC = opts.areaC ?? boxAreaF32(bc, c, plusOne);
  return fr(inter / fr(fr(areaA + areaC) - inter));
}
