/**
 * The JSON-serializable configuration of a Faster R-CNN training run (stored in every checkpoint, so
 * `detect`, `eval` and `--resume` rebuild exactly the same programs), and the model options it gives.
 */
import { WgflowError } from '../compiler/errors.js';
import type { DeviceLimits } from '../compiler/limits.js';
import type { ResizeRule, ToFloatOptions } from '../data/image.js';
import type { DetectionOptions, RoiPooling } from '../models/frcnn/head.js';
import type { FrcnnOptions } from '../models/frcnn/index.js';
import type { ProposalOptions } from '../models/frcnn/rpn.js';
import type { StepSchedule } from '../models/frcnn/schedule.js';
import type { FrcnnTrainingMode, FrcnnTrainingOptions } from '../models/frcnn/train.js';
import { generateAnchors } from '../ops/anchors.js';

export interface FrcnnRunConfig {
  readonly model: 'frcnn-small' | 'frcnn-zf' | 'frcnn-vgg16';
  /** Foreground class names (label k ↦ classes[k − 1]). */
  readonly classes: readonly string[];
  readonly canvas: readonly [number, number];
  readonly resize: ResizeRule;
  readonly pixel: ToFloatOptions;
  /** generate_anchors(baseSize, ratios, scales). */
  readonly anchors: {
    readonly baseSize: number;
    readonly ratios: readonly number[];
    readonly scales: readonly number[];
  };
  readonly pooling: RoiPooling;
  readonly mode: Exclude<FrcnnTrainingMode, 'rpn' | 'fast-rcnn'>;
  readonly maxGt: number;
  readonly proposalsTrain: Partial<ProposalOptions>;
  readonly proposalsTest: Partial<ProposalOptions>;
  readonly detections?: Partial<DetectionOptions>;
  readonly anchorBatch: number;
  readonly roiBatch: number;
  readonly lr: StepSchedule;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly iterations: number;
  /** Data order and sampling seed. */
  readonly seed: number;
  readonly flip: boolean;
}

/** PFR's VGG16 end2end settings (spec §7): lr 0.001, step at 50k of 70k, flips, 600/1000 resize. */
export function vgg16VocConfig(classes: readonly string[]): FrcnnRunConfig {
  return {
    model: 'frcnn-vgg16',
    classes,
    canvas: [600, 1000],
    resize: { shortSide: 600, maxSize: 1000 },
    pixel: { order: 'bgr', scale: 1, mean: [102.9801, 115.9465, 122.7717] },
    anchors: { baseSize: 16, ratios: [0.5, 1, 2], scales: [8, 16, 32] },
    pooling: 'roi_pool',
    mode: 'approximate-joint',
    maxGt: 64,
    proposalsTrain: {},
    proposalsTest: {},
    anchorBatch: 256,
    roiBatch: 128,
    lr: { base: 0.001, steps: [50000] },
    momentum: 0.9,
    weightDecay: 0.0005,
    iterations: 70000,
    seed: 3,
    flip: true,
  };
}

/**
 * The demo's small model on 128×160 shapes images: anchors of 16/32/64 px (objects are 25–70 px),
 * fewer proposals, a higher lr with warm-up (training from scratch, no ImageNet init).
 */
export function smallShapesConfig(classes: readonly string[], iterations: number): FrcnnRunConfig {
  return {
    model: 'frcnn-small',
    classes,
    canvas: [128, 160],
    resize: { shortSide: 128, maxSize: 160 },
    pixel: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    anchors: { baseSize: 16, ratios: [0.5, 1, 2], scales: [1, 2, 4] },
    pooling: 'roi_pool',
    mode: 'approximate-joint',
    maxGt: 6,
    proposalsTrain: { minSize: 4, preNmsTopN: 1000, postNmsTopN: 300 },
    proposalsTest: { minSize: 4, preNmsTopN: 1000, postNmsTopN: 100 },
    anchorBatch: 256,
    roiBatch: 128,
    lr: { base: 0.02, steps: [Math.round(iterations * 0.75)], warmupIters: 200, warmupFactor: 1 / 3 },
    momentum: 0.9,
    weightDecay: 0.0005,
    iterations,
    seed: 3,
    flip: true,
  };
}

export function validateConfig(c: FrcnnRunConfig): void {
  if (c.classes.length < 1) throw new WgflowError('config: classes is empty');
  if (!(Number.isInteger(c.iterations) && c.iterations >= 1))
    throw new WgflowError(`config: iterations must be a positive integer, got ${c.iterations}`);
  const [H, W] = c.canvas;
  if (!(Number.isInteger(H) && Number.isInteger(W) && H >= 16 && W >= 16))
    throw new WgflowError(`config: canvas must be two integers ≥ 16, got [${c.canvas.join(', ')}]`);
  if (c.mode === 'joint' && c.pooling !== 'roi_align')
    throw new WgflowError("config: mode 'joint' (non-approximate joint training) needs pooling 'roi_align'");
}

/** The model options shared by the training and inference graphs. */
export function modelOptions(c: FrcnnRunConfig, limits: DeviceLimits): FrcnnOptions {
  return {
    backbone: c.model,
    numClasses: c.classes.length,
    canvas: [c.canvas[0], c.canvas[1]],
    limits,
    pooling: c.pooling,
    baseAnchors: generateAnchors(c.anchors.baseSize, [...c.anchors.ratios], [...c.anchors.scales]),
  };
}

export function trainingOptions(c: FrcnnRunConfig, limits: DeviceLimits): FrcnnTrainingOptions {
  return {
    ...modelOptions(c, limits),
    maxGt: c.maxGt,
    proposals: c.proposalsTrain,
    anchorTargets: { batchSize: c.anchorBatch },
    proposalTargets: { batchSize: c.roiBatch },
    mode: c.mode,
    momentum: c.momentum,
    weightDecay: c.weightDecay,
  };
}

export function inferenceOptions(c: FrcnnRunConfig, limits: DeviceLimits): FrcnnOptions {
  return {
    ...modelOptions(c, limits),
    proposals: c.proposalsTest,
    ...(c.detections ? { detections: c.detections } : {}),
  };
}
