/**
 * PASCAL VOC loader, as py-faster-rcnn's `pascal_voc._load_pascal_annotation` reads it:
 *   <root>/ImageSets/Main/<split>.txt   image ids, one a line (first token; e.g. `000005`)
 *   <root>/Annotations/<id>.xml         <size>, <object><name><difficult><bndbox>…
 *   <root>/JPEGImages/<id>.jpg
 * VOC pixel coordinates are 1-based and inclusive; they are made 0-based by subtracting 1 from all
 * four (`x1 = xmin − 1`, …), so boxes are in the `'inclusive'` convention (x2 is the last pixel).
 * Ids stay strings (`parseTagValue: false`), `object` is always an array (`isArray`).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { WgflowError } from '../runtime/errors.js';
import { INPUT_LIMITS } from '../runtime/input-file.js';
import { type BadDataOptions, DatasetError, type DatasetWarning, lineColAt, report } from './errors.js';
import { checkImageSize, decodeImage, type ImageLimits, imageSize } from './image.js';
import { checkDatasetFile, readDatasetText } from './read.js';
import { BACKGROUND, type DetectionDataset, type DetectionSample } from './types.js';

/** The 20 PASCAL VOC classes, in the order py-faster-rcnn uses (labels 1..20). */
export const VOC_CLASSES = [
  'aeroplane',
  'bicycle',
  'bird',
  'boat',
  'bottle',
  'bus',
  'car',
  'cat',
  'chair',
  'cow',
  'diningtable',
  'dog',
  'horse',
  'motorbike',
  'person',
  'pottedplant',
  'sheep',
  'sofa',
  'train',
  'tvmonitor',
] as const;

export interface VocOptions extends BadDataOptions {
  /** Image set name: reads `ImageSets/Main/<split>.txt` (default `'trainval'`). */
  split?: string;
  /**
   * Class names, without background (labels are 1 + index). Default: `<root>/labels.txt` if it
   * exists, else every name found in the split's annotations, sorted. Pass {@link VOC_CLASSES} for VOC.
   * A name outside the class list is an 'unknown-class' error. Without a class list, a dataset whose
   * names include any of the 20 {@link VOC_CLASSES} is taken as PASCAL VOC, and a name outside them
   * (a misspelling such as 'dgo') is an error too rather than a new class; so are two names that differ
   * only in case or spaces. Give `classes` or write labels.txt to use other names.
   */
  classes?: readonly string[];
  /** `'keep'` (default: kept and flagged in `difficult`) or `'drop'` (py-faster-rcnn training, `use_diff` False). */
  difficult?: 'keep' | 'drop';
  /**
   * How images are checked while loading: `'header'` (default: read the header; catches non-images,
   * images over the limits, and an XML `<size>` that differs from the image), `'decode'` (decode every
   * image: also catches truncated files; slow), `'exists'` (the file must exist), `'none'`.
   */
  checkImages?: 'none' | 'exists' | 'header' | 'decode';
  /** Limits on each image (default IMAGE_LIMITS), also applied to the `<size>` an annotation declares. */
  imageLimits?: ImageLimits;
  /** Largest annotation, image set or labels.txt file, bytes (default INPUT_LIMITS.textBytes). */
  maxTextBytes?: number;
  /** Image file extension (default `'.jpg'`). */
  imageExt?: string;
  /** Largest tolerated distance of a box beyond the image border, in pixels (default 0). */
  boxTolerance?: number;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (_name, jpath) => String(jpath) === 'annotation.object',
});

type XmlNode = Record<string, unknown>;

const isNode = (v: unknown): v is XmlNode => typeof v === 'object' && v !== null && !Array.isArray(v);

/** 1-based line of the k-th (0-based) `<object>` tag in the file text (undefined if not found). */
function objectLine(text: string, k: number): number | undefined {
  const re = /<object[\s>]/g;
  let m: RegExpExecArray | null = re.exec(text);
  for (let i = 0; m && i < k; i++) m = re.exec(text);
  return m ? lineColAt(text, m.index).line : undefined;
}

