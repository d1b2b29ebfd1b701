/**
 * Faster R-CNN in the DSL (FASTER_RCNN_SPEC.md §1–§5): backbone → RPN → proposal layer → RoI head →
 * post-processing, every stage a GPU kernel (no readback inside the program).
 *
 * Registry: 'frcnn-vgg16', 'frcnn-zf', 'frcnn-small' (backbones.ts).
 *
 * FIXED CANVAS. A compiled program has static shapes, so images of different sizes must not each
 * cost a compilation. The graph works on a fixed padded canvas image f32 [1, 3, Hc, Wc] plus the
 * run-time input imInfo f32 [3] = (validH, validW, scale): the resized image sits in the top-left
 * validH × validW corner (zero padding bottom/right, as PFR's blob padding), and everything that depends
 * on the image size reads imInfo, not constants: the anchors of feature cells outside the valid image's
 * feature map are dropped, proposals are clipped to the valid region, the min-size filter uses
 * 16·scale, and detections are mapped back by the scale and clipped to the original image. With PFR's
 * resize (short side 600, long side ≤ 1000) two canvases cover every image: 600×1000 (landscape) and
 * 1000×600 (portrait) — two compilations in all; a single 1000×1000 canvas would also do at ~1.7× the
 * compute. Batch size 1 (PFR's TEST.IMS_PER_BATCH / TRAIN.IMS_PER_BATCH).
 * The RPN convolutions do see the zero padding next to the valid region (PFR has no padding at batch 1),
 * so features of the last valid row/column of cells can differ slightly from an unpadded run; every
 * discrete rule (cells, clip, min size) follows the valid region exactly.
 *
 * FIXED-CAPACITY outputs: proposals [R, 5] + count (R = post-NMS top N; the valid ones are the prefix,
 * the rest hold a dummy box (0, 0, 15, 15) and are masked), detections [D] + count (D = 100).
 */
import { type Dim, dimMax, isSym } from '../../compiler/dims.js';
import { WgflowError } from '../../compiler/errors.js';
import { type DeviceLimits, WEBGPU_DEFAULT_LIMITS } from '../../compiler/limits.js';
import type { GraphBuilder, Tensor } from '../../compiler/tensor.js';
import { type Backbone, small, vgg16, zf } from './backbones.js';
import {
  DETECTIONS_DEFAULT,
  type DetectionOptions,
  type Detections,
  detectionPostprocess,
  type RoiHeadOutputs,
  type RoiPooling,
  roiHead,
} from './head.js';
import { ParamMap } from './layers.js';
import {
  PROPOSALS_TEST,
  type ProposalOptions,
  type Proposals,
  proposalLayer,
  type RpnOutputs,
  rpnHead,
} from './rpn.js';

export * from './backbones.js';
export * from './head.js';
export * from './layers.js';
export * from './rpn.js';

export const FRCNN_MODELS: Readonly<Record<string, Backbone>> = {
  'frcnn-vgg16': vgg16,
  'frcnn-zf': zf,
  'frcnn-small': small,
};

export function getBackbone(name: string | Backbone): Backbone {
  if (typeof name !== 'string') return name;
  const b = FRCNN_MODELS[name];
  if (!b)
    throw new WgflowError(`unknown Faster R-CNN model '${name}' (known: ${Object.keys(FRCNN_MODELS).join(', ')})`);
  return b;
}

export interface FrcnnOptions {
  readonly backbone: string | Backbone;
  /** Foreground classes K (VOC 20, COCO 80). */
  readonly numClasses: number;
  /**
   * Canvas [H, W] (e.g. [600, 1000]). Either may be a run-time size (`g.dim('H', { min, max })`): one
   * program then runs every image size within the bounds, with no canvas padding.
   */
  readonly canvas: readonly [Dim, Dim];
  /**
   * Images per run B (default 1), padded to the canvas, each with its own im_info row (torchvision's
   * ImageList). With B > 1 the inputs are image [B, 3, H, W] and im_info [B, 3], and the outputs lead
   * with the image axis; with 1 they keep the single-image shapes.
   */
  readonly images?: Dim;
  /** Device limits (kernels); WebGPU defaults otherwise. */
  readonly limits?: DeviceLimits;
  readonly proposals?: Partial<ProposalOptions>;
  readonly detections?: Partial<DetectionOptions>;
  readonly pooling?: RoiPooling;
  /** Base anchors [A][4]; default PFR generate_anchors (9). */
  readonly baseAnchors?: readonly (readonly number[])[];
  /** Input names; default 'image' and 'im_info'. */
  readonly inputNames?: { readonly image?: string; readonly imInfo?: string };
}

export interface FrcnnTrunk extends FrcnnBase {
  readonly rpn: RpnOutputs;
  readonly proposals: Proposals;
}

