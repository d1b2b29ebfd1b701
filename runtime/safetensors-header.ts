/**
 * Parsing and validating the header of a safetensors file (format: see safetensors.ts), without
 * converting any tensor data. Shared by the runtime's own reader (safetensors.ts, which converts to
 * f32/i32/u32) and the PyTorch state-dict reader (torch/, which keeps every dtype's raw values).
 * Imports nothing from Node, so it also runs in a browser.
 */
import { WgflowError } from './errors.js';

/** safetensors dtypes that exist in the format; a reader that does not take one says "not supported". */
const KNOWN_DTYPES = new Set([
  'BOOL',
  'U8',
  'I8',
  'U16',
  'I16',
  'F16',
  'BF16',
  'U32',
  'I32',
  'F32',
  'U64',
  'I64',
  'F64',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F4',
  'F6_E2M3',
]);

/** Largest header the reader accepts (the reference implementation uses the same cap). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Byte range in `data`. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsLayout {
  /** Sorted by data offset; they tile `data` exactly. */
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Record<string, string>;
  /** The data section (a view into the given bytes, not a copy). */
  readonly data: Uint8Array;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when `bytes` start like a safetensors file: a plausible u64 header length, then '{'. */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(Math.min(SAFETENSORS_MAX_HEADER_BYTES, bytes.length - 8)) && bytes[8] === 0x7b;
}

/**
 * Parses and checks the header. `itemBytes` gives the element size of each dtype the caller reads;
 * any other dtype is an error ("not supported" for a known safetensors dtype, "unknown" otherwise).
 * Checks: the header length fits in the file and under SAFETENSORS_MAX_HEADER_BYTES; the header is a
 * JSON object; every entry has a dtype the caller reads, a valid shape and offsets; the offsets tile
 * the data section exactly (contiguous, no overlap, no gap, nothing past the end, no trailing bytes);
 * shape × dtype size equals each tensor's byte length. Every error names `file`.
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  file: string,
  itemBytes: Readonly<Record<string, number>>,
): SafetensorsLayout {
  const where = `safetensors file ${file}`;
  if (bytes.length < 8)
    throw new WgflowError(`${where}: truncated: ${bytes.length} bytes, too short for the 8-byte header length`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(SAFETENSORS_MAX_HEADER_BYTES))
    throw new WgflowError(
      `${where}: header length ${n64} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte cap (corrupt or not a safetensors file)`,
    );
  const n = Number(n64);
  if (8 + n > bytes.length)
    throw new WgflowError(
      `${where}: header length ${n} is larger than the file (${bytes.length} bytes): truncated or not a safetensors file`,
    );
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new WgflowError(`${where}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) throw new WgflowError(`${where}: header is not a JSON object`);
  const data = bytes.subarray(8 + n);
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  const supported = () => Object.keys(itemBytes).join(', ');
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(raw)) throw new WgflowError(`${where}: "__metadata__" is not an object`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new WgflowError(`${where}: "__metadata__.${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const what = `${where}: tensor "${name}"`;
    if (!isPlainObject(raw)) throw new WgflowError(`${what}: entry is not an object`);
    const { dtype, shape, data_offsets: offs } = raw;
    if (typeof dtype !== 'string') throw new WgflowError(`${what}: missing or non-string dtype`);
    const size = Object.hasOwn(itemBytes, dtype) ? itemBytes[dtype] : undefined;
    if (size === undefined)
      throw new WgflowError(
        KNOWN_DTYPES.has(dtype)
          ? `${what}: dtype ${dtype} is not supported (supported: ${supported()})`
          : `${what}: unknown dtype "${dtype}" (supported: ${supported()})`,
      );
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new WgflowError(`${what}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offs[0] > offs[1]
    )
      throw new WgflowError(`${what}: data_offsets ${JSON.stringify(offs)} is not [begin, end] with 0 ≤ begin ≤ end`);
    const [begin, end] = offs as [number, number];
    const want = (shape as number[]).reduce((a, b) => a * b, 1) * size;
    if (want !== end - begin)
      throw new WgflowError(
        `${what}: shape [${shape.join(',')}] × ${dtype} is ${want} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev = '';
  for (const e of entries) {
    if (e.begin < cursor)
      throw new WgflowError(
        `${where}: tensor "${e.name}" data_offsets [${e.begin}, ${e.end}] overlap tensor "${prev}" (ends at ${cursor})`,
      );
    if (e.begin > cursor)
      throw new WgflowError(
        `${where}: offsets are not contiguous: gap of ${e.begin - cursor} bytes before tensor "${e.name}" at ${cursor}`,
      );
    if (e.end > data.length)
      throw new WgflowError(
        `${where}: truncated: tensor "${e.name}" ends at data byte ${e.end} but the data section has ${data.length} bytes`,
      );
    cursor = e.end;
    prev = e.name;
  }
  if (cursor !== data.length)
    throw new WgflowError(
      `${where}: ${data.length - cursor} trailing bytes after the last tensor (data section ${data.length} bytes, tensors cover ${cursor})`,
    );
  return { entries, metadata, data };
}
