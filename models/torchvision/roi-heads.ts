/**
 * torchvision's RoIHeads at inference (torchvision/models/detection/roi_heads.py and ops/poolers.py,
 * 0.14) for the FPN models, per image of a batch, in the DSL with its module names:
 * - MultiScaleRoIAlign 7×7, sampling ratio 2, aligned = false, over the given levels with their
 *   scales; with several levels, torchvision's LevelMapper picks each RoI's level:
 *   clamp(⌊4 + log2(√area / 224) + 1e-6⌋, k_min, k_max) − k_min (each level is pooled for every RoI
 *   and the RoI's own level selected: simple, and 4× the pooling work of a gather by level);
 * - TwoMLPHead (`box_head.fc6`, `fc7`, ReLU) and FastRCNNPredictor (`box_predictor.cls_score`,
 *   `bbox_pred`);
 * - postprocess_detections: softmax, decode with weights (10, 10, 5, 5) and the ln(1000/16) clamp,
 *   clip to the image's resized size, background dropped, score > score_thresh, boxes of side ≥ 1e-2,
 *   NMS per class (each class its own problem: torchvision's per-class loop, exactly, not the
 *   coordinate-offset trick), and the detections_per_img best by score.
 * Boxes are in the resized image's pixels; `tvOriginalBoxes` maps them back (transform.postprocess).
 */
import { type Dim, dimMul } from '../../compiler/dims.js';
import type { GraphBuilder, Tensor } from '../../compiler/tensor.js';
import { decodeBoxes } from '../../ops/boxes.js';
import { linear } from '../../ops/matmul.js';
import { roiAlign } from '../../ops/roi-align.js';
import { arange } from '../../ops/sizes.js';
import { batchNorm2d, conv2d } from './layers.js';
import { nmsByGroup } from './nms-groups.js';
import type { TvProposals } from './rpn.js';

export interface TvRoiHeadsOptions {
  /** Parameter prefix (`roi_heads`). */
  readonly prefix: string;
  readonly inChannels: number;
  /** The scale of each pooled level (1/4 … 1/32 for ResNet-FPN's '0'–'3'; 1/32, 1/32 for MobileNet's). */
  readonly scales: readonly number[];
  readonly representationSize: number;
  /** Classes with the background (91 for COCO). */
  readonly numClasses: number;
  readonly scoreThresh: number;
  readonly nmsThresh: number;
  readonly detectionsPerImage: number;
  readonly outputSize?: number;
  readonly samplingRatio?: number;
  /**
   * 'two_mlp' (TwoMLPHead: `box_head.fc6`, `fc7`; default) or 'conv_fc' (FastRCNNConvFCHead of
   * fasterrcnn_resnet50_fpn_v2: four 3×3 conv + BatchNorm2d + ReLU `box_head.i.0`/`.1`, flatten, then
   * `box_head.5` linear + ReLU).
   */
  readonly boxHead?: 'two_mlp' | 'conv_fc';
}

export interface TvDetections {
  /** f32 [B, D, 4] in the resized image's pixels, best first; rows past the count are zeros. */
  readonly boxes: Tensor;
  /** f32 [B, D] (0 past the count). */
  readonly scores: Tensor;
  /** i32 [B, D] class ids 1 … numClasses − 1 (−1 past the count). */
  readonly labels: Tensor;
  /** i32 [B]. */
  readonly count: Tensor;
  readonly capacity: number;
}

/** [B·R, 5] RoIs (image index, x1, y1, x2, y2) of proposals [B, R, 4]. */
function roisOf(g: GraphBuilder, boxes: Tensor): Tensor {
  const [B, R] = boxes.dims as [Dim, number];
  const index = arange(g, B, 'f32')
    .reshape([B, 1, 1])
    .add(g.constant(new Array<number>(R).fill(0), [1, R, 1]));
  return g.concat([index, boxes], 2).reshape([dimMul(B, R), 5]);
}

/** torchvision's LevelMapper: i32 [N] level index of each box [N, 4]. */
export function levelOf(boxes: Tensor, kMin: number, kMax: number, canonicalScale = 224, canonicalLevel = 4): Tensor {
  const n = boxes.dims[0] as Dim;
  const col = (c: number) => boxes.slice([0, c], [n, c + 1]);
  const s = col(2)
    .sub(col(0))
    .mul(col(3).sub(col(1)))
    .sqrt();
  const lvl = s
    .div(canonicalScale)
    .log()
    .mul(1 / Math.LN2)
    .add(canonicalLevel)
    .add(1e-6);
  // floor, then clamp to [kMin, kMax]: clamped first, the value is ≥ kMin ≥ 0, where truncation is floor
  return lvl.maximum(kMin).minimum(kMax).cast('i32').sub(kMin).reshape([n]);
}

