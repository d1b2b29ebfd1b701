/**
 * torchvision's FeaturePyramidNetwork (torchvision/ops/feature_pyramid_network.py, 0.14) with
 * LastLevelMaxPool, in the DSL with its module names: `inner_blocks.i.0` (1×1 conv with bias, to the
 * FPN width) and `layer_blocks.i.0` (3×3 conv with bias) per level; the top-down path adds
 * `F.interpolate(last_inner, size=lateral's size, mode='nearest')` to each lateral; `pool` is
 * F.max_pool2d(P_last, 1, 2, 0). Older checkpoints name the convs `inner_blocks.i` (without `.0`):
 * the state-dict mapping accepts both, as torchvision's own _load_from_state_dict does.
 */
import type { Dim } from '../../compiler/dims.js';
import type { Tensor } from '../../compiler/tensor.js';
import { upsampleNearest } from '../../ops/upsample.js';
import { batchNorm2d, conv2d } from './layers.js';

export interface FpnOptions {
  /** Parameter prefix (`backbone.fpn`). */
  readonly prefix: string;
  readonly inChannels: readonly number[];
  readonly outChannels: number;
  /** LastLevelMaxPool (the detection models' extra block). Default true. */
  readonly maxPool?: boolean;
  /**
   * Batch norm after every conv (`fasterrcnn_resnet50_fpn_v2`: Conv2dNormActivation with BatchNorm2d,
   * convs `<block>.i.0` without bias, norm `<block>.i.1`). Default false (convs with bias).
   */
  readonly norm?: boolean;
}

/** The pyramid, finest first: one map per input level, then `pool` when asked. */
export function featurePyramid(
  features: readonly Tensor[],
  o: FpnOptions,
): { readonly maps: readonly Tensor[]; readonly names: readonly string[] } {
  if (features.length !== o.inChannels.length)
    throw new RangeError(`FPN: ${features.length} feature maps for ${o.inChannels.length} input widths`);
  const block = (t: Tensor, name: string, cin: number, k: number) => {
    const y = conv2d(t, `${name}.0`, cin, o.outChannels, k, { padding: (k - 1) / 2, bias: !o.norm });
    return o.norm ? batchNorm2d(y, `${name}.1`, o.outChannels) : y;
  };
  const inner = (i: number) =>
    block(features[i] as Tensor, `${o.prefix}.inner_blocks.${i}`, o.inChannels[i] as number, 1);
  const layer = (t: Tensor, i: number) => block(t, `${o.prefix}.layer_blocks.${i}`, o.outChannels, 3);
  const last = features.length - 1;
  let lastInner = inner(last);
  const results: Tensor[] = [layer(lastInner, last)];
  for (let i = last - 1; i >= 0; i--) {
    const lateral = inner(i);
    const size = lateral.dims.slice(2) as [Dim, Dim];
    lastInner = lateral.add(upsampleNearest(lastInner, size));
    results.unshift(layer(lastInner, i));
  }
  const names = results.map((_, i) => String(i));
  if (o.maxPool ?? true) {
    results.push((results[results.length - 1] as Tensor).maxPool2d({ kernel: 1, stride: 2 }));
    names.push('pool');
  }
  return { maps: results, names };
}
