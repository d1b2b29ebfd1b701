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
import { isAbsolute, join } from 'node:path';
import { WgflowError } from '../runtime/errors.js';
import { INPUT_LIMITS } from '../runtime/input-file.js';
import { type BadDataOptions, DatasetError, type DatasetWarning, lineColAt, report } from './errors.js';
import { checkImageSize, decodeImage, type ImageLimits, imageSize } from './image.js';
import { checkDatasetFile, readDatasetText } from './read.js';
import { BACKGROUND, type BoxConvention, type DetectionDataset, type DetectionSample } from './types.js';

export interface CocoOptions extends BadDataOptions {
  /** Folder holding the images named by `file_name`. */
  imageDir: string;
  /** Box convention of the output (default `'continuous'`). */
  boxConvention?: BoxConvention;
  /** Keep `iscrowd = 1` boxes (flagged in `iscrowd`; default true) or drop them. */
  includeCrowd?: boolean;
  /**
   * As {@link VocOptions.checkImages}; default `'header'` (each image's header is read, so a
   * width/height that differs from the image is an error at load time).
   */
  checkImages?: 'none' | 'exists' | 'header' | 'decode';
  /** Limits on each image (default IMAGE_LIMITS), also applied to the declared width/height. */
  imageLimits?: ImageLimits;
  /** Largest annotation file, bytes (default INPUT_LIMITS.textBytes, 1 GiB), checked before reading. */
  maxBytes?: number;
  /** Largest tolerated distance of a box beyond the image border, in pixels (default 0). */
  boxTolerance?: number;
}

type Json = Record<string, unknown>;
const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
/** A JSON value, short, for messages. */
const show = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  const t = JSON.stringify(v) ?? String(v);
  return t.length > 40 ? `${t.slice(0, 40)}…` : t;
};
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

/**
 * Why `name` may not be used as a `file_name` under the image folder, or undefined if it may: it must
 * be a relative path (no leading `/` or `\\`, no drive letter), none of whose parts (split at `/` and
 * `\\`) is `..`, with no NUL; so every image stays inside the image folder.
 */
export function unsafeFileName(name: string): string | undefined {
  if (name.includes('\0')) return 'holds a NUL character';
  if (isAbsolute(name) || /^[\\/]/.test(name) || /^[A-Za-z]:/.test(name))
    return 'is an absolute path; file_name is relative to the image folder';
  if (name.split(/[\\/]/).includes('..')) return "has a '..' part and would leave the image folder";
  return undefined;
}

