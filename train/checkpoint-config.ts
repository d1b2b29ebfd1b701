/**
 * The training configuration stored in a checkpoint's metadata ("config", JSON), read and checked
 * before any use: `detect`, `eval`, `compile --checkpoint` and `--resume` all read it here, so a
 * corrupt or hand-edited checkpoint gives one WgflowError naming the file and the field.
 */
import { WgflowError } from '../compiler/errors.js';
import { readSafetensors } from '../runtime/safetensors.js';
import { type FrcnnRunConfig, validateConfig } from './frcnn-config.js';

/** Parses and validates the "config" metadata of the checkpoint `path` (undefined when it has none). */
export function parseCheckpointConfig(text: string | undefined, path: string): FrcnnRunConfig | undefined {
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new WgflowError(`checkpoint ${path}: metadata "config" is not valid JSON (${(e as Error).message})`);
  }
  validateConfig(raw as FrcnnRunConfig, `checkpoint ${path}: config`);
  return raw as FrcnnRunConfig;
}

/** Reads the checkpoint and returns its checked configuration; `what` names the option in the error when there is none. */
export async function readCheckpointConfig(path: string, what = 'checkpoint'): Promise<FrcnnRunConfig> {
  const { metadata } = await readSafetensors(path, { what: 'checkpoint' });
  const config = parseCheckpointConfig(metadata.config, path);
  if (!config)
    throw new WgflowError(`${what} ${path}: not a wgflow training checkpoint (its metadata has no "config")`);
  return config;
}
