/**
 * The Region Proposal Network (spec §1–§3) and the proposal layer, all on the GPU.
 *
 * Head: 3×3 conv (pad 1, rpnChannels) + ReLU → 1×1 cls (2A channels) and 1×1 bbox (4A channels), init
 * N(0, 0.01), bias 0. The classifier is py-faster-rcnn's 2A SOFTMAX form (not torchvision's A sigmoid
 * logits): channel c is (bg/fg = c / A, anchor = c % A), i.e. the first A channels are background; the
 * pair is softmaxed and the objectness is the fg probability. Chosen because it is the paper's / PFR's
 * form, so Caffe RPN weights import directly and the loss is the 2-way softmax CE of PFR; it also gives
 * the logits per anchor as an [N, 2] matrix that softmaxCrossEntropy takes as is. bbox channel a·4 + j
 * (dx, dy, dw, dh).
 * Anchor order everywhere: (y·W_f + x)·A + a (cell-major, anchor-minor), as both references.
 *
 * Proposal layer (PFR proposal_layer.py), on a fixed canvas (see index.ts) with the run-time input
 * imInfo f32 [3] = (validH, validW, scale):
 * 1. decode all anchors (PFR bbox_transform_inv: +1 widths, no clamp on dw/dh);
 * 2. clip to the VALID region [0, validW − 1] × [0, validH − 1] (from imInfo, not a constant);
 * 3. min-size filter: keep w ≥ minSize·scale and h ≥ minSize·scale (inclusive widths); also drop the
 *    anchors of feature cells that lie outside the feature map the valid image alone would have
 *    (cell row y exists iff featureSize(validH) > y — a per-row threshold table computed on the host
 *    from the backbone's exact size arithmetic; same for columns), so the padding adds no proposals;
 *    removed boxes get score −1 (fg probabilities are ≥ 0, so they sort after every kept box);
 * 4. pre-NMS top N by score (stable descending sort; PFR's numpy argsort is unstable for ties);
 * 5. NMS IoU > threshold (+1 convention), capacity = post-NMS top N;
 * 6. FIXED CAPACITY result R = min(postNmsTopN, preN): the kept boxes in score order; removed boxes
 *    can only come after every kept valid box (their score is −1 and suppression only acts on later
 *    boxes), so the valid proposals are exactly the prefix [0, count). Unused slots hold the dummy box
 *    (0, 0, 15, 15) (a valid 16×16 box, harmless for RoIPool/RoIAlign) and valid = 0.
 * Proposals carry no gradient (stop_gradient), as in approximate joint training, unless boxGradient
 * is set (non-approximate joint training: the boxes stay differentiable in the RPN deltas).
 */
import { type Dim, dimFmt, dimMax, dimMin, dimMul, isSym } from '../../compiler/dims.js';
import { WgflowError } from '../../compiler/errors.js';
import type { Tensor } from '../../compiler/tensor.js';
import { type GraphBuilder, init } from '../../compiler/tensor.js';
import { generateAnchors, shiftAnchors } from '../../ops/anchors.js';
import { decodeBoxes } from '../../ops/boxes.js';
import { nms } from '../../ops/nms.js';
import { arange, zerosAlong } from '../../ops/sizes.js';
import { takeAlongAxis, topk } from '../../ops/sort.js';
import { convRelu, declareConv, type ParamMap } from './layers.js';

export interface RpnConfig {
  readonly inChannels: number;
  readonly channels: number;
  /** Base anchors [A][4] (PFR generate_anchors by default: 9 anchors, stride 16). */
  readonly baseAnchors?: readonly (readonly number[])[];
  readonly stride: number;
}

/**
 * Per-anchor outputs of B images, image-major: row b·M + m is anchor m (M = H_f·W_f·A) of image b. With
 * one image (B = 1) the rows are those of the image's anchors.
 */
export interface RpnOutputs {
  /** [B·M, 2] (bg, fg) logits per anchor. */
  readonly clsLogits: Tensor;
  /** [B·M] fg probability. */
  readonly fgProb: Tensor;
  /** [B·M, 4] (dx, dy, dw, dh). */
  readonly deltas: Tensor;
  /** [M, 4] anchors on the canvas (the same for every image). */
  readonly anchors: Tensor;
  /** Images B (the feature map's batch; a run-time size when the image count is). */
  readonly images: Dim;
  /** Anchors per image M (a run-time size when the feature map's is). */
  readonly anchorsPerImage: Dim;
  readonly numAnchors: number;
  /** The feature map's size (run-time sizes when the image's are). */
  readonly featureHeight: Dim;
  readonly featureWidth: Dim;
}

export const DEFAULT_BASE_ANCHORS = generateAnchors(16, [0.5, 1, 2], [8, 16, 32]);

