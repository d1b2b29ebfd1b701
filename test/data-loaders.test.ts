/**
 * VOC and COCO loaders and image helpers: round trips through generated shapes datasets, bad data
 * (each problem is an error naming the file, or a warning under `skipBad`), flip, resize, decode.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonErrorOffset, loadCoco, parseJsonFile } from '../data/coco.js';
import { DatasetError, type DatasetWarning } from '../data/errors.js';
import {
  decodeImage,
  encodeImage,
  flipBoxesHorizontal,
  flipImageHorizontal,
  loadImageResized,
  PFR_PIXEL_MEANS_BGR,
  type RgbImage,
  resizeBilinear,
  resizeScale,
  scaleBoxes,
  toFloat32,
} from '../data/image.js';
import { generateShapesDataset, renderShapesImage, SHAPE_CLASSES, type ShapesDatasetInfo } from '../data/shapes.js';
import { loadVoc, VOC_CLASSES } from '../data/voc.js';

let tmp = '';
let gen = '';
let info: ShapesDatasetInfo;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wgflow-loaders-'));
  gen = join(tmp, 'shapes');
  info = await generateShapesDataset(gen, {
    count: 10,
    seed: 21,
    size: { min: 64, max: 120 },
    format: 'both',
    splits: { train: 6, val: 2, test: 2 },
    // Crowded, so that some objects are occluded enough to be flagged difficult.
    minObjects: 3,
    maxObjects: 6,
    maxOverlap: 0.7,
    difficultBelow: 0.8,
  });
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Runs `f`, expects a DatasetError, returns it. */
async function datasetError(f: () => Promise<unknown>): Promise<DatasetError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

const collect = (): { warnings: DatasetWarning[]; onWarning: (w: DatasetWarning) => void } => {
  const warnings: DatasetWarning[] = [];
  return { warnings, onWarning: (w) => warnings.push(w) };
};

// ---------------------------------------------------------------- round trips

describe('VOC loader', () => {
  it('round trip: generated boxes, labels and difficult flags (0-based inclusive)', async () => {
    let nDifficult = 0;
    for (const split of ['train', 'val', 'test']) {
      const ds = await loadVoc(gen, { split, checkImages: 'decode' });
      expect(ds.classes).toEqual(['__background__', ...SHAPE_CLASSES]);
      expect(ds.boxConvention).toBe('inclusive');
      expect(ds.samples.map((s) => s.id)).toEqual(info.splits[split]);
      for (const s of ds.samples) {
        const im = info.images.get(s.id)!;
        expect([s.width, s.height]).toEqual([im.width, im.height]);
        expect(Array.from(s.boxes)).toEqual(im.objects.flatMap((o) => o.box));
        expect(Array.from(s.labels)).toEqual(im.objects.map((o) => o.label));
        expect(Array.from(s.difficult)).toEqual(im.objects.map((o) => (o.difficult ? 1 : 0)));
        nDifficult += s.difficult.reduce((a, b) => a + b, 0);
      }
    }
    expect(nDifficult).toBeGreaterThan(0);
    const dropped = await loadVoc(gen, { split: 'trainval', difficult: 'drop' });
    for (const s of dropped.samples) {
      expect(Array.from(s.labels)).toEqual(
        info.images
          .get(s.id)!
          .objects.filter((o) => !o.difficult)
          .map((o) => o.label),
      );
    }
  });

  it('class list: given, from labels.txt, or scanned from the annotations', async () => {
    const given = await loadVoc(gen, {
      split: 'train',
      classes: ['star', 'circle', 'square', 'triangle', 'cross', 'diamond'],
    });
    const byFile = await loadVoc(gen, { split: 'train' });
    for (let i = 0; i < given.samples.length; i++) {
      const a = Array.from(given.samples[i]!.labels, (l) => given.classes[l]);
      const b = Array.from(byFile.samples[i]!.labels, (l) => byFile.classes[l]);
      expect(a).toEqual(b);
    }
    const dir = join(tmp, 'nolabels');
    await generateShapesDataset(dir, { count: 3, seed: 2, size: 64, classes: ['cross', 'circle'] });
    await rm(join(dir, 'labels.txt'));
    const scanned = await loadVoc(dir, { split: 'trainval' });
    expect(scanned.classes.slice(1)).toEqual([...scanned.classes.slice(1)].sort());
    expect(scanned.classes[0]).toBe('__background__');
    // Ids with leading zeros stay strings.
    expect(scanned.samples[0]!.id).toMatch(/^0000\d\d$/);
  });
});

