/**
 * Building blocks of the Faster R-CNN models: conv + bias + ReLU, conv/pool blocks, and fully connected
 * layers (fc6's weight is still split into row parts that each fit one buffer under WebGPU's default limits).
 */
import { WEBGPU_DEFAULT_LIMITS } from '../../compiler/limits.js';
import { type GraphBuilder, type Init, init, type Tensor } from '../../compiler/tensor.js';
import { linear } from '../../ops/matmul.js';

/** Where a parameter of ours comes from in other checkpoints (for weight import). */
export interface ParamSource {
  /** Our parameter names; several when the tensor is split into row blocks (concatenate along axis 0). */
  readonly params: readonly string[];
  /** torchvision state_dict key (VGG16), or null. */
  readonly torchvision: string | null;
  /** Caffe layer name and blob index (0 weight, 1 bias) of the py-faster-rcnn prototxts. */
  readonly caffe: string;
  readonly shape: readonly number[];
  /** Split weights: the rows (axis 0) of each part, in `params` order (sum = shape[0]). */
  readonly partRows?: readonly number[];
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
    params: [`${s.name}.weight`],
    torchvision: s.torchvision !== undefined ? `${s.torchvision}.weight` : null,
    caffe: `${s.caffe}[0]`,
    shape: [s.cout, s.cin, s.k, s.k],
  });
  map?.add({
    params: [`${s.name}.bias`],
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
 * A fully connected layer y = x·Wᵀ + b (torch.nn.Linear layout, weight [out, in]). A weight larger than
 * one storage binding under the WebGPU DEFAULT limits (VGG16 fc6: 4096×25088 f32 = 411 MB; ZF fc6:
 * 151 MB) is declared as row blocks `${name}.weight.part{i}` ([out/P, in] each), multiplied separately
 * and concatenated along the features. The split uses the default limits (not the device's) so that
 * parameter names do not depend on the device; the ParamMap records how to cut an imported weight.
 */
export function linearLayer(g: GraphBuilder, x: Tensor, s: LinearSpec, map?: ParamMap): Tensor {
  const trainable = s.trainable ?? true;
  const max = Math.min(WEBGPU_DEFAULT_LIMITS.maxStorageBufferBindingSize, WEBGPU_DEFAULT_LIMITS.maxBufferSize);
  const parts = Math.ceil((s.inFeatures * s.outFeatures * 4) / max);
  const bias = g.param(`${s.name}.bias`, [s.outFeatures], init.zeros(), { trainable });
  const tv = s.torchvision;
  const record = (weightParams: string[], partRows?: number[]) => {
    map?.add({
      params: weightParams,
      torchvision: tv !== undefined ? `${tv}.weight` : null,
      caffe: `${s.caffe}[0]`,
      shape: [s.outFeatures, s.inFeatures],
      ...(partRows ? { partRows } : {}),
    });
    map?.add({
      params: [`${s.name}.bias`],
      torchvision: tv !== undefined ? `${tv}.bias` : null,
      caffe: `${s.caffe}[1]`,
      shape: [s.outFeatures],
    });
  };
  if (parts <= 1) {
    const w = g.param(`${s.name}.weight`, [s.outFeatures, s.inFeatures], s.weightInit, { trainable });
    record([`${s.name}.weight`]);
    return linear(x, w, bias);
  }
  const rows = Math.ceil(s.outFeatures / parts);
  const names: string[] = [];
  const partRows: number[] = [];
  const ys: Tensor[] = [];
  for (let i = 0; i * rows < s.outFeatures; i++) {
    const r = Math.min(rows, s.outFeatures - i * rows);
    const name = `${s.name}.weight.part${i}`;
    names.push(name);
    partRows.push(r);
    // Fan-in based initializers see [r, in]: same fan_in as the whole weight (xavier's fan_out differs).
    const w = g.param(name, [r, s.inFeatures], s.weightInit, { trainable });
    ys.push(x.matmul(w, { transB: true }));
  }
  record(names, partRows);
  return g.concat(ys, 1).add(bias);
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
  map?.add({ params: [`${s.name}.weight`], torchvision: null, caffe: `${s.caffe}[0]`, shape: [...weight.shape] });
  map?.add({ params: [`${s.name}.bias`], torchvision: null, caffe: `${s.caffe}[1]`, shape: [...bias.shape] });
  return { weight, bias };
}
