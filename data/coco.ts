/**
 * COCO detection JSON loader (`instances_*.json`): images, annotations with `bbox = [x, y, w, h]`,
 * `iscrowd`, and categories whose (sparse) ids are mapped to contiguous labels 1..K in ascending id
 * order (as torchvision's and Detectron's COCO wrappers do).
 *
 * Boxes become `x1, y1, x2, y2`:
 * - `'continuous'` (default, torchvision): x2 = x + w, y2 = y + h.
 * - `'inclusive'` (py-faster-rcnn `coco.py`): x2 = x + max(0, w − 1), y2 = y + max(0, h − 1).
 * A non-standard `ignore: 1` (as the shapes generator writes for VOC-difficult objects) sets `difficult`.
 * Boxes are not clipped, so that boxes outside the image are reported rather than hidden.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BadDataOptions, DatasetError, type DatasetWarning, lineColAt, report } from './errors.js';
import { decodeImage, imageSize } from './image.js';
import { BACKGROUND, type BoxConvention, type DetectionDataset, type DetectionSample } from './types.js';

export interface CocoOptions extends BadDataOptions {
  /** Folder holding the images named by `file_name`. */
  imageDir: string;
  /** Box convention of the output (default `'continuous'`). */
  boxConvention?: BoxConvention;
  /** Keep `iscrowd = 1` boxes (flagged in `iscrowd`; default true) or drop them. */
  includeCrowd?: boolean;
  /** As {@link VocOptions.checkImages}; default `'exists'`. */
  checkImages?: 'none' | 'exists' | 'header' | 'decode';
  /** Largest tolerated distance of a box beyond the image border, in pixels (default 0). */
  boxTolerance?: number;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Offset of the first JSON syntax error in `text` (or -1 if it is valid JSON), by a small
 * recursive-descent scan. Used only after `JSON.parse` failed, since V8's messages do not always
 * carry a position.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const lit = (word: string): void => {
    for (const ch of word) {
      if (text[i] !== ch) fail();
      i++;
    }
  };
  const str = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail();
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i++;
        return;
      }
      if (ch < 0x20) fail();
      if (ch === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) fail();
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail();
      } else i++;
    }
  };
  const num = (): void => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '' || m[0] === '-') fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail();
      }
    } else if (ch === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail();
      }
    } else if (ch === '"') str();
    else if (ch === 't') lit('true');
    else if (ch === 'f') lit('false');
    else if (ch === 'n') lit('null');
    else if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) num();
    else fail();
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (e) {
    return typeof e === 'number' ? e : -1;
  }
}

