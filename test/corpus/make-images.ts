/**
 * Minimal PNG files for the image corpus, written by hand (zlib + CRC-32) so that a case can state any
 * header: huge declared sizes in a tiny file, 0×0, 16-bit, palette, grey, alpha, broken CRCs. Pixel
 * values follow a pattern (never all zero). Also small VOC/COCO writers shared by the dataset cases.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One PNG chunk: length, type, data, CRC (over type + data). */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

export const PNG_SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

export function ihdr(width: number, height: number, bitDepth: number, colorType: number): Uint8Array {
  const d = new Uint8Array(13);
  const v = new DataView(d.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  d[8] = bitDepth;
  d[9] = colorType;
  return pngChunk('IHDR', d);
}

/** Samples a pixel has for a PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA). */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export interface PngSpec {
  readonly width: number;
  readonly height: number;
  /** Default 8. */
  readonly bitDepth?: number;
  /** Default 2 (RGB). */
  readonly colorType?: number;
  /**
   * Rows actually encoded in IDAT (default: all). Fewer than `height` makes a file whose header
   * declares more than it holds (an image bomb when `height` is huge).
   */
  readonly rows?: number;
}

/** A PNG with a patterned image (palette: 4 colours). */
export function makePng(spec: PngSpec): Uint8Array {
  const { width, height } = spec;
  const depth = spec.bitDepth ?? 8;
  const type = spec.colorType ?? 2;
  const samples = SAMPLES[type] ?? 3;
  const rowBytes = Math.ceil((width * samples * depth) / 8);
  const rows = Math.min(spec.rows ?? height, height);
  const raw = new Uint8Array(rows * (rowBytes + 1));
  for (let y = 0; y < rows; y++) {
    const o = y * (rowBytes + 1);
    raw[o] = 0; // filter: none
    for (let i = 0; i < rowBytes; i++) {
      // palette images index 0..3 (8-bit) so that PLTE covers every index
      raw[o + 1 + i] = type === 3 && depth === 8 ? (i + y) % 4 : (37 * i + 11 * y + 5) & 0xff;
    }
  }
  const parts = [PNG_SIGNATURE, ihdr(width, height, depth, type)];
  if (type === 3) {
    const plte = Uint8Array.from([200, 30, 30, 30, 200, 30, 30, 30, 200, 220, 220, 40]);
    // a lower bit depth may index up to 2^depth entries: give a full palette
    const n = 2 ** Math.min(depth, 8);
    const full = new Uint8Array(3 * n);
    for (let i = 0; i < full.length; i++) full[i] = plte[i % plte.length] as number;
    parts.push(pngChunk('PLTE', full));
  }
  parts.push(pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', new Uint8Array(0)));
  return concat(parts);
}

/** Writes `bytes` to `dir/name` (making folders); returns the path. */
export function put(dir: string, name: string, bytes: Uint8Array | string): string {
  const p = join(dir, name);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, bytes);
  return p;
}

// ---------------------------------------------------------------- VOC

export interface VocObject {
  readonly name: string;
  /** 1-based inclusive xmin, ymin, xmax, ymax (as text, so a case can write 'NaN'). */
  readonly box: readonly (number | string)[];
  readonly difficult?: number;
}

/** A VOC annotation; `size: null` leaves `<size>` out. */
export function vocXml(objects: readonly VocObject[], size: { width: number; height: number } | null): string {
  const lines = ['<annotation>', '  <filename>img.png</filename>'];
  if (size) lines.push(`  <size><width>${size.width}</width><height>${size.height}</height><depth>3</depth></size>`);
  for (const o of objects) {
    const [a, b, c, d] = o.box;
    lines.push(
      '  <object>',
      `    <name>${o.name}</name>`,
      `    <difficult>${o.difficult ?? 0}</difficult>`,
      `    <bndbox><xmin>${a}</xmin><ymin>${b}</ymin><xmax>${c}</xmax><ymax>${d}</ymax></bndbox>`,
      '  </object>',
    );
  }
  lines.push('</annotation>', '');
  return lines.join('\n');
}

export interface VocEntry {
  readonly id: string;
  /** The annotation text (default: one 'dog' box in a 32×24 image). */
  readonly xml?: string;
  /** Image bytes (default: a 32×24 PNG); null: no image file. */
  readonly image?: Uint8Array | null;
}

export const VOC_W = 32;
export const VOC_H = 24;

/** A VOC folder under `root` with PNG images and split `split` listing the entries' ids (or `splitText`). */
export function makeVoc(
  root: string,
  entries: readonly VocEntry[],
  opts: { split?: string; splitText?: string; labels?: readonly string[] } = {},
): string {
  const png = makePng({ width: VOC_W, height: VOC_H });
  for (const e of entries) {
    const xml = e.xml ?? vocXml([{ name: 'dog', box: [2, 3, 20, 18] }], { width: VOC_W, height: VOC_H });
    put(root, join('Annotations', `${e.id}.xml`), xml);
    const img = e.image === undefined ? png : e.image;
    if (img) put(root, join('JPEGImages', `${e.id}.png`), img);
  }
  mkdirSync(join(root, 'JPEGImages'), { recursive: true });
  put(
    root,
    join('ImageSets', 'Main', `${opts.split ?? 'train'}.txt`),
    opts.splitText ?? `${entries.map((e) => e.id).join('\n')}\n`,
  );
  if (opts.labels) put(root, 'labels.txt', `${opts.labels.join('\n')}\n`);
  return root;
}

// ---------------------------------------------------------------- COCO

/** A small valid COCO document: two 32×24 PNG images, two categories, three boxes. */
export function cocoDoc(): {
  images: Record<string, unknown>[];
  annotations: Record<string, unknown>[];
  categories: Record<string, unknown>[];
} {
  return {
    images: [
      { id: 1, file_name: 'a.png', width: VOC_W, height: VOC_H },
      { id: 2, file_name: 'b.png', width: VOC_W, height: VOC_H },
    ],
    annotations: [
      { id: 10, image_id: 1, category_id: 3, bbox: [2, 3, 10, 8], iscrowd: 0, area: 80 },
      { id: 11, image_id: 2, category_id: 7, bbox: [1, 1, 5, 6], iscrowd: 0, area: 30 },
      { id: 12, image_id: 2, category_id: 3, bbox: [10, 4, 12, 9], iscrowd: 1, area: 108 },
    ],
    categories: [
      { id: 3, name: 'cat' },
      { id: 7, name: 'dog' },
    ],
  };
}

/** Writes the images a.png and b.png into `dir/images` and `doc` (an object or raw text) to `dir/ann.json`. */
export function makeCoco(dir: string, doc: unknown): { ann: string; images: string } {
  const png = makePng({ width: VOC_W, height: VOC_H });
  put(dir, 'images/a.png', png);
  put(dir, 'images/b.png', png);
  const ann = put(dir, 'ann.json', typeof doc === 'string' ? doc : JSON.stringify(doc, null, 1));
  return { ann, images: join(dir, 'images') };
}
