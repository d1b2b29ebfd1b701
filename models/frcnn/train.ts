/**
 * Faster R-CNN approximate joint training (FASTER_RCNN_SPEC.md §3, §4, §7): one graph with the four
 * losses summed and the SGD update of every trainable parameter, compiled once for a fixed canvas; each
 * step feeds a new image. Everything (targets, sampling, losses, backward, update) runs on the GPU.
 *
 * Inputs: image f32 [1, 3, Hc, Wc] and im_info f32 [3] (see index.ts), gt_boxes f32 [G, 4] (canvas
 * coordinates, i.e. already multiplied by the scale; rows ≥ gt_count ignored), gt_labels i32 [G] (1..K),
 * gt_count i32 [1], seed u32 [1] (a new value each step: anchor / RoI sampling and the dropout masks),
 * lr f32 scalar.
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
 * Optimizer: `sgd` (momentum 0.9, weight decay 0.0005 on every trainable param; frozen params —
 * trainable: false — are excluded; the ×2 bias learning rate of PFR is not reproduced).
 */
import type { Update } from '../../compiler/compile.js';
import { WgflowError } from '../../compiler/errors.js';
import { sgd } from '../../compiler/optim.js';
import type { GraphBuilder, Tensor } from '../../compiler/tensor.js';
import { smoothL1, softmaxCrossEntropy } from '../../ops/losses.js';
import {
  type AnchorTargetOptions,
  anchorTargets,
  type ProposalTargetOptions,
  proposalTargets,
} from '../../ops/targets.js';
import { type RoiHeadOutputs, roiHead } from './head.js';
import { buildFrcnnTrunk, type FrcnnOptions, type FrcnnTrunk } from './index.js';
import { PROPOSALS_TRAIN } from './rpn.js';

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
}

export const FRCNN_TRAIN_DEFAULTS = { momentum: 0.9, weightDecay: 0.0005, lr: 0.001 } as const;

export interface FrcnnTraining extends FrcnnTrunk {
  readonly gtBoxes: Tensor;
  readonly gtLabels: Tensor;
  readonly gtCount: Tensor;
  readonly seed: Tensor;
  readonly head: RoiHeadOutputs;
  readonly losses: {
    readonly rpnCls: Tensor;
    readonly rpnBbox: Tensor;
    readonly cls: Tensor;
    readonly bbox: Tensor;
    readonly total: Tensor;
  };
  /** Outputs to compile: rpn_cls_loss, rpn_bbox_loss, cls_loss, bbox_loss, loss. */
  readonly outputs: Record<string, Tensor>;
  /** SGD updates (empty with optimizer: false). */
  readonly updates: Update[];
  readonly params: Tensor[];
  readonly grads: Tensor[];
  /** Name of the learning-rate input. */
  readonly lrInput: string;
}

/** The approximate-joint training graph (see the file comment). */
export function buildFrcnnTraining(g: GraphBuilder, opts: FrcnnTrainingOptions): FrcnnTraining {
  const G = opts.maxGt;
  if (!(Number.isInteger(G) && G >= 1)) throw new WgflowError(`maxGt must be a positive integer, got ${G}`);
  const trunk = buildFrcnnTrunk(g, opts, PROPOSALS_TRAIN);
  const b = trunk.backbone;
  const gtBoxes = g.input('gt_boxes', [G, 4]);
  const gtLabels = g.input('gt_labels', [G], 'i32');
  const gtCount = g.input('gt_count', [1], 'i32');
  const seed = g.input('seed', [1], 'u32');
  const K1 = opts.numClasses + 1;

  // ---- RPN losses
  const validHW = trunk.imInfo.slice([0], [2]);
  const at = anchorTargets(trunk.rpn.anchors, gtBoxes, gtCount, validHW, seed, {
    plusOne: true,
    allowedBorder: 0,
    seed: 0x5eed01,
    ...(opts.anchorTargets ?? {}),
  });
  const rpnCls = softmaxCrossEntropy(trunk.rpn.clsLogits, at.labels, { ignoreIndex: -1 });
  const numSampled = at.labels.ge(0).cast('f32').sum().maximum(1);
  const rpnBbox = smoothL1(trunk.rpn.deltas.sub(at.bboxTargets), 1 / 9)
    .mul(at.bboxWeights)
    .sum()
    .div(numSampled);

  // ---- RoI sampling and the head
  const pt = proposalTargets(trunk.proposals.boxes, trunk.proposals.count, gtBoxes, gtCount, gtLabels, seed, K1, {
    plusOne: true,
    seed: 0x5eed02,
    ...(opts.proposalTargets ?? {}),
  });
  const head = roiHead(
    g,
    trunk.features,
    pt.rois,
    {
      head: b.head,
      inChannels: b.channels,
      numClasses: opts.numClasses,
      stride: b.stride,
      ...(opts.pooling ? { pooling: opts.pooling } : {}),
      ...(opts.dropout === false ? {} : { dropoutSeeds: [0x0d6, 0x0d7] as const, dropoutStepSeed: seed }),
    },
    trunk.paramMap,
  );
  const cls = softmaxCrossEntropy(head.clsScore, pt.labels, { ignoreIndex: -1 });
  const numRois = pt.labels.ge(0).cast('f32').sum().maximum(1);
  const bbox = smoothL1(head.bboxPred.sub(pt.bboxTargets), 1).mul(pt.bboxWeights).sum().div(numRois);
  const total = rpnCls.add(rpnBbox).add(cls).add(bbox);

  const outputs: Record<string, Tensor> = {
    rpn_cls_loss: rpnCls,
    rpn_bbox_loss: rpnBbox,
    cls_loss: cls,
    bbox_loss: bbox,
    loss: total,
  };
  const base = {
    ...trunk,
    gtBoxes,
    gtLabels,
    gtCount,
    seed,
    head,
    losses: { rpnCls, rpnBbox, cls, bbox, total },
    outputs,
  };
  if (opts.optimizer === false) return { ...base, updates: [], params: [], grads: [], lrInput: 'lr' };
  const step = sgd(total, {
    momentum: opts.momentum ?? FRCNN_TRAIN_DEFAULTS.momentum,
    weightDecay: opts.weightDecay ?? FRCNN_TRAIN_DEFAULTS.weightDecay,
  });
  return { ...base, updates: step.updates, params: step.params, grads: step.grads, lrInput: step.lrInput };
}
