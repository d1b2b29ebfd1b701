/** The Node wrapper of readStateDict: reads a file by path (the rest of runtime/torch/ needs no Node API). */
import { readFile } from 'node:fs/promises';
import { WgflowError } from '../errors.js';
import { type LoadedStateDict, type ReadStateDictOptions, readStateDict } from './read.js';

/** Reads a `.pth` (zip or legacy torch.save format) or safetensors file; see readStateDict. */
export async function loadStateDict(path: string, options: ReadStateDictOptions = {}): Promise<LoadedStateDict> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new WgflowError(`checkpoint ${path}: cannot read: ${(e as Error).message}`);
  }
  return readStateDict(bytes, path, options);
}
