/** Bad PASCAL VOC folders: annotations, image sets, class lists and images (loadVoc, openDataset). */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type DatasetWarning, loadVoc, openDataset, VOC_CLASSES } from '../../index.js';
import { makePng, makeVoc, put, VOC_H, VOC_W, type VocEntry, vocXml } from './make-images.js';
import type { CaseContext, CorpusCase } from './types.js';

const root = (ctx: CaseContext) => join(ctx.dir, 'voc');
const size = { width: VOC_W, height: VOC_H };
const dog = { name: 'dog', box: [2, 3, 20, 18] };

/** A VOC folder of `entries` must be refused by loadVoc with a DatasetError matching `message`. */
const bad = (
  id: string,
  what: string,
  entries: readonly VocEntry[],
  message: RegExp,
  opts: {
    labels?: readonly string[];
    splitText?: string;
    classes?: readonly string[];
    after?: (root: string) => void;
    loadSplit?: string;
  } = {},
): CorpusCase => ({
  id: `voc/${id}`,
  area: 'voc',
  kind: 'library',
  what,
  expect: { error: 'DatasetError', message },
  timeoutMs: 5000,
  setup: (ctx) => {
    makeVoc(root(ctx), entries, opts);
    opts.after?.(root(ctx));
  },
  run: (ctx) =>
    loadVoc(root(ctx), {
      split: opts.loadSplit ?? 'train',
      imageExt: '.png',
      ...(opts.classes ? { classes: opts.classes } : {}),
    }),
});

/** One annotation text (with the default image). */
const one = (xml: string): VocEntry[] => [{ id: 'a', xml }];

