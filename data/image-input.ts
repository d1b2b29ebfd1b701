/**
 * The images a detector takes: a file path, the encoded bytes of a file (a Buffer or Uint8Array:
 * JPEG, PNG, WebP, …), or decoded 8-bit pixels `{ data, width, height }`, interleaved RGB (3 bytes a
 * pixel) or RGBA (4; alpha is ignored) — e.g. a canvas `ImageData`, or `sharp(...).raw()` output.
 */
import { WgflowError } from '../compiler/errors.js';
import { checkImageSize, decodeImage, type ImageLimits, type RgbImage } from './image.js';

/** Decoded 8-bit pixels, row-major, RGB or RGBA interleaved. */
export interface DecodedImage {
  readonly data: Uint8Array | Uint8ClampedArray;
  readonly width: number;
  readonly height: number;
}

/** A file path, encoded image bytes, or decoded pixels. */
export type ImageInput = string | Uint8Array | DecodedImage;

/**
 * `what` names the image in errors (e.g. 'detect: image 2'). Files and encoded bytes are checked
 * against `limits` (default IMAGE_LIMITS) before decoding; decoded pixels against the same size rules.
 */
export async function toRgbImage(input: ImageInput, what = 'image', limits: ImageLimits = {}): Promise<RgbImage> {
  if (typeof input === 'string') return decodeImage(input, limits);
  if (input instanceof Uint8Array) return decodeImage(input, { ...limits, name: `${what} (encoded bytes)` });
  if (typeof input !== 'object' || input === null || !('data' in input))
    throw new WgflowError(
      `${what}: expected a file path, encoded image bytes (Buffer/Uint8Array) or { data, width, height }, got ${input === null ? 'null' : typeof input}`,
    );
  const { data, width, height } = input;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0))
    throw new WgflowError(`${what}: width and height must be positive integers, got ${width}×${height}`);
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray))
    throw new WgflowError(`${what}: data must be a Uint8Array or Uint8ClampedArray of RGB or RGBA bytes`);
  checkImageSize(width, height, `${what} (decoded pixels)`, limits);
  const pixels = width * height;
  if (data.length === 3 * pixels)
    return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  if (data.length === 4 * pixels) {
    const rgb = new Uint8Array(3 * pixels);
    for (let i = 0; i < pixels; i++) {
      rgb[3 * i] = data[4 * i] as number;
      rgb[3 * i + 1] = data[4 * i + 1] as number;
      rgb[3 * i + 2] = data[4 * i + 2] as number;
    }
    return { width, height, data: rgb };
  }
  throw new WgflowError(
    `${what}: ${data.length} bytes for ${width}×${height} pixels; RGB needs ${3 * pixels}, RGBA ${4 * pixels}`,
  );
}
