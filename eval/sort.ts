/**
 * Score ordering shared by the VOC and COCO evaluators.
 *
 * Both reference implementations sort detections with `np.argsort(-score)`. pycocotools passes
 * `kind='mergesort'` (stable: ties keep their input order). py-faster-rcnn's `voc_eval.py` uses the
 * default quicksort, which is not stable (introsort, or a SIMD sort on recent x86 numpy builds), so its
 * tie order is an implementation accident. We use the stable order everywhere: equal scores keep the order in which the detections were given.
 */

/** Indices of `scores` ordered by score descending; equal scores keep ascending index order. */
export function stableOrderDesc(scores: ArrayLike<number>): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((i, j) => {
    const a = scores[i]!;
    const b = scores[j]!;
    if (a > b) return -1;
    if (a < b) return 1;
    return i - j;
  });
  return order;
}

/** Throws unless `score` is a number other than NaN (±Infinity sort like numpy does). */
export function checkScore(score: number, where: string): void {
  if (typeof score !== 'number' || Number.isNaN(score)) {
    throw new Error(`${where}: score must be a number (got ${String(score)})`);
  }
}
