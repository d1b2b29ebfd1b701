/**
 * Reading dataset files through runtime/input-file.ts (regular files only, a size limit checked before
 * reading), with its refusals turned into {@link DatasetError}s so that the loaders' `skipBad` and the
 * `file:line: field: …` form apply to them too.
 */
import { WgflowError } from '../runtime/errors.js';
import { checkInputFile, type InputFileOptions, readInputFile, readInputText } from '../runtime/input-file.js';
import { DatasetError } from './errors.js';

function asDatasetError(e: unknown, path: string, missing: string): never {
  if (e instanceof DatasetError) throw e;
  if (!(e instanceof WgflowError))
    throw new DatasetError('bad-file', { file: path }, `cannot read: ${(e as Error).message}`, { cause: e });
  const msg = e.message.startsWith(`${path}: `) ? e.message.slice(path.length + 2) : e.message;
  const gone = /: no such file$/.test(msg);
  throw new DatasetError(gone ? 'missing-file' : 'bad-file', { file: path }, gone ? missing : msg, { cause: e });
}

/** `checkInputFile` as a DatasetError (`missing` is the message for a file that does not exist). */
export async function checkDatasetFile(path: string, opts: InputFileOptions, missing: string): Promise<number> {
  try {
    return await checkInputFile(path, opts);
  } catch (e) {
    return asDatasetError(e, path, missing);
  }
}

export async function readDatasetBytes(path: string, opts: InputFileOptions, missing: string): Promise<Uint8Array> {
  try {
    return await readInputFile(path, opts);
  } catch (e) {
    return asDatasetError(e, path, missing);
  }
}

/** UTF-8 text (a leading byte-order mark dropped). */
export async function readDatasetText(path: string, opts: InputFileOptions, missing: string): Promise<string> {
  try {
    return await readInputText(path, opts);
  } catch (e) {
    return asDatasetError(e, path, missing);
  }
}

/** Whether `path` exists as anything (a missing image is then reported by the reader that needs it). */
export async function isRegularFile(path: string): Promise<boolean> {
  try {
    await checkInputFile(path, { what: 'file', maxBytes: Number.POSITIVE_INFINITY });
    return true;
  } catch {
    return false;
  }
}
