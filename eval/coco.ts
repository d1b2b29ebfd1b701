/**
 * COCO bbox evaluation, a port of pycocotools' `COCOeval` (`evaluate`, `accumulate`, `summarize`)
 * for iouType 'bbox' with the default parameters (spec §8).
 *
 * Differences from pycocotools, all outside what a valid COCO file exercises:
 * - A ground-truth annotation without `area` uses `w * h` (pycocotools requires the field).
 * - Matches are kept as indices, so a ground truth with `id` 0 matches like any other (pycocotools
 *   stores the id and reads 0 as "unmatched").
 * - Results for categories missing from `categories` are skipped silently, as pycocotools does;
 *   results for images missing from `images` throw (pycocotools' `loadRes` asserts the same).
 * - The summary reads maxDets[2] where pycocotools writes the literal 100 (equal for the defaults).
 */

import { accumulate, type CocoAccumulation } from './coco-accumulate.js';
import { evaluateImage, type ImageEval, prepareImageCategory } from './coco-match.js';
import {
  type CocoAnnotation,
  type CocoDetection,
  type CocoGroundTruth,
  type CocoParams,
  defaultParams,
} from './coco-params.js';
import { flagValue } from './flags.js';
import { checkScore } from './sort.js';

export interface CocoEvalOptions {
  /** Three ascending values; default `[1, 10, 100]`. */
  maxDets?: readonly [number, number, number];
}

export interface CocoCategoryResult {
  id: number;
  name: string;
  /** -1 where the category has no (non-crowd) ground truth. */
  ap: number;
  ap50: number;
  ap75: number;
  /** Recall at maxDets[2], area 'all', averaged over the IoU thresholds. */
  ar: number;
  /** Non-crowd ground-truth boxes. */
  numGt: number;
  numDetections: number;
}

/** One of the 12 summary lines. */
export interface CocoSummaryLine {
  kind: 'AP' | 'AR';
  /** undefined: averaged over 0.50:0.95. */
  iouThr: number | undefined;
  area: string;
  maxDets: number;
  value: number;
}

export interface CocoEvalResult extends CocoAccumulation {
  /** The 12 numbers of `COCOeval.stats`; -1 where nothing was defined. */
  stats: number[];
  lines: CocoSummaryLine[];
  ap: number;
  ap50: number;
  ap75: number;
  apSmall: number;
  apMedium: number;
  apLarge: number;
  /** AR at maxDets[0], [1], [2] (1, 10, 100 by default). */
  ar1: number;
  ar10: number;
  ar100: number;
  arSmall: number;
  arMedium: number;
  arLarge: number;
  perCategory: CocoCategoryResult[];
  params: CocoParams;
}

function key(imageId: number, categoryId: number): string {
  return `${imageId}/${categoryId}`;
}

function checkBbox(bbox: ArrayLike<number>, where: string): void {
  if (bbox.length !== 4) throw new Error(`${where}: bbox must be [x, y, w, h], got ${bbox.length} numbers`);
}

/** Mean of the entries > -1 of `values`, or -1 if there are none (`_summarize`). */
function meanValid(values: Iterable<number>): number {
  let sum = 0;
  let n = 0;
  for (const v of values) {
    if (v > -1) {
      sum += v;
      n++;
    }
  }
  return n > 0 ? sum / n : -1;
}

interface Selection {
  /** undefined: all IoU thresholds; otherwise the threshold equal to this value (none: -1). */
  iouThr?: number;
  area: string;
  maxDets: number;
  /** One category index, or all. */
  k?: number;
}

function* selectPrecision(acc: CocoAccumulation, p: CocoParams, s: Selection): Generator<number> {
  const [T, R, K, A, M] = acc.counts;
  const a = p.areaRngLbl.indexOf(s.area);
  const m = p.maxDets.indexOf(s.maxDets);
  if (a < 0 || m < 0) return;
  for (let t = 0; t < T; t++) {
    if (s.iouThr !== undefined && p.iouThrs[t] !== s.iouThr) continue;
    for (let r = 0; r < R; r++) {
      for (let k = s.k ?? 0; k < (s.k ?? K - 1) + 1; k++) {
        yield acc.precision[(((t * R + r) * K + k) * A + a) * M + m]!;
      }
    }
  }
}

function* selectRecall(acc: CocoAccumulation, p: CocoParams, s: Selection): Generator<number> {
  const [T, , K, A, M] = acc.counts;
  const a = p.areaRngLbl.indexOf(s.area);
  const m = p.maxDets.indexOf(s.maxDets);
  if (a < 0 || m < 0) return;
  for (let t = 0; t < T; t++) {
    if (s.iouThr !== undefined && p.iouThrs[t] !== s.iouThr) continue;
    for (let k = s.k ?? 0; k < (s.k ?? K - 1) + 1; k++) {
      yield acc.recall[((t * K + k) * A + a) * M + m]!;
    }
  }
}

