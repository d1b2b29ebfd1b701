/** Bad COCO instances files (loadCoco, openDataset with --coco). */
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { type DatasetWarning, loadCoco, openDataset } from '../../index.js';
import { cocoDoc, makeCoco } from './make-images.js';
import type { CaseContext, CorpusCase } from './types.js';

type Doc = ReturnType<typeof cocoDoc>;

const paths = (ctx: CaseContext) => ({ ann: join(ctx.dir, 'ann.json'), images: join(ctx.dir, 'images') });

/** The valid document changed by `edit` (or raw text) must be refused with a DatasetError matching `message`. */
const bad = (id: string, what: string, edit: ((d: Doc) => void) | string, message: RegExp): CorpusCase => ({
  id: `coco/${id}`,
  area: 'coco',
  kind: 'library',
  what,
  expect: { error: 'DatasetError', message },
  timeoutMs: 5000,
  setup: (ctx) => {
    if (typeof edit === 'string') makeCoco(ctx.dir, edit);
    else {
      const d = cocoDoc();
      edit(d);
      makeCoco(ctx.dir, d);
    }
  },
  run: (ctx) => loadCoco(paths(ctx).ann, { imageDir: paths(ctx).images }),
});

const ann = (d: Doc, i: number) => d.annotations[i] as Record<string, unknown>;

