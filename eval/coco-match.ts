/**
 * Per image and category matching: pycocotools `COCOeval._prepare`, `computeIoU` and `evaluateImg`
 * for iouType 'bbox' (spec §8).
 */
import type { CocoAnnotation, CocoDetection, CocoParams } from './coco-params.js';
import { cocoIou } from './iou.js';
import { stableOrderDesc } from './sort.js';

/** Ground truth and detections of one image and category, ready for matching. */
export interface ImageCategory {
  /** In annotation order. */
  gts: CocoAnnotation[];
  gtArea: number[];
  gtCrowd: boolean[];
  /** Sorted by score descending (stable) and cut to the largest maxDets. */
  dts: CocoDetection[];
  dtArea: number[];
  /** `ious[d * gts.length + g]`, detections in `dts` order, ground truth in annotation order. */
  ious: Float64Array;
}

/** What `evaluateImg` returns for one image, category and area range. */
export interface ImageEval {
  /** Scores of the (sorted, cut) detections. */
  dtScores: number[];
  /** `dtMatch[t * D + d]`: index into `ImageCategory.gts` of the matched ground truth, or -1. */
  dtMatch: Int32Array;
  /** `dtIgnore[t * D + d]`: 1 when matched to ignored ground truth, or unmatched and outside the area range. */
  dtIgnore: Uint8Array;
  /** `gtMatch[t * G + g]` (ground truth in annotation order): index of the matching detection, or -1. */
  gtMatch: Int32Array;
  /** Per ground truth in annotation order: crowd or area outside the range. */
  gtIgnore: Uint8Array;
}

export function prepareImageCategory(gts: CocoAnnotation[], dets: CocoDetection[], maxDet: number): ImageCategory {
  const order = stableOrderDesc(dets.map((d) => d.score)).slice(0, maxDet);
  const dts = order.map((i) => dets[i]!);
  const gtCrowd = gts.map((g) => Boolean(g.iscrowd));
  const ious = new Float64Array(dts.length * gts.length);
  dts.forEach((d, di) => {
    gts.forEach((g, gi) => {
      ious[di * gts.length + gi] = cocoIou(d.bbox, g.bbox, gtCrowd[gi]!);
    });
  });
  return {
    gts,
    gtArea: gts.map((g) => g.area ?? g.bbox[2]! * g.bbox[3]!),
    gtCrowd,
    dts,
    dtArea: dts.map((d) => d.bbox[2]! * d.bbox[3]!),
    ious,
  };
}

const outside = (area: number, rng: readonly [number, number]) => area < rng[0] || area > rng[1];

/**
 * `evaluateImg`: greedy matching in score order at each IoU threshold. A detection takes the best
 * ground truth with IoU >= t (a later one wins on equal IoU), skipping already matched non-crowd
 * ground truth; ignored ground truth (crowd, or area outside `aRng`) is visited last, and not at all
 * once a regular one has matched. Returns null when the image has neither ground truth nor
 * detections of the category.
 */
export function evaluateImage(
  ic: ImageCategory,
  aRng: readonly [number, number],
  maxDet: number,
  p: CocoParams,
): ImageEval | null {
  const G = ic.gts.length;
  if (G === 0 && ic.dts.length === 0) return null;
  const gtIgnore = new Uint8Array(G);
  for (let g = 0; g < G; g++) gtIgnore[g] = ic.gtCrowd[g] || outside(ic.gtArea[g]!, aRng) ? 1 : 0;
  // Ignored ground truth last, stable (np.argsort(kind='mergesort') of the 0/1 flags).
  const gtOrder = [...Array(G).keys()].sort((a, b) => gtIgnore[a]! - gtIgnore[b]! || a - b);
  const D = Math.min(ic.dts.length, maxDet);
  const T = p.iouThrs.length;
  const dtMatch = new Int32Array(T * D).fill(-1);
  const gtMatch = new Int32Array(T * G).fill(-1);
  const dtIgnore = new Uint8Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < D; d++) {
      let best = Math.min(p.iouThrs[t]!, 1 - 1e-10);
      let m = -1;
      for (const g of gtOrder) {
        if (gtMatch[t * G + g]! >= 0 && !ic.gtCrowd[g]) continue;
        if (m > -1 && gtIgnore[m] === 0 && gtIgnore[g] === 1) break;
        const iou = ic.ious[d * G + g]!;
        if (iou < best) continue;
        best = iou;
        m = g;
      }
      if (m === -1) continue;
      dtIgnore[t * D + d] = gtIgnore[m]!;
      dtMatch[t * D + d] = m;
      gtMatch[t * G + m] = d;
    }
  }
  for (let d = 0; d < D; d++) {
    if (!outside(ic.dtArea[d]!, aRng)) continue;
    for (let t = 0; t < T; t++) if (dtMatch[t * D + d] === -1) dtIgnore[t * D + d] = 1;
  }
  return { dtScores: ic.dts.slice(0, D).map((d) => d.score), dtMatch, dtIgnore, gtMatch, gtIgnore };
}
