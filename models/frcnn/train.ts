/**
 * Faster R-CNN approximate joint training (FASTER_RCNN_SPEC.md §3, §4, §7): one graph with the four
 * losses summed and the SGD update of every trainable parameter, compiled once for a fixed canvas; each
 * step feeds a new image. Everything (targets, sampling, losses, backward, update) runs on the GPU.
 *
 * Inputs: image f32 [1, 3, Hc, Wc] and im_info f32 [3] (see index.ts), gt_boxes f32 [G, 4] (canvas
 * coordinates, i.e. already multiplied by the scale; rows ≥ gt_count ignored), gt_labels i32 [G] (1..K),
 * gt_count i32 [1], seed u32 [1] (a new value each step: anchor / RoI sampling and the dropout masks),
 * lr f32 scalar. With `images: B` > 1 the per-image inputs lead with B (image [B, 3, Hc, Wc], im_info
 * [B, 3], gt_boxes [B, G, 4], gt_labels [B, G], gt_count [B, 1]); anchors and RoIs are sampled per image
 * (anchorTargets.batchSize and proposalTargets.batchSize per image, as torchvision), and each loss is
 * normalized over the whole batch (the sampled anchors / RoIs of every image), as torchvision does.
 * The canvas may be run-time sizes (index.ts): one program then trains on every image size.
 *
 * Losses (py-faster-rcnn end2end, spec §3 "RPN loss" and §4 "Losses"):
 * - rpn_cls: 2-way softmax CE over the sampled anchors (label −1 ignored), mean over the non-ignored;
 * - rpn_bbox: Σ smoothL1(β = 1/9) over the 4 deltas of the positive anchors, / #sampled anchors
 *   (labels ≥ 0; PFR's outside weight 1/num_examples);
 * - cls: softmax CE over the sampled RoIs (unused −1 slots ignored), mean over the used slots;
 * - bbox: Σ smoothL1(β = 1) over the gt-class normalized deltas of the fg RoIs, / #used RoIs (Caffe's
 *   division by the blob num; PFR does not pad its RoI batch);
 * - total = the sum (all weights 1).
 * Anchor targets use the VALID image size (im_info) for PFR's inside test, so anchors over the padding
 * are ignored. Proposals use the training settings (pre-NMS 12000, post-NMS 2000) and carry no gradient
 * (approximate joint training). PFR conventions throughout (+1 pixel widths in IoU and coding).
 * Optimizer: `sgd` (momentum 0.9, weight decay 0.0005; frozen params — trainable: false — are excluded;
 * PFR's bias lr ×2 with no weight decay on biases, CAFFE_BIAS_MULTIPLIERS, unless biasLrMult2 is false).
 *
 * MODES (spec §7):
 * - 'approximate-joint' (default): the graph above.
 * - 'joint': non-approximate joint training. The proposal boxes keep their gradient: RoIAlign's gradient
 *   w.r.t. the boxes flows through the RoI sampling gathers, the clip and the box decoding into the RPN's
 *   regression branch (scores, top-k, NMS and sampling only pick indices; the head's regression targets
 *   stay constants). Needs pooling 'roi_align' (RoIPool's max has no gradient w.r.t. the box).
 * - 'rpn': the RPN alone (alternating steps 1 and 3): backbone + RPN, the two RPN losses.
 * - 'fast-rcnn': Fast R-CNN alone (alternating steps 2 and 4): backbone + head on proposals given as
 *   inputs `proposals` f32 [R, 4] (canvas coordinates) and `proposal_count` i32 [1]; no RPN.
 * freezeShared (alternating steps 3 and 4): the backbone's convs are not trained.
 */
import type { Update } from '../../compiler/compile.js';
import { dimMul } from '../../compiler/dims.js';
import { WgflowError } from '../../compiler/errors.js';
import { CAFFE_BIAS_MULTIPLIERS, sgd, trainableParams } from '../../compiler/optim.js';
import type { GraphBuilder, Tensor } from '../../compiler/tensor.js';
import { smoothL1, softmaxCrossEntropy } from '../../ops/losses.js';
import {
  type AnchorTargetOptions,
  anchorTargets,
  type ProposalTargetOptions,
  proposalTargets,
} from '../../ops/targets.js';
import { type RoiHeadOutputs, roiHead } from './head.js';
import { buildFrcnnBase, buildFrcnnTrunk, type FrcnnBase, type FrcnnOptions, type FrcnnTrunk } from './index.js';
import { PROPOSALS_TRAIN, type RpnOutputs, rpnHead } from './rpn.js';

export type FrcnnTrainingMode = 'approximate-joint' | 'joint' | 'rpn' | 'fast-rcnn';

