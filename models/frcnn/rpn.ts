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
import { topk } from '../../ops/sort.js';
import { convRelu, declareConv, type ParamMap } from './layers.js';

export interface RpnConfig {
  readonly inChannels: number;
  readonly channels: number;
  /** Base anchors [A][4] (PFR generate_anchors by default: 9 anchors, stride 16). */
  readonly baseAnchors?: readonly (readonly number[])[];
  readonly stride: number;
}

export interface RpnOutputs {
  /** [N, 2] (bg, fg) logits per anchor, N = H_f·W_f·A. */
  readonly clsLogits: Tensor;
  /** [N] fg probability. */
  readonly fgProb: Tensor;
  /** [N, 4] (dx, dy, dw, dh). */
  readonly deltas: Tensor;
  /** [N, 4] anchors on the canvas. */
  readonly anchors: Tensor;
  readonly numAnchors: number;
  /** The feature map's size (run-time sizes when the image's are). */
  readonly featureHeight: Dim;
  readonly featureWidth: Dim;
}

export const DEFAULT_BASE_ANCHORS = generateAnchors(16, [0.5, 1, 2], [8, 16, 32]);

/** The RPN head on features [1, C, H_f, W_f]. */
export function rpnHead(g: GraphBuilder, features: Tensor, cfg: RpnConfig, map?: ParamMap): RpnOutputs {
  const base = cfg.baseAnchors ?? DEFAULT_BASE_ANCHORS;
  const A = base.length;
  const [, , Hf, Wf] = features.dims as [Dim, Dim, Dim, Dim];
  const N = dimMul(dimMul(Hf, Wf), A);
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
  // [1, 2A, H, W] → [2, A, H, W] → [H, W, A, 2] → [N, 2]
  const clsLogits = convRelu(h, cls, false).reshape([2, A, Hf, Wf]).transpose([2, 3, 1, 0]).reshape([N, 2]);
  // [1, 4A, H, W] → [A, 4, H, W] → [H, W, A, 4] → [N, 4]
  const deltas = convRelu(h, reg, false).reshape([A, 4, Hf, Wf]).transpose([2, 3, 0, 1]).reshape([N, 4]);
  const fgProb = clsLogits.softmax(-1).slice([0, 1], [N, 2]).reshape([N]);
  const anchors = shiftAnchors(g, base, { feature: features, stride: cfg.stride });
  return { clsLogits, fgProb, deltas, anchors, numAnchors: A, featureHeight: Hf, featureWidth: Wf };
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

export interface Proposals {
  /** f32 [R, 5] (batch index 0, x1, y1, x2, y2) on the canvas; rows ≥ count hold the dummy box. */
  readonly rois: Tensor;
  /** f32 [R, 4] the same boxes without the batch column. */
  readonly boxes: Tensor;
  /** f32 [R] fg probability (−1 for unused slots). */
  readonly scores: Tensor;
  /** u32 [R] 1 for the first `count` rows. */
  readonly valid: Tensor;
  /** i32 [1]. */
  readonly count: Tensor;
  readonly capacity: number;
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

/** The proposal layer (see the file comment). imInfo: f32 [3] (validH, validW, scale). */
export function proposalLayer(
  g: GraphBuilder,
  rpn: RpnOutputs,
  imInfo: Tensor,
  ctx: ProposalContext,
  opts: ProposalOptions,
): Proposals {
  const { featureHeight: Hf, featureWidth: Wf, numAnchors: A } = rpn;
  const N = dimMul(dimMul(Hf, Wf), A);
  const validHW = imInfo.slice([0], [2]);
  const validH = imInfo.slice([0], [1]);
  const validW = imInfo.slice([1], [2]);
  const scale = imInfo.slice([2], [3]);
  // 1–2. decode, clip to the valid region
  const keepGrad = opts.boxGradient === true;
  const deltas = keepGrad ? rpn.deltas : rpn.deltas.stopGradient();
  const decoded = decodeBoxes(deltas, rpn.anchors, { plusOne: true, bboxXformClip: null });
  const boxes = decoded.maximum(0).minimum(validHW.gather(g.constant([1, 0, 1, 0], [4], 'i32')).sub(1));
  // 3. min size (inclusive widths) and cells inside the valid feature map
  const x1 = boxes.slice([0, 0], [N, 1]);
  const y1 = boxes.slice([0, 1], [N, 2]);
  const x2 = boxes.slice([0, 2], [N, 3]);
  const y2 = boxes.slice([0, 3], [N, 4]);
  const ms = scale.mul(opts.minSize);
  const bigEnough = x2.sub(x1).add(1).ge(ms).mul(y2.sub(y1).add(1).ge(ms)).reshape([N]);
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
  const rowOk = validH.ge(rowT).reshape([Hf, 1, 1]);
  const colOk = validW.ge(colT).reshape([1, Wf, 1]);
  const cellOk = rowOk
    .mul(colOk)
    .mul(g.constant(new Array<number>(A).fill(1), [1, 1, A], 'u32'))
    .reshape([N]);
  const scores = g.where(bigEnough.mul(cellOk), rpn.fgProb.stopGradient(), -1);
  // 4. pre-NMS top N (torchvision's min(pre_nms_top_n, anchors), the same for every size of one program)
  if (isSym(N) && dimMin(N) < opts.preNmsTopN)
    throw new WgflowError(
      `proposal layer: pre-NMS top ${opts.preNmsTopN} of ${dimFmt(N)} anchors: the smallest feature map ` +
        `(${dimMin(Hf)}×${dimMin(Wf)}, ${dimMin(N)} anchors) has fewer, so the count would depend on the size; ` +
        `raise the canvas's lower bounds or lower preNmsTopN`,
    );
  const preN = Math.min(opts.preNmsTopN, dimMin(N));
  const top = topk(scores, preN);
  const preBoxes = boxes.gather(top.indices, 0);
  // 5. NMS with capacity post-NMS top N
  const R = Math.min(opts.postNmsTopN, preN);
  const kept = nms(preBoxes, top.values, { iouThreshold: opts.nmsThreshold, maxOutput: R, plusOne: true });
  const has = kept.indices.ge(0);
  const idx = g.where(has, kept.indices, 0);
  const keptScores = top.values.gather(idx, 0);
  const valid = has.mul(keptScores.ge(0));
  const keptBoxes = g.where(valid.reshape([R, 1]), preBoxes.gather(idx, 0), g.constant([...DUMMY_BOX], [4]));
  const roisRaw = g.concat([g.constant(new Array<number>(R).fill(0), [R, 1]), keptBoxes], 1);
  const rois = keepGrad ? roisRaw : roisRaw.stopGradient();
  const count = valid.cast('f32').sum().cast('i32').reshape([1]);
  return {
    rois,
    boxes: keepGrad ? keptBoxes : keptBoxes.stopGradient(),
    scores: g.where(valid, keptScores, -1),
    valid,
    count,
    capacity: R,
  };
}
