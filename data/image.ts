/**
 * Images for detection: decode (sharp) to interleaved RGB, resize by the py-faster-rcnn rule
 * (spec §5), horizontal flip of image and boxes, conversion to a normalized Float32 tensor.
 */
import { open } from 'node:fs/promises';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { WgflowError } from '../runtime/errors.js';
import { INPUT_LIMITS } from '../runtime/input-file.js';
import { DatasetError } from './errors.js';
import { checkDatasetFile, readDatasetBytes } from './read.js';
import type { BoxConvention } from './types.js';

// The pure preprocessing (resize rule, bilinear resize, normalization) is the runtime's, shared with the
// browser build: runtime/image-prep.ts.
export * from '../runtime/image-prep.js';

import { type ResizeRule, type RgbImage, resizeBilinear, resizeScale } from '../runtime/image-prep.js';

/**
 * Limits on an image, checked from its header BEFORE any pixel is decoded or allocated (so a tiny file
 * that declares a huge size costs nothing). Each can be raised per call; see {@link IMAGE_LIMITS}.
 */
export interface ImageLimits {
  /** Largest encoded file, bytes (checked before reading). */
  readonly maxBytes?: number;
  /** Largest width × height. */
  readonly maxPixels?: number;
  /** Largest width or height. */
  readonly maxSide?: number;
  /**
   * Largest ratio of the longer side to the shorter. A detector scales the shorter side up and the
   * longer one down, so a 8000×1 strip would become 1000×0 (or, drawn enlarged, 2.4 million pixels
   * wide): such strips are refused, not decoded.
   */
  readonly maxAspect?: number;
}

/**
 * Default image limits: 256 MiB encoded, 2^26 = 67,108,864 pixels (8192×8192, 192 MiB as RGB),
 * 16,384 pixels a side, and an aspect ratio of at most 50:1. Raise them with the `limits` option of
 * {@link decodeImage}, {@link imageSize}, the loaders (`imageLimits`) or `toRgbImage`.
 */
export const IMAGE_LIMITS: Required<ImageLimits> = {
  maxBytes: INPUT_LIMITS.imageBytes,
  maxPixels: 2 ** 26,
  maxSide: 16_384,
  maxAspect: 50,
};

export interface DecodeImageOptions extends ImageLimits {
  /** The image's name in errors (default: the path, or '<buffer>'). */
  readonly name?: string;
}

/** The encoded formats decoded. Vector and document formats (SVG, PDF) are refused: rendering them has no bounded cost. */
const RASTER_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif']);

/**
 * Checks a decoded size against `limits` (defaults {@link IMAGE_LIMITS}); throws a DatasetError
 * ('image-too-large', or 'corrupt-image' for a size that is not a positive integer) naming `file`.
 */
export function checkImageSize(width: number, height: number, file: string, limits: ImageLimits = {}): void {
  const maxPixels = limits.maxPixels ?? IMAGE_LIMITS.maxPixels;
  const maxSide = limits.maxSide ?? IMAGE_LIMITS.maxSide;
  const maxAspect = limits.maxAspect ?? IMAGE_LIMITS.maxAspect;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0))
    throw new DatasetError('corrupt-image', { file }, `image size ${width}×${height}: width and height must be ≥ 1`);
  const size = `image is ${width}×${height}`;
  if (Math.max(width, height) > maxSide)
    throw new DatasetError(
      'image-too-large',
      { file },
      `${size}: a side over the limit of ${maxSide} pixels (raise it with the maxSide image limit)`,
    );
  if (width * height > maxPixels)
    throw new DatasetError(
      'image-too-large',
      { file },
      `${size} = ${width * height} pixels, over the limit of ${maxPixels} (raise it with the maxPixels image limit)`,
    );
  const aspect = Math.max(width, height) / Math.min(width, height);
  if (aspect > maxAspect)
    throw new DatasetError(
      'image-too-large',
      { file },
      `${size}: aspect ratio ${aspect.toFixed(1)}:1 is over the limit of ${maxAspect}:1 (raise it with the maxAspect image limit)`,
    );
}

/** Width and height declared in a PNG's IHDR (sharp reports a 0×0 PNG only as a "corrupt header"). */
function pngDeclaredSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 24 || sig.some((b, i) => bytes[i] !== b)) return undefined;
  if (String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, 24);
  return { width: v.getUint32(16), height: v.getUint32(20) };
}

const sharpMessage = (e: unknown): string =>
  (e as Error).message
    .replace(/^Input (buffer|file) /, 'the file ')
    .replace(/[:\s]+$/, '')
    .replace(/\s+/g, ' ');

