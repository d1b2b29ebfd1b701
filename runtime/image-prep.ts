/**
 * Preprocessing of an image for a compiled detector, shared by Node and the browser (no file, no
 * decoder, no `node:` module): py-faster-rcnn's / torchvision's resize rule (spec §5), bilinear resize
 * as cv2 INTER_LINEAR, per-channel normalization to a float CHW tensor, and placement in the top-left
 * corner of the compiled canvas with `im_info`. data/image.ts (decoding, flips) and train/feed.ts
 * re-export these; the browser bundle exports them for pages (examples/web).
 */
import { WgflowError } from './errors.js';

/** An 8-bit RGB image, interleaved (HWC): pixel (x, y) channel c is `data[(y * width + x) * 3 + c]`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

// ---------------------------------------------------------------- resize

export interface ResizeRule {
  /** Target length of the shorter side (PFR TRAIN/TEST.SCALES: 600; torchvision min_size: 800). */
  shortSide?: number;
  /** Cap on the longer side (PFR MAX_SIZE: 1000; torchvision max_size: 1333). */
  maxSize?: number;
  /**
   * `'pfr'` (default): scale = s/short; if round(scale·long) > max then scale = max/long; output size
   * round(dim·scale) as cv2.resize(fx=fy=scale) computes it. `'torchvision'`: if long·scale > max the
   * same cap; output size floor(dim·scale).
   */
  rule?: 'pfr' | 'torchvision';
}

/** The scale and output size for an image of `height × width` (spec §5). */
export function resizeScale(
  height: number,
  width: number,
  rule: ResizeRule = {},
): { scale: number; height: number; width: number } {
  const s = rule.shortSide ?? 600;
  const max = rule.maxSize ?? 1000;
  const positive = (v: number) => Number.isFinite(v) && v > 0;
  if (!(positive(height) && positive(width)))
    throw new WgflowError(`resizeScale: image size ${width}×${height}: width and height must be finite and > 0`);
  if (!(positive(s) && positive(max)))
    throw new WgflowError(`resizeScale: shortSide ${s} and maxSize ${max} must be finite and > 0`);
  const short = Math.min(height, width);
  const long = Math.max(height, width);
  let scale = s / short;
  // A side never shrinks below one pixel (a very thin strip would otherwise become 1000×0).
  if (rule.rule === 'torchvision') {
    if (long * scale > max) scale = max / long;
    return {
      scale,
      height: Math.max(1, Math.floor(height * scale)),
      width: Math.max(1, Math.floor(width * scale)),
    };
  }
  if (Math.round(scale * long) > max) scale = max / long;
  return { scale, height: Math.max(1, Math.round(height * scale)), width: Math.max(1, Math.round(width * scale)) };
}

/**
 * Bilinear resize with half-pixel centres and no antialiasing: src = (dst + 0.5)·(in/out) − 0.5,
 * clamped at the borders, as cv2 INTER_LINEAR and torch `interpolate(bilinear, align_corners=False)`.
 * Values are rounded to the nearest integer (cv2 uses fixed point, so results may differ by ±1).
 */