describe('COCO loader', () => {
  it('round trip: continuous xyxy = [x, y, x + w, y + h]; inclusive matches VOC', async () => {
    for (const split of ['train', 'val', 'test']) {
      const file = join(gen, 'annotations', `instances_${split}.json`);
      const ds = await loadCoco(file, { imageDir: join(gen, 'JPEGImages'), checkImages: 'header' });
      const inc = await loadCoco(file, { imageDir: join(gen, 'JPEGImages'), boxConvention: 'inclusive' });
      const voc = await loadVoc(gen, { split });
      expect(ds.classes).toEqual(voc.classes);
      expect(ds.samples.length).toBe(info.splits[split]!.length);
      ds.samples.forEach((s, i) => {
        const id = info.splits[split]![i]!;
        expect(s.id).toBe(String(Number(id)));
        const im = info.images.get(id)!;
        expect(Array.from(s.boxes)).toEqual(
          im.objects.flatMap((o) => [o.box[0], o.box[1], o.box[2] + 1, o.box[3] + 1]),
        );
        expect(Array.from(s.labels)).toEqual(im.objects.map((o) => o.label));
        expect(Array.from(s.difficult)).toEqual(im.objects.map((o) => (o.difficult ? 1 : 0)));
        expect(Array.from(inc.samples[i]!.boxes)).toEqual(Array.from(voc.samples[i]!.boxes));
      });
    }
  });

  it('maps sparse category ids to contiguous labels; iscrowd flagged or dropped', async () => {
    const dir = join(tmp, 'coco-cats');
    await mkdir(dir, { recursive: true });
    await copyFile(join(gen, 'JPEGImages', '000001.jpg'), join(dir, 'a.jpg'));
    const { width, height } = info.images.get('000001')!;
    const json = {
      images: [{ id: 7, file_name: 'a.jpg', width, height }],
      annotations: [
        { id: 1, image_id: 7, category_id: 90, bbox: [1, 2, 10, 20], area: 200, iscrowd: 0 },
        { id: 2, image_id: 7, category_id: 5, bbox: [0, 0, 5, 5], area: 25, iscrowd: 1 },
        { id: 3, image_id: 7, category_id: 2, bbox: [3.5, 4.25, 6, 8], area: 48, iscrowd: 0 },
      ],
      categories: [
        { id: 90, name: 'toothbrush' },
        { id: 2, name: 'bicycle' },
        { id: 5, name: 'airplane' },
      ],
    };
    const file = join(dir, 'instances.json');
    await writeFile(file, JSON.stringify(json, null, 2));
    const ds = await loadCoco(file, { imageDir: dir });
    expect(ds.classes).toEqual(['__background__', 'bicycle', 'airplane', 'toothbrush']);
    const s = ds.samples[0]!;
    expect(Array.from(s.labels)).toEqual([3, 2, 1]);
    expect(Array.from(s.iscrowd)).toEqual([0, 1, 0]);
    expect(Array.from(s.boxes)).toEqual([1, 2, 11, 22, 0, 0, 5, 5, 3.5, 4.25, 9.5, 12.25]);
    const noCrowd = await loadCoco(file, { imageDir: dir, includeCrowd: false });
    expect(Array.from(noCrowd.samples[0]!.labels)).toEqual([3, 1]);
  });
});

// ---------------------------------------------------------------- bad data