/** The RPN head on features [B, C, H_f, W_f]. */
export function rpnHead(g: GraphBuilder, features: Tensor, cfg: RpnConfig, map?: ParamMap): RpnOutputs {
  const base = cfg.baseAnchors ?? DEFAULT_BASE_ANCHORS;
  const A = base.length;
  const [B, , Hf, Wf] = features.dims as [Dim, Dim, Dim, Dim];
  const M = dimMul(dimMul(Hf, Wf), A);
  const N = dimMul(M, B);
  const n01 = init.normal(0.01);
  const conv = declareConv(
    g,
    { name: 'rpn.conv', caffe: 'rpn_conv/3x3', cin: cfg.inChannels, cout: cfg.channels, k: 3, weightInit: n01 },
    map,
  );
  const cls = declareConv(
    g,
    { name: 'rpn.cls_score', caffe: 'rpn_cls_score', cin: cfg.channels, cout: 2 * A, k: 1, weightInit: n01 },
    map,
  );
  const reg = declareConv(
    g,
    { name: 'rpn.bbox_pred', caffe: 'rpn_bbox_pred', cin: cfg.channels, cout: 4 * A, k: 1, weightInit: n01 },
    map,
  );
  const h = convRelu(features, conv);
  // [B, 2A, H, W] → [B, 2, A, H, W] → [B, H, W, A, 2] → [B·M, 2]
  const clsLogits = convRelu(h, cls, false).reshape([B, 2, A, Hf, Wf]).transpose([0, 3, 4, 2, 1]).reshape([N, 2]);
  // [B, 4A, H, W] → [B, A, 4, H, W] → [B, H, W, A, 4] → [B·M, 4]
  const deltas = convRelu(h, reg, false).reshape([B, A, 4, Hf, Wf]).transpose([0, 3, 4, 1, 2]).reshape([N, 4]);
  const fgProb = clsLogits.softmax(-1).slice([0, 1], [N, 2]).reshape([N]);
  const anchors = shiftAnchors(g, base, { feature: features, stride: cfg.stride });
  return {
    clsLogits,
    fgProb,
    deltas,
    anchors,
    images: B,
    anchorsPerImage: M,
    numAnchors: A,
    featureHeight: Hf,
    featureWidth: Wf,
  };
}

export interface ProposalOptions {
  /** py-faster-rcnn: 12000 train, 6000 test. */
  readonly preNmsTopN: number;
  /** py-faster-rcnn: 2000 train, 300 test. */
  readonly postNmsTopN: number;
  /** 0.7. */
  readonly nmsThreshold: number;
  /** RPN_MIN_SIZE 16, in original-image pixels (multiplied by the scale of imInfo). */
  readonly minSize: number;
  /**
   * Non-approximate joint training: let the gradient flow from the proposal boxes back into the RPN's
   * deltas (decode → clip → gathers are differentiable; scores, top-k and NMS choose indices only).
   * Default false: the proposals are constants (approximate joint training, PFR's end2end).
   */
  readonly boxGradient?: boolean;
}

export const PROPOSALS_TEST: ProposalOptions = { preNmsTopN: 6000, postNmsTopN: 300, nmsThreshold: 0.7, minSize: 16 };
export const PROPOSALS_TRAIN: ProposalOptions = {
  preNmsTopN: 12000,
  postNmsTopN: 2000,
  nmsThreshold: 0.7,
  minSize: 16,
};

/** The proposals of B images, R slots each (image-major rows b·R + r). */
export interface Proposals {
  /** f32 [B·R, 5] (image index b, x1, y1, x2, y2) on the canvas; image b's rows ≥ its count hold the dummy box. */
  readonly rois: Tensor;
  /** f32 [B·R, 4] the same boxes without the image column. */
  readonly boxes: Tensor;
  /** f32 [B·R] fg probability (−1 for unused slots). */
  readonly scores: Tensor;
  /** u32 [B·R] 1 for the first `count` rows of each image. */
  readonly valid: Tensor;
  /** i32 [B] the count per image ([1] for one image). */
  readonly count: Tensor;
  /** R, the slots per image. */
  readonly capacity: number;
  readonly images: Dim;
}

/** The valid-cell thresholds: entry y is the smallest valid extent whose feature map has more than y cells. */
export function cellThresholds(featureCells: number, size: (n: number) => number, canvas: number): number[] {
  const out: number[] = [];
  let n = 1;
  for (let y = 0; y < featureCells; y++) {
    while (n <= canvas && size(n) <= y) n++;
    out.push(n);
  }
  return out;
}

export interface ProposalContext {
  /** Feature size of a valid region of H × W pixels (the backbone's exact arithmetic). */
  readonly featureSize: (H: number, W: number) => [number, number];
  /** The canvas; run-time sizes when one program serves every image size. */
  readonly canvas: readonly [Dim, Dim];
}

export const DUMMY_BOX = [0, 0, 15, 15] as const;

/**
 * The proposal layer (see the file comment), per image of the batch. imInfo: f32 [3] (validH, validW,
 * scale) for one image, [B, 3] for B.
 */
