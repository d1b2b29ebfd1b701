/**
 * Reading a PyTorch state dict from bytes, whatever the file: the zip format of `torch.save`, its
 * legacy format, or safetensors with the same key names. The format is told by content (zip magic,
 * a u64 header length followed by '{', a pickle), not by the file name. Every format gives the same
 * structure: key → { dtype, shape, data } in the file's order, data contiguous in torch's own dtype.
 *
 * A checkpoint may be a bare state dict (`torch.save(model.state_dict())`) or a dict holding one
 * (`{'model': ..., 'optimizer': ..., 'epoch': ...}`): the entry is `options.key`, or else whichever of
 * model / state_dict / model_state_dict exists. Only the storages of the chosen state dict are read.
 * This file imports nothing from Node (the Node wrapper that reads a path is load.ts).
 */
import { WgflowError } from '../errors.js';
import { looksLikeSafetensors } from '../safetensors-header.js';
import type { StateDictFormat, TorchArchive } from './archive.js';
import { readLegacyArchive } from './legacy-archive.js';
import { describeValue, PickleDict, type PickleValue } from './pickle.js';
import { readSafetensorsStateDict } from './safetensors-state-dict.js';
import {
  HOST_LITTLE_ENDIAN,
  type StateDict,
  type StateTensor,
  type TorchDType,
  type TorchTensorData,
  typedView,
} from './state-tensor.js';
import { gatherView, viewExtent } from './strided.js';
import { STORAGE_DTYPES, type StorageRef, TensorRef } from './torch-globals.js';
import { readZipArchive } from './zip-archive.js';

export interface ReadStateDictOptions {
  /** Entry of a checkpoint dict that holds the state dict (default: see the file comment). */
  readonly key?: string;
  /**
   * Globals ("module.name") a checkpoint may carry outside the weights, kept as inert values that are
   * never called (e.g. "argparse.Namespace" in torchvision's reference-script checkpoints). Default none.
   */
  readonly opaqueGlobals?: readonly string[];
}

export interface LoadedStateDict {
  readonly tensors: StateDict;
  readonly format: StateDictFormat;
  /** The checkpoint entry the state dict came from (null: the file is a bare state dict). */
  readonly entry: string | null;
  /** The file's name, as given. */
  readonly name: string;
}

/** Entries of a checkpoint dict tried, in this order, when no key is given. */
export const STATE_DICT_ENTRIES = ['model', 'state_dict', 'model_state_dict'] as const;

const isTensorDict = (v: PickleValue | undefined): v is PickleDict =>
  v instanceof PickleDict && [...v.entries.values()].every((t) => t instanceof TensorRef);

function keyList(d: PickleDict): string {
  const items = [...d.entries].slice(0, 12).map(([k, v]) => `${String(k)} (${describeValue(v)})`);
  return items.join(', ') + (d.entries.size > 12 ? `, … ${d.entries.size - 12} more` : '');
}

/** The state dict inside the unpickled object (see the file comment). */
function pickStateDict(root: PickleValue, source: string, key: string | undefined): [PickleDict, string | null] {
  if (key === undefined && isTensorDict(root)) return [root, null];
  if (!(root instanceof PickleDict))
    throw new WgflowError(`${source}: holds a ${describeValue(root)}, not a state dict or a checkpoint dict`);
  if (key !== undefined) {
    if (!root.entries.has(key))
      throw new WgflowError(`${source}: no entry "${key}" in the checkpoint (entries: ${keyList(root)})`);
    const v = root.entries.get(key);
    if (v instanceof PickleDict) return [v, key];
    throw new WgflowError(`${source}: entry "${key}" is a ${describeValue(v ?? null)}, not a state dict`);
  }
  const found = STATE_DICT_ENTRIES.filter((k) => isTensorDict(root.entries.get(k)));
  if (found.length === 1) return [root.entries.get(found[0] as string) as PickleDict, found[0] as string];
  if (found.length > 1)
    throw new WgflowError(
      `${source}: the checkpoint has several state dicts (${found.join(', ')}): name one with the key option`,
    );
  const hasTensors = [...root.entries.values()].some((v) => v instanceof TensorRef);
  throw new WgflowError(
    hasTensors
      ? `${source}: not a state dict: it holds values that are not tensors (entries: ${keyList(root)})`
      : `${source}: no state dict found: none of ${STATE_DICT_ENTRIES.join(', ')} is a dict of tensors; ` +
          `name the entry with the key option (entries: ${keyList(root)})`,
  );
}

