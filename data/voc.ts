/**
 * PASCAL VOC loader, as py-faster-rcnn's `pascal_voc._load_pascal_annotation` reads it:
 *   <root>/ImageSets/Main/<split>.txt   image ids, one a line (first token; e.g. `000005`)
 *   <root>/Annotations/<id>.xml         <size>, <object><name><difficult><bndbox>…
 *   <root>/JPEGImages/<id>.jpg
 * VOC pixel coordinates are 1-based and inclusive; they are made 0-based by subtracting 1 from all
 * four (`x1 = xmin − 1`, …), so boxes are in the `'inclusive'` convention (x2 is the last pixel).
 * Ids stay strings (`parseTagValue: false`), `object` is always an array (`isArray`).
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { type BadDataOptions, DatasetError, type DatasetWarning, lineColAt, report } from './errors.js';
import { decodeImage, imageSize } from './image.js';
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
   */
  classes?: readonly string[];
  /** `'keep'` (default: kept and flagged in `difficult`) or `'drop'` (py-faster-rcnn training, `use_diff` False). */
  difficult?: 'keep' | 'drop';
  /**
   * How images are checked while loading: `'exists'` (default; the file must exist), `'header'`
   * (read the header: catches non-images and checks the XML size), `'decode'` (decode every image:
   * also catches truncated files; slow), `'none'`.
   */
  checkImages?: 'none' | 'exists' | 'header' | 'decode';
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

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

interface RawObject {
  name: string;
  difficult: boolean;
  box: [number, number, number, number];
  line: number | undefined;
  field: string;
}

interface RawAnnotation {
  width: number | undefined;
  height: number | undefined;
  objects: RawObject[];
}

/** Parses one annotation file; object-level errors are reported (and the object dropped). */
async function parseAnnotation(file: string, opts: VocOptions, warnings: DatasetWarning[]): Promise<RawAnnotation> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DatasetError(
      'missing-file',
      { file },
      missing ? 'annotation file not found' : `cannot read: ${(e as Error).message}`,
    );
  }
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

  let width: number | undefined;
  let height: number | undefined;
  if (isNode(ann.size)) {
    width = num(ann.size.width, 'size.width');
    height = num(ann.size.height, 'size.height');
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
  return { width, height, objects };
}

/** Reads `ImageSets/Main/<split>.txt` (first token of every non-empty line). */
export async function readVocSplit(root: string, split: string): Promise<string[]> {
  const file = join(root, 'ImageSets', 'Main', `${split}.txt`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new DatasetError('missing-file', { file }, `image set '${split}' not found`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((s) => s.length > 0);
}

/** Loads a VOC-layout dataset split. See {@link VocOptions}; boxes are 0-based `'inclusive'`. */
export async function loadVoc(root: string, opts: VocOptions = {}): Promise<DetectionDataset> {
  const split = opts.split ?? 'trainval';
  const ext = opts.imageExt ?? '.jpg';
  const check = opts.checkImages ?? 'exists';
  const tol = opts.boxTolerance ?? 0;
  const warnings: DatasetWarning[] = [];
  const ids = await readVocSplit(root, split);

  let classes: string[] | undefined = opts.classes ? [...opts.classes] : undefined;
  if (!classes && (await exists(join(root, 'labels.txt')))) {
    classes = (await readFile(join(root, 'labels.txt'), 'utf8'))
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter((s) => s && s !== BACKGROUND);
  }

  const parsed: { id: string; file: string; image: string; ann: RawAnnotation }[] = [];
  for (const id of ids) {
    const file = join(root, 'Annotations', `${id}.xml`);
    const image = join(root, 'JPEGImages', `${id}${ext}`);
    try {
      const ann = await parseAnnotation(file, opts, warnings);
      // Image checks.
      if (check === 'exists') {
        if (!(await exists(image))) throw new DatasetError('missing-file', { file: image }, 'image file not found');
      } else if (check === 'header' || check === 'decode') {
        const size = check === 'decode' ? await decodeImage(image) : await imageSize(image);
        if (ann.width !== undefined && (ann.width !== size.width || ann.height !== size.height)) {
          throw new DatasetError(
            'size-mismatch',
            { file, field: 'size' },
            `size ${ann.width}×${ann.height} differs from the image ${image} (${size.width}×${size.height})`,
          );
        }
        ann.width = size.width;
        ann.height = size.height;
      }
      parsed.push({ id, file, image, ann });
    } catch (e) {
      if (!(e instanceof DatasetError)) throw e;
      report(e, 'image', opts, warnings);
    }
  }

  if (!classes) {
    const names = new Set<string>();
    for (const p of parsed) for (const o of p.ann.objects) names.add(o.name);
    classes = [...names].sort();
  }
  const labelOf = new Map(classes.map((c, i) => [c, i + 1]));

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
        if (ann.width !== undefined && ann.height !== undefined) {
          if (x1 < -tol || y1 < -tol || x2 > ann.width - 1 + tol || y2 > ann.height - 1 + tol) {
            throw new DatasetError(
              'box-outside-image',
              loc,
              `box [${x1 + 1}, ${y1 + 1}, ${x2 + 1}, ${y2 + 1}] (1-based) outside the ${ann.width}×${ann.height} image`,
            );
          }
        }
        const label = labelOf.get(o.name);
        if (label === undefined) {
          throw new DatasetError(
            'unknown-class',
            { file, line: o.line, field: `${o.field}.name` },
            `unknown class '${o.name}'`,
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
      width: ann.width ?? 0,
      height: ann.height ?? 0,
      boxes: Float32Array.from(boxes),
      labels: Int32Array.from(labels),
      difficult: Uint8Array.from(difficult),
      iscrowd: new Uint8Array(labels.length),
    });
  }
  return { classes: [BACKGROUND, ...classes], samples, boxConvention: 'inclusive', warnings };
}