export function proposalLayer(
  g: GraphBuilder,
  rpn: RpnOutputs,
  imInfo: Tensor,
  ctx: ProposalContext,
  opts: ProposalOptions,
): Proposals {
  const { featureHeight: Hf, featureWidth: Wf, numAnchors: A, images: B, anchorsPerImage: M } = rpn;
  const N = dimMul(M, B);
  const info = imInfo.reshape([B, 3]);
  const validHW = info.slice([0, 0], [B, 2]);
  const validH = info.slice([0, 0], [B, 1]);
  const validW = info.slice([0, 1], [B, 2]);
  const scale = info.slice([0, 2], [B, 3]);
  // 1–2. decode, clip to each image's valid region
  const keepGrad = opts.boxGradient === true;
  const deltas = keepGrad ? rpn.deltas : rpn.deltas.stopGradient();
  const anchors =
    B === 1
      ? rpn.anchors
      : rpn.anchors
          .reshape([1, M, 4])
          .add(zerosAlong(g, B, 3))
          .reshape([N, 4]);
  const decoded = decodeBoxes(deltas, anchors, { plusOne: true, bboxXformClip: null });
  const hi = validHW
    .gather(g.constant([1, 0, 1, 0], [4], 'i32'), 1)
    .sub(1)
    .reshape([B, 1, 4]);
  const boxes = decoded.reshape([B, M, 4]).maximum(0).minimum(hi);
  // 3. min size (inclusive widths) and cells inside the valid feature map
  const x1 = boxes.slice([0, 0, 0], [B, M, 1]);
  const y1 = boxes.slice([0, 0, 1], [B, M, 2]);
  const x2 = boxes.slice([0, 0, 2], [B, M, 3]);
  const y2 = boxes.slice([0, 0, 3], [B, M, 4]);
  const ms = scale.mul(opts.minSize).reshape([B, 1, 1]);
  const bigEnough = x2.sub(x1).add(1).ge(ms).mul(y2.sub(y1).add(1).ge(ms)).reshape([B, M]);
  // the tables are built for the largest canvas; a run-time-sized map uses their first H_f (W_f) entries
  const cH = dimMax(ctx.canvas[0]);
  const cW = dimMax(ctx.canvas[1]);
  const table = (t: readonly number[], n: Dim): Tensor => {
    const c = g.constant(t, [t.length]);
    return isSym(n) ? c.slice([0], [n]) : c;
  };
  const rowT = table(
    cellThresholds(dimMax(Hf), (n) => ctx.featureSize(n, cW)[0], cH),
    Hf,
  );
  const colT = table(
    cellThresholds(dimMax(Wf), (n) => ctx.featureSize(cH, n)[1], cW),
    Wf,
  );
  const rowOk = validH.ge(rowT).reshape([B, Hf, 1, 1]);
  const colOk = validW.ge(colT).reshape([B, 1, Wf, 1]);
  const cellOk = rowOk
    .mul(colOk)
    .mul(g.constant(new Array<number>(A).fill(1), [1, 1, 1, A], 'u32'))
    .reshape([B, M]);
  const scores = g.where(bigEnough.mul(cellOk), rpn.fgProb.reshape([B, M]).stopGradient(), -1);
  // 4. pre-NMS top N (torchvision's min(pre_nms_top_n, anchors), the same for every size of one program)
  if (isSym(M) && dimMin(M) < opts.preNmsTopN)
    throw new WgflowError(
      `proposal layer: pre-NMS top ${opts.preNmsTopN} of ${dimFmt(M)} anchors: the smallest feature map ` +
        `(${dimMin(Hf)}×${dimMin(Wf)}, ${dimMin(M)} anchors) has fewer, so the count would depend on the size; ` +
        `raise the canvas's lower bounds or lower preNmsTopN`,
    );
  const preN = Math.min(opts.preNmsTopN, dimMin(M));
  const top = topk(scores, preN);
  const preBoxes = takeAlongAxis(boxes, top.indices); // [B, preN, 4]
  // 5. NMS per image with capacity post-NMS top N
  const R = Math.min(opts.postNmsTopN, preN);
  const kept = nms(preBoxes, top.values, { iouThreshold: opts.nmsThreshold, maxOutput: R, plusOne: true });
  const has = kept.indices.ge(0);
  const idx = g.where(has, kept.indices, 0);
  const keptScores = takeAlongAxis(top.values, idx);
  const valid = has.mul(keptScores.ge(0)); // [B, R]
  const keptBoxes = g.where(valid.reshape([B, R, 1]), takeAlongAxis(preBoxes, idx), g.constant([...DUMMY_BOX], [4]));
  const BR = dimMul(B, R);
  const imageIndex =
    typeof B === 'number'
      ? g.constant(
          Array.from({ length: B * R }, (_, i) => Math.floor(i / R)),
          [B, R, 1],
        )
      : arange(g, B, 'f32')
          .reshape([B, 1, 1])
          .add(g.constant(new Array<number>(R).fill(0), [1, R, 1]));
  const roisRaw = g.concat([imageIndex, keptBoxes], 2).reshape([BR, 5]);
  const rois = keepGrad ? roisRaw : roisRaw.stopGradient();
  const boxesOut = keptBoxes.reshape([BR, 4]);
  const count = valid.cast('f32').sum(1).cast('i32').reshape([B]);
  return {
    rois,
    boxes: keepGrad ? boxesOut : boxesOut.stopGradient(),
    scores: g.where(valid, keptScores, -1).reshape([BR]),
    valid: valid.reshape([BR]),
    count,
    capacity: R,
    images: B,
  };
}