interface RawObject {
  name: string;
  difficult: boolean;
  box: [number, number, number, number];
  line: number | undefined;
  field: string;
}

interface RawAnnotation {
  width: number;
  height: number;
  /** Line of `<size>`. */
  sizeLine: number | undefined;
  objects: RawObject[];
}

/** 1-based line of the first `<tag>` in the text. */
function tagLine(text: string, tag: string): number | undefined {
  const m = new RegExp(`<${tag}[\\s>/]`).exec(text);
  return m ? lineColAt(text, m.index).line : undefined;
}

/** Parses one annotation file; object-level errors are reported (and the object dropped). */
async function parseAnnotation(file: string, opts: VocOptions, warnings: DatasetWarning[]): Promise<RawAnnotation> {
  const text = await readDatasetText(
    file,
    { what: 'annotation', maxBytes: opts.maxTextBytes ?? INPUT_LIMITS.textBytes },
    'annotation file not found',
  );
  if (/<!DOCTYPE|<!ENTITY/i.test(text))
    throw new DatasetError(
      'malformed-xml',
      { file, line: tagLine(text, '!DOCTYPE') ?? tagLine(text, '!ENTITY') },
      'a DOCTYPE or ENTITY declaration; VOC annotations have none (entities are not expanded)',
    );
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new DatasetError(
      'malformed-xml',
      { file, line: valid.err.line, column: valid.err.col },
      `malformed XML (${valid.err.code}): ${valid.err.msg}`,
    );
  }
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (e) {
    throw new DatasetError('malformed-xml', { file }, `malformed XML: ${(e as Error).message}`);
  }
  const ann = isNode(doc) ? doc.annotation : undefined;
  if (!isNode(ann))
    throw new DatasetError('missing-field', { file, field: 'annotation' }, 'no <annotation> root element');

  const num = (v: unknown, field: string, line?: number): number => {
    const s = typeof v === 'string' ? v.trim() : undefined;
    const x = s === undefined || s === '' ? Number.NaN : Number(s);
    if (!Number.isFinite(x)) {
      throw new DatasetError(
        s === undefined ? 'missing-field' : 'bad-value',
        { file, line, field },
        s === undefined ? 'missing' : `not a number: ${JSON.stringify(s)}`,
      );
    }
    return x;
  };

  const sizeLine = tagLine(text, 'size');
  if (Array.isArray(ann.size))
    throw new DatasetError(
      'bad-value',
      { file, line: tagLine(text, 'size'), field: 'size' },
      '<size> is given more than once',
    );
  if (!isNode(ann.size))
    throw new DatasetError(
      'missing-field',
      { file, line: sizeLine ?? tagLine(text, 'annotation'), field: 'size' },
      'missing <size><width>…</width><height>…</height></size> (the image size is required)',
    );
  const width = num(ann.size.width, 'size.width', sizeLine);
  const height = num(ann.size.height, 'size.height', sizeLine);
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0))
    throw new DatasetError(
      'bad-value',
      { file, line: sizeLine, field: 'size' },
      `size ${width}×${height}: width and height must be positive integers`,
    );
  try {
    checkImageSize(width, height, file, opts.imageLimits);
  } catch (e) {
    if (!(e instanceof DatasetError)) throw e;
    throw new DatasetError(e.problem, { file, line: sizeLine, field: 'size' }, `<size>: ${e.detail}`);
  }
  const objects: RawObject[] = [];
  const list = Array.isArray(ann.object) ? ann.object : [];
  list.forEach((o: unknown, k: number) => {
    const line = objectLine(text, k);
    const field = `object[${k}]`;
    try {
      if (!isNode(o)) throw new DatasetError('missing-field', { file, line, field }, 'empty <object>');
      const name = typeof o.name === 'string' ? o.name.trim() : '';
      if (!name) throw new DatasetError('missing-field', { file, line, field: `${field}.name` }, 'missing <name>');
      const diff = o.difficult === undefined ? 0 : num(o.difficult, `${field}.difficult`, line);
      const bb = o.bndbox;
      if (!isNode(bb))
        throw new DatasetError('missing-field', { file, line, field: `${field}.bndbox` }, 'missing <bndbox>');
      const c = (['xmin', 'ymin', 'xmax', 'ymax'] as const).map((t) => num(bb[t], `${field}.bndbox.${t}`, line) - 1);
      objects.push({ name, difficult: diff !== 0, box: [c[0]!, c[1]!, c[2]!, c[3]!], line, field });
    } catch (e) {
      if (!(e instanceof DatasetError)) throw e;
      report(e, 'object', opts, warnings);
    }
  });
  return { width, height, sizeLine, objects };
}

