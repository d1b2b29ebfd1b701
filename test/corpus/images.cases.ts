/**
 * Bad (and bad-looking but valid) image files and image inputs: decodeImage, imageSize, toRgbImage,
 * resizeScale. Files are made in setup with the hand-written PNG encoder of make-images.ts.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage, imageSize, type RgbImage, resizeScale, toRgbImage } from '../../index.js';
import { makePng, type PngSpec, put } from './make-images.js';
import type { CaseContext, CorpusCase } from './types.js';

const img = (ctx: CaseContext, name = 'x.png') => join(ctx.dir, name);

/** A patterned RGB image (never all zero). */
function pattern(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 29 + 7) & 0xff;
  return { width, height, data };
}

async function jpeg(width: number, height: number): Promise<Uint8Array> {
  const p = pattern(width, height);
  return sharp(p.data, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** Fails unless the decoded image has the size and is not all zero. */
function expectImage(r: RgbImage, width: number, height: number): void {
  if (r.width !== width || r.height !== height || r.data.length !== width * height * 3)
    throw new Error(`decoded ${r.width}×${r.height} (${r.data.length} bytes), expected ${width}×${height}`);
  if (r.data.every((v) => v === 0)) throw new Error('decoded an all-zero image');
}

/** A valid PNG of `spec` must decode to its size. */
const validPng = (id: string, what: string, spec: PngSpec): CorpusCase => ({
  id: `images/${id}`,
  area: 'images',
  kind: 'library',
  what,
  expect: { ok: true },
  timeoutMs: 5000,
  setup: (ctx) => {
    put(ctx.dir, 'x.png', makePng(spec));
  },
  run: async (ctx) => expectImage(await decodeImage(img(ctx)), spec.width, spec.height),
});

/** A PNG of `spec` must be refused with a DatasetError matching `message`. */
const badPng = (id: string, what: string, spec: PngSpec, message: RegExp, memoryMb = 256): CorpusCase => ({
  id: `images/${id}`,
  area: 'images',
  kind: 'library',
  what,
  expect: { error: 'DatasetError', message },
  timeoutMs: 5000,
  memoryMb,
  setup: (ctx) => {
    put(ctx.dir, 'x.png', makePng(spec));
  },
  run: (ctx) => decodeImage(img(ctx)),
});

/** Bytes written in setup; decodeImage must refuse them. */
const badBytes = (
  id: string,
  what: string,
  bytes: () => Uint8Array | Promise<Uint8Array>,
  message: RegExp,
  name = 'x.png',
): CorpusCase => ({
  id: `images/${id}`,
  area: 'images',
  kind: 'library',
  what,
  expect: { error: 'DatasetError', message },
  timeoutMs: 5000,
  memoryMb: 256,
  setup: async (ctx) => {
    put(ctx.dir, name, await bytes());
  },
  run: (ctx) => decodeImage(img(ctx, name)),
});

const png = (w = 20, h = 12) => makePng({ width: w, height: h });

export const cases: CorpusCase[] = [
  // ---- valid PNG variants: must load
  validPng('png-rgb8', '8-bit RGB PNG', { width: 20, height: 12 }),
  validPng('png-gray16', '16-bit greyscale PNG', { width: 20, height: 12, bitDepth: 16, colorType: 0 }),
  validPng('png-rgb16', '16-bit RGB PNG', { width: 20, height: 12, bitDepth: 16, colorType: 2 }),
  validPng('png-rgba16', '16-bit RGBA PNG', { width: 20, height: 12, bitDepth: 16, colorType: 6 }),
  validPng('png-palette8', '8-bit palette PNG', { width: 20, height: 12, bitDepth: 8, colorType: 3 }),
  validPng('png-palette2', '2-bit palette PNG', { width: 21, height: 12, bitDepth: 2, colorType: 3 }),
  validPng('png-gray1', '1-bit greyscale PNG (odd width)', { width: 21, height: 12, bitDepth: 1, colorType: 0 }),
  validPng('png-gray8', '8-bit greyscale PNG', { width: 20, height: 12, bitDepth: 8, colorType: 0 }),
  validPng('png-gray-alpha', 'greyscale + alpha PNG', { width: 20, height: 12, colorType: 4 }),
  validPng('png-rgba8', '8-bit RGBA PNG (alpha dropped)', { width: 20, height: 12, colorType: 6 }),
  validPng('png-1x1', 'a 1×1 PNG', { width: 1, height: 1 }),
  validPng('png-strip-50x1', 'a 50×1 strip: at the aspect limit, accepted', { width: 50, height: 1 }),
  {
    id: 'images/jpeg-ok',
    area: 'images',
    kind: 'library',
    what: 'a baseline JPEG',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: async (ctx) => {
      put(ctx.dir, 'x.jpg', await jpeg(24, 16));
    },
    run: async (ctx) => expectImage(await decodeImage(img(ctx, 'x.jpg')), 24, 16),
  },
  {
    id: 'images/jpeg-named-png',
    area: 'images',
    kind: 'library',
    what: 'JPEG bytes in a file named .png: decoded by content',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: async (ctx) => {
      put(ctx.dir, 'x.png', await jpeg(24, 16));
    },
    run: async (ctx) => expectImage(await decodeImage(img(ctx)), 24, 16),
  },
  {
    id: 'images/strip-8000x1-raised-aspect',
    area: 'images',
    kind: 'library',
    what: 'the 8000×1 PNG with maxAspect raised: decoded at a bounded cost (< 2 s, < 200 MiB)',
    expect: { ok: true },
    timeoutMs: 2000,
    memoryMb: 200,
    setup: (ctx) => {
      put(ctx.dir, 'x.png', makePng({ width: 8000, height: 1 }));
    },
    run: async (ctx) => {
      expectImage(await decodeImage(img(ctx), { maxAspect: 10_000 }), 8000, 1);
      const r = resizeScale(1, 8000);
      if (r.height < 1 || r.width !== 1000) throw new Error(`resizeScale(1, 8000) = ${JSON.stringify(r)}`);
    },
  },

  // ---- not a regular file, missing, empty, over the byte limit
  {
    id: 'images/named-pipe',
    area: 'images',
    kind: 'library',
    what: 'decodeImage on a named pipe with no writer: refused at once, no wait',
    expect: { error: 'DatasetError', message: /fifo\.png: the image must be a regular file, this is a named pipe/ },
    timeoutMs: 3000,
    setup: (ctx) => {
      execFileSync('mkfifo', [join(ctx.dir, 'fifo.png')]);
    },
    run: (ctx) => decodeImage(img(ctx, 'fifo.png')),
  },
  {
    id: 'images/named-pipe-header',
    area: 'images',
    kind: 'library',
    what: 'imageSize on a named pipe: refused at once',
    expect: { error: 'DatasetError', message: /fifo\.jpg: .*named pipe/ },
    timeoutMs: 3000,
    setup: (ctx) => {
      execFileSync('mkfifo', [join(ctx.dir, 'fifo.jpg')]);
    },
    run: (ctx) => imageSize(img(ctx, 'fifo.jpg')),
  },
  {
    id: 'images/dev-zero',
    area: 'images',
    kind: 'library',
    what: 'decodeImage("/dev/zero"): refused before reading (no read until memory runs out)',
    expect: {
      error: 'DatasetError',
      message: /\/dev\/zero: the image must be a regular file, this is a character device/,
    },
    timeoutMs: 3000,
    memoryMb: 100,
    run: () => decodeImage('/dev/zero'),
  },
  {
    id: 'images/dev-zero-bytes-input',
    area: 'images',
    kind: 'library',
    what: 'toRgbImage("/dev/zero") (the detector input path)',
    expect: { error: 'DatasetError', message: /\/dev\/zero: .*character device/ },
    timeoutMs: 3000,
    memoryMb: 100,
    run: () => toRgbImage('/dev/zero', 'detect: image 0'),
  },
  {
    id: 'images/folder',
    area: 'images',
    kind: 'library',
    what: 'decodeImage on a folder',
    expect: { error: 'DatasetError', message: /photos\.png: the image must be a regular file, this is a folder/ },
    timeoutMs: 3000,
    setup: (ctx) => {
      mkdirSync(join(ctx.dir, 'photos.png'));
    },
    run: (ctx) => decodeImage(img(ctx, 'photos.png')),
  },
  {
    id: 'images/missing',
    area: 'images',
    kind: 'library',
    what: 'decodeImage on a missing file',
    expect: { error: 'DatasetError', message: /nope\.png: image file not found/ },
    timeoutMs: 3000,
    run: (ctx) => decodeImage(img(ctx, 'nope.png')),
  },
  {
    id: 'images/missing-header',
    area: 'images',
    kind: 'library',
    what: 'imageSize on a missing file',
    expect: { error: 'DatasetError', message: /nope\.jpg: image file not found/ },
    timeoutMs: 3000,
    run: (ctx) => imageSize(img(ctx, 'nope.jpg')),
  },
  badBytes('empty-file', 'a 0-byte .png', () => new Uint8Array(0), /x\.png: the image file is empty/),
  {
    id: 'images/sparse-huge-file',
    area: 'images',
    kind: 'library',
    what: 'a 300 MiB (sparse) .png: over the 256 MiB byte limit, refused before reading',
    expect: { error: 'DatasetError', message: /big\.png: the image is 300\.0 MiB, over the limit of 256\.0 MiB/ },
    timeoutMs: 3000,
    memoryMb: 100,
    setup: (ctx) => {
      const fd = openSync(join(ctx.dir, 'big.png'), 'w');
      ftruncateSync(fd, 300 * 2 ** 20);
      closeSync(fd);
    },
    run: (ctx) => decodeImage(img(ctx, 'big.png')),
  },
  {
    id: 'images/max-bytes-option',
    area: 'images',
    kind: 'library',
    what: 'a small PNG with maxBytes lowered to 64',
    expect: { error: 'DatasetError', message: /x\.png: the image is .* over the limit of 0\.000 MiB/ },
    timeoutMs: 3000,
    setup: (ctx) => {
      put(ctx.dir, 'x.png', png());
    },
    run: (ctx) => decodeImage(img(ctx), { maxBytes: 64 }),
  },

  // ---- corrupt and truncated
  badBytes('png-truncated-half', 'a PNG cut in half', () => png(40, 30).subarray(0, 60), /x\.png: cannot decode image/),
  badBytes(
    'png-truncated-in-header',
    'a PNG cut inside IHDR',
    () => png().subarray(0, 20),
    /x\.png: cannot (read the image header|decode image)/,
  ),
  badBytes(
    'png-no-idat',
    'a PNG with a signature and IHDR only',
    () => png().subarray(0, 33),
    /x\.png: cannot (read the image header|decode image)/,
  ),
  badBytes(
    'png-bad-crc',
    'a PNG whose IDAT CRC is wrong',
    () => {
      const b = png(40, 30);
      b[b.length - 13] = (b[b.length - 13] as number) ^ 0xff; // last byte of IDAT's CRC
      return b;
    },
    /x\.png: cannot decode image/,
  ),
  badBytes(
    'png-garbage-idat',
    'a PNG whose compressed data is garbage',
    () => {
      const b = png(40, 30);
      for (let i = 41; i < b.length - 24; i++) b[i] = (i * 97) & 0xff;
      return b;
    },
    /x\.png: cannot decode image/,
  ),
  badBytes(
    'jpeg-truncated',
    'a JPEG cut in half',
    async () => {
      const b = await jpeg(64, 48);
      return b.subarray(0, Math.floor(b.length / 2));
    },
    /x\.jpg: cannot decode image/,
    'x.jpg',
  ),
  badBytes(
    'jpeg-soi-only',
    'a JPEG of only its start marker and a few bytes',
    async () => (await jpeg(8, 8)).subarray(0, 6),
    /x\.jpg: cannot (read the image header|decode image)/,
    'x.jpg',
  ),
  badBytes(
    'wrong-magic-text',
    'a text file named .png',
    () => new TextEncoder().encode('this is not an image, just some words\n'),
    /x\.png: cannot read the image header: .*unsupported image format/,
  ),
  badBytes(
    'wrong-magic-png-signature',
    'a PNG with a broken signature byte',
    () => {
      const b = png();
      b[1] = 0x51;
      return b;
    },
    /x\.png: cannot read the image header/,
  ),
  badBytes(
    'svg-refused',
    'an SVG (vector: rendering has no bounded cost) named .png',
    () =>
      new TextEncoder().encode(
        '<svg xmlns="http://www.w3.org/2000/svg" width="20000" height="20000"><rect width="10" height="10"/></svg>',
      ),
    /x\.png: (unsupported image format 'svg'|cannot read the image header)/,
  ),

  // ---- decoded-size limits (bombs), checked from the header before decoding
  badPng(
    'bomb-png-100k',
    'a PNG declaring 100000×100000 in a tiny file',
    { width: 100_000, height: 100_000, rows: 2 },
    /x\.png: image is 100000×100000: a side over the limit of 16384 pixels/,
  ),
  badPng(
    'bomb-png-pixels',
    'a PNG declaring 16000×16000 (each side within the limit, 256 M pixels over it)',
    { width: 16_000, height: 16_000, rows: 2 },
    /x\.png: image is 16000×16000 = 256000000 pixels, over the limit of 67108864/,
  ),
  badPng(
    'bomb-png-max-u32',
    'a PNG declaring 2^31−1 × 1',
    { width: 2 ** 31 - 1, height: 1, rows: 0 },
    /x\.png: image is 2147483647×1: a side over the limit/,
  ),
  badBytes(
    'bomb-jpeg-65500',
    'a JPEG whose frame header declares 65500×65500',
    async () => {
      const b = new Uint8Array(await jpeg(16, 16));
      for (let i = 2; i + 8 < b.length; i++) {
        if (b[i] === 0xff && (b[i + 1] === 0xc0 || b[i + 1] === 0xc2)) {
          const v = new DataView(b.buffer, b.byteOffset + i + 5, 4);
          v.setUint16(0, 65500);
          v.setUint16(2, 65500);
          return b;
        }
      }
      throw new Error('no SOF marker');
    },
    /x\.jpg: image is 65500×65500: a side over the limit/,
    'x.jpg',
  ),
  badPng(
    'strip-8000x1',
    'the 8000×1 PNG (1 KB) that took 46 s and 5 GB: refused from the header by the aspect rule',
    { width: 8000, height: 1 },
    /x\.png: image is 8000×1: aspect ratio 8000\.0:1 is over the limit of 50:1 \(raise it with the maxAspect/,
  ),
  badPng(
    'strip-1x8000',
    'a 1×8000 PNG (tall strip)',
    { width: 1, height: 8000 },
    /x\.png: image is 1×8000: aspect ratio 8000\.0:1/,
  ),
  badPng(
    'png-0x0',
    'a PNG declaring 0×0',
    { width: 0, height: 0, rows: 0 },
    /x\.png: the PNG header declares a 0×0 image/,
  ),
  badPng(
    'png-0x5',
    'a PNG declaring 0×5',
    { width: 0, height: 5, rows: 0 },
    /x\.png: the PNG header declares a 0×5 image/,
  ),
  {
    id: 'images/bomb-header-only',
    area: 'images',
    kind: 'library',
    what: 'imageSize on a 100000×100000 PNG: refused by the same limits',
    expect: { error: 'DatasetError', message: /x\.png: image is 100000×100000/ },
    timeoutMs: 3000,
    setup: (ctx) => {
      put(ctx.dir, 'x.png', makePng({ width: 100_000, height: 100_000, rows: 1 }));
    },
    run: (ctx) => imageSize(img(ctx)),
  },
  {
    id: 'images/bomb-encoded-bytes',
    area: 'images',
    kind: 'library',
    what: 'toRgbImage(bytes) of a 100000×100000 PNG (the detector input path)',
    expect: { error: 'DatasetError', message: /detect: image 0 \(encoded bytes\): image is 100000×100000/ },
    timeoutMs: 3000,
    memoryMb: 200,
    run: () => toRgbImage(makePng({ width: 100_000, height: 100_000, rows: 1 }), 'detect: image 0'),
  },
  {
    id: 'images/raised-pixel-limit-ok',
    area: 'images',
    kind: 'library',
    what: 'a 64×64 PNG with maxPixels lowered to 1000, then raised back: refused, then decoded',
    expect: { ok: true },
    timeoutMs: 3000,
    setup: (ctx) => {
      put(ctx.dir, 'x.png', makePng({ width: 64, height: 64 }));
    },
    run: async (ctx) => {
      const refused = await decodeImage(img(ctx), { maxPixels: 1000 }).then(
        () => false,
        (e: Error) => /4096 pixels, over the limit of 1000/.test(e.message),
      );
      if (!refused) throw new Error('maxPixels 1000 did not refuse a 64×64 image');
      expectImage(await decodeImage(img(ctx), { maxPixels: 5000 }), 64, 64);
    },
  },

  // ---- decoded pixels and other inputs
  {
    id: 'images/pixels-strip',
    area: 'images',
    kind: 'library',
    what: 'toRgbImage({ data, width: 8000, height: 1 }): the aspect rule applies to pixels too',
    expect: { error: 'DatasetError', message: /decoded pixels.*8000×1: aspect ratio/ },
    timeoutMs: 3000,
    run: () => toRgbImage({ data: pattern(8000, 1).data, width: 8000, height: 1 }),
  },
  {
    id: 'images/pixels-length-mismatch',
    area: 'images',
    kind: 'library',
    what: 'toRgbImage with 10 bytes for 4×4 pixels',
    expect: { error: 'WgflowError', message: /10 bytes for 4×4 pixels; RGB needs 48, RGBA 64/ },
    run: () => toRgbImage({ data: new Uint8Array(10).fill(3), width: 4, height: 4 }),
  },
  {
    id: 'images/pixels-rgba-ok',
    area: 'images',
    kind: 'library',
    what: 'toRgbImage with RGBA pixels (valid)',
    expect: { ok: true },
    run: async () => {
      const data = new Uint8ClampedArray(4 * 6 * 4).map((_, i) => (i * 13 + 1) & 0xff);
      const r = await toRgbImage({ data, width: 6, height: 4 });
      if (r.data[3] !== data[4] || r.width !== 6) throw new Error('RGBA → RGB dropped the wrong byte');
    },
  },
  {
    id: 'images/pixels-float-data',
    area: 'images',
    kind: 'library',
    what: 'toRgbImage with Float32Array pixel data',
    expect: { error: 'WgflowError', message: /data must be a Uint8Array or Uint8ClampedArray/ },
    run: () => toRgbImage({ data: new Float32Array(48).fill(0.5) as unknown as Uint8Array, width: 4, height: 4 }),
  },
  {
    id: 'images/input-null',
    area: 'images',
    kind: 'library',
    what: 'toRgbImage(null)',
    expect: { error: 'WgflowError', message: /expected a file path, encoded image bytes .* got null/ },
    run: () => toRgbImage(null as unknown as string),
  },
  {
    id: 'images/decode-number',
    area: 'images',
    kind: 'library',
    what: 'decodeImage(42)',
    expect: { error: 'WgflowError', message: /decodeImage: expected a file path or the encoded bytes .* got number/ },
    run: () => decodeImage(42 as unknown as string),
  },
  {
    id: 'images/decode-empty-buffer',
    area: 'images',
    kind: 'library',
    what: 'decodeImage(new Uint8Array(0))',
    expect: { error: 'DatasetError', message: /<buffer>: the image file is empty/ },
    run: () => decodeImage(new Uint8Array(0)),
  },
  {
    id: 'images/resize-scale-zero',
    area: 'images',
    kind: 'library',
    what: 'resizeScale(0, 10): a 0-pixel side',
    expect: { error: 'WgflowError', message: /resizeScale: image size 10×0/ },
    run: () => resizeScale(0, 10),
  },
  {
    id: 'images/resize-scale-nan',
    area: 'images',
    kind: 'library',
    what: 'resizeScale(NaN, 10)',
    expect: { error: 'WgflowError', message: /resizeScale: image size 10×NaN/ },
    run: () => resizeScale(Number.NaN, 10),
  },
  {
    id: 'images/resize-scale-bad-rule',
    area: 'images',
    kind: 'library',
    what: 'resizeScale with shortSide -600',
    expect: { error: 'WgflowError', message: /shortSide -600 .* must be finite and > 0/ },
    run: () => resizeScale(100, 100, { shortSide: -600 }),
  },
  {
    id: 'images/resize-thin-strip-ok',
    area: 'images',
    kind: 'library',
    what: 'resizeScale of a 50×1 strip (torchvision rule): no side becomes 0',
    expect: { ok: true },
    run: () => {
      const r = resizeScale(1, 50, { rule: 'torchvision', shortSide: 800, maxSize: 40 });
      if (!(r.height >= 1 && r.width === 40)) throw new Error(`resizeScale → ${JSON.stringify(r)}`);
    },
  },
  {
    id: 'images/decode-file-unchanged',
    area: 'images',
    kind: 'library',
    what: 'decoding a valid PNG leaves the file as it was',
    expect: { ok: true },
    setup: (ctx) => {
      put(ctx.dir, 'x.png', png());
    },
    unchanged: () => ['x.png'],
    run: async (ctx) => {
      const before = readFileSync(img(ctx)).length;
      expectImage(await decodeImage(img(ctx)), 20, 12);
      if (readFileSync(img(ctx)).length !== before) throw new Error('file changed');
    },
  },
];
