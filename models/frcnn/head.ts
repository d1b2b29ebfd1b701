/**
 * The Fast R-CNN head (spec §4) and the inference post-processing (spec §5), on the GPU.
 *
 * Head: RoIPool P×P (VGG16 7, ZF 6; RoIAlign optional: sampling ratio 2, aligned = false, torchvision's
 * MultiScaleRoIAlign settings) on the stride-16 features (spatial scale 1/16) → flatten → fc6 + ReLU
 * (+ dropout 0.5 when training) → fc7 + ReLU (+ dropout) → cls_score (K+1, init N(0, 0.01)) and
 * bbox_pred (4(K+1), init N(0, 0.001)), class-specific boxes. bbox_pred predicts NORMALIZED deltas
 * (targets (t − 0)/(0.1, 0.1, 0.2, 0.2), PFR BBOX_NORMALIZE_TARGETS_PRECOMPUTED); the normalization is
 * undone at decode time by the coder weights (10, 10, 5, 5) (dividing by 10 ≡ multiplying by 0.1), so
 * no weight rescaling at snapshot time is needed (PFR scales bbox_pred's weights instead).
 *
 * Post-processing (PFR im_detect + test_net, on the GPU, batch 1):
 * 1. class probabilities = softmax(cls_score);
 * 2. proposals → ORIGINAL image coordinates (÷ scale, as PFR: boxes = rois / im_scale), decode every
 *    class's deltas (PFR bbox_transform_inv: +1 widths, no clamp), clip to the original image
 *    [0, W₀ − 1] × [0, H₀ − 1] with (H₀, W₀) = round((validH, validW) / scale) (the loader's resize
 *    made valid = round(orig · scale); imInfo carries no original size);
 * 3. per class j ≥ 1: keep prob > scoreThreshold (0.05, strict) among valid proposals; the other
 *    (box, class) pairs get score −1;
 * 4. per-class NMS IoU > 0.3 (+1 convention) as ONE batchedNms over all (proposal, class) pairs with
 *    class offsets (boxes are clipped, so non-negative);
 * 5. the first maxDetections (100) kept pairs in descending score order. Deviation: PFR keeps every
 *    detection scoring ≥ the 100th highest score (ties can exceed 100); this keeps exactly 100 (as
 *    torchvision's postprocess_detections). Kept pairs with score −1 sort last, so valid detections
 *    are the prefix [0, count). Unused slots: box (0, 0, 0, 0), score 0, class −1.
 */
import { type GraphBuilder, init, type Tensor } from '../../compiler/tensor.js';
import { decodeBoxes } from '../../ops/boxes.js';
import { linear } from '../../ops/matmul.js';
import { batchedNms } from '../../ops/nms.js';
import { roiAlign } from '../../ops/roi-align.js';
import { roiPool } from '../../ops/roi-pool.js';
import type { HeadSpec } from './backbones.js';
import { declareLinear, linearLayer, type ParamMap } from './layers.js';
import type { Proposals } from './rpn.js';

export type RoiPooling = 'roi_pool' | 'roi_align';

export interface RoiHeadConfig {
  readonly head: HeadSpec;
  readonly inChannels: number;
  /** Foreground classes K (the classifier has K + 1 outputs, 0 = background). */
  readonly numClasses: number;
  readonly stride: number;
  readonly pooling?: RoiPooling;
  /** Training: dropout after fc6 and fc7 with these seeds. Inference: no dropout. */
  readonly dropoutSeeds?: readonly [number, number];
  /** Training: a u32 [1] per-step seed input mixed into both dropout masks (a new mask every step). */
  readonly dropoutStepSeed?: Tensor;
}

export interface RoiHeadOutputs {
  /** [R, K+1]. */
  readonly clsScore: Tensor;
  /** [R, 4(K+1)] normalized class-specific deltas. */
  readonly bboxPred: Tensor;
  /** [R, C, P, P]. */
  readonly pooled: Tensor;
}

/** Std of the normalized RoI-head regression targets (PFR BBOX_NORMALIZE_STDS). */
export const BBOX_STDS = [0.1, 0.1, 0.2, 0.2] as const;
/** The coder weights that undo the normalization: 1 / std. */
export const BBOX_WEIGHTS = [10, 10, 5, 5] as const;