const hasControl = (s: string): boolean => [...s].some((c) => c.charCodeAt(0) < 0x20);

/**
 * Reads `ImageSets/Main/<split>.txt` (first token of every non-empty line). An id must be a plain file
 * name stem: no `/`, `\\`, control character, and not `.` or `..` (so that `<id>.xml` and the image
 * stay inside the dataset folder); an id listed twice is an error (it would train on the image twice).
 */
export async function readVocSplit(
  root: string,
  split: string,
  opts: { maxTextBytes?: number } = {},
): Promise<string[]> {
  if (/[/\\]|^\.\.?$/.test(split) || hasControl(split))
    throw new WgflowError(
      `VOC image set name ${JSON.stringify(split)}: must be a plain name such as 'train' (no '/' or '..')`,
    );
  const file = join(root, 'ImageSets', 'Main', `${split}.txt`);
  const text = await readDatasetText(
    file,
    { what: 'image set', maxBytes: opts.maxTextBytes ?? INPUT_LIMITS.textBytes },
    `image set '${split}' not found`,
  );
  const ids: string[] = [];
  const lineOf = new Map<string, number>();
  text.split(/\r?\n/).forEach((l, i) => {
    const id = l.trim().split(/\s+/)[0] ?? '';
    if (id.length === 0) return;
    const line = i + 1;
    if (/[/\\]/.test(id) || hasControl(id) || id === '.' || id === '..')
      throw new DatasetError(
        'unsafe-path',
        { file, line },
        `image id ${JSON.stringify(id)}: an id is a file name stem and may not hold '/', '\\' or control characters, or be '.' or '..'`,
      );
    const first = lineOf.get(id);
    if (first !== undefined)
      throw new DatasetError(
        'duplicate-id',
        { file, line },
        `image id '${id}' is listed twice (first on line ${first})`,
      );
    lineOf.set(id, line);
    ids.push(id);
  });
  return ids;
}

