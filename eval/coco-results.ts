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
