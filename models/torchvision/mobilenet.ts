/**
 * torchvision's MobileNetV3-Large `features` (torchvision/models/mobilenetv3.py, 0.14, width 1.0, not
 * dilated) in the DSL with its module names: `features.0` (3×3/2 conv + norm + Hardswish), fifteen
 * InvertedResidual blocks `features.1` … `features.15` (`block.i`: 1×1 expansion when the width
 * changes, k×k depthwise conv carrying the stride, SqueezeExcitation `fc1`/`fc2` with ReLU and
 * Hardsigmoid where configured, 1×1 projection without activation; the input added back when the
 * stride is 1 and the width unchanged), and `features.16` (1×1 conv to 960 + Hardswish).
 *
 * Returns the maps torchvision's `_mobilenet_extractor(fpn=True)` hands to the FPN: the outputs of
 * features.13 (160 channels) and features.16 (960), both at stride 32.
 */
import type { Tensor } from '../../compiler/tensor.js';
import { batchNormAffine, conv2d } from './layers.js';

/** One InvertedResidual block: input, kernel, expanded and output widths, SE, activation, stride. */
interface BlockConfig {
  readonly cin: number;
  readonly k: number;
  readonly expanded: number;
  readonly cout: number;
  readonly se: boolean;
  readonly act: 'RE' | 'HS';
  readonly stride: number;
}

const b = (cin: number, k: number, expanded: number, cout: number, se: boolean, act: 'RE' | 'HS', stride: number) =>
  ({ cin, k, expanded, cout, se, act, stride }) as const;

/** mobilenet_v3_large's inverted_residual_setting (reduce_divider 1, dilation 1). */
const LARGE: readonly BlockConfig[] = [
  b(16, 3, 16, 16, false, 'RE', 1),
  b(16, 3, 64, 24, false, 'RE', 2),
  b(24, 3, 72, 24, false, 'RE', 1),
  b(24, 5, 72, 40, true, 'RE', 2),
  b(40, 5, 120, 40, true, 'RE', 1),
  b(40, 5, 120, 40, true, 'RE', 1),
  b(40, 3, 240, 80, false, 'HS', 2),
  b(80, 3, 200, 80, false, 'HS', 1),
  b(80, 3, 184, 80, false, 'HS', 1),
  b(80, 3, 184, 80, false, 'HS', 1),
  b(80, 3, 480, 112, true, 'HS', 1),
  b(112, 3, 672, 112, true, 'HS', 1),
  b(112, 5, 672, 160, true, 'HS', 2),
  b(160, 5, 960, 160, true, 'HS', 1),
  b(160, 5, 960, 160, true, 'HS', 1),
];
const LAST_CONV = 960;

/** torchvision's _make_divisible(v, 8). */
function makeDivisible(v: number, divisor = 8): number {
  const r = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return r < 0.9 * v ? r + divisor : r;
}

/** features indices of the stages (`_is_cn`: strided blocks), with the first and the last. */
export const MOBILENET_STAGE_INDICES = [0, ...LARGE.flatMap((c, i) => (c.stride > 1 ? [i + 1] : [])), LARGE.length + 1];

/** The block whose output is the FPN's first input (the last stage's first block, features.13). */
const RETURNED_BLOCK = MOBILENET_STAGE_INDICES[MOBILENET_STAGE_INDICES.length - 2] as number;

export interface MobileNetOptions {
  /** Parameter prefix (`backbone.body` in the detection models). */
  readonly prefix: string;
  /**
   * torchvision's `trainable_backbone_layers` (0–6): features before
   * MOBILENET_STAGE_INDICES[6 − n] are frozen (all of them for 0). Default 6 (all).
   */
  readonly trainableLayers?: number;
  /** FrozenBatchNorm2d (pretrained detection models, the default) or nn.BatchNorm2d in eval mode. */
  readonly norm?: 'frozen' | 'batchnorm';
}

/** The first features index that trains for `trainable_backbone_layers` = n. */
export function mobilenetFreezeBefore(n: number): number {
  const stages = MOBILENET_STAGE_INDICES.length;
  if (!Number.isInteger(n) || n < 0 || n > stages)
    throw new RangeError(`trainable_backbone_layers must be an integer in 0…${stages}, got ${n}`);
  return n === 0 ? LARGE.length + 2 : (MOBILENET_STAGE_INDICES[stages - n] as number);
}

export function mobilenetV3LargeFeatures(x: Tensor, opts: MobileNetOptions): { readonly features: readonly Tensor[] } {
  const freezeBefore = mobilenetFreezeBefore(opts.trainableLayers ?? MOBILENET_STAGE_INDICES.length);
  const p = opts.prefix;
  const bnTrainable = opts.norm === 'batchnorm';
  /** Conv2dNormActivation: conv (no bias) `<name>.0`, norm `<name>.1`, then the activation. */
  const cna = (
    t: Tensor,
    name: string,
    cin: number,
    cout: number,
    k: number,
    train: boolean,
    act: 'RE' | 'HS' | null,
    stride = 1,
    groups = 1,
  ) => {
    const y = batchNormAffine(
      conv2d(t, `${name}.0`, cin, cout, k, { stride, padding: (k - 1) / 2, groups, trainable: train }),
      `${name}.1`,
      cout,
      1e-5,
      bnTrainable && train,
    );
    return act === 'HS' ? y.hardswish() : act === 'RE' ? y.relu() : y;
  };
  let h = cna(x, `${p}.0`, 3, 16, 3, freezeBefore <= 0, 'HS', 2);
  const features: Tensor[] = [];
  LARGE.forEach((c, i) => {
    const index = i + 1;
    const train = index >= freezeBefore;
    const name = (j: number) => `${p}.${index}.block.${j}`;
    let j = 0;
    let y = h;
    if (c.expanded !== c.cin) y = cna(y, name(j++), c.cin, c.expanded, 1, train, c.act);
    y = cna(y, name(j++), c.expanded, c.expanded, c.k, train, c.act, c.stride, c.expanded);
    if (c.se) {
      const squeeze = makeDivisible(Math.floor(c.expanded / 4));
      const se = name(j++);
      const s = conv2d(y.mean([2, 3], true), `${se}.fc1`, c.expanded, squeeze, 1, {
        bias: true,
        trainable: train,
      }).relu();
      const scale = conv2d(s, `${se}.fc2`, squeeze, c.expanded, 1, { bias: true, trainable: train }).hardsigmoid();
      y = y.mul(scale);
    }
    y = cna(y, name(j++), c.expanded, c.cout, 1, train, null);
    h = c.stride === 1 && c.cin === c.cout ? y.add(h) : y;
    if (index === RETURNED_BLOCK) features.push(h);
  });
  const last = LARGE.length + 1;
  features.push(cna(h, `${p}.${last}`, 160, LAST_CONV, 1, last >= freezeBefore, 'HS'));
  return { features };
}
