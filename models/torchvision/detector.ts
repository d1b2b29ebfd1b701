/**
 * torchvision's Faster R-CNN detection models in the DSL, by torchvision's builder names, with each
 * builder's own settings (torchvision/models/detection/faster_rcnn.py, 0.14): the backbone and its
 * FPN, AnchorGenerator sizes, RPN and RoI-head numbers, and the transform's min/max size. One graph
 * serves every image size up to the bound (the image's H and W are run-time sizes), one image per run.
 *
 * fasterrcnn_resnet50_fpn_v2 differs by BatchNorm2d in the body and the FPN, a 2-conv RPN head and the
 * 4-conv + FC box head.
 */
import type { Dim } from '../../compiler/dims.js';
import type { GraphBuilder, Tensor } from '../../compiler/tensor.js';
import { featurePyramid } from './fpn.js';
import { mobilenetV3LargeFeatures } from './mobilenet.js';
import { resnet50Body } from './resnet.js';
import { type TvDetections, tvOriginalBoxes, tvRoiHeads } from './roi-heads.js';
import { type TvRpnOptions, tvRpn } from './rpn.js';

export const TV_DETECTION_MODELS = [
  'fasterrcnn_resnet50_fpn',
  'fasterrcnn_resnet50_fpn_v2',
  'fasterrcnn_mobilenet_v3_large_fpn',
  'fasterrcnn_mobilenet_v3_large_320_fpn',
] as const;
export type TvDetectionModel = (typeof TV_DETECTION_MODELS)[number];

export interface TvModelSpec {
  readonly backbone: 'resnet50' | 'mobilenet_v3_large';
  readonly fpnIn: readonly number[];
  readonly anchorSizes: readonly (readonly number[])[];
  /** The pooled levels' scales (torchvision infers them; these are what it finds for these backbones). */
  readonly poolScales: readonly number[];
  readonly minSize: number;
  readonly maxSize: number;
  readonly preNmsTopN: number;
  readonly postNmsTopN: number;
  readonly rpnScoreThresh: number;
  /** torchvision's default trainable_backbone_layers for pretrained weights. */
  readonly trainableLayers: number;
  /** v2: BatchNorm2d in the body (not frozen) and the FPN, a 2-conv RPN head, the conv + FC box head. */
  readonly v2?: boolean;
}

const RESNET50_FPN: TvModelSpec = {
  backbone: 'resnet50',
  fpnIn: [256, 512, 1024, 2048],
  anchorSizes: [[32], [64], [128], [256], [512]],
  poolScales: [1 / 4, 1 / 8, 1 / 16, 1 / 32],
  minSize: 800,
  maxSize: 1333,
  preNmsTopN: 1000,
  postNmsTopN: 1000,
  rpnScoreThresh: 0,
  trainableLayers: 3,
};

const MOBILENET_V3_LARGE_FPN: TvModelSpec = {
  ...RESNET50_FPN,
  backbone: 'mobilenet_v3_large',
  fpnIn: [160, 960],
  anchorSizes: Array.from({ length: 3 }, () => [32, 64, 128, 256, 512]),
  poolScales: [1 / 32, 1 / 32],
  rpnScoreThresh: 0.05,
};

/** Each builder's settings (its defaults and its `defaults` dict). */
export const TV_MODEL_SPECS: Readonly<Record<TvDetectionModel, TvModelSpec>> = {
  fasterrcnn_resnet50_fpn: RESNET50_FPN,
  fasterrcnn_resnet50_fpn_v2: { ...RESNET50_FPN, v2: true },
  fasterrcnn_mobilenet_v3_large_fpn: MOBILENET_V3_LARGE_FPN,
  fasterrcnn_mobilenet_v3_large_320_fpn: {
    ...MOBILENET_V3_LARGE_FPN,
    minSize: 320,
    maxSize: 640,
    preNmsTopN: 150,
    postNmsTopN: 150,
  },
};

