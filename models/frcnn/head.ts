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
import { type Dim, dimMul } from '../../compiler/dims.js';
import { type GraphBuilder, init, type Tensor } from '../../compiler/tensor.js';
import { decodeBoxes } from '../../ops/boxes.js';
import { linear } from '../../ops/matmul.js';
import { batchedNms } from '../../ops/nms.js';
import { roiAlign } from '../../ops/roi-align.js';
import { roiPool } from '../../ops/roi-pool.js';
import { zerosAlong } from '../../ops/sizes.js';
import { takeAlongAxis } from '../../ops/sort.js';
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
  const R = rois.dims[0] as Dim; // B·R rows: a run-time size when the image count is
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

/**
 * The detections of each image, D slots per image. With one image the shapes have no image axis
 * ([D, 4], [D], [D], [1]); with B images they lead with B ([B, D, 4], [B, D], [B, D], [B]).
 */
export interface Detections {
  /** f32 [(B,) D, 4] in original-image coordinates (x1, y1, x2, y2), inclusive pixels. */
  readonly boxes: Tensor;
  /** f32 [(B,) D]. */
  readonly scores: Tensor;
  /** i32 [(B,) D] class in [1, K]; −1 for unused slots. */
  readonly classes: Tensor;
  /** i32 [B] ([1] for one image). */
  readonly count: Tensor;
  /** f32 [B·R, K+1] class probabilities of every proposal. */
  readonly probs: Tensor;
  readonly capacity: number;
}

/**
 * Inference post-processing (see the file comment), per image. imInfo: f32 [3] (validH, validW, scale)
 * for one image, [B, 3] for B. Class-wise NMS runs per image; the class offsets use each image's own
 * coordinate range, so an image's detections do not depend on the other images of the batch.
 */
export function detectionPostprocess(
  g: GraphBuilder,
  proposals: Proposals,
  head: RoiHeadOutputs,
  imInfo: Tensor,
  numClasses: number,
  opts: DetectionOptions,
): Detections {
  const R = proposals.capacity;
  const B = proposals.images;
  const K = numClasses;
  const K1 = K + 1;
  const probs = head.clsScore.softmax(-1);
  const info = imInfo.reshape([B, 3]);
  const scale = info.slice([0, 2], [B, 3]); // [B, 1]
  const origHW = info.slice([0, 0], [B, 2]).div(scale).add(0.5).cast('i32').cast('f32'); // round, positive
  const rois = proposals.boxes
    .reshape([B, R, 4])
    .div(scale.reshape([B, 1, 1]))
    .reshape([dimMul(B, R), 4]);
  const pred = decodeBoxes(head.bboxPred, rois, { weights: [...BBOX_WEIGHTS], plusOne: true, bboxXformClip: null });
  const hi = origHW
    .gather(g.constant([1, 0, 1, 0], [4], 'i32'), 1)
    .sub(1)
    .reshape([B, 1, 1, 4]);
  const clipped = pred.reshape([B, R, K1, 4]).maximum(0).minimum(hi);
  const boxes = clipped.slice([0, 0, 1, 0], [B, R, K1, 4]).reshape([B, R * K, 4]);
  const fg = probs.reshape([B, R, K1]).slice([0, 0, 1], [B, R, K1]);
  const ok = fg.gt(opts.scoreThreshold).mul(proposals.valid.reshape([B, R, 1]));
  const scores = g.where(ok, fg, -1).reshape([B, R * K]);
  const classes = g
    .constant(
      Array.from({ length: K }, (_, j) => j + 1),
      [1, 1, K],
      'i32',
    )
    .add(zerosAlong(g, B, 3, 'i32'))
    .add(g.constant(new Array<number>(R).fill(0), [1, R, 1], 'i32'))
    .reshape([B, R * K]);
  const D = Math.min(opts.maxDetections, R * K);
  const kept = batchedNms(boxes, scores, classes, { iouThreshold: opts.nmsThreshold, maxOutput: D, plusOne: true });
  const has = kept.indices.ge(0);
  const idx = g.where(has, kept.indices, 0);
  const detScores = takeAlongAxis(scores, idx);
  const valid = has.mul(detScores.ge(0)); // [B, D]
  const lead = B === 1 ? [] : [B];
  return {
    boxes: g.where(valid.reshape([B, D, 1]), takeAlongAxis(boxes, idx), 0).reshape([...lead, D, 4]),
    scores: g.where(valid, detScores, 0).reshape([...lead, D]),
    classes: g.where(valid, takeAlongAxis(classes, idx), -1).reshape([...lead, D]),
    count: valid.cast('f32').sum(1).cast('i32').reshape([B]),
    probs,
    capacity: D,
  };
}
