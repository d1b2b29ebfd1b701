/**
 * Synthetic shapes dataset: determinism (same seed → byte-identical annotations and identical
 * pixels), boxes exactly tight around the drawn pixels, variety (classes, textures, sizes, object
 * counts), split files and the progress callback.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../data/image.js';
import { generateShapesDataset, type RenderedShapes, renderShapesImage, SHAPE_CLASSES } from '../data/shapes.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wgflow-shapes-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Every file under `dir`, relative path → bytes. */
async function readTree(dir: string, filter: (rel: string) => boolean): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath, e.name);
    const rel = full.slice(dir.length + 1);
    if (filter(rel)) out.set(rel, await readFile(full));
  }
  return out;
}

const isAnnotation = (rel: string): boolean => !rel.startsWith('JPEGImages');

/** Checks that every box is exactly the extent of its object's visible pixels (label map and RGB). */
function checkTight(r: RenderedShapes): void {
  const { width: W, height: H, data } = r.image;
  const bg = r.background.data;
  const differs = (p: number): boolean =>
    data[p * 3] !== bg[p * 3] || data[p * 3 + 1] !== bg[p * 3 + 1] || data[p * 3 + 2] !== bg[p * 3 + 2];
  const inAnyBox = new Uint8Array(W * H);
  r.objects.forEach((o, k) => {
    const id = k + 1;
    const [x1, y1, x2, y2] = o.box;
    expect(0 <= x1 && x1 <= x2 && x2 < W && 0 <= y1 && y1 <= y2 && y2 < H).toBe(true);
    let count = 0;
    for (let p = 0; p < W * H; p++) {
      if (r.labelMap[p] !== id) continue;
      count++;
      const x = p % W;
      const y = Math.floor(p / W);
      // No pixel of the object outside its box.
      if (x < x1 || x > x2 || y < y1 || y > y2) throw new Error(`object ${k} pixel ${x},${y} outside its box`);
    }
    expect(count).toBe(o.area);
    // Each of the four border lines of the box holds a pixel of the object that differs from the background.
    const edges: [number, number, number, number][] = [
      [x1, y1, x1, y2],
      [x2, y1, x2, y2],
      [x1, y1, x2, y1],
      [x1, y2, x2, y2],
    ];
    for (const [ax, ay, bx, by] of edges) {
      let hit = false;
      for (let y = ay; y <= by && !hit; y++) {
        for (let x = ax; x <= bx && !hit; x++) {
          const p = y * W + x;
          hit = r.labelMap[p] === id && differs(p);
        }
      }
      expect(hit, `object ${k} (${o.cls}) edge [${ax},${ay},${bx},${by}] is not tight`).toBe(true);
    }
    for (let y = y1; y <= y2; y++) for (let x = x1; x <= x2; x++) inAnyBox[y * W + x] = 1;
  });
  // Outside every box the image IS the background.
  for (let p = 0; p < W * H; p++) {
    if (inAnyBox[p]) continue;
    if (r.labelMap[p] !== 0 || differs(p))
      throw new Error(`pixel ${p % W},${Math.floor(p / W)} outside every box differs from the background`);
  }
}

describe('renderShapesImage', () => {
  it('is deterministic and independent of the order of generation', () => {
    const a = renderShapesImage(11, 3, { size: 96 });
    renderShapesImage(11, 0, { size: 96 });
    const b = renderShapesImage(11, 3, { size: 96 });
    expect(Buffer.from(b.image.data).equals(Buffer.from(a.image.data))).toBe(true);
    expect(b.objects).toEqual(a.objects);
    const c = renderShapesImage(12, 3, { size: 96 });
    expect(Buffer.from(c.image.data).equals(Buffer.from(a.image.data))).toBe(false);
  });

  it('boxes are exactly tight around the visible pixels', () => {
    for (let i = 0; i < 40; i++) checkTight(renderShapesImage(5, i, { size: { min: 64, max: 160 } }));
    // Crowded images: many objects, more overlap allowed.
    for (let i = 0; i < 10; i++) {
      checkTight(renderShapesImage(6, i, { size: 96, minObjects: 4, maxObjects: 8, maxOverlap: 0.6 }));
    }
  });

  it('draws varied classes, textures, sizes, aspect ratios and 1–4 objects', () => {
    const classes = new Set<string>();
    const textures = new Set<string>();
    const counts = new Set<number>();
    const widths = new Set<number>();
    const aspects: number[] = [];
    for (let i = 0; i < 60; i++) {
      const r = renderShapesImage(2, i, { size: { min: 80, max: 200 } });
      expect(r.objects.length).toBeGreaterThanOrEqual(1);
      expect(r.objects.length).toBeLessThanOrEqual(4);
      counts.add(r.objects.length);
      widths.add(r.image.width);
      for (const o of r.objects) {
        classes.add(o.cls);
        textures.add(o.texture);
        expect(o.label).toBe(SHAPE_CLASSES.indexOf(o.cls) + 1);
        if (!o.difficult) aspects.push((o.box[2] - o.box[0] + 1) / (o.box[3] - o.box[1] + 1));
      }
    }
    expect(classes.size).toBe(SHAPE_CLASSES.length);
    expect([...textures].sort()).toEqual(['checker', 'noise', 'solid', 'stripes']);
    expect(counts.size).toBeGreaterThanOrEqual(3);
    expect(widths.size).toBeGreaterThan(20);
    expect(Math.min(...aspects)).toBeLessThan(0.75);
    expect(Math.max(...aspects)).toBeGreaterThan(1.33);
  });

  it('honours a class subset (labels follow the subset order)', () => {
    const r = renderShapesImage(1, 0, { classes: ['star', 'circle'], minObjects: 4, maxObjects: 4 });
    for (const o of r.objects) {
      expect(['star', 'circle']).toContain(o.cls);
      expect(o.label).toBe(o.cls === 'star' ? 1 : 2);
    }
  });
});

