/**
 * Fitting a loaded state dict to a model: given the tensors the model expects ({name, shape}) and the
 * file's tensors, return the file's tensor for every expected name, or throw ONE WgflowError that
 * lists every missing key, every unexpected key and every shape mismatch. BatchNorm's
 * `num_batches_tracked` counters are ignored on both sides (inference and fine-tuning do not use them).
 * File keys can be renamed first (prefix rules such as "module." → "" for DataParallel checkpoints,
 * or a function), and keys the model does not use can be ignored by pattern.
 */
import { WgflowError } from '../errors.js';
import type { LoadedStateDict } from './read.js';
import type { StateDict, StateTensor } from './state-tensor.js';

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/** Replace the prefix `from` of a file key by `to` (the first rule that matches applies). */
export interface PrefixRule {
  readonly from: string;
  readonly to: string;
}

export interface MapStateDictOptions {
  /** Prefix rules, or a function from a file key to the model's name (null: drop the key). */
  readonly rename?: readonly PrefixRule[] | ((key: string) => string | null);
  /** File keys (before renaming) that the model need not use: exact names or patterns. */
  readonly ignore?: readonly (string | RegExp)[];
  /** Names the file in the error (default: the loaded state dict's name, else "state dict"). */
  readonly source?: string;
}

const IGNORED = /(^|\.)num_batches_tracked$/;
const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

function renamer(rule: MapStateDictOptions['rename']): (key: string) => string | null {
  if (rule === undefined) return (k) => k;
  if (typeof rule === 'function') return rule;
  return (k) => {
    const r = rule.find((p) => k.startsWith(p.from));
    return r ? r.to + k.slice(r.from.length) : k;
  };
}

/** The file's tensor for each expected name, in the expected order (see the file comment). */
export function mapStateDict(
  expected: readonly ExpectedTensor[],
  stateDict: StateDict | LoadedStateDict,
  options: MapStateDictOptions = {},
): Map<string, StateTensor> {
  const loaded = stateDict instanceof Map ? null : stateDict;
  const tensors = loaded ? loaded.tensors : (stateDict as StateDict);
  const source = options.source ?? (loaded ? `state dict ${loaded.name}` : 'state dict');
  const rename = renamer(options.rename);
  const ignore = options.ignore ?? [];
  const ignored = (k: string) => ignore.some((p) => (typeof p === 'string' ? p === k : p.test(k)));

  const byName = new Map<string, { key: string; t: StateTensor }>();
  const clashes: string[] = [];
  const unexpectedKeys: string[] = [];
  const want = new Map(expected.filter((e) => !IGNORED.test(e.name)).map((e) => [e.name, e]));
  for (const [key, t] of tensors) {
    if (IGNORED.test(key)) continue;
    const name = rename(key);
    if (name === null) continue;
    const prev = byName.get(name);
    if (prev) {
      clashes.push(`"${prev.key}" and "${key}" both map to "${name}"`);
      continue;
    }
    byName.set(name, { key, t });
    if (!want.has(name) && !ignored(key)) unexpectedKeys.push(name === key ? `"${key}"` : `"${key}" (as "${name}")`);
  }
  const missing: string[] = [];
  const mismatched: string[] = [];
  const out = new Map<string, StateTensor>();
  for (const [name, e] of want) {
    const got = byName.get(name);
    if (!got) {
      missing.push(`"${name}" ${shapeText(e.shape)}`);
      continue;
    }
    if (got.t.shape.length !== e.shape.length || got.t.shape.some((d, i) => d !== e.shape[i]))
      mismatched.push(
        `"${name}"${got.key === name ? '' : ` (file key "${got.key}")`}: model ${shapeText(e.shape)}, file ${shapeText(got.t.shape)}`,
      );
    else out.set(name, got.t);
  }
  const parts: string[] = [];
  const list = (title: string, items: string[]) => {
    if (items.length > 0) parts.push(`${items.length} ${title}:\n  ${items.join('\n  ')}`);
  };
  list(missing.length === 1 ? 'missing key' : 'missing keys', missing);
  list(unexpectedKeys.length === 1 ? 'unexpected key' : 'unexpected keys', unexpectedKeys);
  list(mismatched.length === 1 ? 'shape mismatch' : 'shape mismatches', mismatched);
  list(clashes.length === 1 ? 'key clash after renaming' : 'key clashes after renaming', clashes);
  if (parts.length > 0) throw new WgflowError(`${source} does not fit the model:\n${parts.join('\n')}`);
  return out;
}