export function roiHead(
  g: GraphBuilder,
  features: Tensor,
  rois: Tensor,
  cfg: RoiHeadConfig,
  map?: ParamMap,
): RoiHeadOutputs {
  const P = cfg.head.pooled;
  const R = rois.shape[0] as number;
  const C = cfg.inChannels;
  const K1 = cfg.numClasses + 1;
  const scale = 1 / cfg.stride;
  const pooled =
    cfg.pooling === 'roi_align'
      ? roiAlign(features, rois, { outputSize: P, spatialScale: scale, samplingRatio: 2, aligned: false })
      : roiPool(features, rois, { outputSize: P, spatialScale: scale });
  const H = cfg.head.hidden;
  let h = pooled.reshape([R, C * P * P]);
  h = linearLayer(
    g,
    h,
    { ...cfg.head.fc6, inFeatures: C * P * P, outFeatures: H, weightInit: init.xavier() },
    map,
  ).relu();
  if (cfg.dropoutSeeds && cfg.head.dropout > 0)
    h = h.dropout(cfg.head.dropout, cfg.dropoutSeeds[0], cfg.dropoutStepSeed);
  h = linearLayer(g, h, { ...cfg.head.fc7, inFeatures: H, outFeatures: H, weightInit: init.xavier() }, map).relu();
  if (cfg.dropoutSeeds && cfg.head.dropout > 0)
    h = h.dropout(cfg.head.dropout, cfg.dropoutSeeds[1], cfg.dropoutStepSeed);
  const cls = declareLinear(
    g,
    { name: 'cls_score', caffe: 'cls_score', inFeatures: H, outFeatures: K1, std: cfg.head.clsStd ?? 0.01 },
    map,
  );
  const box = declareLinear(
    g,
    { name: 'bbox_pred', caffe: 'bbox_pred', inFeatures: H, outFeatures: 4 * K1, std: cfg.head.bboxStd ?? 0.001 },
    map,
  );
  return { clsScore: linear(h, cls.weight, cls.bias), bboxPred: linear(h, box.weight, box.bias), pooled };
}

export interface DetectionOptions {
  /** 0.05 (strict >). */
  readonly scoreThreshold: number;
  /** 0.3. */
  readonly nmsThreshold: number;
  /** 100. */
  readonly maxDetections: number;
}

export const DETECTIONS_DEFAULT: DetectionOptions = { scoreThreshold: 0.05, nmsThreshold: 0.3, maxDetections: 100 };

export interface Detections {
  /** f32 [D, 4] in original-image coordinates (x1, y1, x2, y2), inclusive pixels. */
  readonly boxes: Tensor;
  /** f32 [D]. */
  readonly scores: Tensor;
  /** i32 [D] class in [1, K]; −1 for unused slots. */
  readonly classes: Tensor;
  /** i32 [1]. */
  readonly count: Tensor;
  /** f32 [R, K+1] class probabilities of every proposal. */
  readonly probs: Tensor;
  readonly capacity: number;
}

/** Inference post-processing (see the file comment). imInfo: f32 [3] (validH, validW, scale). */
export function detectionPostprocess(
  g: GraphBuilder,
  proposals: Proposals,
  head: RoiHeadOutputs,
  imInfo: Tensor,
  numClasses: number,
  opts: DetectionOptions,
): Detections {
  const R = proposals.capacity;
  const K = numClasses;
  const K1 = K + 1;
  const probs = head.clsScore.softmax(-1);
  const scale = imInfo.slice([2], [3]);
  const origHW = imInfo.slice([0], [2]).div(scale).add(0.5).cast('i32').cast('f32'); // round, positive
  const rois = proposals.boxes.div(scale);
  const pred = decodeBoxes(head.bboxPred, rois, { weights: [...BBOX_WEIGHTS], plusOne: true, bboxXformClip: null });
  const hi = origHW.gather(g.constant([1, 0, 1, 0], [4], 'i32')).sub(1);
  const clipped = pred.reshape([R, K1, 4]).maximum(0).minimum(hi);
  const boxes = clipped.slice([0, 1, 0], [R, K1, 4]).reshape([R * K, 4]);
  const fg = probs.slice([0, 1], [R, K1]);
  const ok = fg.gt(opts.scoreThreshold).mul(proposals.valid.reshape([R, 1]));
  const scores = g.where(ok, fg, -1).reshape([R * K]);
  const classes = g
    .constant(
      Array.from({ length: K }, (_, j) => j + 1),
      [1, K],
      'i32',
    )
    .add(g.constant(new Array<number>(R).fill(0), [R, 1], 'i32'))
    .reshape([R * K]);
  const D = Math.min(opts.maxDetections, R * K);
  const kept = batchedNms(boxes, scores, classes, { iouThreshold: opts.nmsThreshold, maxOutput: D, plusOne: true });
  const has = kept.indices.ge(0);
  const idx = g.where(has, kept.indices, 0);
  const detScores = scores.gather(idx, 0);
  const valid = has.mul(detScores.ge(0));
  return {
    boxes: g.where(valid.reshape([D, 1]), boxes.gather(idx, 0), 0),
    scores: g.where(valid, detScores, 0),
    classes: g.where(valid, classes.gather(idx, 0), -1),
    count: valid.cast('f32').sum().cast('i32').reshape([1]),
    probs,
    capacity: D,
  };
}