/** The header's size and format, checked against the limits; throws a DatasetError naming `file`. */
async function checkedHeader(
  input: string | Uint8Array,
  file: string,
  limits: ImageLimits,
  head?: Uint8Array,
): Promise<{ width: number; height: number }> {
  const declared = head ? pngDeclaredSize(head) : undefined;
  if (declared && (declared.width === 0 || declared.height === 0))
    throw new DatasetError(
      'corrupt-image',
      { file },
      `the PNG header declares a ${declared.width}×${declared.height} image; width and height must be ≥ 1`,
    );
  if (declared) checkImageSize(declared.width, declared.height, file, limits);
  let meta: Metadata;
  try {
    // No pixel limit here: the header is all that is read, and the limits below say more than sharp's.
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new DatasetError('corrupt-image', { file }, `cannot read the image header: ${sharpMessage(e)}`, {
      cause: e,
    });
  }
  if (meta.format && !RASTER_FORMATS.has(meta.format))
    throw new DatasetError(
      'corrupt-image',
      { file },
      `unsupported image format '${meta.format}' (accepted: ${[...RASTER_FORMATS].join(', ')})`,
    );
  if (!meta.width || !meta.height) throw new DatasetError('corrupt-image', { file }, 'image has no size');
  checkImageSize(meta.width, meta.height, file, limits);
  return { width: meta.width, height: meta.height };
}

/**
 * Decodes a JPEG/PNG/… file (or bytes) to RGB. Grey images are expanded to 3 channels and alpha is
 * dropped; 16-bit and palette PNGs become 8-bit RGB. EXIF orientation is NOT applied (as PIL,
 * torchvision and the VOC/COCO tooling read pixels).
 *
 * A path must name a regular file (a pipe, a device or a folder is refused before any read) of at most
 * `maxBytes`; the size in the header is checked against {@link IMAGE_LIMITS} (or the given limits)
 * before decoding. Every refusal, a missing file and undecodable bytes (including a truncated JPEG or
 * PNG) throw a {@link DatasetError} naming the file. `opts` may be the image's name (as before).
 */
export async function decodeImage(
  source: string | Uint8Array,
  opts: string | DecodeImageOptions = {},
): Promise<RgbImage> {
  const o: DecodeImageOptions = typeof opts === 'string' ? { name: opts } : opts;
  if (typeof source !== 'string' && !(source instanceof Uint8Array))
    throw new WgflowError(
      `decodeImage: expected a file path or the encoded bytes (Uint8Array), got ${source === null ? 'null' : typeof source}`,
    );
  const file = o.name ?? (typeof source === 'string' ? source : '<buffer>');
  const bytes =
    typeof source === 'string'
      ? await readDatasetBytes(
          source,
          { what: 'image', maxBytes: o.maxBytes ?? IMAGE_LIMITS.maxBytes },
          'image file not found',
        )
      : source;
  if (bytes.length === 0) throw new DatasetError('corrupt-image', { file }, 'the image file is empty');
  const { width: w0, height: h0 } = await checkedHeader(bytes, file, o, bytes);
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(bytes, { failOn: 'warning', limitInputPixels: w0 * h0 })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DatasetError('corrupt-image', { file }, `cannot decode image: ${sharpMessage(e)}`, { cause: e });
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

/**
 * Width and height from the file header only (fast; does not detect a truncated body). The file must
 * be a regular file within `limits.maxBytes`, and the size within the image limits.
 */
export async function imageSize(path: string, limits: ImageLimits = {}): Promise<{ width: number; height: number }> {
  await checkDatasetFile(
    path,
    { what: 'image', maxBytes: limits.maxBytes ?? IMAGE_LIMITS.maxBytes },
    'image file not found',
  );
  const head = await readHead(path);
  return checkedHeader(path, path, limits, head);
}

/** The first 24 bytes of a (checked, regular) file. */
async function readHead(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(24);
    const { bytesRead } = await fh.read(buf, 0, 24, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Encodes RGB to JPEG (4:4:4, no mozjpeg tricks) or PNG (a Buffer). Deterministic for a given sharp/libvips. */
export async function encodeImage(img: RgbImage, format: 'jpg' | 'png' = 'jpg', quality = 92): Promise<Uint8Array> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  return format === 'png'
    ? s.png({ compressionLevel: 6 }).toBuffer()
    : s.jpeg({ quality, chromaSubsampling: '4:4:4' }).toBuffer();
}

// ---------------------------------------------------------------- resize

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
  rule: ResizeRule & { resampler?: 'bilinear' | 'sharp'; limits?: ImageLimits } = {},
): Promise<{ image: RgbImage; scale: number; origWidth: number; origHeight: number }> {
  const img = await decodeImage(path, rule.limits ?? {});
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