/** Parses JSON text; a syntax error names the file, line and column. */
export function parseJsonFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    let pos = jsonErrorOffset(text);
    if (pos < 0) {
      const m = /position (\d+)/.exec(msg);
      pos = m ? Number(m[1]) : text.length;
    }
    throw new DatasetError('malformed-json', { file, ...lineColAt(text, pos) }, `malformed JSON: ${msg}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Loads a COCO instances file. Labels are 1..K over the categories sorted by id. */
export async function loadCoco(annFile: string, opts: CocoOptions): Promise<DetectionDataset> {
  const file = annFile;
  const conv = opts.boxConvention ?? 'continuous';
  const check = opts.checkImages ?? 'exists';
  const tol = opts.boxTolerance ?? 0;
  const warnings: DatasetWarning[] = [];
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DatasetError('missing-file', { file }, missing ? 'annotation file not found' : (e as Error).message);
  }
  const doc = parseJsonFile(text, file);
  if (!isObj(doc)) throw new DatasetError('bad-value', { file }, 'top level is not a JSON object');
  for (const key of ['images', 'annotations', 'categories'] as const) {
    if (!Array.isArray(doc[key])) {
      throw new DatasetError('missing-field', { file, field: key }, `missing or not an array`);
    }
  }
  const catList = doc.categories as unknown[];
  const cats: { id: number; name: string }[] = [];
  catList.forEach((c, i) => {
    if (!isObj(c) || !isNum(c.id) || typeof c.name !== 'string') {
      throw new DatasetError('bad-value', { file, field: `categories[${i}]` }, 'needs a numeric id and a name');
    }
    cats.push({ id: c.id, name: c.name });
  });
  cats.sort((a, b) => a.id - b.id);
  const labelOf = new Map(cats.map((c, i) => [c.id, i + 1]));

  interface Img {
    key: string;
    path: string;
    width: number;
    height: number;
    boxes: number[];
    labels: number[];
    crowd: number[];
    ignore: number[];
  }
  const images = new Map<string, Img>();
  const order: Img[] = [];
  const imgList = doc.images as unknown[];
  for (let i = 0; i < imgList.length; i++) {
    const im = imgList[i];
    const field = `images[${i}]`;
    try {
      if (!isObj(im)) throw new DatasetError('bad-value', { file, field }, 'not an object');
      if (!isNum(im.id) && typeof im.id !== 'string') {
        throw new DatasetError('missing-field', { file, field: `${field}.id` }, 'missing image id');
      }
      if (typeof im.file_name !== 'string' || im.file_name === '') {
        throw new DatasetError('missing-field', { file, field: `${field}.file_name` }, 'missing file_name');
      }
      if (!isNum(im.width) || !isNum(im.height) || im.width <= 0 || im.height <= 0) {
        throw new DatasetError(
          'bad-value',
          { file, field: `${field}.width/height` },
          'needs positive width and height',
        );
      }
      const path = join(opts.imageDir, im.file_name);
      if (check === 'exists') {
        if (!(await exists(path)))
          throw new DatasetError('missing-file', { file: path }, `image file not found (${field} in ${file})`);
      } else if (check === 'header' || check === 'decode') {
        const size = check === 'decode' ? await decodeImage(path) : await imageSize(path);
        if (size.width !== im.width || size.height !== im.height) {
          throw new DatasetError(
            'size-mismatch',
            { file, field },
            `size ${im.width}×${im.height} differs from the image ${path} (${size.width}×${size.height})`,
          );
        }
      }
      const img: Img = {
        key: String(im.id),
        path,
        width: im.width,
        height: im.height,
        boxes: [],
        labels: [],
        crowd: [],
        ignore: [],
      };
      images.set(img.key, img);
      order.push(img);
    } catch (e) {
      if (!(e instanceof DatasetError)) throw e;
      report(e, 'image', opts, warnings);
    }
  }

  const annList = doc.annotations as unknown[];
  const knownIds = new Set(imgList.map((im) => (isObj(im) ? String(im.id) : '')));
  annList.forEach((a, i) => {
    const field = `annotations[${i}]`;
    try {
      if (!isObj(a)) throw new DatasetError('bad-value', { file, field }, 'not an object');
      const tag = a.id !== undefined ? ` (id ${String(a.id)})` : '';
      const key = String(a.image_id);
      if (!knownIds.has(key)) {
        throw new DatasetError('bad-value', { file, field: `${field}.image_id` }, `unknown image_id ${key}${tag}`);
      }
      const img = images.get(key);
      if (!img) return; // its image was skipped
      const bb = a.bbox;
      if (!Array.isArray(bb) || bb.length !== 4 || !bb.every(isNum)) {
        throw new DatasetError(
          'bad-value',
          { file, field: `${field}.bbox` },
          `bbox must be 4 numbers [x, y, w, h]${tag}`,
        );
      }
      const [x, y, w, h] = bb as [number, number, number, number];
      if (w < 0 || h < 0) {
        throw new DatasetError(
          'box-inverted',
          { file, field: `${field}.bbox` },
          `${w < 0 ? `x2 < x1 (w = ${w})` : `y2 < y1 (h = ${h})`}${tag}`,
        );
      }
      if (x < -tol || y < -tol || x + w > img.width + tol || y + h > img.height + tol) {
        throw new DatasetError(
          'box-outside-image',
          { file, field: `${field}.bbox` },
          `box [${x}, ${y}, ${w}, ${h}] (xywh) outside the ${img.width}×${img.height} image ${img.key}${tag}`,
        );
      }
      const label = labelOf.get(a.category_id as number);
      if (label === undefined) {
        throw new DatasetError(
          'unknown-class',
          { file, field: `${field}.category_id` },
          `unknown category_id ${String(a.category_id)}${tag}`,
        );
      }
      const crowd = a.iscrowd === 1 || a.iscrowd === true ? 1 : 0;
      if (crowd && opts.includeCrowd === false) return;
      if (conv === 'continuous') img.boxes.push(x, y, x + w, y + h);
      else img.boxes.push(x, y, x + Math.max(0, w - 1), y + Math.max(0, h - 1));
      img.labels.push(label);
      img.crowd.push(crowd);
      img.ignore.push(a.ignore === 1 || a.ignore === true ? 1 : 0);
    } catch (e) {
      if (!(e instanceof DatasetError)) throw e;
      report(e, 'object', opts, warnings);
    }
  });

  const samples: DetectionSample[] = order.map((im) => ({
    id: im.key,
    imagePath: im.path,
    width: im.width,
    height: im.height,
    boxes: Float32Array.from(im.boxes),
    labels: Int32Array.from(im.labels),
    difficult: Uint8Array.from(im.ignore),
    iscrowd: Uint8Array.from(im.crowd),
  }));
  return { classes: [BACKGROUND, ...cats.map((c) => c.name)], samples, boxConvention: conv, warnings };
}
