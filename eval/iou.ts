/**
 * The two IoU conventions of the reference evaluators (spec §8).
 */

/**
 * VOC IoU (`voc_eval.py`) of two `[x1, y1, x2, y2]` boxes. With `plusOne` (the py-faster-rcnn
 * convention for inclusive pixel coordinates) widths and heights are `x2 - x1 + 1`, also for the
 * intersection. Degenerate boxes can make the union 0 and the result NaN, as in numpy.
 */
export function vocIou(a: ArrayLike<number>, b: ArrayLike<number>, plusOne: boolean): number {
  const off = plusOne ? 1 : 0;
  const iw = Math.max(Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!) + off, 0);
  const ih = Math.max(Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!) + off, 0);
  const inter = iw * ih;
  const union = (a[2]! - a[0]! + off) * (a[3]! - a[1]! + off) + (b[2]! - b[0]! + off) * (b[3]! - b[1]! + off) - inter;
  return inter / union;
}

/**
 * COCO bbox IoU (pycocotools `maskApi.c` `bbIou`) of a detection and a ground-truth box, both
 * `[x, y, w, h]`, without +1. For a crowd ground truth the union is the detection's area alone.
 */
export function cocoIou(det: ArrayLike<number>, gt: ArrayLike<number>, crowd: boolean): number {
  const w = Math.min(det[0]! + det[2]!, gt[0]! + gt[2]!) - Math.max(det[0]!, gt[0]!);
  if (w <= 0) return 0;
  const h = Math.min(det[1]! + det[3]!, gt[1]! + gt[3]!) - Math.max(det[1]!, gt[1]!);
  if (h <= 0) return 0;
  const inter = w * h;
  const detArea = det[2]! * det[3]!;
  const union = crowd ? detArea : detArea + gt[2]! * gt[3]! - inter;
  return inter / union;
}
