/**
 * Detections → a COCO results file (`[{image_id, category_id, bbox: [x, y, w, h], score}]`, what
 * pycocotools' `loadRes` and eval/coco.ts read).
 *
 * Box conventions (data/types.ts): frcnn outputs INCLUSIVE pixel boxes (x2 is the last covered column),
 * so w = x2 − x1 + 1 and h = y2 − y1 + 1, as py-faster-rcnn's coco.py writes its results (and the
 * inverse of data/coco.ts's 'inclusive' reading, x2 = x + w − 1). 'continuous' boxes (torchvision)
 * give w = x2 − x1. Labels 1..K become COCO category ids through `categoryIds[label]` (COCO's ids are
 * sparse; data/coco.ts numbers the categories 1..K in ascending id order), or stay as they are.
 */
import type { BoxConvention } from '../data/types.js';
import type { CocoDetection } from './coco-params.js';
import type { Detection } from './detections.js';

export interface CocoResultsOptions {
  /** Convention of the input boxes (default 'inclusive', the frcnn outputs'). */
  readonly boxConvention?: BoxConvention;
  /** COCO category id of each label (index = label; index 0, background, unused). Default: id = label. */
  readonly categoryIds?: readonly number[];
}

/** One results entry per detection; `dets[i]` are the detections of image `imageIds[i]`. */
export function toCocoResults(
  dets: readonly (readonly Detection[])[],
  imageIds: readonly number[],
  opts: CocoResultsOptions = {},
): CocoDetection[] {
  if (dets.length !== imageIds.length)
    throw new Error(`toCocoResults: ${dets.length} detection lists but ${imageIds.length} image ids`);
  const off = (opts.boxConvention ?? 'inclusive') === 'inclusive' ? 1 : 0;
  const out: CocoDetection[] = [];
  dets.forEach((list, i) => {
    const imageId = imageIds[i] as number;
    if (!Number.isInteger(imageId)) throw new Error(`toCocoResults: image id ${imageId} is not an integer`);
    list.forEach((d, j) => {
      const where = `toCocoResults: image ${imageId} detection ${j}`;
      if (!Number.isInteger(d.label) || d.label < 1) throw new Error(`${where}: label ${d.label} is not a class ≥ 1`);
      const cat = opts.categoryIds ? opts.categoryIds[d.label] : d.label;
      if (cat === undefined)
        throw new Error(`${where}: label ${d.label} has no category id (categoryIds has ${opts.categoryIds?.length})`);
      if (!Number.isFinite(d.score)) throw new Error(`${where}: score ${d.score} is not finite`);
      const [x1, y1, x2, y2] = d.box;
      if (![x1, y1, x2, y2].every(Number.isFinite))
        throw new Error(`${where}: box [${d.box.join(', ')}] is not finite`);
      out.push({ image_id: imageId, category_id: cat, bbox: [x1, y1, x2 - x1 + off, y2 - y1 + off], score: d.score });
    });
  });
  return out;
}

/** A results entry as pycocotools' `COCO.loadRes` makes it for iouType 'bbox'. */
export interface LoadedCocoResult extends CocoDetection {
  /** 1-based position in the file. */
  readonly id: number;
  /** w · h. */
  readonly area: number;
  readonly iscrowd: 0;
  /** The corners the reader derives: [x, y, x + w, y + h]. */
  readonly corners: readonly [number, number, number, number];
}

/**
 * Reads a COCO bbox results file (parsed JSON) as pycocotools' `COCO.loadRes` does: an array of
 * `{image_id, category_id, bbox: [x, y, w, h], score}` whose image ids all belong to the ground truth;
 * each entry gets id i + 1, area w · h, iscrowd 0 and the box corners [x, y, x + w, y + h] (COCO's
 * convention: x2 = x + w). Throws, naming the entry, where loadRes would fail or where a field is not a
 * finite number.
 */
export function loadCocoResults(json: unknown, imageIds: Iterable<number>): LoadedCocoResult[] {
  if (!Array.isArray(json))
    throw new Error('COCO results: not an array of objects (pycocotools: results in not an array of objects)');
  const known = new Set(imageIds);
  return json.map((raw: unknown, i): LoadedCocoResult => {
    const where = `COCO results entry ${i}`;
    if (typeof raw !== 'object' || raw === null) throw new Error(`${where}: not an object`);
    const r = raw as Record<string, unknown>;
    const { image_id, category_id, bbox, score } = r;
    if (typeof image_id !== 'number' || !known.has(image_id))
      throw new Error(
        `${where}: image_id ${JSON.stringify(image_id)} is not an image of the ground truth (results do not correspond to the COCO set)`,
      );
    if (!Number.isInteger(category_id))
      throw new Error(`${where}: category_id ${JSON.stringify(category_id)} is not an integer`);
    if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((v) => typeof v === 'number' && Number.isFinite(v)))
      throw new Error(`${where}: bbox must be 4 finite numbers [x, y, w, h], got ${JSON.stringify(bbox)}`);
    if (typeof score !== 'number' || !Number.isFinite(score))
      throw new Error(`${where}: score ${JSON.stringify(score)} is not a finite number`);
    const [x, y, w, h] = bbox as [number, number, number, number];
    return {
      image_id,
      category_id: category_id as number,
      bbox: [x, y, w, h],
      score,
      id: i + 1,
      area: w * h,
      iscrowd: 0,
      corners: [x, y, x + w, y + h],
    };
  });
}
