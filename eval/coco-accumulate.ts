/**
 * pycocotools `COCOeval.accumulate`: precision at the recall thresholds and final recall for every
 * IoU threshold, category, area range and maxDets (spec §8).
 */
import type { ImageEval } from './coco-match.js';
import type { CocoParams } from './coco-params.js';
import { stableOrderDesc } from './sort.js';

export interface CocoAccumulation {
  /** [T, R, K, A, M]. */
  counts: [number, number, number, number, number];
  /** `precision[(((t * R + r) * K + k) * A + a) * M + m]`; -1 where the category has no ground truth. */
  precision: Float64Array;
  /** `recall[((t * K + k) * A + a) * M + m]`; -1 where the category has no ground truth. */
  recall: Float64Array;
}

/** First index `i` with `xs[i] >= v` in a non-decreasing array (`np.searchsorted(side='left')`). */
export function searchsortedLeft(xs: ArrayLike<number>, v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** `evalImgs[k][a][i]` for category k, area range a, image i (in `p` order). */
export function accumulate(evalImgs: (ImageEval | null)[][][], p: CocoParams): CocoAccumulation {
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const K = p.catIds.length;
  const A = p.areaRng.length;
  const M = p.maxDets.length;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  for (let k = 0; k < K; k++) {
    for (let a = 0; a < A; a++) {
      const E = evalImgs[k]![a]!.filter((e): e is ImageEval => e !== null);
      if (E.length === 0) continue;
      let npig = 0;
      for (const e of E) for (const ig of e.gtIgnore) if (ig === 0) npig++;
      if (npig === 0) continue;
      for (let m = 0; m < M; m++) {
        const maxDet = p.maxDets[m]!;
        // Concatenate each image's first maxDet detections (already score-sorted per image).
        const scores: number[] = [];
        const src: [ImageEval, number, number][] = []; // image eval, its D, detection index
        for (const e of E) {
          const D = e.dtScores.length;
          for (let d = 0; d < Math.min(D, maxDet); d++) {
            scores.push(e.dtScores[d]!);
            src.push([e, D, d]);
          }
        }
        const order = stableOrderDesc(scores);
        const nd = order.length;
        for (let t = 0; t < T; t++) {
          const rc = new Float64Array(nd);
          const pr = new Float64Array(nd);
          let tp = 0;
          let fp = 0;
          for (let i = 0; i < nd; i++) {
            const [e, D, d] = src[order[i]!]!;
            if (!e.dtIgnore[t * D + d]) {
              if (e.dtMatch[t * D + d]! >= 0) tp++;
              else fp++;
            }
            rc[i] = tp / npig;
            pr[i] = tp / (fp + tp + Number.EPSILON); // np.spacing(1)
          }
          recall[((t * K + k) * A + a) * M + m] = nd > 0 ? rc[nd - 1]! : 0;
          for (let i = nd - 1; i > 0; i--) if (pr[i]! > pr[i - 1]!) pr[i - 1] = pr[i]!;
          for (let r = 0; r < R; r++) {
            const pi = searchsortedLeft(rc, p.recThrs[r]!);
            const q = pi < nd ? pr[pi]! : 0; // unreachable recall: 0 (and so are all higher thresholds)
            precision[(((t * R + r) * K + k) * A + a) * M + m] = q;
          }
        }
      }
    }
  }
  return { counts: [T, R, K, A, M], precision, recall };
}
