/**
 * Building blocks of the Faster R-CNN models: conv + bias + ReLU, conv/pool blocks with BAND SPLITTING,
 * and fully connected layers whose weight is split into parts that each fit one storage binding.
 *
 * Band splitting (why: WebGPU's default maxStorageBufferBindingSize is 128 MiB, and VGG16's conv1_1 on a
 * 600×1000 canvas makes a 64×600×1000 f32 tensor = 153.6 MB, which no kernel may bind). A block is
 *   stride-1 "same" convs (odd k, padding (k−1)/2) + ReLU, then a max pool with kernel = stride, no padding
 * (floor or Caffe ceil mode). Its pooled output rows [0, OH) are cut into K bands [P0, P1); band i
 *   - slices the block input rows [a, b) = [max(0, s·P0 − halo), min(H, s·P1 + halo)), where
 *     halo = Σ (k−1)/2 over the convs rounded UP to a multiple of the pool stride s,
 *   - runs the convs (with their zero padding) and the pool on that slice,
 *   - keeps the pooled rows [(s·P0 − a)/s, (s·P0 − a)/s + P1 − P0) (the rows the halo made wrong are dropped),
 * and the bands are concatenated along H. Every kept pooled row sees exactly the conv values of the
 * unbanded network: a conv row ≥ halo rows away from a band edge that is not an image edge is exact,
 * the windows stay aligned because a ≡ 0 (mod s), and the last band ends at the image's last row, so
 * its ceil-mode partial window is the global one. Each op is the same per-pixel computation as without
 * bands (same summation order), so banded and unbanded outputs agree to the last bit in float64 and in
 * practice on the GPU. Autodiff goes through slice and concat (their gradients are slice_grad / slice).
 * K is the smallest count for which the largest per-band tensor (max channels × band rows × W × 4 bytes)
 * fits min(maxStorageBufferBindingSize, maxBufferSize); K = 1 (no slicing at all) when the whole block
 * fits. A caller may force K (tests do).
 */
import { WgflowError } from '../../compiler/errors.js';
import { type DeviceLimits, WEBGPU_DEFAULT_LIMITS } from '../../compiler/limits.js';
import { type GraphBuilder, type Init, init, type Tensor } from '../../compiler/tensor.js';
import { linear } from '../../ops/matmul.js';
import { poolOutSize } from '../../ops/pool.js';

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

export interface BandOptions {
  readonly limits: DeviceLimits;
  /** Force the band count (≥ 1); default: the smallest count whose tensors fit the binding limit. */
  readonly bands?: number;
}

export function maxBindingBytes(limits: DeviceLimits): number {
  return Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
}

export interface BandPlan {
  /** [P0, P1) pooled rows and [a, b) input rows per band. */
  readonly bands: { readonly p0: number; readonly p1: number; readonly a: number; readonly b: number }[];
  readonly halo: number;
  readonly pooledHeight: number;
}

/** The band plan of a conv/pool block for input height H (see the file comment). */
export function planBands(
  H: number,
  W: number,
  convs: readonly ConvSpec[],
  pool: PoolSpec,
  opts: BandOptions,
): BandPlan {
  const s = pool.size;
  const OH = poolOutSize(H, s, s, 0, pool.ceilMode);
  const rawHalo = convs.reduce((n, c) => n + (c.k - 1) / 2, 0);
  const halo = Math.ceil(rawHalo / s) * s;
  const maxC = Math.max(...convs.map((c) => Math.max(c.cin, c.cout)));
  const make = (K: number): BandPlan['bands'] => {
    const out: BandPlan['bands'][number][] = [];
    for (let i = 0; i < K; i++) {
      const p0 = Math.floor((i * OH) / K);
      const p1 = Math.floor(((i + 1) * OH) / K);
      if (K === 1) {
        out.push({ p0: 0, p1: OH, a: 0, b: H });
        continue;
      }
      out.push({ p0, p1, a: Math.max(0, s * p0 - halo), b: Math.min(H, s * p1 + halo) });
    }
    return out;
  };
  const fits = (bands: BandPlan['bands']) =>
    bands.every((bd) => maxC * (bd.b - bd.a) * W * 4 <= maxBindingBytes(opts.limits));
  if (opts.bands !== undefined) {
    if (!Number.isInteger(opts.bands) || opts.bands < 1 || opts.bands > OH) {
      throw new WgflowError(`band splitting: bands = ${opts.bands} must be an integer in [1, ${OH}] (pooled rows)`);
    }
    return { bands: make(opts.bands), halo, pooledHeight: OH };
  }
  for (let K = 1; K <= OH; K++) {
    const b = make(K);
    if (fits(b)) return { bands: b, halo, pooledHeight: OH };
  }
  throw new WgflowError(
    `band splitting: even one pooled row per band of a ${maxC}-channel block of width ${W} exceeds the binding limit`,
  );
}

/**
 * A block of stride-1 same convs (+ ReLU) and a pool, band-split when its tensors would not fit one
 * storage binding (or when `opts.bands` forces it). x: [1, C, H, W].
 */
export function convPoolBlock(x: Tensor, convs: readonly ConvLayer[], pool: PoolSpec, opts: BandOptions): Tensor {
  const [N, , H, W] = x.shape as [number, number, number, number];
  for (const c of convs) {
    if (
      (c.spec.stride ?? 1) !== 1 ||
      c.spec.k % 2 !== 1 ||
      (c.spec.padding ?? (c.spec.k - 1) / 2) !== (c.spec.k - 1) / 2
    )
      throw new WgflowError(`convPoolBlock: ${c.spec.name} must be a stride-1 'same' conv with an odd kernel`);
  }
  const run = (t: Tensor): Tensor => {
    let h = t;
    for (const c of convs) h = convRelu(h, c);
    return h.maxPool2d({ kernel: pool.size, stride: pool.size, ceilMode: pool.ceilMode });
  };
  const plan = planBands(
    H,
    W,
    convs.map((c) => c.spec),
    pool,
    opts,
  );
  if (plan.bands.length === 1) return run(x);
  const C = x.shape[1] as number;
  const parts = plan.bands.map((bd) => {
    const band = x.slice([0, 0, bd.a, 0], [N, C, bd.b, W]);
    const y = run(band);
    const off = (pool.size * bd.p0 - bd.a) / pool.size;
    const Cy = y.shape[1] as number;
    const Wy = y.shape[3] as number;
    return y.slice([0, 0, off, 0], [N, Cy, off + bd.p1 - bd.p0, Wy]);
  });
  return x.builder.concat(parts, 2);
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
  const max = maxBindingBytes(WEBGPU_DEFAULT_LIMITS);
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
