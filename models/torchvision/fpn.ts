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
import { conv2d } from './layers.js';

export interface FpnOptions {
  /** Parameter prefix (`backbone.fpn`). */
  readonly prefix: string;
  readonly inChannels: readonly number[];
  readonly outChannels: number;
  /** LastLevelMaxPool (the detection models' extra block). Default true. */
  readonly maxPool?: boolean;
}

/** The pyramid, finest first: one map per input level, then `pool` when asked. */
export function featurePyramid(
  features: readonly Tensor[],
  o: FpnOptions,
): { readonly maps: readonly Tensor[]; readonly names: readonly string[] } {
  if (features.length !== o.inChannels.length)
    throw new RangeError(`FPN: ${features.length} feature maps for ${o.inChannels.length} input widths`);
  const inner = (i: number) =>
    conv2d(features[i] as Tensor, `${o.prefix}.inner_blocks.${i}.0`, o.inChannels[i] as number, o.outChannels, 1, {
      bias: true,
    });
  const layer = (t: Tensor, i: number) =>
    conv2d(t, `${o.prefix}.layer_blocks.${i}.0`, o.outChannels, o.outChannels, 3, { padding: 1, bias: true });
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
