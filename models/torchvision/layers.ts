/**
 * Layers of torchvision's detection models, with torchvision's parameter names (so that state_dict
 * keys map one to one).
 *
 * Batch norm in inference form is a per-channel affine after the conv, computed as torchvision and
 * aten compute it: scale = weight · (1 / √(running_var + eps)), shift = bias − running_mean · scale,
 * y = x · scale + shift (torchvision.ops.FrozenBatchNorm2d.forward; aten's batch_norm_cpu_transform_input
 * for nn.BatchNorm2d in eval mode is the same arithmetic). The affine is elementwise, so the compiler
 * fuses it into the preceding conv's epilogue; the weights are not folded into the conv, so that
 * fine-tuning trains what torchvision trains (weight and bias of an nn.BatchNorm2d; nothing of a
 * FrozenBatchNorm2d). The running statistics are never trainable here: batch statistics (training-mode
 * BatchNorm2d) are not implemented.
 */
import { type GraphBuilder, type Init, init, type Tensor } from '../../compiler/tensor.js';

/** torchvision.ops.FrozenBatchNorm2d's and nn.BatchNorm2d's default eps. */
export const BN_EPS = 1e-5;

/**
 * Inference-form batch norm over NCHW `x` with C channels, parameters `<prefix>.weight`, `.bias`,
 * `.running_mean`, `.running_var`. `trainable` makes weight and bias trainable (nn.BatchNorm2d, whose
 * statistics stay frozen: eval mode); false is FrozenBatchNorm2d.
 */
export function batchNormAffine(x: Tensor, prefix: string, C: number, eps: number, trainable: boolean): Tensor {
  const g = x.builder;
  const vec = (name: string, initial: Init, train: boolean) =>
    g.param(`${prefix}.${name}`, [C], initial, { trainable: train });
  const weight = vec('weight', init.constant(1), trainable);
  const bias = vec('bias', init.zeros(), trainable);
  const mean = vec('running_mean', init.zeros(), false);
  const variance = vec('running_var', init.constant(1), false);
  const scale = weight.mul(g.constant(1).div(variance.add(eps).sqrt()));
  const shift = bias.sub(mean.mul(scale));
  return x.mul(scale.reshape([1, C, 1, 1])).add(shift.reshape([1, C, 1, 1]));
}

/** torchvision.ops.FrozenBatchNorm2d (every parameter fixed). */
export function frozenBatchNorm2d(x: Tensor, prefix: string, C: number, eps = BN_EPS): Tensor {
  return batchNormAffine(x, prefix, C, eps, false);
}

/** nn.BatchNorm2d in eval mode (running statistics; weight and bias trainable). */
export function batchNorm2d(x: Tensor, prefix: string, C: number, eps = BN_EPS): Tensor {
  return batchNormAffine(x, prefix, C, eps, true);
}

export interface ConvOptions {
  readonly stride?: number;
  readonly padding?: number;
  readonly groups?: number;
  /** A bias parameter `<name>.bias` (torchvision's detection convs other than the backbone's). */
  readonly bias?: boolean;
  readonly trainable?: boolean;
}

/** The parameters of one nn.Conv2d, declared once (a head applied to every FPN level shares them). */
export interface ConvParams {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly cout: number;
  readonly groups: number;
}

/**
 * Declares nn.Conv2d `name`: `<name>.weight` [cout, cin / groups, k, k], and `<name>.bias` when asked.
 * The initializer (He, fan-in) only matters when nothing is loaded: torchvision's own init differs
 * (kaiming_normal_ fan-out for ResNet, normal(0.01) for the RPN head), which we do not copy.
 */
export function declareConv(
  g: GraphBuilder,
  name: string,
  cin: number,
  cout: number,
  k: number,
  o: ConvOptions = {},
): ConvParams {
  const groups = o.groups ?? 1;
  const trainable = o.trainable ?? true;
  const weight = g.param(`${name}.weight`, [cout, cin / groups, k, k], init.he(), { trainable });
  const bias = o.bias ? g.param(`${name}.bias`, [cout], init.zeros(), { trainable }) : null;
  return { weight, bias, cout, groups };
}

/** Applies declared conv parameters (stride and padding as nn.Conv2d's). */
export function applyConv(x: Tensor, p: ConvParams, o: { stride?: number; padding?: number } = {}): Tensor {
  const y = x.conv2d(p.weight, { stride: o.stride ?? 1, padding: o.padding ?? 0, groups: p.groups });
  return p.bias ? y.add(p.bias.reshape([1, p.cout, 1, 1])) : y;
}

/** nn.Conv2d named `name`, declared and applied once. */
export function conv2d(x: Tensor, name: string, cin: number, cout: number, k: number, o: ConvOptions = {}): Tensor {
  return applyConv(x, declareConv(x.builder, name, cin, cout, k, o), o);
}
