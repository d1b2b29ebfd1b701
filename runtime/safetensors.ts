/**
 * safetensors files on Node: read and validate a file, write one atomically. The format itself (encode,
 * decode, dtypes) is runtime/safetensors-codec.ts, which the browser build shares.
 */
import { writeFileAtomic } from './atomic-file.js';
import { INPUT_LIMITS, readInputFile } from './input-file.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsContents,
  type TensorsToWrite,
} from './safetensors-codec.js';

export * from './safetensors-codec.js';

/** Options of {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /** Refuse files larger than this (bytes, checked before reading). Default INPUT_LIMITS.weightsBytes (16 GiB). */
  readonly maxBytes?: number;
  /** What the file is, for messages (default 'safetensors file'). */
  readonly what?: string;
}

/** Reads and validates a safetensors file (see decodeSafetensors): a regular file within the size limit. */
export async function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): Promise<SafetensorsContents> {
  const bytes = await readInputFile(path, {
    what: opts.what ?? 'safetensors file',
    maxBytes: opts.maxBytes ?? INPUT_LIMITS.weightsBytes,
  });
  return decodeSafetensors(bytes, path);
}

/** Writes a safetensors file atomically (temp file + fsync + rename; see writeFileAtomic). */
export async function writeSafetensors(
  path: string,
  tensors: TensorsToWrite,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