/** `summarize()`: the 12 standard numbers. */
export function summarizeCoco(acc: CocoAccumulation, p: CocoParams): CocoSummaryLine[] {
  const [m0, m1, m2] = [p.maxDets[0]!, p.maxDets[1]!, p.maxDets[2]!];
  const specs: Omit<CocoSummaryLine, 'value'>[] = [
    { kind: 'AP', iouThr: undefined, area: 'all', maxDets: m2 },
    { kind: 'AP', iouThr: 0.5, area: 'all', maxDets: m2 },
    { kind: 'AP', iouThr: 0.75, area: 'all', maxDets: m2 },
    { kind: 'AP', iouThr: undefined, area: 'small', maxDets: m2 },
    { kind: 'AP', iouThr: undefined, area: 'medium', maxDets: m2 },
    { kind: 'AP', iouThr: undefined, area: 'large', maxDets: m2 },
    { kind: 'AR', iouThr: undefined, area: 'all', maxDets: m0 },
    { kind: 'AR', iouThr: undefined, area: 'all', maxDets: m1 },
    { kind: 'AR', iouThr: undefined, area: 'all', maxDets: m2 },
    { kind: 'AR', iouThr: undefined, area: 'small', maxDets: m2 },
    { kind: 'AR', iouThr: undefined, area: 'medium', maxDets: m2 },
    { kind: 'AR', iouThr: undefined, area: 'large', maxDets: m2 },
  ];
  return specs.map((s) => {
    const sel: Selection = { area: s.area, maxDets: s.maxDets };
    if (s.iouThr !== undefined) sel.iouThr = s.iouThr;
    const value = meanValid(s.kind === 'AP' ? selectPrecision(acc, p, sel) : selectRecall(acc, p, sel));
    return { ...s, value };
  });
}

/**
 * Evaluates COCO-format results against COCO-format ground truth, as
 * `COCOeval(gt, gt.loadRes(results), 'bbox')` followed by `evaluate()`, `accumulate()`, `summarize()`.
 */
export function evaluateCoco(
  gt: CocoGroundTruth,
  results: readonly CocoDetection[],
  options: CocoEvalOptions = {},
): CocoEvalResult {
  const p = defaultParams(gt, options.maxDets);
  if (p.maxDets.length !== 3) throw new Error('maxDets must have 3 values');
  const imgSet = new Set(p.imgIds);
  const catSet = new Set(p.catIds);
  const gtsBy = new Map<string, CocoAnnotation[]>();
  const dtsBy = new Map<string, CocoDetection[]>();
  const push = <V>(map: Map<string, V[]>, k: string, v: V) => {
    const list = map.get(k);
    if (list) list.push(v);
    else map.set(k, [v]);
  };
  gt.annotations.forEach((a, i) => {
    checkBbox(a.bbox, `annotation ${i}`);
    flagValue(a.iscrowd, `annotation ${i}`, 'iscrowd');
    if (imgSet.has(a.image_id) && catSet.has(a.category_id)) push(gtsBy, key(a.image_id, a.category_id), a);
  });
  results.forEach((d, i) => {
    checkBbox(d.bbox, `result ${i}`);
    checkScore(d.score, `result ${i}`);
    if (!imgSet.has(d.image_id)) throw new Error(`result ${i}: image_id ${d.image_id} is not in the ground truth`);
    if (catSet.has(d.category_id)) push(dtsBy, key(d.image_id, d.category_id), d);
  });

  const maxDet = p.maxDets[p.maxDets.length - 1]!;
  const evalImgs: (ImageEval | null)[][][] = p.catIds.map((catId) => {
    const prepared = p.imgIds.map((imgId) =>
      prepareImageCategory(gtsBy.get(key(imgId, catId)) ?? [], dtsBy.get(key(imgId, catId)) ?? [], maxDet),
    );
    return p.areaRng.map((aRng) => prepared.map((ic) => evaluateImage(ic, aRng, maxDet, p)));
  });
  const acc = accumulate(evalImgs, p);
  const lines = summarizeCoco(acc, p);
  const stats = lines.map((l) => l.value);

  const aAll = p.areaRngLbl.indexOf('all');
  const perCategory = p.catIds.map((catId, k): CocoCategoryResult => {
    const cat = gt.categories.find((c) => c.id === catId)!;
    let numGt = 0;
    let numDetections = 0;
    for (const imgId of p.imgIds) {
      numGt += (gtsBy.get(key(imgId, catId)) ?? []).filter((a) => !a.iscrowd).length;
      numDetections += dtsBy.get(key(imgId, catId))?.length ?? 0;
    }
    const sel = (iouThr?: number): Selection => {
      const s: Selection = { area: p.areaRngLbl[aAll]!, maxDets: maxDet, k };
      if (iouThr !== undefined) s.iouThr = iouThr;
      return s;
    };
    return {
      id: catId,
      name: cat.name,
      ap: meanValid(selectPrecision(acc, p, sel())),
      ap50: meanValid(selectPrecision(acc, p, sel(0.5))),
      ap75: meanValid(selectPrecision(acc, p, sel(0.75))),
      ar: meanValid(selectRecall(acc, p, sel())),
      numGt,
      numDetections,
    };
  });

  const [ap, ap50, ap75, apSmall, apMedium, apLarge, ar1, ar10, ar100, arSmall, arMedium, arLarge] = stats as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return {
    ...acc,
    stats,
    lines,
    ap,
    ap50,
    ap75,
    apSmall,
    apMedium,
    apLarge,
    ar1,
    ar10,
    ar100,
    arSmall,
    arMedium,
    arLarge,
    perCategory,
    params: p,
  };
}