export function resizeBilinear(img: RgbImage, outHeight: number, outWidth: number): RgbImage {
  const { width: W, height: H, data } = img;
  const ok = (v: number) => Number.isInteger(v) && v > 0;
  if (!(ok(outHeight) && ok(outWidth)))
    throw new WgflowError(`resizeBilinear: output size ${outWidth}×${outHeight} must be positive integers`);
  if (!(ok(W) && ok(H)) || data.length !== W * H * 3)
    throw new WgflowError(`resizeBilinear: the input is ${W}×${H} with ${data.length} bytes; RGB needs ${3 * W * H}`);
  const out = new Uint8Array(outWidth * outHeight * 3);
  const sx = W / outWidth;
  const sy = H / outHeight;
  const x0s = new Int32Array(outWidth);
  const x1s = new Int32Array(outWidth);
  const fxs = new Float64Array(outWidth);
  for (let x = 0; x < outWidth; x++) {
    let fx = (x + 0.5) * sx - 0.5;
    if (fx < 0) fx = 0;
    let x0 = Math.floor(fx);
    if (x0 > W - 1) x0 = W - 1;
    x0s[x] = x0;
    x1s[x] = Math.min(x0 + 1, W - 1);
    fxs[x] = Math.min(fx - x0, 1);
  }
  for (let y = 0; y < outHeight; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    let y0 = Math.floor(fy);
    if (y0 > H - 1) y0 = H - 1;
    const y1 = Math.min(y0 + 1, H - 1);
    const wy = Math.min(fy - y0, 1);
    const r0 = y0 * W * 3;
    const r1 = y1 * W * 3;
    for (let x = 0; x < outWidth; x++) {
      const a = x0s[x]! * 3;
      const b = x1s[x]! * 3;
      const wx = fxs[x]!;
      const o = (y * outWidth + x) * 3;
      for (let c = 0; c < 3; c++) {
        const top = data[r0 + a + c]! * (1 - wx) + data[r0 + b + c]! * wx;
        const bot = data[r1 + a + c]! * (1 - wx) + data[r1 + b + c]! * wx;
        out[o + c] = Math.round(top * (1 - wy) + bot * wy);
      }
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

// ---------------------------------------------------------------- to float

export interface ToFloatOptions {
  /** `'chw'` (default, a 3×H×W tensor) or `'hwc'`. */
  layout?: 'chw' | 'hwc';
  /** Channel order of the output (default `'rgb'`; py-faster-rcnn uses `'bgr'`). */
  order?: 'rgb' | 'bgr';
  /** Multiplies raw 0–255 values first (1 for PFR, 1/255 for torchvision). Default 1/255. */
  scale?: number;
  /** Subtracted after `scale`, in output channel order. PFR: [102.9801, 115.9465, 122.7717] (BGR). */
  mean?: readonly [number, number, number];
  /** Divides after the mean. torchvision: [0.229, 0.224, 0.225]. */
  std?: readonly [number, number, number];
}

export const PFR_PIXEL_MEANS_BGR = [102.9801, 115.9465, 122.7717] as const;
export const IMAGENET_MEAN_RGB = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD_RGB = [0.229, 0.224, 0.225] as const;

/** `(v·scale − mean) / std` per channel, as Float32 in CHW (default) or HWC. */
export function toFloat32(img: RgbImage, opts: ToFloatOptions = {}): Float32Array {
  const { width: W, height: H, data } = img;
  const n = W * H;
  const scale = opts.scale ?? 1 / 255;
  const mean = opts.mean ?? [0, 0, 0];
  const std = opts.std ?? [1, 1, 1];
  const bgr = opts.order === 'bgr';
  const hwc = opts.layout === 'hwc';
  const out = new Float32Array(n * 3);
  for (let c = 0; c < 3; c++) {
    const src = bgr ? 2 - c : c;
    const m = mean[c]!;
    const inv = 1 / std[c]!;
    for (let i = 0; i < n; i++) {
      const v = (data[i * 3 + src]! * scale - m) * inv;
      out[hwc ? i * 3 + c : c * n + i] = v;
    }
  }
  return out;
}

// ---------------------------------------------------------------- canvas

export interface CanvasSpec {
  /** [H, W] of the compiled program's image input. */
  readonly canvas: readonly [number, number];
  readonly resize: ResizeRule;
  readonly pixel: ToFloatOptions;
}

export interface PreparedImage {
  /** f32 [1, 3, H, W]: the resized image top-left, zeros elsewhere (after normalization). */
  readonly data: Float32Array;
  /** (validH, validW, scale). */
  readonly imInfo: [number, number, number];
  readonly scale: number;
  readonly origWidth: number;
  readonly origHeight: number;
}

/** The scale that resizes an image by the rule and still fits the canvas. */
export function canvasScale(height: number, width: number, spec: CanvasSpec): { scale: number; h: number; w: number } {
  const [H, W] = spec.canvas;
  let { scale, height: h, width: w } = resizeScale(height, width, spec.resize);
  if (h > H || w > W) {
    scale = Math.min(H / height, W / width);
    h = Math.min(H, Math.round(height * scale));
    w = Math.min(W, Math.round(width * scale));
  }
  return { scale, h, w };
}

export function prepareImage(img: RgbImage, spec: CanvasSpec): PreparedImage {
  const [H, W] = spec.canvas;
  const { scale, h, w } = canvasScale(img.height, img.width, spec);
  const resized = h === img.height && w === img.width ? img : resizeBilinear(img, h, w);
  const chw = toFloat32(resized, spec.pixel);
  let data: Float32Array;
  if (h === H && w === W) data = chw;
  else {
    data = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++) data.set(chw.subarray((c * h + y) * w, (c * h + y + 1) * w), (c * H + y) * W);
  }
  return { data, imInfo: [h, w, scale], scale, origWidth: img.width, origHeight: img.height };
}
