/**
 * `evaluate(detector, dataset)`: runs a {@link Detector} on every image of a dataset and scores the
 * detections as `wgflow eval` does: PASCAL VOC AP per class (area under the curve and VOC07 11-point,
 * `voc_eval.py` semantics, difficult objects ignored) and the COCO bbox metrics (pycocotools semantics).
 */
import { WgflowError } from '../compiler/errors.js';
import { openDataset } from '../data/open.js';
import type { BoxConvention, DetectionDataset } from '../data/types.js';
import { type CocoEvalResult, evaluateCoco } from '../eval/coco.js';
import type { CocoAnnotation, CocoDetection } from '../eval/coco-params.js';
import { evaluateVoc, type VocDetection, type VocEvalResult, type VocGroundTruth } from '../eval/voc.js';
import type { DetectionResult, Detector } from './detector.js';

export interface EvaluateOptions {
  /** VOC image set when `dataset` is a folder (default 'test'). */
  readonly split?: string;
  /** COCO instances JSON when `dataset` is the image folder. */
  readonly coco?: string;
  /** Skip bad images or objects with a warning (default false). */
  readonly skipBad?: boolean;
  /** After each image. */
  readonly onImage?: (done: number, total: number) => void;
}

export interface EvaluationResult {
  /** VOC AP per class, area under the curve (VOC2010+), IoU > 0.5. */
  readonly voc: VocEvalResult;
  /** VOC AP per class, VOC07 11-point. */
  readonly voc07: VocEvalResult;
  /** The COCO bbox evaluation (the 12 summary numbers in `stats`). */
  readonly coco: CocoEvalResult;
  /** The detections of every image, by sample id. */
  readonly detections: ReadonlyMap<string, DetectionResult>;
}

/** A box of one convention in another ('inclusive' x2 = continuous x2 − 1). */
function convert(box: ArrayLike<number>, from: BoxConvention, to: BoxConvention): [number, number, number, number] {
  const d = from === to ? 0 : from === 'continuous' ? -1 : 1;
  return [box[0] as number, box[1] as number, (box[2] as number) + d, (box[3] as number) + d];
}

/**
 * Detects every image of `dataset` (a loaded dataset, or a VOC folder / COCO image folder opened as
 * `wgflow eval` opens it, VOC 'difficult' objects kept and flagged) and evaluates.
 */
export async function evaluate(
  detector: Detector,
  dataset: string | DetectionDataset,
  opts: EvaluateOptions = {},
): Promise<EvaluationResult> {
  const ds =
    typeof dataset === 'string'
      ? await openDataset({
          dataset,
          split: opts.split ?? 'test',
          ...(opts.coco !== undefined ? { coco: opts.coco } : {}),
          ...(opts.skipBad ? { skipBad: true } : {}),
          forTraining: false,
        })
      : dataset;
  checkSameClasses(ds.classes.slice(1), detector.classes.slice(1), 'the detector');
  const vocDets: VocDetection[] = [];
  const vocGts: VocGroundTruth[] = [];
  const all = new Map<string, DetectionResult>();
  const images: { id: number; width: number; height: number }[] = [];
  const annotations: CocoAnnotation[] = [];
  const results: CocoDetection[] = [];
  // COCO boxes are [x, y, w, h] on the pixel edges: an inclusive box x1..x2 covers x2 − x1 + 1 pixels.
  // Detections are brought to the dataset's convention first, so both sides are measured alike.
  const plus = ds.boxConvention === 'inclusive' ? 1 : 0;
  for (let k = 0; k < ds.samples.length; k++) {
    const s = ds.samples[k]!;
    const imageId = k + 1;
    images.push({ id: imageId, width: s.width, height: s.height });
    for (let j = 0; j < s.labels.length; j++) {
      const b = s.boxes.subarray(4 * j, 4 * j + 4);
      vocGts.push({ imageId: s.id, classId: (s.labels[j] as number) - 1, box: b, difficult: s.difficult[j] as 0 | 1 });
      const w = (b[2] as number) - (b[0] as number) + plus;
      const h = (b[3] as number) - (b[1] as number) + plus;
      annotations.push({
        id: annotations.length + 1,
        image_id: imageId,
        category_id: s.labels[j] as number,
        bbox: [b[0] as number, b[1] as number, w, h],
        area: w * h,
        iscrowd: s.iscrowd[j] as 0 | 1,
        ...(s.difficult[j] === 1 ? { ignore: 1 } : {}),
      });
    }
    const [r] = await detector.detect(s.imagePath);
    if (!r) throw new WgflowError(`evaluate: the detector returned no result for ${s.imagePath}`);
    all.set(s.id, r);
    for (let d = 0; d < r.scores.length; d++) {
      const box = convert(r.boxes.subarray(4 * d, 4 * d + 4), detector.boxConvention, ds.boxConvention);
      const label = r.labels[d] as number;
      const score = r.scores[d] as number;
      vocDets.push({ imageId: s.id, classId: label - 1, score, box });
      results.push({
        image_id: imageId,
        category_id: label,
        bbox: [box[0], box[1], box[2] - box[0] + plus, box[3] - box[1] + plus],
        score,
      });
    }
    opts.onImage?.(k + 1, ds.samples.length);
  }
  const names = ds.classes.slice(1);
  const categories = names.map((name, i) => ({ id: i + 1, name }));
  return {
    voc: evaluateVoc(vocDets, vocGts, names),
    voc07: evaluateVoc(vocDets, vocGts, names, { use07: true }),
    coco: evaluateCoco({ images, annotations, categories }, results),
    detections: all,
  };
}

/**
 * The dataset's foreground classes must be the model's, in the same order (labels are indices):
 * otherwise AP would be computed against the wrong class. `model` names the model's side.
 */
export function checkSameClasses(dataset: readonly string[], model: readonly string[], modelName: string): void {
  if (dataset.length === model.length && dataset.every((c, i) => c === model[i])) return;
  const list = (l: readonly string[]) => (l.length > 12 ? `${l.slice(0, 12).join(', ')}, …` : l.join(', '));
  throw new WgflowError(
    `evaluate: the dataset's ${dataset.length} classes (${list(dataset)}) are not ${modelName}'s ${model.length} (${list(model)}); evaluate on a dataset with the classes the model was trained on, in the same order`,
  );
}
