/**
 * Errors and warnings of the dataset loaders. Every problem names the FILE, and the line and the
 * field where they can be found, e.g.
 *   `/data/VOC/Annotations/000005.xml:14: object[1].bndbox.xmax: x2 (10) < x1 (20)`.
 * Loaders either throw a {@link DatasetError}, or, with `{ skipBad: true }`, skip the bad image or
 * the bad object and report a {@link DatasetWarning} through `onWarning` (default: `console.warn`).
 */
import { WgflowError } from '../runtime/errors.js';

export type DatasetProblem =
  | 'missing-file'
  | 'corrupt-image'
  | 'malformed-xml'
  | 'malformed-json'
  | 'missing-field'
  | 'bad-value'
  | 'box-outside-image'
  | 'box-inverted'
  | 'unknown-class'
  | 'size-mismatch'
  /** Not a regular file (a folder, a pipe, a device), unreadable, or over its size limit. */
  | 'bad-file'
  /** An image whose decoded size (from its header) is over the image limits (`IMAGE_LIMITS`, data/image.ts). */
  | 'image-too-large'
  /** An id (VOC image set line, COCO image / category / annotation id) given twice. */
  | 'duplicate-id'
  /** A file name that leaves the dataset's folder (absolute, or with a `..` part). */
  | 'unsafe-path';

/** Where a problem is: the file, and optionally a 1-based line (and column) and a field path. */
export interface DatasetLocation {
  file: string;
  line?: number;
  column?: number;
  field?: string;
}

export function formatLocation(loc: DatasetLocation): string {
  let s = loc.file;
  if (loc.line !== undefined) s += `:${loc.line}`;
  if (loc.line !== undefined && loc.column !== undefined) s += `:${loc.column}`;
  if (loc.field) s += `: ${loc.field}`;
  return s;
}

/** A dataset file is missing, unreadable or inconsistent. `message` starts with `file[:line[:col]][: field]`. */
export class DatasetError extends WgflowError {
  override name = 'DatasetError';
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly field: string | undefined;
  constructor(
    readonly problem: DatasetProblem,
    loc: DatasetLocation,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${formatLocation(loc)}: ${detail}`, options);
    this.file = loc.file;
    this.line = loc.line;
    this.column = loc.column;
    this.field = loc.field;
  }
}

/** What a loader skipped under `skipBad`, and why. */
export interface DatasetWarning {
  problem: DatasetProblem;
  file: string;
  line?: number;
  field?: string;
  /** `'image'`: the whole image was dropped; `'object'`: one box was dropped. */
  skipped: 'image' | 'object';
  message: string;
}

export interface BadDataOptions {
  /** Skip bad images / objects with a warning instead of throwing. Default false. */
  skipBad?: boolean;
  /** Receives each warning under `skipBad` (default: `console.warn(message)`). */
  onWarning?: (w: DatasetWarning) => void;
}

/** Throws `err`, or under `skipBad` turns it into a warning (pushed to `sink` and reported). */
export function report(
  err: DatasetError,
  skipped: 'image' | 'object',
  opts: BadDataOptions,
  sink: DatasetWarning[],
): void {
  if (!opts.skipBad) throw err;
  const w: DatasetWarning = {
    problem: err.problem,
    file: err.file,
    skipped,
    message: `skipped ${skipped}: ${err.message}`,
  };
  if (err.line !== undefined) w.line = err.line;
  if (err.field !== undefined) w.field = err.field;
  sink.push(w);
  if (opts.onWarning) opts.onWarning(w);
  else console.warn(`wgflow data: ${w.message}`);
}

/** 1-based line and column of character offset `pos` in `text`. */
export function lineColAt(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  const end = Math.min(Math.max(pos, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  }
  return { line, column: end - last };
}