export interface FrcnnTrainingOptions extends FrcnnOptions {
  /** Gt capacity G per image (rows past gt_count are ignored). */
  readonly maxGt: number;
  /** Anchor target settings (defaults: PFR, batch 256, fg fraction 0.5, border 0, plusOne). */
  readonly anchorTargets?: AnchorTargetOptions;
  /** RoI sampling settings (defaults: PFR, batch 128, fg fraction 0.25, fg IoU 0.5, bg [0, 0.5), plusOne). */
  readonly proposalTargets?: ProposalTargetOptions;
  /** Dropout in the head (default true; false gives a deterministic step, e.g. for gradient checks). */
  readonly dropout?: boolean;
  readonly momentum?: number;
  readonly weightDecay?: number;
  /** Set false to build the losses only (no gradients, no updates). */
  readonly optimizer?: boolean;
  /** Which net and losses (see the file comment). Default 'approximate-joint'. */
  readonly mode?: FrcnnTrainingMode;
  /** Do not train the backbone (alternating steps 3 and 4). */
  readonly freezeShared?: boolean;
  /** PFR's bias lr ×2 and no decay on biases (default true). */
  readonly biasLrMult2?: boolean;
  /** 'fast-rcnn' mode: capacity R of the `proposals` input (default 300). */
  readonly proposalCapacity?: number;
}

export const FRCNN_TRAIN_DEFAULTS = { momentum: 0.9, weightDecay: 0.0005, lr: 0.001 } as const;

export interface FrcnnTraining extends FrcnnBase {
  readonly mode: FrcnnTrainingMode;
  /** Absent in 'fast-rcnn' mode. */
  readonly rpn?: RpnOutputs;
  /** The proposals the head trains on (from the RPN, or the inputs in 'fast-rcnn' mode). */
  readonly proposals?: FrcnnTrunk['proposals'];
  readonly gtBoxes: Tensor;
  readonly gtLabels: Tensor;
  readonly gtCount: Tensor;
  readonly seed: Tensor;
  /** Absent in 'rpn' mode. */
  readonly head?: RoiHeadOutputs;
  readonly losses: {
    readonly rpnCls?: Tensor;
    readonly rpnBbox?: Tensor;
    readonly cls?: Tensor;
    readonly bbox?: Tensor;
    readonly total: Tensor;
  };
  /** Outputs to compile: the mode's loss terms (rpn_cls_loss, rpn_bbox_loss, cls_loss, bbox_loss) and loss. */
  readonly outputs: Record<string, Tensor>;
  /**
   * Counts worth watching while training (f32 scalars over the batch; present per mode): fg_anchors,
   * sampled_anchors (the anchors the RPN losses average over), fg_rois, sampled_rois.
   */
  readonly diagnostics: Record<string, Tensor>;
  /** SGD updates (empty with optimizer: false). */
  readonly updates: Update[];
  readonly params: Tensor[];
  readonly grads: Tensor[];
  /** Name of the learning-rate input. */
  readonly lrInput: string;
}

