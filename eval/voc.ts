/**
 * PASCAL VOC detection evaluation, a port of py-faster-rcnn's `lib/datasets/voc_eval.py` (spec §8).
 *
 * Per class: `npos` = number of non-difficult ground-truth boxes. All detections of the class are
 * sorted by score descending (stable: equal scores keep input order, see `sort.ts`). Each detection
 * takes the ground truth of its image and class with the largest IoU (the first one on equal IoU,
 * as `np.argmax`); if that IoU is strictly greater than the threshold: a difficult ground truth
 * makes the detection neither TP nor FP, an unmatched one makes it a TP (and marks it), an already
 * matched one makes it a FP (duplicate). Otherwise it is a FP. Then `rec = cumTP / npos`,
 * `prec = cumTP / max(cumTP + cumFP, eps)` and AP is the VOC07 11-point or the area-under-curve
 * (VOC2010+) value of that curve.
 *
 * A class without non-difficult ground truth (`npos = 0`): `voc_eval.py` divides by zero, giving
 * `rec = NaN` and then AP 0 (11-point) or NaN (area, when the class has detections) and a NaN
 * `np.mean` mAP. Here its AP is NaN under both metrics and it is left out of the mAP, the mean over
 * the classes that have ground truth (as COCO leaves out its -1 entries).
 */
import { flagValue } from './flags.js';
import { vocIou } from './iou.js';
import { checkScore, stableOrderDesc } from './sort.js';

export type ImageId = string | number;

export interface VocDetection {
  imageId: ImageId;
  /** Index into the `classes` list given to `evaluateVoc`. */
  classId: number;
  score: number;
  /** `[x1, y1, x2, y2]` in the same pixel convention as the ground truth. */
  box: ArrayLike<number>;
}

export interface VocGroundTruth {
  imageId: ImageId;
  classId: number;
  box: ArrayLike<number>;
  /** VOC's `<difficult>`: 0/1 as in the XML, or a boolean (anything else is an error). */
  difficult?: boolean | 0 | 1;
}

export interface VocEvalOptions {
  /** VOC07 11-point AP (py-faster-rcnn sets it for years < 2010, i.e. VOC07 test); default false. */
  use07?: boolean;
  /** A detection matches when its best IoU is strictly greater than this; default 0.5. */
  iouThreshold?: number;
  /** `+1` in widths and heights (inclusive pixel coordinates, the voc_eval convention); default true. */
  plusOne?: boolean;
}

export interface VocClassResult {
  classId: number;
  name: string;
  /** NaN when `npos` is 0. */
  ap: number;
  /** Non-difficult ground-truth boxes. */
  npos: number;
  numDifficult: number;
  numDetections: number;
  tp: number;
  fp: number;
  /** Detections whose best match was a difficult box: neither TP nor FP. */
  ignored: number;
  /** Recall and precision after each detection, in score order (what `voc_ap` receives). */
  recall: number[];
  precision: number[];
}

export interface VocEvalResult {
  perClass: VocClassResult[];
  /** Mean AP over the classes with `npos > 0`; NaN if there are none. */
  map: number;
  use07: boolean;
  iouThreshold: number;
  plusOne: boolean;
}

/** `voc_ap`: VOC07 11-point AP or the area under the precision envelope (VOC2010+). */
export function vocAp(rec: readonly number[], prec: readonly number[], use07: boolean): number {
  if (use07) {
    let ap = 0;
    for (let i = 0; i < 11; i++) {
      const t = i * 0.1; // np.arange(0., 1.1, 0.1): 0.30000000000000004, 0.6000000000000001, ... exactly
      let p = 0;
      let any = false;
      for (let j = 0; j < rec.length; j++) {
        if (rec[j]! >= t) {
          p = any ? Math.max(p, prec[j]!) : prec[j]!;
          any = true;
        }
      }
      ap += p / 11;
    }
    return ap;
  }
  const mrec = [0, ...rec, 1];
  const mpre = [0, ...prec, 0];
  for (let i = mpre.length - 1; i > 0; i--) mpre[i - 1] = Math.max(mpre[i - 1]!, mpre[i]!);
  let ap = 0;
  for (let i = 0; i + 1 < mrec.length; i++) {
    if (mrec[i + 1] !== mrec[i]) ap += (mrec[i + 1]! - mrec[i]!) * mpre[i + 1]!;
  }
  return ap;
}

