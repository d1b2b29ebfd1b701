/**
 * Building blocks of the Faster R-CNN models: conv + bias + ReLU, conv/pool blocks, and fully connected
 * layers. No layer splits its tensors: one larger than a storage binding or a buffer (VGG16's conv1
 * output, fc6's 411 MB weight) is split by the compiler (compiler/passes/bind.ts, chunk.ts).
 */
import { type GraphBuilder, type Init, init, type Tensor } from '../../compiler/tensor.js';
import { linear } from '../../ops/matmul.js';

/** Where a parameter of ours comes from in other checkpoints (for weight import). */
export interface ParamSource {
  /** Our parameter name. */
  readonly param: string;
  /** torchvision state_dict key (VGG16), or null. */
  readonly torchvision: string | null;
  /** Caffe layer name and blob index (0 weight, 1 bias) of the py-faster-rcnn prototxts. */
  readonly caffe: string;
  readonly shape: readonly number[];
}

export class ParamMap {
  readonly entries: ParamSource[] = [];
  add(e: ParamSource): void {
    this.entries.push(e);
  }
}

export interface ConvSpec {
  /** Parameter prefix, e.g. "features.0" (→ features.0.weight, features.0.bias). */
  readonly name: string;
  /** Caffe layer name, e.g. "conv1_1". */
  readonly caffe: string;
  readonly torchvision?: string;
  readonly cin: number;
  readonly cout: number;
  readonly k: number;
  readonly stride?: number;
  readonly padding?: number;
  readonly trainable?: boolean;
  readonly weightInit?: Init;
}

export interface ConvLayer {
  readonly spec: ConvSpec;
  readonly weight: Tensor;
  readonly bias: Tensor;
}

/** Declares the weight [cout, cin, k, k] and bias [cout] of a conv layer (and records the name map). */
export function declareConv(g: GraphBuilder, s: ConvSpec, map?: ParamMap): ConvLayer {
  const trainable = s.trainable ?? true;
  const weight = g.param(`${s.name}.weight`, [s.cout, s.cin, s.k, s.k], s.weightInit ?? init.he(), { trainable });
  const bias = g.param(`${s.name}.bias`, [s.cout], init.zeros(), { trainable });
  map?.add({
    param: `${s.name}.weight`,
    torchvision: s.torchvision !== undefined ? `${s.torchvision}.weight` : null,
    caffe: `${s.caffe}[0]`,
    shape: [s.cout, s.cin, s.k, s.k],
  });
  map?.add({
    param: `${s.name}.bias`,
    torchvision: s.torchvision !== undefined ? `${s.torchvision}.bias` : null,
    caffe: `${s.caffe}[1]`,
    shape: [s.cout],
  });
  return { spec: s, weight, bias };
}

/** conv2d + bias + ReLU (one fused dispatch). */
export function convRelu(x: Tensor, l: ConvLayer, relu = true): Tensor {
  const s = l.spec;
  const y = x
    .conv2d(l.weight, { stride: s.stride ?? 1, padding: s.padding ?? (s.k - 1) / 2 })
    .add(l.bias.reshape([1, s.cout, 1, 1]));
  return relu ? y.relu() : y;
}

export interface PoolSpec {
  /** Kernel = stride (non-overlapping windows, no padding), e.g. 2 for VGG. */
  readonly size: number;
  readonly ceilMode: boolean;
}

/**
 * A block of convs (+ ReLU) and a max pool with kernel = stride. No splitting here: a tensor larger than
 * one storage binding (VGG16's conv1 at 600×1000 is 64×600×1000 f32 = 153.6 MB) is split across several
 * bindings by the compiler (compiler/passes/bind.ts). x: [N, C, H, W].
 */
export function convPoolBlock(x: Tensor, convs: readonly ConvLayer[], pool: PoolSpec): Tensor {
  let h = x;
  for (const c of convs) h = convRelu(h, c);
  return h.maxPool2d({ kernel: pool.size, stride: pool.size, ceilMode: pool.ceilMode });
}

export interface LinearSpec {
  readonly name: string;
  readonly caffe: string;
  readonly torchvision?: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weightInit: Init;
  readonly trainable?: boolean;
}

/**
 * A fully connected layer y = x·Wᵀ + b (torch.nn.Linear layout, weight [out, in]). VGG16's fc6 weight
 * (4096×25088 f32 = 411 MB) is over one storage binding and one buffer under the WebGPU default limits:
 * the compiler binds it as windows of chunked buffers, so the model declares it whole.
 */
export function linearLayer(g: GraphBuilder, x: Tensor, s: LinearSpec, map?: ParamMap): Tensor {
  const trainable = s.trainable ?? true;
  const bias = g.param(`${s.name}.bias`, [s.outFeatures], init.zeros(), { trainable });
  const tv = s.torchvision;
  const w = g.param(`${s.name}.weight`, [s.outFeatures, s.inFeatures], s.weightInit, { trainable });
  map?.add({
    param: `${s.name}.weight`,
    torchvision: tv !== undefined ? `${tv}.weight` : null,
    caffe: `${s.caffe}[0]`,
    shape: [s.outFeatures, s.inFeatures],
  });
  map?.add({
    param: `${s.name}.bias`,
    torchvision: tv !== undefined ? `${tv}.bias` : null,
    caffe: `${s.caffe}[1]`,
    shape: [s.outFeatures],
  });
  return linear(x, w, bias);
}

/** A small linear layer's parameters: weight [out, in] ~ N(0, std), bias 0 (cls_score, bbox_pred). */
export function declareLinear(
  g: GraphBuilder,
  s: { name: string; caffe: string; inFeatures: number; outFeatures: number; std: number; trainable?: boolean },
  map?: ParamMap,
): { weight: Tensor; bias: Tensor } {
  const trainable = s.trainable ?? true;
  const weight = g.param(`${s.name}.weight`, [s.outFeatures, s.inFeatures], init.normal(s.std), { trainable });
  const bias = g.param(`${s.name}.bias`, [s.outFeatures], init.zeros(), { trainable });
  map?.add({ param: `${s.name}.weight`, torchvision: null, caffe: `${s.caffe}[0]`, shape: [...weight.shape] });
  map?.add({ param: `${s.name}.bias`, torchvision: null, caffe: `${s.caffe}[1]`, shape: [...bias.shape] });
  return { weight, bias };
}
