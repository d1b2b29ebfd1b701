/**
 * Backbones of Faster R-CNN (output stride 16; 8 for frcnn-small), declared with conventional parameter names:
 *
 * - frcnn-vgg16: the 13 conv 3×3 + ReLU layers of VGG16 with torchvision's state_dict names
 *   (features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight/bias; Caffe conv1_1 … conv5_3 in the ParamMap),
 *   four 2×2/2 max pools in Caffe's CEIL mode (600×1000 → conv5_3 38×63), no pool after conv5_3.
 *   conv1_1–conv2_2 are FROZEN (trainable: false), as in every py-faster-rcnn VGG16 stage. Tensors larger
 *   than one storage binding (conv1 at 600×1000) are split across bindings by the compiler.
 * - frcnn-zf: py-faster-rcnn's ZF prototxt: conv1 7×7/2 pad 3, 96 → ReLU → pool 3×3/2 pad 1 (ceil) →
 *   conv2 5×5/2 pad 2, 256 → ReLU → pool 3×3/2 pad 1 (ceil) → conv3 3×3 384 → conv4 3×3 384 → conv5 3×3 256
 *   (each + ReLU). The two LRN layers (norm1, norm2: local_size 3, alpha 5e-5, beta 0.75, WITHIN_CHANNEL)
 *   are SKIPPED: the op set has no LRN, and with alpha 5e-5 over 3×3 they scale activations by
 *   (1 + 5e-5/9·Σx²)^−0.75 ≈ 1 for activations of moderate size — a deviation to remember when
 *   importing Caffe ZF weights. 600×1000 → conv5 39×64 (Caffe's ceil with padding).
 * - frcnn-small (ours, for tests and the demo on a CPU-emulated GPU): conv 16 → pool → conv 32 → pool →
 *   conv 64, conv 64 → pool → conv 64, conv 64 (all 3×3 + ReLU, 2×2/2 ceil pools): OUTPUT STRIDE 8 and a
 *   62-pixel receptive field, so a 128×160 image gives a 16×20 feature map. A stride-16, 4-conv version
 *   (31-pixel receptive field, 8×10 map) reached only 12 % VOC mAP on the shapes demo after 1500
 *   iterations: its RoIs covered 2–4 feature cells, each seeing part of the object. Its head is
 *   fc6/fc7 of 256 without dropout (too narrow to regularize that way).
 */
import type { DeviceLimits } from '../../compiler/limits.js';
import { type GraphBuilder, init, type Tensor } from '../../compiler/tensor.js';
import { type ConvSpec, convPoolBlock, convRelu, declareConv, type ParamMap, type PoolSpec } from './layers.js';

export interface BackboneBuildOptions {
  readonly limits: DeviceLimits;
}

export interface HeadSpec {
  /** RoI pooling output size (VGG16 7, ZF 6). */
  readonly pooled: number;
  /** fc6 / fc7 width. */
  readonly hidden: number;
  readonly fc6: { readonly name: string; readonly caffe: string; readonly torchvision?: string };
  readonly fc7: { readonly name: string; readonly caffe: string; readonly torchvision?: string };
  readonly dropout: number;
  /** Init std of cls_score / bbox_pred (PFR: 0.01 / 0.001, for a head on pretrained fc6/fc7). */
  readonly clsStd?: number;
  readonly bboxStd?: number;
}

export interface Backbone {
  readonly name: string;
  /** Output stride of the feature map (16 for VGG16 and ZF, 8 for the small backbone). */
  readonly stride: number;
  /** Channels of the feature map. */
  readonly channels: number;
  /** Width of the RPN's 3×3 conv (py-faster-rcnn: 512 VGG16, 256 ZF). */
  readonly rpnChannels: number;
  readonly head: HeadSpec;
  /** Feature-map size for an input of H×W. */
  featureSize(H: number, W: number): [number, number];
  /** Declares the parameters and the layers; image: f32 [1, 3, H, W]. */
  build(g: GraphBuilder, image: Tensor, opts: BackboneBuildOptions, map?: ParamMap): Tensor;
}

const ceilPool = (n: number, k: number, s: number, p: number): number => {
  // Caffe / PyTorch ceil mode: the last window must start inside the input (or the left padding).
  let out = Math.ceil((n + 2 * p - k) / s) + 1;
  if ((out - 1) * s >= n + p) out--;
  return out;
};
const convOut = (n: number, k: number, s: number, p: number): number => Math.floor((n + 2 * p - k) / s) + 1;

// ---------------------------------------------------------------- VGG16

const VGG_BLOCKS: readonly (readonly [number, number, number][])[] = [
  // [torchvision index, cin, cout]
  [
    [0, 3, 64],
    [2, 64, 64],
  ],
  [
    [5, 64, 128],
    [7, 128, 128],
  ],
  [
    [10, 128, 256],
    [12, 256, 256],
    [14, 256, 256],
  ],
  [
    [17, 256, 512],
    [19, 512, 512],
    [21, 512, 512],
  ],
  [
    [24, 512, 512],
    [26, 512, 512],
    [28, 512, 512],
  ],
];