/** Levenshtein distance (small strings: class names). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

const normName = (s: string) => s.toLowerCase().replace(/[\s_-]+/g, '');

/** " (did you mean 'dog'?)" for a name close to one of `classes`, else ''. */
function suggestion(name: string, classes: readonly string[]): string {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of classes) {
    const d = normName(c) === normName(name) ? 0 : editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean '${best}'?)` : '';
}

/** A class list given or read from labels.txt: non-empty, no duplicates, no background. */
function checkClassList(list: readonly string[], where: { file: string; lines?: number[] } | 'option'): string[] {
  const out: string[] = [];
  const seen = new Map<string, number>();
  list.forEach((raw, i) => {
    const fail = (msg: string): never => {
      if (where === 'option') throw new WgflowError(`loadVoc: classes[${i}] ${JSON.stringify(raw)}: ${msg}`);
      throw new DatasetError(
        'bad-value',
        { file: where.file, line: where.lines?.[i] },
        `class ${JSON.stringify(raw)}: ${msg}`,
      );
    };
    if (typeof raw !== 'string' || raw.trim() === '') fail('a class name must be a non-empty string');
    const name = raw.trim();
    if (name === BACKGROUND) {
      if (where === 'option') fail(`'${BACKGROUND}' is label 0 and is added by the loader; leave it out`);
      return; // labels.txt may list it first (torchvision-style files)
    }
    const k = seen.get(name);
    if (k !== undefined)
      fail(`listed twice (also ${where === 'option' ? `classes[${k}]` : `line ${where.lines?.[k] ?? k + 1}`})`);
    seen.set(name, i);
    out.push(name);
  });
  if (out.length === 0) {
    if (where === 'option') throw new WgflowError('loadVoc: classes is empty; give at least one class name');
    throw new DatasetError('bad-value', { file: where.file }, 'lists no class names');
  }
  return out;
}

/** Loads a VOC-layout dataset split. See {@link VocOptions}; boxes are 0-based `'inclusive'`. */
export async function loadVoc(root: string, opts: VocOptions = {}): Promise<DetectionDataset> {
  const split = opts.split ?? 'trainval';
  const ext = opts.imageExt ?? '.jpg';
  const check = opts.checkImages ?? 'header';
  const tol = opts.boxTolerance ?? 0;
  const maxTextBytes = opts.maxTextBytes ?? INPUT_LIMITS.textBytes;
  if (!Number.isFinite(tol) || tol < 0)
    throw new WgflowError(`loadVoc: boxTolerance ${tol} must be a finite number ≥ 0`);
  if (!/^\.[A-Za-z0-9]+$/.test(ext))
    throw new WgflowError(`loadVoc: imageExt ${JSON.stringify(ext)} must be an extension such as '.jpg'`);
  const warnings: DatasetWarning[] = [];
  const ids = await readVocSplit(root, split, { maxTextBytes });

  let classes: string[] | undefined;
  /** Where the class list comes from, for the unknown-class message. */
  let classSource = '';
  if (opts.classes) {
    if (!Array.isArray(opts.classes)) throw new WgflowError('loadVoc: classes must be an array of class names');
    classes = checkClassList(opts.classes, 'option');
    classSource = 'not in the classes given';
  } else {
    const labels = join(root, 'labels.txt');
    const present = await stat(labels).then(
      () => true,
      () => false,
    );
    if (present) {
      const text = await readDatasetText(
        labels,
        { what: 'class list', maxBytes: maxTextBytes },
        'labels.txt not found',
      );
      const lines: number[] = [];
      const names: string[] = [];
      text.split(/\r?\n/).forEach((l, i) => {
        if (l.trim() === '') return;
        names.push(l);
        lines.push(i + 1);
      });
      classes = checkClassList(names, { file: labels, lines });
      classSource = `not in ${labels}`;
    }
  }

  const parsed: { id: string; file: string; image: string; ann: RawAnnotation }[] = [];
  for (const id of ids) {
    const file = join(root, 'Annotations', `${id}.xml`);
    const image = join(root, 'JPEGImages', `${id}${ext}`);
    try {
      const ann = await parseAnnotation(file, opts, warnings);
      // Image checks.
      const limits = opts.imageLimits ?? {};
      if (check === 'exists') {
        await checkDatasetFile(
          image,
          { what: 'image', maxBytes: limits.maxBytes ?? Number.POSITIVE_INFINITY },
          'image file not found',
        );
      } else if (check === 'header' || check === 'decode') {
        const size = check === 'decode' ? await decodeImage(image, limits) : await imageSize(image, limits);
        if (ann.width !== size.width || ann.height !== size.height) {
          throw new DatasetError(
            'size-mismatch',
            { file, line: ann.sizeLine, field: 'size' },
            `<size> ${ann.width}×${ann.height} differs from the image ${image} (${size.width}×${size.height})`,
          );
        }
      }
      parsed.push({ id, file, image, ann });
    } catch (e) {
      if (!(e instanceof DatasetError)) throw e;
      report(e, 'image', opts, warnings);
    }
  }

  /** Names refused when the classes are scanned, with the reason. */
  const refused = new Map<string, string>();
  if (!classes) {
    const count = new Map<string, number>();
    for (const p of parsed) for (const o of p.ann.objects) count.set(o.name, (count.get(o.name) ?? 0) + 1);
    const names = [...count.keys()].sort();
    const voc: readonly string[] = VOC_CLASSES;
    if (names.some((n) => voc.includes(n))) {
      classes = names.filter((n) => voc.includes(n));
      for (const n of names)
        if (!voc.includes(n))
          refused.set(
            n,
            `not a PASCAL VOC class${suggestion(n, VOC_CLASSES)}; the other names are VOC classes, so VOC_CLASSES is the class list (give \`classes\` or write labels.txt to use other names)`,
          );
    } else {
      // Two spellings of one name ('Circle', 'circle '): the commoner is the class, the other an error.
      const byNorm = new Map<string, string>();
      for (const n of [...names].sort((x, y) => (count.get(y) ?? 0) - (count.get(x) ?? 0) || (x < y ? -1 : 1))) {
        const k = normName(n);
        const kept = byNorm.get(k);
        if (kept === undefined) byNorm.set(k, n);
        else
          refused.set(
            n,
            `differs from the class '${kept}' only in case or spacing (give \`classes\` or write labels.txt if both are meant)`,
          );
      }
      classes = names.filter((n) => !refused.has(n));
    }
    classSource = 'not among the classes found';
  }
  const classList = classes;
  const labelOf = new Map(classList.map((c, i) => [c, i + 1]));

  const samples: DetectionSample[] = [];
  for (const { id, file, image, ann } of parsed) {
    const boxes: number[] = [];
    const labels: number[] = [];
    const difficult: number[] = [];
    for (const o of ann.objects) {
      try {
        const [x1, y1, x2, y2] = o.box;
        const loc = { file, line: o.line, field: `${o.field}.bndbox` };
        if (x2 < x1 || y2 < y1) {
          throw new DatasetError(
            'box-inverted',
            loc,
            x2 < x1 ? `x2 (${x2 + 1}) < x1 (${x1 + 1}) (1-based)` : `y2 (${y2 + 1}) < y1 (${y1 + 1}) (1-based)`,
          );
        }
        if (x1 < -tol || y1 < -tol || x2 > ann.width - 1 + tol || y2 > ann.height - 1 + tol) {
          throw new DatasetError(
            'box-outside-image',
            loc,
            `box [${x1 + 1}, ${y1 + 1}, ${x2 + 1}, ${y2 + 1}] (1-based) outside the ${ann.width}×${ann.height} image`,
          );
        }
        const label = labelOf.get(o.name);
        if (label === undefined) {
          throw new DatasetError(
            'unknown-class',
            { file, line: o.line, field: `${o.field}.name` },
            `unknown class '${o.name}': ${refused.get(o.name) ?? `${classSource}${suggestion(o.name, classList)}`}`,
          );
        }
        if (o.difficult && opts.difficult === 'drop') continue;
        boxes.push(x1, y1, x2, y2);
        labels.push(label);
        difficult.push(o.difficult ? 1 : 0);
      } catch (e) {
        if (!(e instanceof DatasetError)) throw e;
        report(e, 'object', opts, warnings);
      }
    }
    samples.push({
      id,
      imagePath: image,
      width: ann.width,
      height: ann.height,
      boxes: Float32Array.from(boxes),
      labels: Int32Array.from(labels),
      difficult: Uint8Array.from(difficult),
      iscrowd: new Uint8Array(labels.length),
    });
  }
  return { classes: [BACKGROUND, ...classList], samples, boxConvention: 'inclusive', warnings };
}
