/**
 * The detection library's entry: {@link loadDetector} gives a {@link Detector}, whose `detect(images)`
 * takes file paths, encoded bytes or decoded pixels, does the model's preprocessing (resize, pixel
 * normalization, padding to the compiled canvas, `im_info`) and returns `{ boxes, labels, scores }` per
 * image in original-image pixels, like a torchvision detection model in eval mode.
 *
 * A model is loaded by name: the Faster R-CNN models wgflow declares, from a checkpoint written by
 * `train()` / `wgflow train`, or torchvision's Faster R-CNN models (`fasterrcnn_resnet50_fpn`, …) from
 * the user's own .pth or safetensors weights (train/torchvision-detector.ts). Every loader returns the
 * same {@link Detector} interface.
 */
import { WgflowError } from '../compiler/errors.js';
import type { ImageInput } from '../data/image-input.js';
import type { BoxConvention } from '../data/types.js';
import { TV_DETECTION_MODELS } from '../models/torchvision/detector.js';
import { readCheckpointConfig } from './checkpoint-config.js';
import { FrcnnDetector } from './frcnn-detector.js';
import { FRCNN_MODEL_NAMES, type FrcnnModelName, isFrcnnModel } from './run-config.js';
import { isTorchvisionModel, TorchvisionDetector, type TorchvisionDetectorOptions } from './torchvision-detector.js';

/** The detections of one image (N of them), as torchvision's `{boxes, labels, scores}`. */
export interface DetectionResult {
  /** N×4, row-major x1, y1, x2, y2 in the original image's pixels (see {@link Detector.boxConvention}). */
  readonly boxes: Float32Array;
  /** N class labels in 1..K: `detector.classes[label]` names one (0 is the background). */
  readonly labels: Int32Array;
  /** N scores in [0, 1] (softmax probabilities). */
  readonly scores: Float32Array;
}

export interface DetectOptions {
  /** Keep only detections scoring at least this (default: all the model returns). */
  readonly scoreThreshold?: number;
}

/** A loaded detection model on the GPU. */
export interface Detector {
  /** The model's name, e.g. 'frcnn-small'. */
  readonly model: string;
  /** Class names by label; index 0 is `'__background__'`. */
  readonly classes: readonly string[];
  /**
   * How the boxes relate to pixels: `'inclusive'` (py-faster-rcnn: x2 is the last covered column, the
   * width x2 − x1 + 1; wgflow's frcnn-* models) or `'continuous'` (torchvision: width x2 − x1).
   */
  readonly boxConvention: BoxConvention;
  /** Detects objects in each image (one result per image, in order). */
  detect(images: ImageInput | readonly ImageInput[], opts?: DetectOptions): Promise<DetectionResult[]>;
  /** Frees the GPU buffers. */
  destroy(): void;
}

/** A wgflow Faster R-CNN from a checkpoint of `train()` / `wgflow train`. */
export interface CheckpointDetectorOptions {
  /** 'frcnn-small' | 'frcnn-zf' | 'frcnn-vgg16'; when given it must be the checkpoint's model. */
  readonly model?: FrcnnModelName;
  /** The checkpoint (its configuration gives the classes, canvas and preprocessing). */
  readonly checkpoint: string;
}

/** What {@link loadDetector} loads (one member per model family). */
export type LoadDetectorOptions = CheckpointDetectorOptions | TorchvisionDetectorOptions;

/** The models {@link loadDetector} knows. */
export const DETECTOR_MODELS: readonly string[] = [...FRCNN_MODEL_NAMES, ...TV_DETECTION_MODELS];

async function loadFrcnnCheckpoint(o: CheckpointDetectorOptions): Promise<Detector> {
  const config = await readCheckpointConfig(o.checkpoint);
  if (o.model !== undefined && o.model !== config.model)
    throw new WgflowError(`loadDetector: ${o.checkpoint} is a ${config.model} checkpoint, not ${o.model}`);
  const det = await FrcnnDetector.create(config);
  try {
    await det.loadCheckpoint(o.checkpoint);
  } catch (e) {
    det.destroy();
    throw e;
  }
  return det;
}

/**
 * Loads a detector and compiles its inference program for this machine's GPU.
 *
 * @example
 * ```ts
 * import { loadDetector } from 'wgflow';
 * const det = await loadDetector({ model: 'frcnn-small', checkpoint: 'runs/train/checkpoint.safetensors' });
 * const [{ boxes, labels, scores }] = await det.detect('photo.jpg');
 * det.destroy();
 * ```
 */
export async function loadDetector(o: LoadDetectorOptions): Promise<Detector> {
  if (typeof o === 'object' && o !== null && isTorchvisionModel(o.model)) {
    const tv = o as TorchvisionDetectorOptions;
    if (typeof tv.weights !== 'string')
      throw new WgflowError(
        `loadDetector: ${tv.model} needs { weights } (a .pth or .safetensors file with torchvision's keys)`,
      );
    return TorchvisionDetector.create(tv);
  }
  if (typeof o !== 'object' || o === null || typeof (o as CheckpointDetectorOptions).checkpoint !== 'string')
    throw new WgflowError('loadDetector: give { model, checkpoint } (checkpoint: the path of a wgflow checkpoint)');
  if (o.model !== undefined && !isFrcnnModel(o.model))
    throw new WgflowError(`loadDetector: unknown model '${String(o.model)}' (known: ${DETECTOR_MODELS.join(', ')})`);
  return loadFrcnnCheckpoint(o as CheckpointDetectorOptions);
}