/** Reads the chosen state dict's tensors out of a torch archive, each storage once. */
function materialize(archive: TorchArchive, dict: PickleDict, entry: string | null): StateDict {
  const where = entry === null ? archive.source : `${archive.source}, entry "${entry}"`;
  const refs: [string, TensorRef][] = [];
  for (const [k, v] of dict.entries) {
    if (typeof k !== 'string') throw new WgflowError(`${where}: key ${String(k)} is a ${describeValue(k)}, not a str`);
    if (!(v instanceof TensorRef)) throw new WgflowError(`${where}: "${k}" is a ${describeValue(v)}, not a tensor`);
    refs.push([k, v]);
  }
  const users = new Map<string, string[]>();
  const roots = new Map<string, StorageRef>();
  for (const [k, t] of refs) {
    const s = t.storage;
    if (s.type.dtype === null)
      throw new WgflowError(
        `${where}: tensor "${k}": storage type ${s.type.describe()} is not supported (supported: ${Object.keys(STORAGE_DTYPES).join(', ')})`,
      );
    const need = viewExtent(t.view);
    if (need > s.size)
      throw new WgflowError(
        `${where}: tensor "${k}" (size [${t.view.shape.join(', ')}], stride [${t.view.stride.join(', ')}], offset ${t.view.offset}) ` +
          `reaches element ${need - 1} of storage ${s.key}, which holds ${s.size}: the storage is shorter than its tensor`,
      );
    users.set(s.key, [...(users.get(s.key) ?? []), k]);
    roots.set(s.key, s);
  }
  const usersOf = (key: string) => {
    const u = users.get(key) ?? [];
    return `tensor${u.length > 1 ? 's' : ''} ${u.map((k) => `"${k}"`).join(', ')}`;
  };
  const buffers = archive.readStorages([...roots.values()], usersOf);
  const typed = new Map<string, TorchTensorData>();
  const out: StateDict = new Map();
  for (const [k, t] of refs) {
    const s = t.storage;
    const dtype = s.type.dtype as TorchDType;
    let data = typed.get(s.key);
    if (data === undefined) {
      data = typedView(dtype, buffers.get(s.key) as ArrayBuffer);
      typed.set(s.key, data);
    }
    // A tensor that alone uses its whole storage keeps the storage's buffer (no copy).
    const adopt = (users.get(s.key)?.length ?? 0) === 1 && s.offset === 0 && s.size === s.numel;
    const view = { ...t.view, offset: s.offset + t.view.offset };
    out.set(k, { dtype, shape: [...t.view.shape], data: gatherView(data, view, adopt) } as StateTensor);
  }
  return out;
}

const startsWith = (b: Uint8Array, sig: readonly number[]) => sig.every((x, i) => b[i] === x);

/**
 * Reads a state dict from a file's bytes; `name` names the file in every error. See the file comment
 * for the formats and the checkpoint entries; the pickle's globals are restricted (torch-globals.ts).
 */
export function readStateDict(bytes: Uint8Array, name: string, options: ReadStateDictOptions = {}): LoadedStateDict {
  if (!HOST_LITTLE_ENDIAN) throw new WgflowError(`checkpoint ${name}: big-endian hosts are not supported`);
  const opaque = options.opaqueGlobals ?? [];
  let archive: TorchArchive;
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04]) || startsWith(bytes, [0x50, 0x4b, 0x05, 0x06]))
    archive = readZipArchive(bytes, name, opaque);
  else if (looksLikeSafetensors(bytes)) {
    if (options.key !== undefined)
      throw new WgflowError(`checkpoint ${name}: a safetensors file has no entries: the key option does not apply`);
    return { tensors: readSafetensorsStateDict(bytes, name), format: 'safetensors', entry: null, name };
  } else if (bytes[0] === 0x80 || bytes[0] === 0x4c) archive = readLegacyArchive(bytes, name, opaque);
  else {
    const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new WgflowError(
      `checkpoint ${name}: unknown format (first bytes: ${head || 'none, the file is empty'}): ` +
        'not a torch.save zip file, a torch legacy file or a safetensors file',
    );
  }
  const [dict, entry] = pickStateDict(archive.root, archive.source, options.key);
  return { tensors: materialize(archive, dict, entry), format: archive.format, entry, name };
}
