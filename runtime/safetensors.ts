/**
 * safetensors files on Node: read and validate a file, write one atomically. The format itself (encode,
 * decode, dtypes) is runtime/safetensors-codec.ts, which the browser build shares.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-file.js';
import { WgflowError } from './errors.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsContents,
  type TensorsToWrite,
} from './safetensors-codec.js';

export * from './safetensors-codec.js';

/** Reads and validates a safetensors file (see decodeSafetensors). */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new WgflowError(`safetensors file ${path}: cannot read: ${(e as Error).message}`);
  }
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