export interface TvDetectionOptions {
  /** Classes with the background (91 for torchvision's COCO weights). */
  readonly numClasses: number;
  /** Bounds of the (padded) image size; default the model's maxSize rounded up to 32. */
  readonly maxImageSize?: number;
  readonly scoreThresh?: number;
  readonly nmsThresh?: number;
  readonly detectionsPerImage?: number;
  readonly rpn?: Partial<Pick<TvRpnOptions, 'preNmsTopN' | 'postNmsTopN' | 'nmsThresh' | 'scoreThresh'>>;
}

export interface TvDetectionGraph {
  /** f32 [1, 3, H, W]: the transformed, padded image (models/torchvision/transform.ts). */
  readonly image: Tensor;
  /** f32 [1, 2]: its resized size (h, w) before padding. */
  readonly imageSize: Tensor;
  /** f32 [1, 2]: the original image's size (h, w). */
  readonly originalSize: Tensor;
  /** Boxes in the original image's pixels; scores, labels and count as tvRoiHeads gives them. */
  readonly outputs: {
    readonly boxes: Tensor;
    readonly scores: Tensor;
    readonly labels: Tensor;
    readonly count: Tensor;
  };
  readonly detections: TvDetections;
}

export function buildTvDetection(g: GraphBuilder, model: TvDetectionModel, o: TvDetectionOptions): TvDetectionGraph {
  const spec = TV_MODEL_SPECS[model];
  const bound = Math.ceil((o.maxImageSize ?? spec.maxSize) / 32) * 32;
  const H: Dim = g.dim('H', { min: 32, max: bound });
  const W: Dim = g.dim('W', { min: 32, max: bound });
  const image = g.input('image', [1, 3, H, W]);
  const imageSize = g.input('image_size', [1, 2]);
  const originalSize = g.input('original_size', [1, 2]);
  const prefix = 'backbone.body';
  const features =
    spec.backbone === 'resnet50'
      ? resnet50Body(image, {
          prefix,
          trainableLayers: spec.trainableLayers,
          norm: spec.v2 ? 'batchnorm' : 'frozen',
        }).features
      : mobilenetV3LargeFeatures(image, { prefix, trainableLayers: spec.trainableLayers }).features;
  const fpn = featurePyramid(features, {
    prefix: 'backbone.fpn',
    inChannels: spec.fpnIn,
    outChannels: 256,
    norm: spec.v2 === true,
  });
  const levels = spec.anchorSizes.length;
  const proposals = tvRpn(
    fpn.maps,
    { padded: [H, W], sizes: imageSize },
    {
      prefix: 'rpn',
      inChannels: 256,
      anchorSizes: spec.anchorSizes,
      aspectRatios: Array.from({ length: levels }, () => [0.5, 1, 2]),
      preNmsTopN: o.rpn?.preNmsTopN ?? spec.preNmsTopN,
      postNmsTopN: o.rpn?.postNmsTopN ?? spec.postNmsTopN,
      nmsThresh: o.rpn?.nmsThresh ?? 0.7,
      scoreThresh: o.rpn?.scoreThresh ?? spec.rpnScoreThresh,
      convDepth: spec.v2 ? 2 : 1,
    },
  );
  const detections = tvRoiHeads(fpn.maps.slice(0, spec.poolScales.length), proposals, imageSize, {
    prefix: 'roi_heads',
    inChannels: 256,
    scales: spec.poolScales,
    representationSize: 1024,
    numClasses: o.numClasses,
    scoreThresh: o.scoreThresh ?? 0.05,
    nmsThresh: o.nmsThresh ?? 0.5,
    detectionsPerImage: o.detectionsPerImage ?? 100,
    boxHead: spec.v2 ? 'conv_fc' : 'two_mlp',
  });
  return {
    image,
    imageSize,
    originalSize,
    detections,
    outputs: {
      boxes: tvOriginalBoxes(detections.boxes, imageSize, originalSize),
      scores: detections.scores,
      labels: detections.labels,
      count: detections.count,
    },
  };
}
