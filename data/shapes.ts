/**
 * A deterministic synthetic detection dataset: textured shapes (circle, square, triangle, star,
 * cross, …) on a noisy textured background, written as real JPEG (or PNG) files with PASCAL VOC
 * and/or COCO annotations.
 *
 * Every image is drawn from its own RNG stream, seeded from (seed, index), so the same seed gives the
 * same pixels and byte-identical annotation files, whatever the count or the order of generation.
 * Boxes are computed from the rasterized pixels that stay visible after later shapes are drawn over
 * earlier ones: a box is exactly the extent of the pixels of its object (modal box).
 *
 * Layout written under `dir`:
 *   JPEGImages/000001.jpg …                         (PNG: JPEGImages/000001.png)
 *   Annotations/000001.xml …                        (format 'voc' | 'both'; VOC 1-based inclusive pixels)
 *   ImageSets/Main/{train,val,test,trainval}.txt    (always)
 *   annotations/instances_{train,val,test}.json     (format 'coco' | 'both'; file_name relative to JPEGImages/)
 *   labels.txt                                      (class names, one a line, in label order 1..K)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeImage, type RgbImage } from './image.js';

export const SHAPE_CLASSES = ['circle', 'square', 'triangle', 'star', 'cross', 'diamond'] as const;
export type ShapeClass = (typeof SHAPE_CLASSES)[number];
export type ShapeTexture = 'solid' | 'stripes' | 'checker' | 'noise';

// ---------------------------------------------------------------- RNG

/** 32-bit avalanche hash (a murmur3 finalizer). */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A small seeded PRNG (sfc32) with helpers. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(...seeds: number[]) {
    let h = 0x9e3779b9;
    for (const s of seeds) h = mix32(h ^ mix32((s | 0) + 0x6d2b79f5));
    this.a = mix32(h ^ 1);
    this.b = mix32(h ^ 2);
    this.c = mix32(h ^ 3);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

// ---------------------------------------------------------------- geometry

type Pt = readonly [number, number];

interface ShapeGeom {
  cls: ShapeClass;
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  angle: number;
  /** Polygon vertices in image coordinates (empty for the ellipse). */
  poly: Pt[];
}

/** Unit-size outline of a polygonal class (radius ≈ 1), before aspect scaling and rotation. */
function unitPolygon(cls: ShapeClass): Pt[] {
  switch (cls) {
    case 'square':
      return [
        [-1, -1],
        [1, -1],
        [1, 1],
        [-1, 1],
      ];
    case 'diamond':
      return [
        [0, -1],
        [1, 0],
        [0, 1],
        [-1, 0],
      ];
    case 'triangle':
      return [
        [0, -1],
        [1, 0.85],
        [-1, 0.85],
      ];
    case 'star': {
      const pts: Pt[] = [];
      for (let k = 0; k < 10; k++) {
        const r = k % 2 === 0 ? 1 : 0.45;
        const t = -Math.PI / 2 + (k * Math.PI) / 5;
        pts.push([r * Math.cos(t), r * Math.sin(t)]);
      }
      return pts;
    }
    case 'cross': {
      const w = 0.34;
      return [
        [-w, -1],
        [w, -1],
        [w, -w],
        [1, -w],
        [1, w],
        [w, w],
        [w, 1],
        [-w, 1],
        [-w, w],
        [-1, w],
        [-1, -w],
        [-w, -w],
      ];
    }
    default:
      return [];
  }
}

function placePolygon(cls: ShapeClass, cx: number, cy: number, rx: number, ry: number, angle: number): Pt[] {
  const ca = Math.cos(angle);
  const sa = Math.sin(angle);
  return unitPolygon(cls).map(([u, v]) => {
    const x = u * rx;
    const y = v * ry;
    return [cx + x * ca - y * sa, cy + x * sa + y * ca] as Pt;
  });
}

/** Half-extents of the shape around its centre (for placement inside the image). */
function extents(cls: ShapeClass, rx: number, ry: number, angle: number): [number, number] {
  if (cls === 'circle') return [rx, ry];
  const p = placePolygon(cls, 0, 0, rx, ry, angle);
  let ex = 0;
  let ey = 0;
  for (const [x, y] of p) {
    ex = Math.max(ex, Math.abs(x));
    ey = Math.max(ey, Math.abs(y));
  }
  return [ex, ey];
}

function insidePolygon(poly: Pt[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!;
    const [xj, yj] = poly[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Whether the pixel centre (px + 0.5, py + 0.5) is inside the shape. */
function covers(g: ShapeGeom, px: number, py: number): boolean {
  const x = px + 0.5;
  const y = py + 0.5;
  if (g.cls === 'circle') {
    const u = (x - g.cx) / g.rx;
    const v = (y - g.cy) / g.ry;
    return u * u + v * v <= 1;
  }
  return insidePolygon(g.poly, x, y);
}

// ---------------------------------------------------------------- rendering

export interface ShapesRenderOptions {
  /** Class names to draw, from {@link SHAPE_CLASSES} (default: all). Labels are 1 + index here. */
  classes?: readonly ShapeClass[];
  /** Image size: a number (square), `{ width, height }`, or `{ min, max }` for a random size per side. */
  size?: number | { width: number; height: number } | { min: number; max: number };
  /** Objects per image, inclusive range (default 1..4). */
  minObjects?: number;
  maxObjects?: number;
  /** Object size as a fraction of the shorter image side, range of the shape's diameter (default 0.2..0.55). */
  minScale?: number;
  maxScale?: number;
  /** Largest aspect ratio (width/height or its inverse) of a shape (default 2). */
  maxAspect?: number;
  /** A new shape may hide at most this fraction of the visible pixels of any earlier shape (default 0.35). */
  maxOverlap?: number;
  /** An object whose visible pixels are fewer than this fraction of its full shape is flagged difficult (default 0.5). */
  difficultBelow?: number;
}

export interface ShapeObject {
  cls: ShapeClass;
  /** 1-based label (index into `['__background__', ...classes]`). */
  label: number;
  texture: ShapeTexture;
  /** Inclusive 0-based pixel box of the visible pixels: first/last column, first/last row. */
  box: [number, number, number, number];
  /** Visible pixel count (the COCO `area`). */
  area: number;
  /** Pixels of the full, unoccluded shape. */
  fullArea: number;
  difficult: boolean;
}

export interface RenderedShapes {
  image: RgbImage;
  /** The background alone (the image wherever no object is). */
  background: RgbImage;
  /** Per pixel: 0 background, k + 1 for objects[k]. */
  labelMap: Uint8Array;
  objects: ShapeObject[];
}

const clamp255 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

function imageSizeFor(rng: Rng, size: ShapesRenderOptions['size']): [number, number] {
  if (size === undefined) return [128, 128];
  if (typeof size === 'number') return [size, size];
  if ('min' in size) return [rng.int(size.min, size.max), rng.int(size.min, size.max)];
  return [size.width, size.height];
}

function drawBackground(rng: Rng, W: number, H: number): Uint8Array {
  const base = [rng.int(50, 205), rng.int(50, 205), rng.int(50, 205)];
  const gAngle = rng.uniform(0, 2 * Math.PI);
  const gAmp = rng.uniform(0, 30);
  const gx = (Math.cos(gAngle) * gAmp) / W;
  const gy = (Math.sin(gAngle) * gAmp) / H;
  // Low-frequency value noise on a coarse grid, bilinearly interpolated (blotches).
  const G = 6;
  const grid = new Float64Array((G + 1) * (G + 1) * 3);
  const blotch = rng.uniform(0, 28);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.uniform(-blotch, blotch);
  const grain = rng.uniform(2, 14);
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    const fy = (y / H) * G;
    const iy = Math.floor(fy);
    const ty = fy - iy;
    for (let x = 0; x < W; x++) {
      const fx = (x / W) * G;
      const ix = Math.floor(fx);
      const tx = fx - ix;
      const grad = (x - W / 2) * gx + (y - H / 2) * gy;
      for (let c = 0; c < 3; c++) {
        const g00 = grid[(iy * (G + 1) + ix) * 3 + c]!;
        const g01 = grid[(iy * (G + 1) + ix + 1) * 3 + c]!;
        const g10 = grid[((iy + 1) * (G + 1) + ix) * 3 + c]!;
        const g11 = grid[((iy + 1) * (G + 1) + ix + 1) * 3 + c]!;
        const b = (g00 * (1 - tx) + g01 * tx) * (1 - ty) + (g10 * (1 - tx) + g11 * tx) * ty;
        data[(y * W + x) * 3 + c] = clamp255(base[c]! + grad + b + rng.uniform(-grain, grain));
      }
    }
  }
  return data;
}

/** A colour at L1 distance ≥ 150 from `bg` (the background's base), from a fixed palette jittered. */
function objectColour(rng: Rng, bg: readonly number[]): [number, number, number] {
  let best: [number, number, number] = [0, 0, 0];
  let bestD = -1;
  for (let t = 0; t < 24; t++) {
    const c: [number, number, number] = [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)];
    const d = Math.abs(c[0] - bg[0]!) + Math.abs(c[1] - bg[1]!) + Math.abs(c[2] - bg[2]!);
    if (d >= 150) return c;
    if (d > bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

interface Paint {
  texture: ShapeTexture;
  c1: [number, number, number];
  c2: [number, number, number];
  period: number;
  dirX: number;
  dirY: number;
  noise: number;
}

function makePaint(rng: Rng, bg: readonly number[]): Paint {
  const texture = rng.pick<ShapeTexture>(['solid', 'stripes', 'checker', 'noise']);
  const c1 = objectColour(rng, bg);
  // Second colour: c1 pushed towards black or white, away from the background's brightness.
  const bright = (c1[0] + c1[1] + c1[2]) / 3;
  const k = rng.uniform(0.45, 0.7);
  const c2 = c1.map((v) => (bright > 127 ? v * (1 - k) : v + (255 - v) * k)).map(clamp255) as [number, number, number];
  const a = rng.uniform(0, Math.PI);
  return {
    texture,
    c1,
    c2,
    period: rng.int(3, 8),
    dirX: Math.cos(a),
    dirY: Math.sin(a),
    noise: rng.uniform(20, 45),
  };
}

function paintPixel(p: Paint, rng: Rng, x: number, y: number, out: Uint8Array, o: number): void {
  let c = p.c1;
  if (p.texture === 'stripes') {
    const t = Math.floor((x * p.dirX + y * p.dirY) / p.period);
    if ((t & 1) === 1) c = p.c2;
  } else if (p.texture === 'checker') {
    if (((Math.floor(x / p.period) + Math.floor(y / p.period)) & 1) === 1) c = p.c2;
  }
  if (p.texture === 'noise') {
    const n = rng.uniform(-p.noise, p.noise);
    out[o] = clamp255(c[0] + n);
    out[o + 1] = clamp255(c[1] + n);
    out[o + 2] = clamp255(c[2] + n);
  } else {
    out[o] = c[0];
    out[o + 1] = c[1];
    out[o + 2] = c[2];
  }
}

/** Draws image `index` of the dataset with `seed`: pixels, background, label map and exact boxes. */
export function renderShapesImage(seed: number, index: number, opts: ShapesRenderOptions = {}): RenderedShapes {
  const classes = opts.classes ?? SHAPE_CLASSES;
  if (classes.length === 0) throw new Error('renderShapesImage: no classes');
  const rng = new Rng(seed, index);
  const [W, H] = imageSizeFor(rng, opts.size);
  const minObjects = opts.minObjects ?? 1;
  const maxObjects = Math.max(minObjects, opts.maxObjects ?? 4);
  const minScale = opts.minScale ?? 0.2;
  const maxScale = Math.max(minScale, opts.maxScale ?? 0.55);
  const maxAspect = Math.max(1, opts.maxAspect ?? 2);
  const maxOverlap = opts.maxOverlap ?? 0.35;
  const difficultBelow = opts.difficultBelow ?? 0.5;

  const bgData = drawBackground(rng, W, H);
  const bgBase = [0, 0, 0];
  for (let i = 0; i < W * H; i++) for (let c = 0; c < 3; c++) bgBase[c]! += bgData[i * 3 + c]! / (W * H);
  const data = new Uint8Array(bgData);
  const labelMap = new Uint8Array(W * H);
  const visible: number[] = [];
  const full: number[] = [];
  const placed: { cls: ShapeClass; texture: ShapeTexture }[] = [];
  const want = rng.int(minObjects, maxObjects);
  const short = Math.min(W, H);

  for (let k = 0; k < want && placed.length < 255; k++) {
    for (let attempt = 0; attempt < 40; attempt++) {
      const cls = rng.pick(classes);
      const diam = rng.uniform(minScale, maxScale) * short;
      const ar = Math.exp(rng.uniform(-Math.log(maxAspect), Math.log(maxAspect)));
      let rx = (diam / 2) * Math.sqrt(ar);
      let ry = diam / 2 / Math.sqrt(ar);
      const angle = cls === 'circle' ? 0 : rng.uniform(-0.45, 0.45);
      let [ex, ey] = extents(cls, rx, ry, angle);
      // Keep the whole shape inside the image (shrink if needed).
      const fit = Math.min(1, (W / 2 - 1) / ex, (H / 2 - 1) / ey);
      rx *= fit;
      ry *= fit;
      ex *= fit;
      ey *= fit;
      const cx = rng.uniform(ex, W - ex);
      const cy = rng.uniform(ey, H - ey);
      const g: ShapeGeom = { cls, cx, cy, rx, ry, angle, poly: placePolygon(cls, cx, cy, rx, ry, angle) };
      const xa = Math.max(0, Math.floor(cx - ex) - 1);
      const xb = Math.min(W - 1, Math.ceil(cx + ex) + 1);
      const ya = Math.max(0, Math.floor(cy - ey) - 1);
      const yb = Math.min(H - 1, Math.ceil(cy + ey) + 1);
      const mask: number[] = [];
      const hidden = new Array<number>(placed.length).fill(0);
      for (let y = ya; y <= yb; y++) {
        for (let x = xa; x <= xb; x++) {
          if (!covers(g, x, y)) continue;
          const p = y * W + x;
          mask.push(p);
          const l = labelMap[p]!;
          if (l > 0) hidden[l - 1]!++;
        }
      }
      if (mask.length < 24) continue;
      let ok = true;
      for (let j = 0; j < placed.length; j++) {
        if (hidden[j]! > maxOverlap * visible[j]! || visible[j]! - hidden[j]! < 24) ok = false;
      }
      if (!ok) continue;
      const paint = makePaint(rng, bgBase);
      const id = placed.length + 1;
      for (const p of mask) {
        const l = labelMap[p]!;
        if (l > 0) visible[l - 1]!--;
        labelMap[p] = id;
        paintPixel(paint, rng, p % W, Math.floor(p / W), data, p * 3);
      }
      placed.push({ cls, texture: paint.texture });
      visible.push(mask.length);
      full.push(mask.length);
      break;
    }
  }

  // Exact boxes from the label map.
  const n = placed.length;
  const bx = new Int32Array(n * 4);
  for (let i = 0; i < n; i++) bx.set([W, H, -1, -1], i * 4);
  const area = new Int32Array(n);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const l = labelMap[y * W + x]!;
      if (l === 0) continue;
      const o = (l - 1) * 4;
      area[l - 1]!++;
      if (x < bx[o]!) bx[o] = x;
      if (y < bx[o + 1]!) bx[o + 1] = y;
      if (x > bx[o + 2]!) bx[o + 2] = x;
      if (y > bx[o + 3]!) bx[o + 3] = y;
    }
  }
  const objects: ShapeObject[] = placed.map((p, i) => ({
    cls: p.cls,
    label: classes.indexOf(p.cls) + 1,
    texture: p.texture,
    box: [bx[i * 4]!, bx[i * 4 + 1]!, bx[i * 4 + 2]!, bx[i * 4 + 3]!],
    area: area[i]!,
    fullArea: full[i]!,
    difficult: area[i]! < difficultBelow * full[i]!,
  }));
  return {
    image: { width: W, height: H, data },
    background: { width: W, height: H, data: bgData },
    labelMap,
    objects,
  };
}

// ---------------------------------------------------------------- dataset files

export interface ShapesDatasetOptions extends ShapesRenderOptions {
  /** Number of images (default 100). */
  count?: number;
  /** RNG seed (default 0). */
  seed?: number;
  /** Annotation formats to write (default `'voc'`). */
  format?: 'voc' | 'coco' | 'both';
  /**
   * Split fractions (normalized) or exact counts, e.g. `{ train: 0.8, val: 0.1, test: 0.1 }` (the
   * default) or `{ train: 40, val: 10 }`. Images are assigned by a seeded shuffle.
   */
  splits?: Record<string, number>;
  /** `'jpg'` (default) or lossless `'png'`. */
  imageFormat?: 'jpg' | 'png';
  /** JPEG quality (default 92, 4:4:4 chroma). */
  quality?: number;
  /** Called after each image is written. */
  onProgress?: (done: number, total: number) => void;
}

export interface ShapesDatasetInfo {
  dir: string;
  /** Class names in label order (label = index + 1). */
  classes: ShapeClass[];
  /** Image ids per split, sorted. */
  splits: Record<string, string[]>;
  /** Everything drawn, by image id (boxes are 0-based inclusive pixels). */
  images: Map<string, { width: number; height: number; file: string; objects: ShapeObject[] }>;
}

function assignSplits(count: number, seed: number, splits: Record<string, number>): Record<string, number[]> {
  const names = Object.keys(splits);
  const vals = names.map((k) => splits[k]!);
  if (names.length === 0 || vals.some((v) => !(v >= 0))) throw new Error('generateShapesDataset: bad splits');
  const sum = vals.reduce((a, b) => a + b, 0);
  const counts = vals.every((v) => Number.isInteger(v) && v >= 1) && sum === count ? vals : null;
  const sizes: number[] = [];
  if (counts) sizes.push(...counts);
  else {
    let acc = 0;
    let prev = 0;
    for (const v of vals) {
      acc += v;
      const end = Math.round((acc / sum) * count);
      sizes.push(end - prev);
      prev = end;
    }
  }
  const order = Array.from({ length: count }, (_, i) => i);
  const rng = new Rng(seed, -1, 0x5117);
  for (let i = count - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const out: Record<string, number[]> = {};
  let at = 0;
  names.forEach((name, s) => {
    out[name] = order.slice(at, at + sizes[s]!).sort((a, b) => a - b);
    at += sizes[s]!;
  });
  return out;
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A VOC annotation: 1-based inclusive pixel coordinates, as the VOC devkit writes them. */
export function vocXml(fileName: string, width: number, height: number, objects: ShapeObject[]): string {
  const lines = [
    '<annotation>',
    '\t<folder>shapes</folder>',
    `\t<filename>${xmlEscape(fileName)}</filename>`,
    '\t<source>',
    '\t\t<database>wgflow synthetic shapes</database>',
    '\t</source>',
    '\t<size>',
    `\t\t<width>${width}</width>`,
    `\t\t<height>${height}</height>`,
    '\t\t<depth>3</depth>',
    '\t</size>',
    '\t<segmented>0</segmented>',
  ];
  for (const o of objects) {
    lines.push(
      '\t<object>',
      `\t\t<name>${xmlEscape(o.cls)}</name>`,
      '\t\t<pose>Unspecified</pose>',
      '\t\t<truncated>0</truncated>',
      `\t\t<difficult>${o.difficult ? 1 : 0}</difficult>`,
      '\t\t<bndbox>',
      `\t\t\t<xmin>${o.box[0] + 1}</xmin>`,
      `\t\t\t<ymin>${o.box[1] + 1}</ymin>`,
      `\t\t\t<xmax>${o.box[2] + 1}</xmax>`,
      `\t\t\t<ymax>${o.box[3] + 1}</ymax>`,
      '\t\t</bndbox>',
      '\t</object>',
    );
  }
  lines.push('</annotation>', '');
  return lines.join('\n');
}

/** Writes the dataset (see the module comment for the layout). Same seed and options → same files. */
export async function generateShapesDataset(dir: string, opts: ShapesDatasetOptions = {}): Promise<ShapesDatasetInfo> {
  const count = opts.count ?? 100;
  const seed = opts.seed ?? 0;
  const format = opts.format ?? 'voc';
  const ext = opts.imageFormat ?? 'jpg';
  const classes = [...(opts.classes ?? SHAPE_CLASSES)];
  const splitIdx = assignSplits(count, seed, opts.splits ?? { train: 0.8, val: 0.1, test: 0.1 });
  const idOf = (i: number): string => String(i + 1).padStart(6, '0');

  await mkdir(join(dir, 'JPEGImages'), { recursive: true });
  await mkdir(join(dir, 'ImageSets', 'Main'), { recursive: true });
  if (format !== 'coco') await mkdir(join(dir, 'Annotations'), { recursive: true });
  if (format !== 'voc') await mkdir(join(dir, 'annotations'), { recursive: true });

  const images: ShapesDatasetInfo['images'] = new Map();
  for (let i = 0; i < count; i++) {
    const r = renderShapesImage(seed, i, opts);
    const id = idOf(i);
    const file = `${id}.${ext}`;
    await writeFile(join(dir, 'JPEGImages', file), await encodeImage(r.image, ext, opts.quality ?? 92));
    if (format !== 'coco') {
      await writeFile(join(dir, 'Annotations', `${id}.xml`), vocXml(file, r.image.width, r.image.height, r.objects));
    }
    images.set(id, { width: r.image.width, height: r.image.height, file, objects: r.objects });
    opts.onProgress?.(i + 1, count);
  }

  const splits: Record<string, string[]> = {};
  for (const [name, idx] of Object.entries(splitIdx)) splits[name] = idx.map(idOf);
  for (const [name, ids] of Object.entries(splits)) {
    await writeFile(join(dir, 'ImageSets', 'Main', `${name}.txt`), ids.map((s) => `${s}\n`).join(''));
  }
  if (splits.train && splits.val && !splits.trainval) {
    const tv = [...splits.train, ...splits.val].sort();
    await writeFile(join(dir, 'ImageSets', 'Main', 'trainval.txt'), tv.map((s) => `${s}\n`).join(''));
  }
  await writeFile(join(dir, 'labels.txt'), classes.map((c) => `${c}\n`).join(''));

  if (format !== 'voc') {
    const categories = classes.map((name, i) => ({ id: i + 1, name, supercategory: 'shape' }));
    for (const [name, ids] of Object.entries(splits)) {
      const cocoImages: object[] = [];
      const annotations: object[] = [];
      for (const id of ids) {
        const im = images.get(id)!;
        const imageId = Number(id);
        cocoImages.push({ id: imageId, file_name: im.file, width: im.width, height: im.height });
        im.objects.forEach((o, k) => {
          annotations.push({
            id: imageId * 1000 + k + 1,
            image_id: imageId,
            category_id: o.label,
            bbox: [o.box[0], o.box[1], o.box[2] - o.box[0] + 1, o.box[3] - o.box[1] + 1],
            area: o.area,
            iscrowd: 0,
            ignore: o.difficult ? 1 : 0,
          });
        });
      }
      const json = {
        info: { description: 'wgflow synthetic shapes', version: '1.0', seed },
        licenses: [],
        images: cocoImages,
        annotations,
        categories,
      };
      await writeFile(join(dir, 'annotations', `instances_${name}.json`), `${JSON.stringify(json)}\n`);
    }
  }
  return { dir, classes, splits, images };
}
