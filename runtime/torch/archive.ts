/** What the two torch.save formats (zip and legacy) hand to the state-dict reader. */
import type { PickleValue } from './pickle.js';
import type { StorageRef } from './torch-globals.js';

export type StateDictFormat = 'torch-zip' | 'torch-legacy' | 'safetensors';

export interface TorchArchive {
  readonly format: 'torch-zip' | 'torch-legacy';
  /** Names the file in messages. */
  readonly source: string;
  /** The unpickled object (a state dict, or a checkpoint dict holding one). */
  readonly root: PickleValue;
  /**
   * The bytes of each storage in `keys` (root storage keys), in fresh buffers, each checked against
   * its declared size. `users(key)` names the tensors that use a storage, for messages.
   */
  readStorages(keys: readonly StorageRef[], users: (key: string) => string): Map<string, ArrayBuffer>;
}