export const cases: CorpusCase[] = [
  {
    id: 'coco/valid',
    area: 'coco',
    kind: 'library',
    what: 'a valid file: sparse category ids map to labels 1..K, boxes continuous',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      makeCoco(ctx.dir, cocoDoc());
    },
    run: async (ctx) => {
      const ds = await loadCoco(paths(ctx).ann, { imageDir: paths(ctx).images });
      const b = ds.samples[1];
      if (ds.classes.join() !== '__background__,cat,dog' || b?.labels.join() !== '2,1' || b.boxes[2] !== 6)
        throw new Error(JSON.stringify({ classes: ds.classes, labels: b && [...b.labels], boxes: b && [...b.boxes] }));
    },
  },
  {
    id: 'coco/bom',
    area: 'coco',
    kind: 'library',
    what: 'a UTF-8 byte-order mark before the JSON: accepted',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      makeCoco(ctx.dir, `\ufeff${JSON.stringify(cocoDoc())}`);
    },
    run: async (ctx) => {
      const ds = await loadCoco(paths(ctx).ann, { imageDir: paths(ctx).images });
      if (ds.samples.length !== 2) throw new Error(`${ds.samples.length} images`);
    },
  },
  bad(
    'duplicate-image-id',
    'two images with id 1 (boxes would move onto the wrong file)',
    (d) => {
      (d.images[1] as Record<string, unknown>).id = 1;
    },
    /ann\.json: images\[1\]\.id: image id 1 is used twice \(also images\[0\]\)/,
  ),
  bad(
    'duplicate-image-id-string',
    'image ids 1 and "1"',
    (d) => {
      (d.images[1] as Record<string, unknown>).id = '1';
    },
    /images\[1\]\.id: image id "1" is used twice/,
  ),
  bad(
    'duplicate-category-id',
    'two categories with id 3',
    (d) => {
      (d.categories[1] as Record<string, unknown>).id = 3;
    },
    /ann\.json: categories\[1\]\.id: category id 3 is used twice \(also categories\[0\]\)/,
  ),
  bad(
    'duplicate-category-name',
    'two categories named cat',
    (d) => {
      (d.categories[1] as Record<string, unknown>).name = 'cat';
    },
    /categories\[1\]\.name: category name 'cat' is used twice/,
  ),
  bad(
    'duplicate-file-name',
    'two images with the same file_name',
    (d) => {
      (d.images[1] as Record<string, unknown>).file_name = 'a.png';
    },
    /images\[1\]\.file_name: file_name 'a\.png' is used twice/,
  ),
  bad(
    'duplicate-annotation-id',
    'two annotations with id 10',
    (d) => {
      ann(d, 1).id = 10;
    },
    /annotations\[1\]\.id: annotation id 10 is used twice/,
  ),
  bad(
    'traversal-file-name',
    "file_name '../../etc/passwd'",
    (d) => {
      (d.images[0] as Record<string, unknown>).file_name = '../../etc/passwd';
    },
    /images\[0\]\.file_name: file_name "\.\.\/\.\.\/etc\/passwd" has a '\.\.' part and would leave the image folder/,
  ),
  bad(
    'absolute-file-name',
    "file_name '/etc/passwd'",
    (d) => {
      (d.images[0] as Record<string, unknown>).file_name = '/etc/passwd';
    },
    /images\[0\]\.file_name: file_name "\/etc\/passwd" is an absolute path/,
  ),
  bad(
    'windows-traversal-file-name',
    'file_name "sub\\\\..\\\\..\\\\x.png"',
    (d) => {
      (d.images[0] as Record<string, unknown>).file_name = 'sub\\..\\..\\x.png';
    },
    /images\[0\]\.file_name: .* has a '\.\.' part/,
  ),
  bad(
    'invalid-json',
    'a missing comma: the file, line and column are named',
    '{\n "images": []\n "annotations": []\n}',
    /ann\.json:3:2: malformed JSON/,
  ),
  bad('empty-file', 'a 0-byte annotation file', '', /ann\.json:1:1: malformed JSON/),
  bad('top-level-array', 'a JSON array at the top', '[1, 2]', /ann\.json: top level is not a JSON object/),
  bad(
    'missing-images',
    'no "images" key',
    (d) => {
      delete (d as Partial<Doc>).images;
    },
    /ann\.json: images: missing \(an array is required\)/,
  ),
  bad(
    'categories-object',
    '"categories" is an object',
    (d) => {
      (d as unknown as Record<string, unknown>).categories = { id: 1, name: 'cat' };
    },
    /categories: must be an array, got object/,
  ),
  bad(
    'category-id-string',
    'a category id "3"',
    (d) => {
      (d.categories[0] as Record<string, unknown>).id = '3';
    },
    /categories\[0\]\.id: must be an integer, got "3"/,
  ),
  bad(
    'image-width-string',
    'an image width "32"',
    (d) => {
      (d.images[0] as Record<string, unknown>).width = '32';
    },
    /images\[0\]\.width\/height: needs positive integer width and height, got "32"×24/,
  ),
  bad(
    'image-size-differs',
    'width/height 64×48 for a 32×24 image',
    (d) => {
      Object.assign(d.images[0] as Record<string, unknown>, { width: 64, height: 48 });
    },
    /ann\.json: images\[0\]: size 64×48 differs from the image .*a\.png \(32×24\)/,
  ),
  bad(
    'image-size-bomb',
    'an image declaring 100000×100000',
    (d) => {
      Object.assign(d.images[0] as Record<string, unknown>, { width: 100_000, height: 100_000 });
    },
    /images\[0\]\.width\/height: image is 100000×100000: a side over the limit/,
  ),
  bad(
    'missing-image-file',
    'an image whose file is missing',
    (d) => {
      (d.images[0] as Record<string, unknown>).file_name = 'ghost.png';
    },
    /images\/ghost\.png: image file not found/,
  ),
  bad(
    'unknown-image-id',
    'an annotation for image 99',
    (d) => {
      ann(d, 0).image_id = 99;
    },
    /annotations\[0\]\.image_id: unknown image_id 99 \(id 10\): no image has this id/,
  ),
  bad(
    'unknown-category-id',
    'an annotation with category 5',
    (d) => {
      ann(d, 0).category_id = 5;
    },
    /annotations\[0\]\.category_id: unknown category_id 5 \(id 10\)/,
  ),
  bad(
    'missing-category-id',
    'an annotation without category_id',
    (d) => {
      delete ann(d, 0).category_id;
    },
    /annotations\[0\]\.category_id: missing category_id \(id 10\)/,
  ),
  bad(
    'bbox-negative-width',
    'bbox width -5',
    (d) => {
      ann(d, 0).bbox = [2, 3, -5, 8];
    },
    /annotations\[0\]\.bbox: x2 < x1 \(w = -5\) \(id 10\)/,
  ),
  bad(
    'bbox-nan-string',
    'bbox width "NaN"',
    (d) => {
      ann(d, 0).bbox = [2, 3, 'NaN', 8];
    },
    /annotations\[0\]\.bbox: bbox must be 4 finite numbers \[x, y, w, h\], got \[2,3,"NaN",8\]/,
  ),
  bad(
    'bbox-null',
    'bbox with a null (what JSON.stringify writes for NaN)',
    (d) => {
      ann(d, 0).bbox = [2, 3, null, 8];
    },
    /annotations\[0\]\.bbox: bbox must be 4 finite numbers/,
  ),
  bad(
    'bbox-three-numbers',
    'bbox of 3 numbers',
    (d) => {
      ann(d, 0).bbox = [2, 3, 8];
    },
    /annotations\[0\]\.bbox: bbox must be 4 finite numbers/,
  ),
  bad(
    'bbox-empty',
    'bbox width 0 (continuous boxes)',
    (d) => {
      ann(d, 0).bbox = [2, 3, 0, 8];
    },
    /annotations\[0\]\.bbox: an empty box \(w = 0, h = 8\)/,
  ),
  bad(
    'bbox-outside',
    'bbox beyond the image',
    (d) => {
      ann(d, 0).bbox = [30, 3, 10, 8];
    },
    /annotations\[0\]\.bbox: box \[30, 3, 10, 8\] \(xywh\) outside the 32×24 image 1/,
  ),
  bad(
    'iscrowd-two',
    'iscrowd 2',
    (d) => {
      ann(d, 0).iscrowd = 2;
    },
    /annotations\[0\]\.iscrowd: iscrowd must be 0 or 1, got 2/,
  ),
  bad(
    'iscrowd-string',
    'iscrowd "1"',
    (d) => {
      ann(d, 0).iscrowd = '1';
    },
    /annotations\[0\]\.iscrowd: iscrowd must be 0 or 1, got "1"/,
  ),
  {
    id: 'coco/iscrowd-dropped-ok',
    area: 'coco',
    kind: 'library',
    what: 'includeCrowd: false drops the iscrowd box (valid)',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      makeCoco(ctx.dir, cocoDoc());
    },
    run: async (ctx) => {
      const ds = await loadCoco(paths(ctx).ann, { imageDir: paths(ctx).images, includeCrowd: false });
      if (ds.samples[1]?.labels.length !== 1) throw new Error(`${ds.samples[1]?.labels.length} boxes`);
    },
  },
  {
    id: 'coco/huge-file',
    area: 'coco',
    kind: 'library',
    what: 'a 2 GiB (sparse) annotation file: refused before reading',
    expect: {
      error: 'DatasetError',
      message: /big\.json: the COCO annotations is 2048\.0 MiB, over the limit of 1024\.0 MiB/,
    },
    timeoutMs: 3000,
    memoryMb: 100,
    setup: (ctx) => {
      const fd = openSync(join(ctx.dir, 'big.json'), 'w');
      ftruncateSync(fd, 2 * 2 ** 30);
      closeSync(fd);
    },
    run: (ctx) => loadCoco(join(ctx.dir, 'big.json'), { imageDir: ctx.dir }),
  },
  {
    id: 'coco/max-bytes-option',
    area: 'coco',
    kind: 'library',
    what: 'a valid file over a lowered maxBytes',
    expect: { error: 'DatasetError', message: /ann\.json: the COCO annotations is .* over the limit/ },
    setup: (ctx) => {
      makeCoco(ctx.dir, cocoDoc());
    },
    run: (ctx) => loadCoco(paths(ctx).ann, { imageDir: paths(ctx).images, maxBytes: 100 }),
  },
  {
    id: 'coco/annotations-fifo',
    area: 'coco',
    kind: 'library',
    what: 'the annotation file is a named pipe: refused, no wait',
    expect: {
      error: 'DatasetError',
      message: /pipe\.json: the COCO annotations must be a regular file, this is a named pipe/,
    },
    timeoutMs: 3000,
    setup: (ctx) => {
      execFileSync('mkfifo', [join(ctx.dir, 'pipe.json')]);
    },
    run: (ctx) => loadCoco(join(ctx.dir, 'pipe.json'), { imageDir: ctx.dir }),
  },
  {
    id: 'coco/missing-file',
    area: 'coco',
    kind: 'library',
    what: 'the annotation file does not exist',
    expect: { error: 'DatasetError', message: /nope\.json: annotation file not found/ },
    run: (ctx) => loadCoco(join(ctx.dir, 'nope.json'), { imageDir: ctx.dir }),
  },
  {
    id: 'coco/no-image-dir',
    area: 'coco',
    kind: 'library',
    what: 'loadCoco without imageDir',
    expect: { error: 'WgflowError', message: /loadCoco: options\.imageDir .* is required/ },
    setup: (ctx) => {
      makeCoco(ctx.dir, cocoDoc());
    },
    run: (ctx) => loadCoco(paths(ctx).ann, {} as unknown as { imageDir: string }),
  },
  {
    id: 'coco/skipbad-object-problems',
    area: 'coco',
    kind: 'library',
    what: 'skipBad: an unknown category and a negative width are skipped with warnings, the rest kept',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      const d = cocoDoc();
      ann(d, 0).category_id = 5;
      ann(d, 1).bbox = [1, 1, -5, 6];
      makeCoco(ctx.dir, d);
    },
    run: async (ctx) => {
      const seen: DatasetWarning[] = [];
      const ds = await loadCoco(paths(ctx).ann, {
        imageDir: paths(ctx).images,
        skipBad: true,
        onWarning: (w) => seen.push(w),
      });
      const kept = ds.samples.map((s) => s.labels.length).join();
      const problems = seen.map((w) => w.problem).join();
      if (kept !== '0,1' || problems !== 'unknown-class,box-inverted')
        throw new Error(`kept ${kept}, warned ${problems}`);
    },
  },
  {
    id: 'coco/skipbad-duplicate-id-still-fails',
    area: 'coco',
    kind: 'library',
    what: 'skipBad does not hide a duplicate image id',
    expect: { error: 'DatasetError', message: /images\[1\]\.id: image id 1 is used twice/ },
    setup: (ctx) => {
      const d = cocoDoc();
      (d.images[1] as Record<string, unknown>).id = 1;
      makeCoco(ctx.dir, d);
    },
    run: (ctx) => loadCoco(paths(ctx).ann, { imageDir: paths(ctx).images, skipBad: true, onWarning: () => {} }),
  },
  {
    id: 'coco/open-dataset-traversal',
    area: 'coco',
    kind: 'library',
    what: "openDataset (train/eval's path) with a '../' file_name",
    expect: { error: 'DatasetError', message: /file_name "\.\.\/ann\.json" has a '\.\.' part/ },
    setup: (ctx) => {
      const d = cocoDoc();
      (d.images[0] as Record<string, unknown>).file_name = '../ann.json';
      makeCoco(ctx.dir, d);
    },
    run: (ctx) => openDataset({ dataset: paths(ctx).images, coco: paths(ctx).ann, split: 'train', forTraining: true }),
  },
];