describe('bad data', () => {
  let voc = '';
  const W = 40;
  const H = 30;
  const xml = (objects: string, size = true): string =>
    [
      '<annotation>',
      '  <filename>x.jpg</filename>',
      size ? `  <size><width>${W}</width><height>${H}</height><depth>3</depth></size>` : '',
      objects,
      '</annotation>',
      '',
    ].join('\n');
  const obj = (name: string, b: [number, number, number, number], difficult = 0): string =>
    [
      '  <object>',
      `    <name>${name}</name>`,
      `    <difficult>${difficult}</difficult>`,
      `    <bndbox><xmin>${b[0]}</xmin><ymin>${b[1]}</ymin><xmax>${b[2]}</xmax><ymax>${b[3]}</ymax></bndbox>`,
      '  </object>',
    ].join('\n');
  let jpeg: Uint8Array;

  beforeAll(async () => {
    voc = join(tmp, 'badvoc');
    await mkdir(join(voc, 'Annotations'), { recursive: true });
    await mkdir(join(voc, 'JPEGImages'), { recursive: true });
    await mkdir(join(voc, 'ImageSets', 'Main'), { recursive: true });
    const img: RgbImage = { width: W, height: H, data: new Uint8Array(W * H * 3).fill(128) };
    jpeg = await encodeImage(img);
    const good = obj('circle', [1, 1, 10, 10]);
    const files: Record<string, [string, Uint8Array | null]> = {
      good: [xml(good), jpeg],
      missingimg: [xml(good), null],
      garbage: [xml(good), Buffer.from('this is not a jpeg at all')],
      truncated: [xml(good), jpeg.subarray(0, Math.floor(jpeg.length / 2))],
      badxml: [xml(good).replace('</name>', '</nam>'), jpeg],
      outside: [xml(`${good}\n${obj('square', [5, 5, W + 1, 12])}`), jpeg],
      inverted: [xml(`${good}\n${obj('square', [20, 5, 10, 12])}`), jpeg],
      notnumber: [xml(obj('square', [1, 'abc' as unknown as number, 3, 4])), jpeg],
    };
    for (const [id, [ann, im]] of Object.entries(files)) {
      await writeFile(join(voc, 'Annotations', `${id}.xml`), ann);
      if (im) await writeFile(join(voc, 'JPEGImages', `${id}.jpg`), im);
      await writeFile(join(voc, 'ImageSets', 'Main', `${id}.txt`), `${id}\n`);
    }
    await writeFile(join(voc, 'ImageSets', 'Main', 'all.txt'), `${Object.keys(files).join('\n')}\n`);
    await writeFile(join(voc, 'ImageSets', 'Main', 'noann.txt'), 'nosuchid\n');
  });

  const classes = ['circle', 'square'];

  it('VOC: missing image names the image file', async () => {
    const e = await datasetError(() => loadVoc(voc, { split: 'missingimg', classes }));
    expect(e.problem).toBe('missing-file');
    expect(e.file).toBe(join(voc, 'JPEGImages', 'missingimg.jpg'));
    expect(e.message).toContain('missingimg.jpg');
  });

  it('VOC: corrupt JPEG (garbage with a header check, truncated with a full decode)', async () => {
    const g = await datasetError(() => loadVoc(voc, { split: 'garbage', classes, checkImages: 'header' }));
    expect(g.problem).toBe('corrupt-image');
    expect(g.message).toContain(join(voc, 'JPEGImages', 'garbage.jpg'));
    const t = await datasetError(() => loadVoc(voc, { split: 'truncated', classes, checkImages: 'decode' }));
    expect(t.problem).toBe('corrupt-image');
    expect(t.message).toContain(join(voc, 'JPEGImages', 'truncated.jpg'));
    // decodeImage itself.
    const d = await datasetError(() => decodeImage(join(voc, 'JPEGImages', 'truncated.jpg')));
    expect(d.message).toContain('truncated.jpg');
    const m = await datasetError(() => decodeImage(join(voc, 'JPEGImages', 'nope.jpg')));
    expect(m.problem).toBe('missing-file');
    expect(m.message).toContain('nope.jpg');
  });

  it('VOC: malformed XML names the file and the line', async () => {
    const e = await datasetError(() => loadVoc(voc, { split: 'badxml', classes }));
    expect(e.problem).toBe('malformed-xml');
    expect(e.file).toBe(join(voc, 'Annotations', 'badxml.xml'));
    expect(e.line).toBe(5);
    expect(e.message).toMatch(/badxml\.xml:5:\d+: malformed XML/);
  });

  it('VOC: box outside the image and x2 < x1 name the file, line and field', async () => {
    const o = await datasetError(() => loadVoc(voc, { split: 'outside', classes }));
    expect(o.problem).toBe('box-outside-image');
    expect(o.file).toBe(join(voc, 'Annotations', 'outside.xml'));
    expect(o.line).toBe(9); // the second <object>
    expect(o.field).toBe('object[1].bndbox');
    const i = await datasetError(() => loadVoc(voc, { split: 'inverted', classes }));
    expect(i.problem).toBe('box-inverted');
    expect(i.message).toContain('inverted.xml:9: object[1].bndbox: x2 (10) < x1 (20)');
    const n = await datasetError(() => loadVoc(voc, { split: 'notnumber', classes }));
    expect(n.problem).toBe('bad-value');
    expect(n.message).toContain('notnumber.xml:4: object[0].bndbox.ymin: not a number: "abc"');
    const u = await datasetError(() => loadVoc(voc, { split: 'good', classes: ['square'] }));
    expect(u.problem).toBe('unknown-class');
    expect(u.field).toBe('object[0].name');
  });

  it('VOC: missing split and annotation files', async () => {
    const s = await datasetError(() => loadVoc(voc, { split: 'nosuchsplit' }));
    expect(s.file).toBe(join(voc, 'ImageSets', 'Main', 'nosuchsplit.txt'));
    const a = await datasetError(() => loadVoc(voc, { split: 'noann' }));
    expect(a.file).toBe(join(voc, 'Annotations', 'nosuchid.xml'));
  });

  it('VOC: skipBad skips each bad image / object with a warning', async () => {
    const { warnings, onWarning } = collect();
    const ds = await loadVoc(voc, { split: 'all', classes, skipBad: true, onWarning, checkImages: 'decode' });
    expect(ds.samples.map((s) => s.id)).toEqual(['good', 'outside', 'inverted', 'notnumber']);
    for (const id of ['good', 'outside', 'inverted']) {
      const s = ds.samples.find((x) => x.id === id)!;
      expect(Array.from(s.boxes)).toEqual([0, 0, 9, 9]); // the good box, 0-based
    }
    expect(ds.samples.find((x) => x.id === 'notnumber')!.labels.length).toBe(0);
    const by = (p: string): DatasetWarning[] => warnings.filter((w) => w.problem === p);
    expect(by('missing-file').map((w) => w.skipped)).toEqual(['image']);
    expect(by('corrupt-image').length).toBe(2);
    expect(by('malformed-xml').length).toBe(1);
    expect(by('box-outside-image').map((w) => w.skipped)).toEqual(['object']);
    expect(by('box-inverted').map((w) => w.skipped)).toEqual(['object']);
    expect(by('bad-value').map((w) => w.skipped)).toEqual(['object']);
    expect(warnings.length).toBe(7);
    expect(ds.warnings).toEqual(warnings);
    for (const w of warnings) expect(w.message).toContain(w.file);
  });

  it('COCO: malformed JSON, bad boxes, missing and corrupt images', async () => {
    const dir = join(tmp, 'badcoco');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'ok.jpg'), jpeg);
    await writeFile(join(dir, 'bad.jpg'), jpeg.subarray(0, 40));
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{\n  "images": [\n    {"id": 1,}\n  ]\n}\n');
    const j = await datasetError(() => loadCoco(broken, { imageDir: dir }));
    expect(j.problem).toBe('malformed-json');
    expect(j.line).toBe(3);
    expect(j.message).toContain('broken.json:3:');
    const empty = join(dir, 'empty.json');
    await writeFile(empty, '');
    expect((await datasetError(() => loadCoco(empty, { imageDir: dir }))).problem).toBe('malformed-json');
    const noImages = join(dir, 'noimages.json');
    await writeFile(noImages, '{"annotations": [], "categories": []}');
    expect((await datasetError(() => loadCoco(noImages, { imageDir: dir }))).field).toBe('images');

    const ann = (id: number, bbox: unknown, extra: object = {}): object => ({
      id,
      image_id: 1,
      category_id: 1,
      bbox,
      area: 1,
      iscrowd: 0,
      ...extra,
    });
    const doc = (annotations: object[], images: object[] = [{ id: 1, file_name: 'ok.jpg', width: W, height: H }]) =>
      JSON.stringify({ images, annotations, categories: [{ id: 1, name: 'thing' }] });
    const cases: [string, string, string, string][] = [
      ['outside', doc([ann(1, [2, 2, 5, 5]), ann(2, [30, 5, 20, 5])]), 'box-outside-image', 'annotations[1].bbox'],
      ['inverted', doc([ann(1, [2, 2, 5, 5]), ann(2, [10, 5, -3, 5])]), 'box-inverted', 'annotations[1].bbox'],
      ['shortbox', doc([ann(1, [2, 2, 5])]), 'bad-value', 'annotations[0].bbox'],
      ['unknowncat', doc([ann(1, [2, 2, 5, 5], { category_id: 9 })]), 'unknown-class', 'annotations[0].category_id'],
      ['unknownimg', doc([ann(1, [2, 2, 5, 5], { image_id: 5 })]), 'bad-value', 'annotations[0].image_id'],
    ];
    for (const [name, text, problem, field] of cases) {
      const f = join(dir, `${name}.json`);
      await writeFile(f, text);
      const e = await datasetError(() => loadCoco(f, { imageDir: dir }));
      expect(e.problem, name).toBe(problem);
      expect(e.file, name).toBe(f);
      expect(e.field, name).toBe(field);
      expect(e.message, name).toContain(`${f}: ${field}:`);
      const { warnings, onWarning } = collect();
      const ds = await loadCoco(f, { imageDir: dir, skipBad: true, onWarning });
      expect(warnings.length, name).toBe(1);
      expect(warnings[0]!.skipped).toBe('object');
      expect(ds.samples.length).toBe(1);
    }
    const imgs = join(dir, 'images.json');
    await writeFile(
      imgs,
      doc(
        [ann(1, [2, 2, 5, 5])],
        [
          { id: 1, file_name: 'ok.jpg', width: W, height: H },
          { id: 2, file_name: 'missing.jpg', width: W, height: H },
          { id: 3, file_name: 'bad.jpg', width: W, height: H },
        ],
      ),
    );
    const miss = await datasetError(() => loadCoco(imgs, { imageDir: dir }));
    expect(miss.problem).toBe('missing-file');
    expect(miss.file).toBe(join(dir, 'missing.jpg'));
    const { warnings, onWarning } = collect();
    const ds = await loadCoco(imgs, { imageDir: dir, skipBad: true, onWarning, checkImages: 'decode' });
    expect(ds.samples.map((s) => s.id)).toEqual(['1']);
    expect(warnings.map((w) => [w.problem, w.skipped, w.file])).toEqual([
      ['missing-file', 'image', join(dir, 'missing.jpg')],
      ['corrupt-image', 'image', join(dir, 'bad.jpg')],
    ]);
  });

  it('parseJsonFile reports line and column', () => {
    let err: unknown;
    try {
      parseJsonFile('{\n "a": 1\n "b": 2\n}', 'x.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).line).toBe(3);
    expect((err as DatasetError).column).toBe(2);
    // The scanner agrees with JSON.parse on valid JSON and on corrupted JSON.
    fc.assert(
      fc.property(fc.json(), fc.nat(), fc.constantFrom('', ',', '}', ']', '"', ':', 'x'), (text, at, junk) => {
        expect(jsonErrorOffset(text)).toBe(-1);
        const k = at % (text.length + 1);
        const bad = text.slice(0, k) + junk + text.slice(k);
        let ok = true;
        try {
          JSON.parse(bad);
        } catch {
          ok = false;
        }
        expect(jsonErrorOffset(bad) === -1).toBe(ok);
      }),
      { numRuns: 300 },
    );
    expect(jsonErrorOffset('{"images": [1, 2,, 3]}')).toBe(17);
  });
});

