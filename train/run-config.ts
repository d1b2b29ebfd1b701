/**
 * The run configuration for a model name and a few options (what `wgflow train` and `wgflow compile`
 * take on the command line, and what the library's `train()` takes): the model's recipe
 * (train/frcnn-config.ts) with the iterations, learning rate, canvas, training mode and RoI pooling
 * overridden where given.
 */
import { WgflowError } from '../compiler/errors.js';
import type { RoiPooling } from '../models/frcnn/head.js';
import { type FrcnnRunConfig, smallShapesConfig, vgg16VocConfig } from './frcnn-config.js';

/** The Faster R-CNN models wgflow declares (train/frcnn-config.ts has their recipes). */
export const FRCNN_MODEL_NAMES = ['frcnn-small', 'frcnn-zf', 'frcnn-vgg16'] as const;
export type FrcnnModelName = (typeof FRCNN_MODEL_NAMES)[number];

/** Training modes: PFR's approximate joint (end2end), non-approximate joint, 4-step alternating. */
export const TRAINING_MODES = ['approximate-joint', 'joint', 'alternating'] as const;
export type TrainingMode = (typeof TRAINING_MODES)[number];

export const ROI_POOLINGS: readonly RoiPooling[] = ['roi_pool', 'roi_align'];

/** Iterations of the frcnn-small recipe when none are given (the VGG16/ZF recipe has 70000). */
export const SMALL_DEFAULT_ITERATIONS = 4000;

/** Crop-classification pre-training steps (16 crops of 48×48 each) before training frcnn-small. */
export const SMALL_PRETRAIN_STEPS = 400;

/** Pre-training steps when none are given: 400 for frcnn-small (no ImageNet weights for it), else 0. */
export function defaultPretrainSteps(model: FrcnnModelName): number {
  return model === 'frcnn-small' ? SMALL_PRETRAIN_STEPS : 0;
}

export interface RunConfigOptions {
  /** Default 'frcnn-small'. */
  readonly model?: string;
  /** Default: the model's recipe (4000 for frcnn-small, 70000 for ZF/VGG16, lr step at 5/7). */
  readonly iters?: number;
  /** Base learning rate (default: the model's recipe). */
  readonly lr?: number;
  /** Input canvas `'HxW'` or [H, W] (default 128x160 small, 600x1000 ZF/VGG16). */
  readonly canvas?: string | readonly [number, number];
  readonly mode?: string;
  readonly pooling?: string;
  /** Images per training step (1–8; default 1). */
  readonly batch?: number;
}

/** `'128x160'` → [128, 160]. */
export function parseCanvas(s: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new WgflowError(`--canvas must be HxW (e.g. 128x160), got '${s}'`);
  return [Number(m[1]), Number(m[2])];
}

export function isFrcnnModel(name: string): name is FrcnnModelName {
  return (FRCNN_MODEL_NAMES as readonly string[]).includes(name);
}

/**
 * The run configuration of `classes` (foreground names) for the options. `mode: 'alternating'`
 * leaves the config's mode alone (the 4 steps choose their own; see train/alternating.ts).
 */
export function runConfigFor(a: RunConfigOptions, classes: readonly string[]): FrcnnRunConfig {
  const model = a.model ?? 'frcnn-small';
  const canvas = typeof a.canvas === 'string' ? parseCanvas(a.canvas) : a.canvas;
  let c: FrcnnRunConfig;
  if (model === 'frcnn-small') {
    c = smallShapesConfig(classes, a.iters ?? SMALL_DEFAULT_ITERATIONS);
    if (canvas) {
      const [H, W] = canvas;
      c = { ...c, canvas: [H, W], resize: { shortSide: Math.min(H, W), maxSize: Math.max(H, W) } };
    }
  } else if (model === 'frcnn-vgg16' || model === 'frcnn-zf') {
    c = { ...vgg16VocConfig(classes), model };
    if (a.iters !== undefined)
      c = { ...c, iterations: a.iters, lr: { ...c.lr, steps: [Math.round(a.iters * (5 / 7))] } };
    if (canvas) c = { ...c, canvas: [canvas[0], canvas[1]] };
  } else throw new WgflowError(`unknown model '${model}' (known: ${FRCNN_MODEL_NAMES.join(', ')})`);
  if (a.lr !== undefined) c = { ...c, lr: { ...c.lr, base: a.lr } };
  if (a.mode !== undefined) {
    if (!(TRAINING_MODES as readonly string[]).includes(a.mode))
      throw new WgflowError(`mode must be ${TRAINING_MODES.join(', ')}, got '${a.mode}'`);
    if (a.mode !== 'alternating') c = { ...c, mode: a.mode as FrcnnRunConfig['mode'] };
  }
  if (a.pooling !== undefined) {
    if (!(ROI_POOLINGS as readonly string[]).includes(a.pooling))
      throw new WgflowError(`pooling must be ${ROI_POOLINGS.join(' or ')}, got '${a.pooling}'`);
    c = { ...c, pooling: a.pooling as RoiPooling };
  }
  // batch 1 is the recipe's default: the field stays absent, so configs of earlier runs still match
  if (a.batch !== undefined && a.batch !== 1) c = { ...c, imagesPerBatch: a.batch };
  return c;
}