export const cases: CorpusCase[] = [
  {
    id: 'voc/valid-scanned-voc-classes',
    area: 'voc',
    kind: 'library',
    what: 'a valid VOC folder without labels.txt: VOC class names scanned, boxes made 0-based',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      makeVoc(root(ctx), [{ id: 'a' }, { id: 'b', xml: vocXml([{ name: 'cat', box: [1, 1, 5, 6] }], size) }]);
    },
    run: async (ctx) => {
      const ds = await loadVoc(root(ctx), { split: 'train', imageExt: '.png' });
      const s = ds.samples[0];
      if (ds.classes.join() !== '__background__,cat,dog' || !s || s.width !== VOC_W || s.boxes[0] !== 1)
        throw new Error(`loaded ${JSON.stringify({ classes: ds.classes, box: s && [...s.boxes] })}`);
    },
  },
  {
    id: 'voc/valid-custom-classes-scanned',
    area: 'voc',
    kind: 'library',
    what: 'custom class names (no VOC name) without a class list: still scanned (valid use)',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      makeVoc(root(ctx), [
        { id: 'a', xml: vocXml([{ name: 'widget', box: [2, 3, 20, 18] }], size) },
        { id: 'b', xml: vocXml([{ name: 'gadget', box: [1, 1, 5, 6] }], size) },
      ]);
    },
    run: async (ctx) => {
      const ds = await loadVoc(root(ctx), { split: 'train', imageExt: '.png' });
      if (ds.classes.join() !== '__background__,gadget,widget') throw new Error(ds.classes.join());
    },
  },
  {
    id: 'voc/valid-labels-txt',
    area: 'voc',
    kind: 'library',
    what: 'a labels.txt with a custom class: labels follow its order',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      makeVoc(root(ctx), one(vocXml([{ name: 'widget', box: [2, 3, 20, 18] }], size)), { labels: ['zeta', 'widget'] });
    },
    run: async (ctx) => {
      const ds = await loadVoc(root(ctx), { split: 'train', imageExt: '.png' });
      if (ds.samples[0]?.labels[0] !== 2) throw new Error(`label ${ds.samples[0]?.labels[0]}`);
    },
  },
  bad(
    'missing-size',
    'an annotation without <size>',
    one(vocXml([dog], null)),
    /Annotations\/a\.xml:1: size: missing <size>/,
  ),
  bad(
    'size-differs-from-image',
    '<size> 64×48 for a 32×24 image',
    one(vocXml([dog], { width: 64, height: 48 })),
    /a\.xml:3: size: <size> 64×48 differs from the image .*a\.png \(32×24\)/,
  ),
  bad(
    'size-zero',
    '<size> 0×0',
    one(vocXml([dog], { width: 0, height: 0 })),
    /a\.xml:3: size: size 0×0: width and height must be positive integers/,
  ),
  bad(
    'size-not-number',
    '<size><width>wide</width>',
    one(vocXml([dog], size).replace(`<width>${VOC_W}</width>`, '<width>wide</width>')),
    /a\.xml:3: size\.width: not a number: "wide"/,
  ),
  bad(
    'size-bomb',
    '<size> declaring 100000×100000',
    one(vocXml([dog], { width: 100_000, height: 100_000 })),
    /a\.xml:3: size: <size>: image is 100000×100000: a side over the limit/,
  ),
  bad(
    'misspelt-class',
    "a misspelt VOC class 'dgo' beside VOC classes (no class list)",
    [{ id: 'a' }, { id: 'b', xml: vocXml([{ name: 'dgo', box: [1, 1, 5, 6] }], size) }],
    /b\.xml:4: object\[0\]\.name: unknown class 'dgo': not a PASCAL VOC class \(did you mean 'dog'\?\)/,
  ),
  bad(
    'case-variant-class',
    "'Widget' beside 'widget' in a custom dataset (no class list)",
    [
      { id: 'a', xml: vocXml([{ name: 'widget', box: [2, 3, 20, 18] }], size) },
      { id: 'b', xml: vocXml([{ name: 'widget', box: [1, 1, 5, 6] }], size) },
      { id: 'c', xml: vocXml([{ name: 'Widget', box: [1, 1, 5, 6] }], size) },
    ],
    /c\.xml:4: object\[0\]\.name: unknown class 'Widget': differs from the class 'widget' only in case/,
  ),
  bad(
    'class-not-in-labels-txt',
    'a class that labels.txt does not list',
    one(vocXml([{ name: 'cat', box: [1, 1, 5, 6] }], size)),
    /a\.xml:4: object\[0\]\.name: unknown class 'cat': not in .*labels\.txt/,
    { labels: ['dog'] },
  ),
  bad(
    'labels-txt-duplicate',
    'labels.txt listing dog twice',
    one(vocXml([dog], size)),
    /labels\.txt:3: class "dog": listed twice \(also line 1\)/,
    { labels: ['dog', 'cat', 'dog'] },
  ),
  {
    id: 'voc/classes-option-duplicate',
    area: 'voc',
    kind: 'library',
    what: "classes: ['dog', 'dog']",
    expect: { error: 'WgflowError', message: /loadVoc: classes\[1\] "dog": listed twice/ },
    setup: (ctx) => {
      makeVoc(root(ctx), [{ id: 'a' }]);
    },
    run: (ctx) => loadVoc(root(ctx), { split: 'train', imageExt: '.png', classes: ['dog', 'dog'] }),
  },
  {
    id: 'voc/classes-option-given-ok',
    area: 'voc',
    kind: 'library',
    what: 'VOC_CLASSES given: dog is label 12',
    expect: { ok: true },
    setup: (ctx) => {
      makeVoc(root(ctx), [{ id: 'a' }]);
    },
    run: async (ctx) => {
      const ds = await loadVoc(root(ctx), { split: 'train', imageExt: '.png', classes: VOC_CLASSES });
      if (ds.samples[0]?.labels[0] !== 12) throw new Error(`label ${ds.samples[0]?.labels[0]}`);
    },
  },
  bad(
    'malformed-xml',
    'a mismatched closing tag',
    one(vocXml([dog], size).replace('</name>', '</nam>')),
    /a\.xml:5:\d+: malformed XML \(InvalidTag\)/,
  ),
  bad('empty-annotation', 'a 0-byte annotation file', one(''), /a\.xml(:\d+)?: (no <annotation> root|malformed XML)/),
  bad(
    'doctype-entities',
    'an annotation with a DOCTYPE declaring entities (billion laughs)',
    one(
      `<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n${vocXml([{ name: '&b;', box: [1, 1, 5, 6] }], size)}`,
    ),
    /a\.xml:2: a DOCTYPE or ENTITY declaration/,
  ),
  bad(
    'box-outside',
    'xmax beyond the image width',
    one(vocXml([{ name: 'dog', box: [2, 3, VOC_W + 5, 18] }], size)),
    /a\.xml:4: object\[0\]\.bndbox: box \[2, 3, 37, 18\] \(1-based\) outside the 32×24 image/,
  ),
  bad(
    'box-inverted',
    'xmax < xmin',
    one(vocXml([{ name: 'dog', box: [20, 3, 2, 18] }], size)),
    /a\.xml:4: object\[0\]\.bndbox: x2 \(2\) < x1 \(20\)/,
  ),
  bad(
    'box-nan',
    'ymin NaN',
    one(vocXml([{ name: 'dog', box: [2, 'NaN', 20, 18] }], size)),
    /a\.xml:4: object\[0\]\.bndbox\.ymin: not a number: "NaN"/,
  ),
  bad(
    'box-infinity',
    'xmax Infinity',
    one(vocXml([{ name: 'dog', box: [2, 3, 'Infinity', 18] }], size)),
    /object\[0\]\.bndbox\.xmax: not a number: "Infinity"/,
  ),
  bad(
    'box-missing',
    'an object without <bndbox>',
    one(vocXml([dog], size).replace(/<bndbox>.*<\/bndbox>/, '')),
    /a\.xml:4: object\[0\]\.bndbox: missing <bndbox>/,
  ),
  bad(
    'missing-image',
    'an annotation whose image file is missing',
    [{ id: 'a', image: null }],
    /JPEGImages\/a\.png: image file not found/,
  ),
  bad(
    'image-is-folder',
    'JPEGImages/a.png is a folder',
    [{ id: 'a', image: null }],
    /a\.png: the image must be a regular file, this is a folder/,
    { after: (r) => mkdirSync(join(r, 'JPEGImages', 'a.png')) },
  ),
  bad(
    'image-corrupt',
    'the image is a text file',
    [{ id: 'a', image: new TextEncoder().encode('not a png') }],
    /a\.png: cannot read the image header/,
  ),
  bad(
    'image-strip',
    'the image is an 8000×1 strip (its <size> says so too)',
    [{ id: 'a', xml: vocXml([dog], { width: 8000, height: 1 }), image: makePng({ width: 8000, height: 1 }) }],
    /a\.xml:3: size: <size>: image is 8000×1: aspect ratio/,
  ),
  bad(
    'traversal-id',
    "an image set line '../../etc/passwd'",
    [{ id: 'a' }],
    /train\.txt:2: image id "\.\.\/\.\.\/etc\/passwd": an id is a file name stem/,
    { splitText: 'a\n../../etc/passwd\n' },
  ),
  bad('absolute-id', "an image set line '/etc/passwd'", [{ id: 'a' }], /train\.txt:1: image id "\/etc\/passwd"/, {
    splitText: '/etc/passwd\n',
  }),
  bad(
    'duplicate-id',
    'an image set listing the same id twice',
    [{ id: 'a' }, { id: 'b' }],
    /train\.txt:3: image id 'a' is listed twice \(first on line 1\)/,
    { splitText: 'a\nb\na\n' },
  ),
  bad(
    'missing-annotation',
    'an id whose annotation file is missing',
    [{ id: 'a' }],
    /Annotations\/ghost\.xml: annotation file not found/,
    { splitText: 'a\nghost\n' },
  ),
  bad(
    'missing-split',
    'a split file that does not exist',
    [{ id: 'a' }],
    /ImageSets\/Main\/val\.txt: image set 'val' not found/,
    { loadSplit: 'val' },
  ),
  {
    id: 'voc/split-name-traversal',
    area: 'voc',
    kind: 'library',
    what: "split '../../../etc/passwd'",
    expect: {
      error: 'WgflowError',
      message: /VOC image set name "\.\.\/\.\.\/\.\.\/etc\/passwd": must be a plain name/,
    },
    setup: (ctx) => {
      makeVoc(root(ctx), [{ id: 'a' }]);
    },
    run: (ctx) => loadVoc(root(ctx), { split: '../../../etc/passwd' }),
  },
  {
    id: 'voc/annotation-fifo',
    area: 'voc',
    kind: 'library',
    what: 'an annotation that is a named pipe: refused, no wait',
    expect: { error: 'DatasetError', message: /a\.xml: the annotation must be a regular file, this is a named pipe/ },
    timeoutMs: 3000,
    setup: (ctx) => {
      makeVoc(root(ctx), [{ id: 'b' }], { splitText: 'a\n' });
      execFileSync('mkfifo', [join(root(ctx), 'Annotations', 'a.xml')]);
    },
    run: (ctx) => loadVoc(root(ctx), { split: 'train', imageExt: '.png' }),
  },
  {
    id: 'voc/skipbad-keeps-good',
    area: 'voc',
    kind: 'library',
    what: 'skipBad: a misspelt class and an outside box are skipped with warnings, the good box stays',
    expect: { ok: true },
    timeoutMs: 5000,
    setup: (ctx) => {
      makeVoc(root(ctx), [
        {
          id: 'a',
          xml: vocXml([dog, { name: 'dgo', box: [1, 1, 5, 6] }, { name: 'cat', box: [1, 1, 99, 6] }], size),
        },
      ]);
    },
    run: async (ctx) => {
      const seen: DatasetWarning[] = [];
      const ds = await loadVoc(root(ctx), {
        split: 'train',
        imageExt: '.png',
        skipBad: true,
        onWarning: (w) => seen.push(w),
      });
      const problems = seen.map((w) => w.problem).join();
      if (ds.samples[0]?.labels.length !== 1 || problems !== 'unknown-class,box-outside-image')
        throw new Error(`kept ${ds.samples[0]?.labels.length} boxes, warnings ${problems}`);
    },
  },
  {
    id: 'voc/open-dataset-file',
    area: 'voc',
    kind: 'library',
    what: 'openDataset with --dataset naming a file, not a folder',
    expect: { error: 'WgflowError', message: /dataset .*notes\.txt is not a folder/ },
    setup: (ctx) => {
      put(ctx.dir, 'notes.txt', 'hello\n');
    },
    run: (ctx) => openDataset({ dataset: join(ctx.dir, 'notes.txt'), split: 'train', forTraining: true }),
  },
];