// ---------------------------------------------------------------- images

/** Inclusive boxes of each label in a label map. */
function boxesOf(labelMap: Uint8Array, W: number, H: number, n: number): number[] {
  const b: number[] = [];
  for (let i = 0; i < n; i++) b.push(W, H, -1, -1);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const l = labelMap[y * W + x]!;
      if (!l) continue;
      const o = (l - 1) * 4;
      b[o] = Math.min(b[o]!, x);
      b[o + 1] = Math.min(b[o + 1]!, y);
      b[o + 2] = Math.max(b[o + 2]!, x);
      b[o + 3] = Math.max(b[o + 3]!, y);
    }
  }
  return b;
}

describe('image helpers', () => {
  it('flip twice is the identity (image and both box conventions)', () => {
    const r = renderShapesImage(4, 0, { size: { min: 50, max: 90 } });
    const twice = flipImageHorizontal(flipImageHorizontal(r.image));
    expect(Buffer.from(twice.data).equals(Buffer.from(r.image.data))).toBe(true);
    const boxes = Float32Array.from([0, 1, 10, 20, 3.5, 2, 7.25, 9, 5, 5, 5, 5]);
    for (const conv of ['inclusive', 'continuous'] as const) {
      const f = flipBoxesHorizontal(boxes, 57, conv);
      expect(Array.from(flipBoxesHorizontal(f, 57, conv))).toEqual(Array.from(boxes));
      for (let i = 0; i < f.length; i += 4) expect(f[i + 2]! >= f[i]!).toBe(true);
    }
    expect(Array.from(flipBoxesHorizontal(Float32Array.from([0, 0, 9, 9]), 40))).toEqual([30, 0, 39, 9]);
    expect(Array.from(flipBoxesHorizontal(Float32Array.from([0, 0, 10, 10]), 40, 'continuous'))).toEqual([
      30, 0, 40, 10,
    ]);
  });

  it('flipped boxes match the flipped pixels of generated images', async () => {
    for (let i = 0; i < 6; i++) {
      const r = renderShapesImage(8, i, { size: { min: 48, max: 100 } });
      const { width: W, height: H } = r.image;
      const n = r.objects.length;
      // Flip the label map as an image (label in channel 0).
      const lm: RgbImage = { width: W, height: H, data: new Uint8Array(W * H * 3) };
      for (let p = 0; p < W * H; p++) lm.data[p * 3] = r.labelMap[p]!;
      const fl = flipImageHorizontal(lm);
      const flippedMap = new Uint8Array(W * H);
      for (let p = 0; p < W * H; p++) flippedMap[p] = fl.data[p * 3]!;
      const inc = Float32Array.from(r.objects.flatMap((o) => o.box));
      expect(Array.from(flipBoxesHorizontal(inc, W))).toEqual(boxesOf(flippedMap, W, H, n));
      const cont = Float32Array.from(r.objects.flatMap((o) => [o.box[0], o.box[1], o.box[2] + 1, o.box[3] + 1]));
      const fc = flipBoxesHorizontal(cont, W, 'continuous');
      const expected = boxesOf(flippedMap, W, H, n).map((v, k) => (k % 4 >= 2 ? v + 1 : v));
      expect(Array.from(fc)).toEqual(expected);
      // Pixels: the flipped image at a flipped box's left edge column is the original at the right edge.
      const img = flipImageHorizontal(r.image);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const a = (y * W + x) * 3;
          const b = (y * W + (W - 1 - x)) * 3;
          if (img.data[a] !== r.image.data[b] || img.data[a + 2] !== r.image.data[b + 2]) throw new Error('flip');
        }
      }
    }
    // Through a file: decode the generated PNG, flip, compare with the flipped render.
    const dir = join(tmp, 'flip-png');
    await generateShapesDataset(dir, { count: 1, seed: 8, size: { min: 48, max: 100 }, imageFormat: 'png' });
    const dec = await decodeImage(join(dir, 'JPEGImages', '000001.png'));
    const want = flipImageHorizontal(renderShapesImage(8, 0, { size: { min: 48, max: 100 } }).image);
    expect(Buffer.from(flipImageHorizontal(dec).data).equals(Buffer.from(want.data))).toBe(true);
  });

  it('resizeScale follows py-faster-rcnn (round) and torchvision (floor)', () => {
    expect(resizeScale(375, 500)).toEqual({ scale: 1.6, height: 600, width: 800 });
    expect(resizeScale(500, 2000)).toEqual({ scale: 0.5, height: 250, width: 1000 });
    // round(600/333 · 556) = 1002 > 1000 → capped.
    const c = resizeScale(333, 556);
    expect(c.scale).toBeCloseTo(1000 / 556, 12);
    expect([c.height, c.width]).toEqual([599, 1000]);
    const tv = resizeScale(333, 500, { shortSide: 800, maxSize: 1333, rule: 'torchvision' });
    expect(tv.scale).toBeCloseTo(800 / 333, 12);
    expect([tv.height, tv.width]).toEqual([Math.floor(333 * (800 / 333)), Math.floor(500 * (800 / 333))]);
    expect(Array.from(scaleBoxes(Float32Array.from([1, 2, 3, 4]), 2, 3))).toEqual([2, 6, 6, 12]);
  });

  it('resizeBilinear uses half-pixel centres (cv2 INTER_LINEAR)', async () => {
    const img: RgbImage = { width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 100, 200, 40]) };
    const up = resizeBilinear(img, 1, 4);
    expect(Array.from(up.data.filter((_, i) => i % 3 === 0))).toEqual([0, 25, 75, 100]);
    expect(Array.from(up.data.filter((_, i) => i % 3 === 1))).toEqual([0, 50, 150, 200]);
    const r = renderShapesImage(1, 0, { size: 64 });
    expect(Buffer.from(resizeBilinear(r.image, 64, 64).data).equals(Buffer.from(r.image.data))).toBe(true);
    // Downscale by 2 averages 2×2 blocks.
    const d = resizeBilinear(r.image, 32, 32);
    const src = r.image.data;
    const avg = (src[0]! + src[3]! + src[64 * 3]! + src[65 * 3]!) / 4;
    expect(Math.abs(d.data[0]! - avg)).toBeLessThanOrEqual(0.5);
    // Through a file.
    const dir = join(tmp, 'resize');
    await mkdir(dir, { recursive: true });
    const big: RgbImage = { width: 50, height: 30, data: new Uint8Array(50 * 30 * 3).fill(77) };
    await writeFile(join(dir, 'a.png'), await encodeImage(big, 'png'));
    const out = await loadImageResized(join(dir, 'a.png'), { shortSide: 60, maxSize: 90 });
    expect([out.image.height, out.image.width, out.scale]).toEqual([54, 90, 1.8]);
    expect(out.image.data.every((v) => v === 77)).toBe(true);
    const viaSharp = await loadImageResized(join(dir, 'a.png'), { shortSide: 60, maxSize: 90, resampler: 'sharp' });
    expect([viaSharp.image.height, viaSharp.image.width]).toEqual([54, 90]);
  });

  it('decodes grey images to RGB; toFloat32 layouts, BGR and means', async () => {
    const dir = join(tmp, 'grey');
    await mkdir(dir, { recursive: true });
    const f = join(dir, 'g.png');
    await sharp(Buffer.from([0, 50, 100, 150, 200, 250]), { raw: { width: 3, height: 2, channels: 1 } })
      .png()
      .toFile(f);
    const g = await decodeImage(f);
    expect([g.width, g.height]).toEqual([3, 2]);
    expect(Array.from(g.data.subarray(0, 6))).toEqual([0, 0, 0, 50, 50, 50]);
    expect((await readFile(f)).length).toBeGreaterThan(0);

    const img: RgbImage = { width: 2, height: 1, data: Uint8Array.from([10, 20, 30, 40, 50, 60]) };
    expect(Array.from(toFloat32(img, { scale: 1 }))).toEqual([10, 40, 20, 50, 30, 60]);
    expect(Array.from(toFloat32(img, { scale: 1, layout: 'hwc' }))).toEqual([10, 20, 30, 40, 50, 60]);
    const pfr = toFloat32(img, { scale: 1, order: 'bgr', mean: PFR_PIXEL_MEANS_BGR });
    expect(pfr[0]).toBeCloseTo(30 - 102.9801, 4); // B of pixel 0
    expect(pfr[5]).toBeCloseTo(40 - 122.7717, 4); // R of pixel 1
    const tv = toFloat32(img, { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
    expect(tv[0]).toBeCloseTo((10 / 255 - 0.5) / 0.25, 6);
  });

  it('VOC_CLASSES has the 20 PASCAL classes', () => {
    expect(VOC_CLASSES.length).toBe(20);
    expect(VOC_CLASSES[14]).toBe('person');
  });
});