export function tvRoiHeads(
  features: readonly Tensor[],
  proposals: TvProposals,
  imageSizes: Tensor,
  o: TvRoiHeadsOptions,
): TvDetections {
  const first = features[0];
  if (!first || features.length !== o.scales.length)
    throw new RangeError(`tvRoiHeads: ${features.length} feature levels for ${o.scales.length} scales`);
  const g = first.builder;
  const [B, R] = proposals.boxes.dims as [Dim, number];
  const BR = dimMul(B, R);
  const P = o.outputSize ?? 7;
  const C = o.inChannels;
  const K = o.numClasses;
  const rois = roisOf(g, proposals.boxes);
  const pool = (f: Tensor, scale: number) =>
    roiAlign(f, rois, { outputSize: P, spatialScale: scale, samplingRatio: o.samplingRatio ?? 2, aligned: false });
  let pooled: Tensor;
  if (features.length === 1) pooled = pool(first, o.scales[0] as number);
  else {
    const kMin = Math.round(-Math.log2(o.scales[0] as number));
    const kMax = Math.round(-Math.log2(o.scales[o.scales.length - 1] as number));
    const level = levelOf(proposals.boxes.reshape([BR, 4]), kMin, kMax).reshape([BR, 1, 1, 1]);
    pooled = features.map((f, l) => g.where(level.eq(l), pool(f, o.scales[l] as number), 0)).reduce((a, b) => a.add(b));
  }
  const p = o.prefix;
  const fc = (x: Tensor, name: string, cin: number, cout: number) =>
    linear(x, g.param(`${p}.${name}.weight`, [cout, cin]), g.param(`${p}.${name}.bias`, [cout]));
  const rep = o.representationSize;
  let x: Tensor;
  if (o.boxHead === 'conv_fc') {
    let h = pooled;
    for (let k = 0; k < 4; k++)
      h = batchNorm2d(conv2d(h, `${p}.box_head.${k}.0`, C, C, 3, { padding: 1 }), `${p}.box_head.${k}.1`, C).relu();
    x = fc(h.reshape([BR, C * P * P]), 'box_head.5', C * P * P, rep).relu();
  } else {
    x = fc(pooled.reshape([BR, C * P * P]), 'box_head.fc6', C * P * P, rep).relu();
    x = fc(x, 'box_head.fc7', rep, rep).relu();
  }
  const logits = fc(x, 'box_predictor.cls_score', rep, K);
  const deltas = fc(x, 'box_predictor.bbox_pred', rep, 4 * K);

  const probs = logits.softmax(-1).reshape([B, R, K]);
  const decoded = decodeBoxes(deltas, proposals.boxes.reshape([BR, 4]), { weights: [10, 10, 5, 5] });
  const hi = imageSizes.gather(g.constant([1, 0, 1, 0], [4], 'i32'), 1).reshape([B, 1, 1, 4]);
  const F = K - 1; // foreground classes
  const boxes = decoded.reshape([B, R, K, 4]).maximum(0).minimum(hi).slice([0, 0, 1, 0], [B, R, K, 4]);
  const fg = probs.slice([0, 0, 1], [B, R, K]);
  const side = (a: number, b: number) =>
    boxes.slice([0, 0, 0, a], [B, R, F, a + 1]).sub(boxes.slice([0, 0, 0, b], [B, R, F, b + 1]));
  const ok = fg
    .gt(o.scoreThresh)
    .mul(side(2, 0).ge(1e-2).mul(side(3, 1).ge(1e-2)).reshape([B, R, F]))
    .mul(proposals.valid.reshape([B, R, 1]));
  // one NMS problem per (image, class): [B, F, R]
  const classBoxes = boxes.transpose([0, 2, 1, 3]);
  const classScores = g.where(ok, fg, -1).transpose([0, 2, 1]);
  const D = Math.min(o.detectionsPerImage, F * R);
  const best = nmsByGroup(classBoxes, classScores, o.nmsThresh, D);
  return {
    boxes: best.boxes,
    scores: g.where(best.valid, best.scores, 0),
    // the group is the foreground class index (+ 1 for the background)
    labels: g.where(best.valid, best.groups.add(1), -1),
    count: best.count,
    capacity: D,
  };
}

/**
 * transform.postprocess: boxes [B, D, 4] from the resized image's pixels to the original's, each axis
 * times original / resized (float32, as torchvision). Sizes f32 [B, 2] (h, w).
 */
export function tvOriginalBoxes(boxes: Tensor, resized: Tensor, original: Tensor): Tensor {
  const g = boxes.builder;
  const B = boxes.dims[0] as Dim;
  const ratio = original.div(resized).gather(g.constant([1, 0, 1, 0], [4], 'i32'), 1);
  return boxes.mul(ratio.reshape([B, 1, 4]));
}
