/**
 * torchvision's ResNet-50 body (torchvision/models/resnet.py, 0.14) in the DSL, with its module
 * names: `conv1`, `bn1`, `layer1` … `layer4` of Bottleneck blocks (`conv1` 1×1, `conv2` 3×3 carrying
 * the stride, `conv3` 1×1 to 4× the width, `downsample.0`/`.1` on the identity where the shape
 * changes), no conv biases, batch norm after every conv (models/torchvision/layers.ts). Returns the
 * outputs of layer1 … layer4 (strides 4, 8, 16, 32), what torchvision's IntermediateLayerGetter
 * returns for the FPN.
 */
import type { Tensor } from '../../compiler/tensor.js';
import { batchNormAffine, conv2d } from './layers.js';

export interface ResNetOptions {
  /** Parameter prefix (`backbone.body` in the detection models). */
  readonly prefix: string;
  /**
   * torchvision's `trainable_backbone_layers` (0–5): of layer4, layer3, layer2, layer1 and the stem
   * (conv1, bn1), the last this many are trained; the rest are frozen. Default 5 (all).
   */
  readonly trainableLayers?: number;
  /** FrozenBatchNorm2d (pretrained detection models, the default) or nn.BatchNorm2d in eval mode. */
  readonly norm?: 'frozen' | 'batchnorm';
}

/** Blocks per stage and widths of ResNet-50. */
const RESNET50 = { blocks: [3, 4, 6, 3], widths: [64, 128, 256, 512] } as const;
const EXPANSION = 4;
const STAGES = ['layer1', 'layer2', 'layer3', 'layer4'] as const;

/** torchvision's layers_to_train for `trainable_backbone_layers` = n. */
export function resnetTrainableStages(n: number): Set<string> {
  if (!Number.isInteger(n) || n < 0 || n > 5)
    throw new RangeError(`trainable_backbone_layers must be an integer in 0…5, got ${n}`);
  return new Set(['layer4', 'layer3', 'layer2', 'layer1', 'conv1'].slice(0, n));
}

export function resnet50Body(x: Tensor, opts: ResNetOptions): { readonly features: readonly Tensor[] } {
  const trainable = resnetTrainableStages(opts.trainableLayers ?? 5);
  const bnTrainable = opts.norm === 'batchnorm';
  const p = opts.prefix;
  const bn = (t: Tensor, name: string, C: number, train: boolean) =>
    batchNormAffine(t, `${p}.${name}`, C, 1e-5, bnTrainable && train);
  const stem = trainable.has('conv1');
  let h = conv2d(x, `${p}.conv1`, 3, 64, 7, { stride: 2, padding: 3, trainable: stem });
  h = bn(h, 'bn1', 64, stem).relu();
  h = h.maxPool2d({ kernel: 3, stride: 2, padding: 1 });
  let cin = 64;
  const features: Tensor[] = [];
  STAGES.forEach((stage, s) => {
    const width = RESNET50.widths[s] as number;
    const cout = width * EXPANSION;
    const train = trainable.has(stage);
    for (let b = 0; b < (RESNET50.blocks[s] as number); b++) {
      const name = `${stage}.${b}`;
      const stride = b === 0 && s > 0 ? 2 : 1;
      const c = (t: Tensor, conv: string, ci: number, co: number, k: number, st = 1) =>
        conv2d(t, `${p}.${name}.${conv}`, ci, co, k, { stride: st, padding: (k - 1) / 2, trainable: train });
      let y = bn(c(h, 'conv1', cin, width, 1), `${name}.bn1`, width, train).relu();
      y = bn(c(y, 'conv2', width, width, 3, stride), `${name}.bn2`, width, train).relu();
      y = bn(c(y, 'conv3', width, cout, 1), `${name}.bn3`, cout, train);
      const identity =
        b === 0 ? bn(c(h, 'downsample.0', cin, cout, 1, stride), `${name}.downsample.1`, cout, train) : h;
      h = y.add(identity).relu();
      cin = cout;
    }
    features.push(h);
  });
  return { features };
}
