/**
 * The legacy format of `torch.save` (torch < 1.6, or `_use_new_zipfile_serialization=False`), used by
 * older torchvision weights: five things one after another in one file,
 *   1. a pickle of the magic number 0x1950a86a20f9469cfc6c,
 *   2. a pickle of the protocol version (1001),
 *   3. a pickle of sys_info ({'protocol_version', 'little_endian', 'type_sizes'}),
 *   4. the object's pickle, whose storages are persistent ids ('storage', type, key, location, numel, view),
 *   5. a pickle of the list of storage keys, then for each key in that order: its element count as a
 *      little-endian u64 and its raw little-endian bytes.
 * Storages are copied out of the file one by one into fresh (aligned) buffers.
 */
import { WgflowError } from '../errors.js';
import type { TorchArchive } from './archive.js';
import { describeValue, PickleDict, type PickleValue, unpickle } from './pickle.js';
import { type StorageRef, storageBytes, storageLoader, torchGlobals } from './torch-globals.js';

export const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

export function readLegacyArchive(bytes: Uint8Array, name: string, opaqueGlobals: readonly string[]): TorchArchive {
  const source = `checkpoint ${name} (torch legacy format)`;
  const noGlobals = { resolveGlobal: () => undefined };
  let magic: PickleValue;
  let at: number;
  try {
    ({ value: magic, end: at } = unpickle(bytes, { source, ...noGlobals }));
  } catch (e) {
    throw new WgflowError(`${source}: bad magic number: the file does not start with one (${(e as Error).message})`);
  }
  if (magic !== LEGACY_MAGIC)
    throw new WgflowError(
      `${source}: bad magic number ${typeof magic === 'bigint' || typeof magic === 'number' ? `0x${magic.toString(16)}` : `(a ${describeValue(magic)})`}, ` +
        `expected 0x${LEGACY_MAGIC.toString(16)}: not a file torch.save wrote`,
    );
  const protocol = unpickle(bytes, { source: `${source}, protocol version`, ...noGlobals }, at);
  if (protocol.value !== LEGACY_PROTOCOL)
    throw new WgflowError(`${source}: protocol version ${String(protocol.value)}, expected ${LEGACY_PROTOCOL}`);
  const sysInfo = unpickle(bytes, { source: `${source}, sys_info`, ...noGlobals }, protocol.end);
  if (sysInfo.value instanceof PickleDict && sysInfo.value.entries.get('little_endian') === false)
    throw new WgflowError(`${source}: written on a big-endian machine: only little-endian is supported`);
  const { persistentLoad, storages } = storageLoader();
  const main = unpickle(
    bytes,
    { source: `${source}, object pickle`, ...torchGlobals(opaqueGlobals), persistentLoad },
    sysInfo.end,
  );
  const keys = unpickle(bytes, { source: `${source}, storage key list`, ...noGlobals }, main.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string'))
    throw new WgflowError(`${source}: the storage key list is a ${describeValue(keys.value)}, not a list of str`);

  // Where each storage's bytes are: walk the headers without reading the data.
  const spans = new Map<string, { begin: number; end: number }>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const ref = storages.get(key);
    if (ref === undefined)
      throw new WgflowError(`${source}: storage ${key} is listed but no tensor of the pickle uses it`);
    if (ref.type.dtype === null)
      throw new WgflowError(
        `${source}: storage ${key} has type ${ref.type.describe()}, which this reader does not take`,
      );
    if (pos + 8 > bytes.length)
      throw new WgflowError(
        `${source}: truncated: the header of storage ${key} at byte ${pos} is past the end (${bytes.length} bytes)`,
      );
    const numel = view.getBigUint64(pos, true);
    if (numel !== BigInt(ref.numel))
      throw new WgflowError(
        `${source}: storage ${key} has ${numel} elements in the file, the pickle declares ${ref.numel}`,
      );
    const begin = pos + 8;
    const end = begin + storageBytes(ref);
    if (end > bytes.length)
      throw new WgflowError(
        `${source}: truncated: storage ${key} needs bytes [${begin}, ${end}), the file ends at ${bytes.length}`,
      );
    spans.set(key, { begin, end });
    pos = end;
  }
  if (pos !== bytes.length)
    throw new WgflowError(`${source}: ${bytes.length - pos} unexpected bytes after the last storage (at byte ${pos})`);

  const readStorages = (refs: readonly StorageRef[], users: (key: string) => string): Map<string, ArrayBuffer> => {
    const out = new Map<string, ArrayBuffer>();
    for (const ref of refs) {
      const span = spans.get(ref.key);
      if (span === undefined)
        throw new WgflowError(
          `${source}: storage ${ref.key} of ${users(ref.key)} is missing from the file's storage list`,
        );
      const buf = new ArrayBuffer(span.end - span.begin);
      new Uint8Array(buf).set(bytes.subarray(span.begin, span.end));
      out.set(ref.key, buf);
    }
    return out;
  };
  return { format: 'torch-legacy', source, root: main.value, readStorages };
}
