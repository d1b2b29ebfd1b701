/**
 * From a dataset sample to the inputs of a compiled Faster R-CNN program: resize (spec §5: short side
 * s, long side ≤ max), place in the top-left corner of the fixed canvas (zero padding), normalize, and
 * the ground truth in canvas coordinates (difficult objects excluded from training, as PFR).
 */
import { WgflowError } from '../compiler/errors.js';
import { flipBoxesHorizontal, flipImageHorizontal, type RgbImage } from '../data/image.js';
import type { BoxConvention, DetectionSample } from '../data/types.js';

export { type CanvasSpec, canvasScale, type PreparedImage, prepareImage } from '../runtime/image-prep.js';

export interface GtFeeds {
  readonly gt_boxes: Float32Array;
  readonly gt_labels: Int32Array;
  readonly gt_count: [number];
  /** Objects left out because there were more than maxGt. */
  readonly dropped: number;
}

/**
 * Ground truth for a training step: non-difficult objects, flipped when asked (in original-image
 * coordinates), scaled to the canvas, padded to maxGt rows.
 */
export function gtFeeds(
  sample: DetectionSample,
  scale: number,
  maxGt: number,
  opts: { flip: boolean; convention: BoxConvention },
): GtFeeds {
  let boxes = sample.boxes;
  if (opts.flip) boxes = flipBoxesHorizontal(boxes, sample.width, opts.convention);
  const keep: number[] = [];
  for (let j = 0; j < sample.labels.length; j++) if (sample.difficult[j] !== 1) keep.push(j);
  const n = Math.min(keep.length, maxGt);
  const gt_boxes = new Float32Array(maxGt * 4);
  const gt_labels = new Int32Array(maxGt);
  for (let k = 0; k < n; k++) {
    const j = keep[k] as number;
    for (let c = 0; c < 4; c++) gt_boxes[4 * k + c] = (boxes[4 * j + c] as number) * scale;
    gt_labels[k] = sample.labels[j] as number;
  }
  return { gt_boxes, gt_labels, gt_count: [n], dropped: keep.length - n };
}

/** The image of a training visit (flipped when asked). */
export function maybeFlip(img: RgbImage, flip: boolean): RgbImage {
  return flip ? flipImageHorizontal(img) : img;
}

export function checkSampleSize(sample: DetectionSample, img: RgbImage): void {
  if (img.width !== sample.width || img.height !== sample.height)
    throw new WgflowError(
      `${sample.imagePath}: the image is ${img.width}×${img.height} but its annotation says ${sample.width}×${sample.height}`,
    );
}