/** The image inputs and the backbone (shared by every graph). */
export interface FrcnnBase {
  readonly backbone: Backbone;
  /** Input f32 [B, 3, Hc, Wc]. */
  readonly image: Tensor;
  /** Input f32 [3] (validH, validW, scale), [B, 3] for B > 1 images. */
  readonly imInfo: Tensor;
  /** Images per run B (a run-time size for one program over every batch size within its bounds). */
  readonly images: Dim;
  /** Backbone features [B, C, H_f, W_f]. */
  readonly features: Tensor;
  readonly paramMap: ParamMap;
  /** The backbone's (shared convolutional) parameters, frozen ones included. */
  readonly backboneParams: readonly Tensor[];
}

/** Declares the inputs and the backbone. */
export function buildFrcnnBase(g: GraphBuilder, opts: FrcnnOptions): FrcnnBase {
  const backbone = getBackbone(opts.backbone);
  const [Hc, Wc] = opts.canvas;
  if (!(Number.isInteger(opts.numClasses) && opts.numClasses >= 1))
    throw new WgflowError(`numClasses must be a positive integer, got ${opts.numClasses}`);
  const limits = opts.limits ?? WEBGPU_DEFAULT_LIMITS;
  const B = opts.images ?? 1;
  if (!(isSym(B) || (Number.isInteger(B) && B >= 1)))
    throw new WgflowError(`images must be a positive integer or a run-time size, got ${B}`);
  const image = g.input(opts.inputNames?.image ?? 'image', [B, 3, Hc, Wc]);
  const imInfo = g.input(opts.inputNames?.imInfo ?? 'im_info', B === 1 ? [3] : [B, 3]);
  const paramMap = new ParamMap();
  const first = g.graph.nodes.length;
  const features = backbone.build(g, image, { limits }, paramMap);
  const backboneParams = g.graph.nodes
    .slice(first)
    .filter((n) => n.op === 'param')
    .map((n) => g.tensor(n.id));
  // (for run-time sizes, the largest feature map is that of the largest image: the sizes are monotone)
  const [Hf, Wf] = backbone.featureSize(dimMax(Hc), dimMax(Wc));
  if (features.shape[2] !== Hf || features.shape[3] !== Wf)
    throw new WgflowError(`internal: ${backbone.name} feature size ${features.shape} ≠ [${Hf}, ${Wf}]`);
  return { backbone, image, imInfo, images: B, features, paramMap, backboneParams };
}

/** Backbone, RPN and proposal layer (shared by inference and training graphs). */
export function buildFrcnnTrunk(
  g: GraphBuilder,
  opts: FrcnnOptions,
  proposalDefaults: ProposalOptions = PROPOSALS_TEST,
): FrcnnTrunk {
  const base = g.stage('backbone', () => buildFrcnnBase(g, opts));
  const { backbone, features, paramMap, imInfo } = base;
  const [Hc, Wc] = opts.canvas;
  return g.stage('proposals', () => {
    const rpn = rpnHead(
      g,
      features,
      {
        inChannels: backbone.channels,
        channels: backbone.rpnChannels,
        stride: backbone.stride,
        ...(opts.baseAnchors ? { baseAnchors: opts.baseAnchors } : {}),
      },
      paramMap,
    );
    const proposals = proposalLayer(
      g,
      rpn,
      imInfo,
      { featureSize: (h, w) => backbone.featureSize(h, w), canvas: [Hc, Wc] },
      { ...proposalDefaults, ...(opts.proposals ?? {}) },
    );
    return { ...base, rpn, proposals };
  });
}

export interface FrcnnInference extends FrcnnTrunk {
  readonly head: RoiHeadOutputs;
  readonly detections: Detections;
  /** The tensors to compile as outputs. */
  readonly outputs: Record<string, Tensor>;
}

/**
 * The whole inference graph. Outputs: det_boxes f32 [D,4] (original-image coordinates), det_scores f32
 * [D], det_classes i32 [D], det_count i32 [1], rois f32 [R,5] (canvas coordinates), roi_count i32 [1].
 * With B > 1 images: det_boxes [B,D,4], det_scores [B,D], det_classes [B,D], det_count [B], rois
 * [B·R,5] (column 0 the image index), roi_count [B]; image b's results equal a run of image b alone
 * on the same canvas.
 */
export function buildFrcnnInference(g: GraphBuilder, opts: FrcnnOptions): FrcnnInference {
  const trunk = buildFrcnnTrunk(g, opts, PROPOSALS_TEST);
  const b = trunk.backbone;
  const head = g.stage('head', () =>
    roiHead(
      g,
      trunk.features,
      trunk.proposals.rois,
      {
        head: b.head,
        inChannels: b.channels,
        numClasses: opts.numClasses,
        stride: b.stride,
        ...(opts.pooling ? { pooling: opts.pooling } : {}),
      },
      trunk.paramMap,
    ),
  );
  const detections = g.stage('post-processing', () =>
    detectionPostprocess(g, trunk.proposals, head, trunk.imInfo, opts.numClasses, {
      ...DETECTIONS_DEFAULT,
      ...(opts.detections ?? {}),
    }),
  );
  return {
    ...trunk,
    head,
    detections,
    outputs: {
      det_boxes: detections.boxes,
      det_scores: detections.scores,
      det_classes: detections.classes,
      det_count: detections.count,
      rois: trunk.proposals.rois,
      roi_count: trunk.proposals.count,
    },
  };
}
