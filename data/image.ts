/**
 * Images for detection: decode (sharp) to interleaved RGB, resize by the py-faster-rcnn rule
 * (spec §5), horizontal flip of image and boxes, conversion to a normalized Float32 tensor.
 */
import { readFile } from 'node:fs/promises';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { DatasetError } from './errors.js';
import type { BoxConvention } from './types.js';

/** An 8-bit RGB image, interleaved (HWC): pixel (x, y) channel c is `data[(y * width + x) * 3 + c]`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Decodes a JPEG/PNG/… file (or bytes) to RGB. Grey images are expanded to 3 channels and alpha is
 * dropped. EXIF orientation is NOT applied (as PIL, torchvision and the VOC/COCO tooling read pixels).
 * A missing file or undecodable bytes (including a truncated JPEG) throw a {@link DatasetError}
 * naming the file.
 */
export async function decodeImage(source: string | Uint8Array, name?: string): Promise<RgbImage> {
  const file = name ?? (typeof source === 'string' ? source : '<buffer>');
  let bytes: Uint8Array;
  if (typeof source === 'string') {
    try {
      bytes = await readFile(source);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new DatasetError(
        code === 'ENOENT' ? 'missing-file' : 'corrupt-image',
        { file },
        code === 'ENOENT' ? 'image file not found' : `cannot read image (${(e as Error).message})`,
        { cause: e },
      );
    }
  } else bytes = source;
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(bytes, { failOn: 'warning' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DatasetError('corrupt-image', { file }, `cannot decode image: ${(e as Error).message}`, { cause: e });
  }
  const { width, height, channels } = out.info;
  const src = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  if (channels === 3) return { width, height, data: new Uint8Array(src) };
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, n = width * height; i < n; i++) {
    for (let c = 0; c < 3; c++) data[i * 3 + c] = src[i * channels + (channels >= 3 ? c : 0)]!;
  }
  return { width, height, data };
}

/** Width and height from the file header only (fast; does not detect a truncated body). */
export async function imageSize(path: string): Promise<{ width: number; height: number }> {
  let meta: Metadata;
  try {
    meta = await sharp(path).metadata();
  } catch (e) {
    const missing = /missing|no such file/i.test((e as Error).message);
    throw new DatasetError(
      missing ? 'missing-file' : 'corrupt-image',
      { file: path },
      missing ? 'image file not found' : `cannot read image header: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!meta.width || !meta.height) throw new DatasetError('corrupt-image', { file: path }, 'image has no size');
  return { width: meta.width, height: meta.height };
}

/** Encodes RGB to JPEG (4:4:4, no mozjpeg tricks) or PNG (a Buffer). Deterministic for a given sharp/libvips. */
export async function encodeImage(img: RgbImage, format: 'jpg' | 'png' = 'jpg', quality = 92): Promise<Uint8Array> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  return format === 'png'
    ? s.png({ compressionLevel: 6 }).toBuffer()
    : s.jpeg({ quality, chromaSubsampling: '4:4:4' }).toBuffer();
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
  const short = Math.min(height, width);
  const long = Math.max(height, width);
  let scale = s / short;
  if (rule.rule === 'torchvision') {
    if (long * scale > max) scale = max / long;
    return { scale, height: Math.floor(height * scale), width: Math.floor(width * scale) };
  }
  if (Math.round(scale * long) > max) scale = max / long;
  return { scale, height: Math.round(height * scale), width: Math.round(width * scale) };
}

/**
 * Bilinear resize with half-pixel centres and no antialiasing: src = (dst + 0.5)·(in/out) − 0.5,
 * clamped at the borders, as cv2 INTER_LINEAR and torch `interpolate(bilinear, align_corners=False)`.
 * Values are rounded to the nearest integer (cv2 uses fixed point, so results may differ by ±1).
 */
export function resizeBilinear(img: RgbImage, outHeight: number, outWidth: number): RgbImage {
  const { width: W, height: H, data } = img;
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

/** Resize with sharp/libvips (`kernel: 'linear'`); faster, but antialiased when shrinking, so it differs from cv2. */
export async function resizeSharp(img: RgbImage, outHeight: number, outWidth: number): Promise<RgbImage> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(outWidth, outHeight, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  return { width: outWidth, height: outHeight, data: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) };
}

/** Decodes `path` and resizes it by {@link resizeScale}; boxes are then multiplied by `scale`. */
export async function loadImageResized(
  path: string,
  rule: ResizeRule & { resampler?: 'bilinear' | 'sharp' } = {},
): Promise<{ image: RgbImage; scale: number; origWidth: number; origHeight: number }> {
  const img = await decodeImage(path);
  const r = resizeScale(img.height, img.width, rule);
  const image =
    r.height === img.height && r.width === img.width
      ? img
      : rule.resampler === 'sharp'
        ? await resizeSharp(img, r.height, r.width)
        : resizeBilinear(img, r.height, r.width);
  return { image, scale: r.scale, origWidth: img.width, origHeight: img.height };
}

/** Multiplies every coordinate by `scale` (or by `sx`, `sy` per axis, as torchvision's per-axis ratios). */
export function scaleBoxes(boxes: Float32Array, sx: number, sy = sx): Float32Array {
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 4) {
    out[i] = boxes[i]! * sx;
    out[i + 1] = boxes[i + 1]! * sy;
    out[i + 2] = boxes[i + 2]! * sx;
    out[i + 3] = boxes[i + 3]! * sy;
  }
  return out;
}

// ---------------------------------------------------------------- flip

/** Mirrors the image left-right. */
export function flipImageHorizontal(img: RgbImage): RgbImage {
  const { width: W, height: H, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < H; y++) {
    const row = y * W * 3;
    for (let x = 0; x < W; x++) {
      const s = row + x * 3;
      const d = row + (W - 1 - x) * 3;
      out[d] = data[s]!;
      out[d + 1] = data[s + 1]!;
      out[d + 2] = data[s + 2]!;
    }
  }
  return { width: W, height: H, data: out };
}

/**
 * Mirrors N×4 `x1, y1, x2, y2` boxes of an image `width` wide. `'inclusive'` (default, py-faster-rcnn
 * `append_flipped_images`): x1' = W − x2 − 1, x2' = W − x1 − 1. `'continuous'` (torchvision):
 * x1' = W − x2, x2' = W − x1. Both are involutions, and x2' ≥ x1' whenever x2 ≥ x1.
 */
export function flipBoxesHorizontal(
  boxes: Float32Array,
  width: number,
  convention: BoxConvention = 'inclusive',
): Float32Array {
  const k = convention === 'inclusive' ? width - 1 : width;
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 4) {
    out[i] = k - boxes[i + 2]!;
    out[i + 1] = boxes[i + 1]!;
    out[i + 2] = k - boxes[i]!;
    out[i + 3] = boxes[i + 3]!;
  }
  return out;
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
