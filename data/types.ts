import type { DatasetWarning } from './errors.js';

/**
 * How box coordinates relate to pixels.
 * - `'inclusive'` (py-faster-rcnn, VOC after the −1): x1..x2 are 0-based indices of the first and the
 *   last pixel column covered, so a box one pixel wide has x2 = x1 and width = x2 − x1 + 1. Horizontal
 *   flip: x1' = W − x2 − 1, x2' = W − x1 − 1.
 * - `'continuous'` (torchvision, COCO): x1..x2 are positions on the pixel grid edges, a box covering
 *   columns a..b is [a, b + 1], width = x2 − x1. Horizontal flip: x1' = W − x2, x2' = W − x1.
 */
export type BoxConvention = 'inclusive' | 'continuous';

/** One image and its ground truth. */
export interface DetectionSample {
  /** Image id: the VOC index (e.g. `'000005'`) or the COCO image id as a string. */
  id: string;
  imagePath: string;
  width: number;
  height: number;
  /** N×4, row-major `x1, y1, x2, y2`, 0-based, in the dataset's {@link BoxConvention}. */
  boxes: Float32Array;
  /** N labels in 1..K; 0 is background, `classes[label]` is the name. */
  labels: Int32Array;
  /** N flags: VOC `<difficult>` (COCO: the non-standard `ignore` field, else 0). */
  difficult: Uint8Array;
  /** N flags: COCO `iscrowd` (0 for VOC). */
  iscrowd: Uint8Array;
}

export interface DetectionDataset {
  /** Class names; index 0 is `'__background__'`, so `classes[label]` names a label. */
  classes: string[];
  samples: DetectionSample[];
  boxConvention: BoxConvention;
  /** What was skipped under `skipBad` (empty otherwise). */
  warnings: DatasetWarning[];
}

export const BACKGROUND = '__background__';
