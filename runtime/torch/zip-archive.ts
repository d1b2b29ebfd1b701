/**
 * The zip format `torch.save` writes (torch ≥ 1.6): `<archive>/data.pkl` (the pickle), `<archive>/data/<key>`
 * (one entry per storage, raw little-endian bytes, STORED), `<archive>/version`, and in newer torch
 * `<archive>/byteorder`; files over 4 GiB use ZIP64 records (torch writes the ZIP64 end records always).
 *
 * The zip is read with fflate (maintained, no dependencies, the same code in Node and browsers; it
 * reads ZIP64 end records and extra fields, and STORED and DEFLATE entries). fflate does not verify
 * CRC-32s and clamps an entry that runs past the end of the data, so every entry's length is checked
 * here against the central directory and against the size the pickle declares.
 * Memory: the file's bytes, plus one copy of each storage that is read (fflate copies each STORED
 * entry into a fresh buffer; a tensor that is its whole storage keeps that buffer, no second copy).
 */
import { type UnzipFileInfo, unzipSync } from 'fflate';
import { WgflowError } from '../errors.js';
import type { TorchArchive } from './archive.js';
import { unpickle } from './pickle.js';
import { type StorageRef, storageBytes, storageLoader, torchGlobals } from './torch-globals.js';

function unzipSelected(bytes: Uint8Array, source: string, select: (f: UnzipFileInfo) => boolean) {
  try {
    return unzipSync(bytes, { filter: select });
  } catch (e) {
    throw new WgflowError(
      `${source}: not a readable zip archive (truncated or corrupt): ${(e as Error).message || String(e)}`,
    );
  }
}

/** The buffer of an extracted entry, copied only when fflate's array is not exactly its own buffer. */
function ownBuffer(a: Uint8Array): ArrayBuffer {
  if (a.byteOffset === 0 && a.buffer.byteLength === a.length && a.buffer instanceof ArrayBuffer) return a.buffer;
  const out = new ArrayBuffer(a.length);
  new Uint8Array(out).set(a);
  return out;
}

export function readZipArchive(bytes: Uint8Array, name: string, opaqueGlobals: readonly string[]): TorchArchive {
  const source = `checkpoint ${name} (torch zip format)`;
  const index = new Map<string, UnzipFileInfo>();
  unzipSelected(bytes, source, (f) => {
    index.set(f.name, f);
    return false;
  });
  const pklName = [...index.keys()].find((n) => /^([^/]+\/)?data\.pkl$/.test(n));
  if (pklName === undefined) {
    const some = [...index.keys()].slice(0, 8).join(', ');
    throw new WgflowError(
      `${source}: no <archive>/data.pkl entry: not a torch.save file (${index.size} entries${some ? `: ${some}` : ''})`,
    );
  }
  const prefix = pklName.slice(0, -'data.pkl'.length);
  const entry = (n: string): Uint8Array => {
    const info = index.get(n) as UnzipFileInfo;
    const got = unzipSelected(bytes, source, (f) => f.name === n)[n];
    if (got === undefined || got.length !== info.originalSize)
      throw new WgflowError(
        `${source}: entry ${n} is truncated: ${got?.length ?? 0} of ${info.originalSize} bytes in the file`,
      );
    return got;
  };
  if (index.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(entry(`${prefix}byteorder`)).trim();
    if (order !== 'little') throw new WgflowError(`${source}: byte order "${order}": only little-endian is supported`);
  }
  const { persistentLoad } = storageLoader();
  const { value: root } = unpickle(entry(pklName), {
    source: `${source}, ${pklName}`,
    ...torchGlobals(opaqueGlobals),
    persistentLoad,
  });

  const readStorages = (refs: readonly StorageRef[], users: (key: string) => string): Map<string, ArrayBuffer> => {
    const wanted = new Map<string, StorageRef>();
    for (const ref of refs) {
      const n = `${prefix}data/${ref.key}`;
      const info = index.get(n);
      if (info === undefined)
        throw new WgflowError(`${source}: storage ${ref.key} of ${users(ref.key)} has no entry ${n} in the archive`);
      const want = storageBytes(ref);
      if (info.originalSize !== want)
        throw new WgflowError(
          `${source}: entry ${n} (storage of ${users(ref.key)}) holds ${info.originalSize} bytes but the pickle declares ` +
            `${ref.type.describe()} × ${ref.numel} = ${want} bytes: the storage is shorter than its tensor, or inconsistent`,
        );
      wanted.set(n, ref);
    }
    const files = unzipSelected(bytes, source, (f) => wanted.has(f.name));
    const out = new Map<string, ArrayBuffer>();
    for (const [n, ref] of wanted) {
      const got = files[n];
      const want = storageBytes(ref);
      if (got === undefined || got.length !== want)
        throw new WgflowError(
          `${source}: entry ${n} (storage of ${users(ref.key)}) is truncated: ${got?.length ?? 0} of ${want} bytes in the file`,
        );
      out.set(ref.key, ownBuffer(got));
      delete files[n];
    }
    return out;
  };
  return { format: 'torch-zip', source, root, readStorages };
}