/** Loads a COCO instances file. Labels are 1..K over the categories sorted by id. */
export async function loadCoco(annFile: string, opts: CocoOptions): Promise<DetectionDataset> {
  const file = annFile;
  const conv = opts.boxConvention ?? 'continuous';
  const check = opts.checkImages ?? 'header';
  const tol = opts.boxTolerance ?? 0;
  if (!isObj(opts) || typeof opts.imageDir !== 'string' || opts.imageDir === '')
    throw new WgflowError('loadCoco: options.imageDir (the folder holding the images) is required');
  if (conv !== 'continuous' && conv !== 'inclusive')
    throw new WgflowError(`loadCoco: boxConvention ${JSON.stringify(conv)} must be 'continuous' or 'inclusive'`);
  if (!Number.isFinite(tol) || tol < 0)
    throw new WgflowError(`loadCoco: boxTolerance ${tol} must be a finite number ≥ 0`);
  const limits = opts.imageLimits ?? {};
  const warnings: DatasetWarning[] = [];
  const text = await readDatasetText(
    file,
    { what: 'COCO annotations', maxBytes: opts.maxBytes ?? INPUT_LIMITS.textBytes },
    'annotation file not found',
  );
  const doc = parseJsonFile(text, file);
  if (!isObj(doc)) throw new DatasetError('bad-value', { file }, 'top level is not a JSON object');
  for (const key of ['images', 'annotations', 'categories'] as const) {
    if (!Array.isArray(doc[key])) {
      throw new DatasetError(
        'missing-field',
        { file, field: key },
        doc[key] === undefined ? 'missing (an array is required)' : `must be an array, got ${typeName(doc[key])}`,
      );
    }
  }
  const catList = doc.categories as unknown[];
  const cats: { id: number; name: string }[] = [];
  const catAt = new Map<number, number>();
  const catNameAt = new Map<string, number>();
  catList.forEach((c, i) => {
    const field = `categories[${i}]`;
    if (!isObj(c)) throw new DatasetError('bad-value', { file, field }, `must be an object, got ${typeName(c)}`);
    if (!Number.isInteger(c.id))
      throw new DatasetError('bad-value', { file, field: `${field}.id` }, `must be an integer, got ${show(c.id)}`);
    if (typeof c.name !== 'string' || c.name.trim() === '')
      throw new DatasetError(
        'bad-value',
        { file, field: `${field}.name` },
        `must be a non-empty string, got ${show(c.name)}`,
      );
    const id = c.id as number;
    const k = catAt.get(id);
    if (k !== undefined)
      throw new DatasetError(
        'duplicate-id',
        { file, field: `${field}.id` },
        `category id ${id} is used twice (also categories[${k}])`,
      );
    const kn = catNameAt.get(c.name);
    if (kn !== undefined)
      throw new DatasetError(
        'duplicate-id',
        { file, field: `${field}.name` },
        `category name '${c.name}' is used twice (also categories[${kn}]); class names must be unique`,
      );
    catAt.set(id, i);
    catNameAt.set(c.name, i);
    cats.push({ id, name: c.name });
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
  // Ids first, over every entry (a skipped image's id still counts): an id used twice would put one
  // image's boxes on another, so it is an error even with skipBad.
  const idAt = new Map<string, number>();
  const nameAt = new Map<string, number>();
  imgList.forEach((im, i) => {
    if (!isObj(im) || !(Number.isInteger(im.id) || (typeof im.id === 'string' && im.id !== ''))) return;
    const key = String(im.id);
    const k = idAt.get(key);
    if (k !== undefined)
      throw new DatasetError(
        'duplicate-id',
        { file, field: `images[${i}].id` },
        `image id ${show(im.id)} is used twice (also images[${k}]); annotations could not tell the images apart`,
      );
    idAt.set(key, i);
    if (typeof im.file_name === 'string') {
      const n = nameAt.get(im.file_name);
      if (n !== undefined)
        throw new DatasetError(
          'duplicate-id',
          { file, field: `images[${i}].file_name` },
          `file_name '${im.file_name}' is used twice (also images[${n}])`,
        );
      nameAt.set(im.file_name, i);
    }
  });
  for (let i = 0; i < imgList.length; i++) {
    const im = imgList[i];
    const field = `images[${i}]`;
    try {
      if (!isObj(im)) throw new DatasetError('bad-value', { file, field }, `must be an object, got ${typeName(im)}`);
      if (!(Number.isInteger(im.id) || (typeof im.id === 'string' && im.id !== ''))) {
        throw new DatasetError(
          im.id === undefined ? 'missing-field' : 'bad-value',
          { file, field: `${field}.id` },
          im.id === undefined
            ? 'missing image id'
            : `image id must be an integer or a non-empty string, got ${show(im.id)}`,
        );
      }
      if (typeof im.file_name !== 'string' || im.file_name === '') {
        throw new DatasetError(
          'missing-field',
          { file, field: `${field}.file_name` },
          im.file_name === undefined
            ? 'missing file_name'
            : `file_name must be a non-empty string, got ${show(im.file_name)}`,
        );
      }
      const unsafe = unsafeFileName(im.file_name);
      if (unsafe)
        throw new DatasetError(
          'unsafe-path',
          { file, field: `${field}.file_name` },
          `file_name ${JSON.stringify(im.file_name)} ${unsafe}`,
        );
      if (
        !Number.isInteger(im.width) ||
        !Number.isInteger(im.height) ||
        (im.width as number) <= 0 ||
        (im.height as number) <= 0
      ) {
        throw new DatasetError(
          'bad-value',
          { file, field: `${field}.width/height` },
          `needs positive integer width and height, got ${show(im.width)}×${show(im.height)}`,
        );
      }
      const width = im.width as number;
      const height = im.height as number;
      try {
        checkImageSize(width, height, file, limits);
      } catch (e) {
        if (!(e instanceof DatasetError)) throw e;
        throw new DatasetError(e.problem, { file, field: `${field}.width/height` }, e.detail);
      }
      const path = join(opts.imageDir, im.file_name);
      if (check === 'exists') {
        await checkDatasetFile(
          path,
          { what: 'image', maxBytes: limits.maxBytes ?? Number.POSITIVE_INFINITY },
          `image file not found (${field} in ${file})`,
        );
      } else if (check === 'header' || check === 'decode') {
        const size = check === 'decode' ? await decodeImage(path, limits) : await imageSize(path, limits);
        if (size.width !== width || size.height !== height) {
          throw new DatasetError(
            'size-mismatch',
            { file, field },
            `size ${width}×${height} differs from the image ${path} (${size.width}×${size.height})`,
          );
        }
      }
      const img: Img = {
        key: String(im.id),
        path,
        width,
        height,
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
  const annAt = new Map<string, number>();
  annList.forEach((a, i) => {
    const field = `annotations[${i}]`;
    try {
      if (!isObj(a)) throw new DatasetError('bad-value', { file, field }, `must be an object, got ${typeName(a)}`);
      const tag = a.id !== undefined ? ` (id ${show(a.id)})` : '';
      if (a.id !== undefined) {
        const k = annAt.get(String(a.id));
        if (k !== undefined)
          throw new DatasetError(
            'duplicate-id',
            { file, field: `${field}.id` },
            `annotation id ${show(a.id)} is used twice (also annotations[${k}])`,
          );
        annAt.set(String(a.id), i);
      }
      if (!(Number.isInteger(a.image_id) || typeof a.image_id === 'string'))
        throw new DatasetError(
          a.image_id === undefined ? 'missing-field' : 'bad-value',
          { file, field: `${field}.image_id` },
          `${a.image_id === undefined ? 'missing image_id' : `image_id must be an integer, got ${show(a.image_id)}`}${tag}`,
        );
      const key = String(a.image_id);
      if (!idAt.has(key)) {
        throw new DatasetError(
          'bad-value',
          { file, field: `${field}.image_id` },
          `unknown image_id ${show(a.image_id)}${tag}: no image has this id`,
        );
      }
      if (!Number.isInteger(a.category_id))
        throw new DatasetError(
          a.category_id === undefined ? 'missing-field' : 'bad-value',
          { file, field: `${field}.category_id` },
          `${a.category_id === undefined ? 'missing category_id' : `category_id must be an integer, got ${show(a.category_id)}`}${tag}`,
        );
      const img = images.get(key);
      if (!img) return; // its image was skipped
      const bb = a.bbox;
      if (!Array.isArray(bb) || bb.length !== 4 || !bb.every(isNum)) {
        throw new DatasetError(
          bb === undefined ? 'missing-field' : 'bad-value',
          { file, field: `${field}.bbox` },
          `bbox must be 4 finite numbers [x, y, w, h], got ${show(bb)}${tag}`,
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
      if (conv === 'continuous' && (w === 0 || h === 0)) {
        throw new DatasetError(
          'box-inverted',
          { file, field: `${field}.bbox` },
          `an empty box (w = ${w}, h = ${h}); a continuous box needs w > 0 and h > 0${tag}`,
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
          `unknown category_id ${String(a.category_id)}${tag}: not among the categories`,
        );
      }
      for (const flag of ['iscrowd', 'ignore'] as const) {
        const v = a[flag];
        if (!(v === undefined || v === 0 || v === 1 || v === true || v === false))
          throw new DatasetError(
            'bad-value',
            { file, field: `${field}.${flag}` },
            `${flag} must be 0 or 1, got ${show(v)}${tag}`,
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
