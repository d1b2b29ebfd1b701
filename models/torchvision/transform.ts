/**
 * torchvision's GeneralizedRCNNTransform at inference (torchvision/models/detection/transform.py,
 * 0.14, with torch 1.13's F.interpolate), on the host, in float32:
 * 1. normalize: (x − mean) / std per channel;
 * 2. resize (bilinear, align_corners = False): scale = min(min_size · (1 / short side),
 *    max_size · (1 / long side)) in float32 (torch's scalar / tensor is a reciprocal times the
 *    scalar, so 160 / 200 is 0.79999995, not 0.8), output size ⌊side · scale⌋ in float64, then each
 *    output pixel from the source index scale' · (o + 0.5) − 0.5 (scale' = in / out, float32) and
 *    aten's clamped linear weights (height outer, width inner). The sizes are torchvision's exactly;
 *    the values agree with torch's to 1–3e-5 relative (normwise) but not bit for bit (a few percent
 *    are bit-equal): some step of aten's resize rounds differently, which we did not pin down;
 * 3. batch: zero padding at the bottom and right to a multiple of 32 (size_divisible).
 * The image is [3, H, W] float32 in [0, 1] (RGB), as torchvision's models take it. This is host
 * (CPU) preprocessing, like the data loaders' decode and resize; the model runs on the GPU.
 */

export interface TvTransformOptions {
  readonly minSize: number;
  readonly maxSize: number;
  /** ImageNet mean and std (torchvision's defaults for every detection model). */
  readonly mean?: readonly [number, number, number];
  readonly std?: readonly [number, number, number];
  /** size_divisible (32). */
  readonly divisible?: number;
}

export interface TvTransformed {
  /** [3, padH, padW] float32. */
  readonly data: Float32Array;
  /** The resized size (h, w), before padding: the image_sizes torchvision clips to. */
  readonly resized: readonly [number, number];
  readonly padded: readonly [number, number];
}

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

const f = Math.fround;

/** torchvision's output size of the resize for an H × W image. */
export function tvResizedSize(H: number, W: number, minSize: number, maxSize: number): [number, number] {
  const scale = Math.min(f(f(1 / Math.min(H, W)) * f(minSize)), f(f(1 / Math.max(H, W)) * f(maxSize)));
  return [Math.floor(H * scale), Math.floor(W * scale)];
}

/** aten's compute_indices_weights_linear for one axis: first source index, step to the second, weights. */
function axisWeights(
  inSize: number,
  outSize: number,
): { i0: Int32Array; step: Int32Array; w0: Float32Array; w1: Float32Array } {
  const scale = f(inSize / outSize);
  const i0 = new Int32Array(outSize);
  const step = new Int32Array(outSize);
  const w0 = new Float32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let real = f(f(scale * f(o + 0.5)) - 0.5);
    if (real < 0) real = 0;
    const idx = Math.min(Math.floor(real), inSize - 1);
    const lambda = Math.min(Math.max(f(real - idx), 0), 1);
    i0[o] = idx;
    step[o] = idx < inSize - 1 ? 1 : 0;
    w1[o] = lambda;
    w0[o] = f(1 - lambda);
  }
  return { i0, step, w0, w1 };
}

export function tvTransform(image: Float32Array, H: number, W: number, o: TvTransformOptions): TvTransformed {
  if (image.length !== 3 * H * W)
    throw new RangeError(`tvTransform: image has ${image.length} values, not 3 × ${H} × ${W}`);
  const mean = o.mean ?? IMAGENET_MEAN;
  const std = o.std ?? IMAGENET_STD;
  const norm = new Float32Array(image.length);
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c] as number);
    const s = f(std[c] as number);
    for (let i = c * H * W; i < (c + 1) * H * W; i++) norm[i] = f(f((image[i] as number) - m) / s);
  }
  const [h, w] = tvResizedSize(H, W, o.minSize, o.maxSize);
  const d = o.divisible ?? 32;
  const ph = Math.ceil(h / d) * d;
  const pw = Math.ceil(w / d) * d;
  const out = new Float32Array(3 * ph * pw);
  const ys = axisWeights(H, h);
  const xs = axisWeights(W, w);
  for (let c = 0; c < 3; c++) {
    const src = c * H * W;
    for (let y = 0; y < h; y++) {
      const r0 = src + (ys.i0[y] as number) * W;
      const r1 = r0 + (ys.step[y] as number) * W;
      const wy0 = ys.w0[y] as number;
      const wy1 = ys.w1[y] as number;
      const dst = (c * ph + y) * pw;
      for (let x = 0; x < w; x++) {
        const x0 = xs.i0[x] as number;
        const x1 = x0 + (xs.step[x] as number);
        const wx0 = xs.w0[x] as number;
        const wx1 = xs.w1[x] as number;
        const t0 = f(f(f(norm[r0 + x0] as number) * wx0) + f((norm[r0 + x1] as number) * wx1));
        const t1 = f(f(f(norm[r1 + x0] as number) * wx0) + f((norm[r1 + x1] as number) * wx1));
        out[dst + x] = f(f(t0 * wy0) + f(t1 * wy1));
      }
    }
  }
  return { data: out, resized: [h, w], padded: [ph, pw] };
}