describe('generateShapesDataset', () => {
  it('same seed → byte-identical annotation files and identical pixels', async () => {
    const opts = { count: 6, seed: 42, size: 96, format: 'both' as const };
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    await generateShapesDataset(a, opts);
    await generateShapesDataset(b, opts);
    const ta = await readTree(a, isAnnotation);
    const tb = await readTree(b, isAnnotation);
    expect([...ta.keys()].sort()).toEqual([...tb.keys()].sort());
    expect(ta.size).toBe(6 + 4 + 3 + 1); // 6 xml, 4 image sets, 3 coco json, labels.txt
    for (const [rel, bytes] of ta) expect(bytes.equals(tb.get(rel)!), rel).toBe(true);
    for (let i = 1; i <= 6; i++) {
      const f = `JPEGImages/${String(i).padStart(6, '0')}.jpg`;
      const ia = await decodeImage(join(a, f));
      const ib = await decodeImage(join(b, f));
      expect(Buffer.from(ia.data).equals(Buffer.from(ib.data)), f).toBe(true);
      expect((await readFile(join(a, f))).equals(await readFile(join(b, f))), f).toBe(true);
    }
    // Another seed changes the annotations.
    const c = join(tmp, 'c');
    await generateShapesDataset(c, { ...opts, seed: 43 });
    const tc = await readTree(c, (rel) => rel.startsWith('Annotations'));
    expect([...tc].some(([rel, bytes]) => !bytes.equals(ta.get(rel)!))).toBe(true);
  });

  it('written PNG pixels equal the rendered image; JPEG is close', async () => {
    const dir = join(tmp, 'png');
    const info = await generateShapesDataset(dir, { count: 2, seed: 9, size: 80, imageFormat: 'png' });
    const jdir = join(tmp, 'jpg');
    await generateShapesDataset(jdir, { count: 2, seed: 9, size: 80 });
    for (let i = 0; i < 2; i++) {
      const r = renderShapesImage(9, i, { size: 80 });
      const id = String(i + 1).padStart(6, '0');
      const png = await decodeImage(join(dir, 'JPEGImages', `${id}.png`));
      expect(Buffer.from(png.data).equals(Buffer.from(r.image.data))).toBe(true);
      expect(info.images.get(id)!.objects).toEqual(r.objects);
      const jpg = await decodeImage(join(jdir, 'JPEGImages', `${id}.jpg`));
      let err = 0;
      for (let k = 0; k < jpg.data.length; k++) err += Math.abs(jpg.data[k]! - r.image.data[k]!);
      expect(err / jpg.data.length).toBeLessThan(8);
    }
  });

  it('writes split files that partition the images, trainval, and reports progress', async () => {
    const dir = join(tmp, 'splits');
    const seen: [number, number][] = [];
    const info = await generateShapesDataset(dir, {
      count: 10,
      seed: 1,
      size: 64,
      splits: { train: 6, val: 2, test: 2 },
      onProgress: (d, t) => seen.push([d, t]),
    });
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1, 10]));
    const read = async (s: string): Promise<string[]> =>
      (await readFile(join(dir, 'ImageSets', 'Main', `${s}.txt`), 'utf8')).split('\n').filter(Boolean);
    const train = await read('train');
    const val = await read('val');
    const test = await read('test');
    expect([train.length, val.length, test.length]).toEqual([6, 2, 2]);
    expect([...train, ...val, ...test].sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => String(i + 1).padStart(6, '0')),
    );
    expect(await read('trainval')).toEqual([...train, ...val].sort());
    expect(info.splits.train).toEqual(train);
    expect((await readFile(join(dir, 'labels.txt'), 'utf8')).trim().split('\n')).toEqual([...SHAPE_CLASSES]);
    // Fractions.
    const f = await generateShapesDataset(join(tmp, 'frac'), { count: 20, seed: 1, size: 48, format: 'coco' });
    expect(Object.values(f.splits).map((s) => s.length)).toEqual([16, 2, 2]);
  });
});