/** The training graph of a mode (see the file comment). */
export function buildFrcnnTraining(g: GraphBuilder, opts: FrcnnTrainingOptions): FrcnnTraining {
  const G = opts.maxGt;
  if (!(Number.isInteger(G) && G >= 1)) throw new WgflowError(`maxGt must be a positive integer, got ${G}`);
  const mode = opts.mode ?? 'approximate-joint';
  if (mode === 'joint' && opts.pooling !== 'roi_align')
    throw new WgflowError(
      "buildFrcnnTraining: mode 'joint' (non-approximate) needs pooling: 'roi_align' — RoIPool has no gradient w.r.t. the boxes",
    );
  const withRpn = mode !== 'fast-rcnn';
  const withHead = mode !== 'rpn';
  const trunkOpts: FrcnnOptions =
    mode === 'joint' ? { ...opts, proposals: { ...(opts.proposals ?? {}), boxGradient: true } } : opts;
  const trunk = withRpn && withHead ? buildFrcnnTrunk(g, trunkOpts, PROPOSALS_TRAIN) : undefined;
  const base: FrcnnBase = trunk ?? buildFrcnnBase(g, opts);
  const b = base.backbone;
  // per image; with B > 1 images each input leads with B
  const B = base.images;
  const lead = B === 1 ? [] : [B];
  const gtBoxes = g.input('gt_boxes', [...lead, G, 4]);
  const gtLabels = g.input('gt_labels', [...lead, G], 'i32');
  const gtCount = g.input('gt_count', [...lead, 1], 'i32');
  const seed = g.input('seed', [1], 'u32');
  const K1 = opts.numClasses + 1;
  const outputs: Record<string, Tensor> = {};
  const diagnostics: Record<string, Tensor> = {};
  const terms: Tensor[] = [];

  // ---- RPN losses
  let rpn: RpnOutputs | undefined;
  let rpnCls: Tensor | undefined;
  let rpnBbox: Tensor | undefined;
  if (withRpn) {
    const net = trunk ? trunk.rpn : rpnHead(g, base.features, rpnConfig(opts, b), base.paramMap);
    rpn = net;
    const validHW = B === 1 ? base.imInfo.slice([0], [2]) : base.imInfo.slice([0, 0], [B, 2]);
    const atB = anchorTargets(net.anchors, gtBoxes, gtCount, validHW, seed, {
      plusOne: true,
      allowedBorder: 0,
      seed: 0x5eed01,
      ...(opts.anchorTargets ?? {}),
    });
    // image-major rows b·M + m, as the RPN's outputs
    const BM = dimMul(net.anchorsPerImage, B);
    const at = {
      labels: atB.labels.reshape([BM]),
      bboxTargets: atB.bboxTargets.reshape([BM, 4]),
      bboxWeights: atB.bboxWeights.reshape([BM, 4]),
    };
    rpnCls = softmaxCrossEntropy(net.clsLogits, at.labels, { ignoreIndex: -1 });
    const sampled = at.labels.ge(0).cast('f32').sum();
    const numSampled = sampled.maximum(1);
    rpnBbox = smoothL1(net.deltas.sub(at.bboxTargets), 1 / 9)
      .mul(at.bboxWeights)
      .sum()
      .div(numSampled);
    diagnostics.fg_anchors = at.labels.eq(1).cast('f32').sum();
    diagnostics.sampled_anchors = sampled;
    outputs.rpn_cls_loss = rpnCls;
    outputs.rpn_bbox_loss = rpnBbox;
    terms.push(rpnCls, rpnBbox);
  }

  // ---- RoI sampling and the head
  let head: RoiHeadOutputs | undefined;
  let cls: Tensor | undefined;
  let bbox: Tensor | undefined;
  let proposals: FrcnnTrunk['proposals'] | undefined;
  if (withHead) {
    let boxes: Tensor;
    let count: Tensor;
    if (trunk) {
      proposals = trunk.proposals;
      const R = trunk.proposals.capacity;
      boxes = trunk.proposals.boxes.reshape([...lead, R, 4]);
      count = trunk.proposals.count.reshape([...lead, 1]);
    } else {
      const R = opts.proposalCapacity ?? 300;
      boxes = g.input('proposals', [...lead, R, 4]);
      count = g.input('proposal_count', [...lead, 1], 'i32');
    }
    const pt = proposalTargets(boxes, count, gtBoxes, gtCount, gtLabels, seed, K1, {
      plusOne: true,
      seed: 0x5eed02,
      ...(mode === 'joint' ? { boxGradient: true } : {}),
      ...(opts.proposalTargets ?? {}),
    });
    head = roiHead(
      g,
      base.features,
      pt.rois,
      {
        head: b.head,
        inChannels: b.channels,
        numClasses: opts.numClasses,
        stride: b.stride,
        ...(opts.pooling ? { pooling: opts.pooling } : {}),
        ...(opts.dropout === false ? {} : { dropoutSeeds: [0x0d6, 0x0d7] as const, dropoutStepSeed: seed }),
      },
      base.paramMap,
    );
    cls = softmaxCrossEntropy(head.clsScore, pt.labels, { ignoreIndex: -1 });
    const sampledRois = pt.labels.ge(0).cast('f32').sum();
    const numRois = sampledRois.maximum(1);
    bbox = smoothL1(head.bboxPred.sub(pt.bboxTargets), 1).mul(pt.bboxWeights).sum().div(numRois);
    diagnostics.fg_rois = pt.labels.gt(0).cast('f32').sum();
    diagnostics.sampled_rois = sampledRois;
    outputs.cls_loss = cls;
    outputs.bbox_loss = bbox;
    terms.push(cls, bbox);
  }
  const total = terms.slice(1).reduce((acc, t) => acc.add(t), terms[0] as Tensor);
  outputs.loss = total;

  const result = {
    ...base,
    mode,
    ...(rpn ? { rpn } : {}),
    ...(proposals ? { proposals } : {}),
    gtBoxes,
    gtLabels,
    gtCount,
    seed,
    ...(head ? { head } : {}),
    losses: {
      ...(rpnCls ? { rpnCls } : {}),
      ...(rpnBbox ? { rpnBbox } : {}),
      ...(cls ? { cls } : {}),
      ...(bbox ? { bbox } : {}),
      total,
    },
    outputs,
    diagnostics,
  };
  if (opts.optimizer === false) return { ...result, updates: [], params: [], grads: [], lrInput: 'lr' };
  const shared = new Set(base.backboneParams.map((p) => p.node.id));
  const params = trainableParams(g).filter((p) => !(opts.freezeShared === true && shared.has(p.node.id)));
  const step = sgd(total, {
    params,
    momentum: opts.momentum ?? FRCNN_TRAIN_DEFAULTS.momentum,
    weightDecay: opts.weightDecay ?? FRCNN_TRAIN_DEFAULTS.weightDecay,
    ...(opts.biasLrMult2 === false ? {} : { multipliers: CAFFE_BIAS_MULTIPLIERS }),
  });
  return { ...result, updates: step.updates, params: step.params, grads: step.grads, lrInput: step.lrInput };
}

function rpnConfig(opts: FrcnnOptions, b: FrcnnBase['backbone']) {
  return {
    inChannels: b.channels,
    channels: b.rpnChannels,
    stride: b.stride,
    ...(opts.baseAnchors ? { baseAnchors: opts.baseAnchors } : {}),
  };
}