const VGG_POOL: PoolSpec = { size: 2, ceilMode: true };

/** Feature size after `pools` 2×2 stride-2 ceil-mode pools (VGG16: 4, stride 16; the small backbone: 3). */
function afterCeilPools(H: number, W: number, pools: number): [number, number] {
  let h = H;
  let w = W;
  for (let i = 0; i < pools; i++) {
    h = ceilPool(h, 2, 2, 0);
    w = ceilPool(w, 2, 2, 0);
  }
  return [h, w];
}

export const vgg16: Backbone = {
  name: 'frcnn-vgg16',
  stride: 16,
  channels: 512,
  rpnChannels: 512,
  head: {
    pooled: 7,
    hidden: 4096,
    fc6: { name: 'classifier.0', caffe: 'fc6', torchvision: 'classifier.0' },
    fc7: { name: 'classifier.3', caffe: 'fc7', torchvision: 'classifier.3' },
    dropout: 0.5,
  },
  featureSize: (H, W) => afterCeilPools(H, W, 4),
  build(g, image, _opts, map) {
    let h = image;
    VGG_BLOCKS.forEach((block, bi) => {
      const layers = block.map(([idx, cin, cout], li) =>
        declareConv(
          g,
          {
            name: `features.${idx}`,
            torchvision: `features.${idx}`,
            caffe: `conv${bi + 1}_${li + 1}`,
            cin,
            cout,
            k: 3,
            trainable: bi >= 2, // conv1_1–conv2_2 frozen (lr_mult 0 in py-faster-rcnn)
          },
          map,
        ),
      );
      if (bi < 4) h = convPoolBlock(h, layers, VGG_POOL);
      else {
        for (const l of layers) h = convRelu(h, l);
      }
    });
    return h;
  },
};

// ---------------------------------------------------------------- ZF

export const zf: Backbone = {
  name: 'frcnn-zf',
  stride: 16,
  channels: 256,
  rpnChannels: 256,
  head: {
    pooled: 6,
    hidden: 4096,
    fc6: { name: 'fc6', caffe: 'fc6' },
    fc7: { name: 'fc7', caffe: 'fc7' },
    dropout: 0.5,
  },
  featureSize(H, W) {
    const f = (n: number) => ceilPool(convOut(ceilPool(convOut(n, 7, 2, 3), 3, 2, 1), 5, 2, 2), 3, 2, 1);
    return [f(H), f(W)];
  },
  build(g, image, _opts, map) {
    const spec = (name: string, cin: number, cout: number, k: number, stride: number, padding: number): ConvSpec => ({
      name,
      caffe: name,
      cin,
      cout,
      k,
      stride,
      padding,
    });
    const c1 = declareConv(g, spec('conv1', 3, 96, 7, 2, 3), map);
    const c2 = declareConv(g, spec('conv2', 96, 256, 5, 2, 2), map);
    const c3 = declareConv(g, spec('conv3', 256, 384, 3, 1, 1), map);
    const c4 = declareConv(g, spec('conv4', 384, 384, 3, 1, 1), map);
    const c5 = declareConv(g, spec('conv5', 384, 256, 3, 1, 1), map);
    const pool = (t: Tensor) => t.maxPool2d({ kernel: 3, stride: 2, padding: 1, ceilMode: true });
    let h = pool(convRelu(image, c1)); // norm1 (LRN) skipped
    h = pool(convRelu(h, c2)); // norm2 (LRN) skipped
    h = convRelu(h, c3);
    h = convRelu(h, c4);
    return convRelu(h, c5);
  },
};

// ---------------------------------------------------------------- small

/** The small backbone's blocks: [output channels of each conv], a 2×2/2 ceil pool after the first three. */
const SMALL_BLOCKS: readonly (readonly number[])[] = [[16], [32], [64, 64], [64, 64]];

export const small: Backbone = {
  name: 'frcnn-small',
  stride: 8,
  channels: 64,
  rpnChannels: 64,
  head: {
    pooled: 7,
    hidden: 256,
    fc6: { name: 'fc6', caffe: 'fc6' },
    fc7: { name: 'fc7', caffe: 'fc7' },
    dropout: 0,
    // trained from scratch: PFR's 0.01 / 0.001 (meant for pretrained fc layers) let almost no gradient
    // back into fc6/fc7, which then barely moved from their init in 1000 iterations
    clsStd: 0.06,
    bboxStd: 0.01,
  },
  featureSize: (H, W) => afterCeilPools(H, W, 3),
  build(g, image, _opts, map) {
    let h = image;
    let cin = 3;
    let n = 0;
    SMALL_BLOCKS.forEach((block, bi) => {
      const layers = block.map((cout) => {
        n++;
        const l = declareConv(
          g,
          { name: `features.conv${n}`, caffe: `conv${n}`, cin, cout, k: 3, weightInit: init.he() },
          map,
        );
        cin = cout;
        return l;
      });
      if (bi < 3) h = convPoolBlock(h, layers, { size: 2, ceilMode: true });
      else {
        for (const l of layers) h = convRelu(h, l);
      }
    });
    return h;
  },
};