interface ImageRecords {
  boxes: ArrayLike<number>[];
  difficult: boolean[];
  matched: boolean[];
}

function checkClass(classId: number, n: number, where: string): void {
  if (!Number.isInteger(classId) || classId < 0 || classId >= n) {
    throw new Error(`${where}: classId ${classId} is not an index into the ${n} classes`);
  }
}

function checkBox(box: ArrayLike<number>, where: string): void {
  if (box.length !== 4) throw new Error(`${where}: box must have 4 numbers, got ${box.length}`);
}

/** Evaluates one class: the body of `voc_eval` for `classname`. */
function evaluateClass(
  classId: number,
  name: string,
  dets: readonly VocDetection[],
  gts: readonly VocGroundTruth[],
  iouThreshold: number,
  plusOne: boolean,
  use07: boolean,
): VocClassResult {
  const records = new Map<ImageId, ImageRecords>();
  let npos = 0;
  let numDifficult = 0;
  for (const g of gts) {
    let r = records.get(g.imageId);
    if (!r) {
      r = { boxes: [], difficult: [], matched: [] };
      records.set(g.imageId, r);
    }
    const difficult = g.difficult === true; // normalized by evaluateVoc
    r.boxes.push(g.box);
    r.difficult.push(difficult);
    r.matched.push(false);
    if (difficult) numDifficult++;
    else npos++;
  }

  const order = stableOrderDesc(dets.map((d) => d.score));
  const recall: number[] = [];
  const precision: number[] = [];
  let tp = 0;
  let fp = 0;
  let ignored = 0;
  for (const di of order) {
    const d = dets[di]!;
    const r = records.get(d.imageId);
    let ovmax = Number.NEGATIVE_INFINITY;
    let jmax = -1;
    if (r) {
      for (let j = 0; j < r.boxes.length; j++) {
        const ov = vocIou(d.box, r.boxes[j]!, plusOne);
        if (Number.isNaN(ov)) {
          // np.max propagates NaN, and NaN > thresh is false: the detection is a FP.
          ovmax = Number.NaN;
          break;
        }
        if (ov > ovmax) {
          ovmax = ov;
          jmax = j;
        }
      }
    }
    if (ovmax > iouThreshold && r) {
      if (r.difficult[jmax]) ignored++;
      else if (!r.matched[jmax]) {
        tp++;
        r.matched[jmax] = true;
      } else fp++;
    } else fp++;
    recall.push(tp / npos);
    precision.push(tp / Math.max(tp + fp, Number.EPSILON));
  }
  const ap = npos > 0 ? vocAp(recall, precision, use07) : Number.NaN;
  return { classId, name, ap, npos, numDifficult, numDetections: dets.length, tp, fp, ignored, recall, precision };
}

/**
 * VOC AP per class and mAP. `classes[c]` names class `c`; detections and ground truth refer to
 * classes by that index (so a detector's label `l` with background 0 is usually `l - 1`).
 * Boxes are `[x1, y1, x2, y2]`. A detection on an image without ground truth of its class is a FP.
 */
export function evaluateVoc(
  dets: readonly VocDetection[],
  gts: readonly VocGroundTruth[],
  classes: readonly string[],
  options: VocEvalOptions = {},
): VocEvalResult {
  const { use07 = false, iouThreshold = 0.5, plusOne = true } = options;
  const detsByClass: VocDetection[][] = classes.map(() => []);
  const gtsByClass: VocGroundTruth[][] = classes.map(() => []);
  dets.forEach((d, i) => {
    checkClass(d.classId, classes.length, `detection ${i}`);
    checkScore(d.score, `detection ${i}`);
    checkBox(d.box, `detection ${i}`);
    detsByClass[d.classId]!.push(d);
  });
  gts.forEach((g, i) => {
    checkClass(g.classId, classes.length, `ground truth ${i}`);
    checkBox(g.box, `ground truth ${i}`);
    gtsByClass[g.classId]!.push({ ...g, difficult: flagValue(g.difficult, `ground truth ${i}`, 'difficult') });
  });
  const perClass = classes.map((name, c) =>
    evaluateClass(c, name, detsByClass[c]!, gtsByClass[c]!, iouThreshold, plusOne, use07),
  );
  const valid = perClass.filter((r) => r.npos > 0);
  const map = valid.length > 0 ? valid.reduce((s, r) => s + r.ap, 0) / valid.length : Number.NaN;
  return { perClass, map, use07, iouThreshold, plusOne };
}
