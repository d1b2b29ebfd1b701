/** The Node wrapper of readStateDict: reads a file by path (the rest of runtime/torch/ needs no Node API). */
import { INPUT_LIMITS, readInputFile } from '../input-file.js';
import { type LoadedStateDict, type ReadStateDictOptions, readStateDict } from './read.js';

/** Reads a `.pth` (zip or legacy torch.save format) or safetensors file; see readStateDict. */
export async function loadStateDict(path: string, options: ReadStateDictOptions = {}): Promise<LoadedStateDict> {
  // a regular file within the size limit (never a pipe or a device), checked before reading
  const bytes = await readInputFile(path, { what: 'state dict', maxBytes: INPUT_LIMITS.weightsBytes });
  return readStateDict(bytes, path, options);
}
