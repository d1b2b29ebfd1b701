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
  /**
   * Images per training step, 1–8 (default 1): each step trains on the next images of the epoch order,
   * each padded to the canvas, and its losses average over all their sampled anchors and RoIs
   * (torchvision's batching). `iterations` counts steps.
   */
  readonly imagesPerBatch?: number;
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

const CONFIG_MODELS = ['frcnn-small', 'frcnn-zf', 'frcnn-vgg16'];
/** The most images one training step takes. */
export const MAX_IMAGES_PER_BATCH = 8;
const CONFIG_POOLINGS = ['roi_pool', 'roi_align'];
const CONFIG_MODES = ['approximate-joint', 'joint'];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNumList = (v: unknown, n?: number): v is number[] =>
  Array.isArray(v) && (n === undefined || v.length === n) && v.every(isNum);

/**
 * Checks a run configuration (e.g. one read from a checkpoint's metadata) field by field before any
 * use: every required field present with the right type and range. `where` starts every message
 * (e.g. 'checkpoint runs/x.safetensors: config').
 */
export function validateConfig(c: FrcnnRunConfig, where = 'config'): void {
  const bad = (what: string): never => {
    throw new WgflowError(`${where}: ${what}`);
  };
  const raw = c as unknown;
  if (!isObj(raw)) bad(`must be an object, got ${raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw}`);
  const o = raw as Record<string, unknown>;
  const show = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v));
  if (!CONFIG_MODELS.includes(o.model as string))
    bad(`model must be one of ${CONFIG_MODELS.join(', ')}, got ${show(o.model)}`);
  if (!Array.isArray(o.classes) || !o.classes.every((k) => typeof k === 'string' && k !== ''))
    bad(`classes must be a list of non-empty names, got ${show(o.classes)}`);
  if ((o.classes as string[]).length < 1) bad('classes is empty');
  if (new Set(o.classes as string[]).size !== (o.classes as string[]).length)
    bad(`classes has a repeated name: ${show(o.classes)}`);
  if (!(Number.isInteger(o.iterations) && (o.iterations as number) >= 1))
    bad(`iterations must be a positive integer, got ${show(o.iterations)}`);
  const canvas = o.canvas;
  if (!isNumList(canvas, 2) || !canvas.every((d) => Number.isInteger(d) && d >= 16 && d <= 8192))
    bad(`canvas must be two integers in [16, 8192], got ${show(canvas)}`);
  if (!isObj(o.resize) || !isNum(o.resize.shortSide) || !isNum(o.resize.maxSize) || o.resize.shortSide <= 0)
    bad(`resize must be {shortSide, maxSize} (positive numbers), got ${show(o.resize)}`);
  if (!isObj(o.pixel)) bad(`pixel must be an object, got ${show(o.pixel)}`);
  const a = o.anchors;
  if (!isObj(a) || !isNum(a.baseSize) || a.baseSize <= 0 || !isNumList(a.ratios) || !isNumList(a.scales))
    bad(`anchors must be {baseSize, ratios, scales} (numbers), got ${show(a)}`);
  if (!CONFIG_POOLINGS.includes(o.pooling as string))
    bad(`pooling must be one of ${CONFIG_POOLINGS.join(', ')}, got ${show(o.pooling)}`);
  if (!CONFIG_MODES.includes(o.mode as string))
    bad(`mode must be one of ${CONFIG_MODES.join(', ')}, got ${show(o.mode)}`);
  for (const k of ['maxGt', 'anchorBatch', 'roiBatch'] as const)
    if (!(Number.isInteger(o[k]) && (o[k] as number) >= 1)) bad(`${k} must be a positive integer, got ${show(o[k])}`);
  for (const k of ['proposalsTrain', 'proposalsTest'] as const)
    if (!isObj(o[k])) bad(`${k} must be an object, got ${show(o[k])}`);
  if (o.detections !== undefined && !isObj(o.detections))
    bad(`detections must be an object, got ${show(o.detections)}`);
  const lr = o.lr;
  if (!isObj(lr) || !isNum(lr.base) || lr.base <= 0 || !isNumList(lr.steps))
    bad(`lr must be {base (> 0), steps (a list of iterations)}, got ${show(lr)}`);
  if (
    o.imagesPerBatch !== undefined &&
    !(
      Number.isInteger(o.imagesPerBatch) &&
      (o.imagesPerBatch as number) >= 1 &&
      (o.imagesPerBatch as number) <= MAX_IMAGES_PER_BATCH
    )
  )
    bad(`imagesPerBatch must be an integer in [1, ${MAX_IMAGES_PER_BATCH}], got ${show(o.imagesPerBatch)}`);
  for (const k of ['momentum', 'weightDecay'] as const)
    if (!isNum(o[k]) || (o[k] as number) < 0) bad(`${k} must be a finite number ≥ 0, got ${show(o[k])}`);
  if (!Number.isSafeInteger(o.seed)) bad(`seed must be an integer, got ${show(o.seed)}`);
  if (typeof o.flip !== 'boolean') bad(`flip must be true or false, got ${show(o.flip)}`);
  if (c.mode === 'joint' && c.pooling !== 'roi_align')
    bad("mode 'joint' (non-approximate joint training) needs pooling 'roi_align'");
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
    images: c.imagesPerBatch ?? 1,
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
