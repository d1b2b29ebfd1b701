/**
 * In-house safetensors reader/writer (https://github.com/huggingface/safetensors format):
 *   u64 little-endian N | N bytes of JSON header | raw little-endian tensor bytes.
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
 * the start of the data section) and may hold "__metadata__": {string: string}.
 *
 * dtypes: F32, I32 and U32 are read and written natively (they are the runtime's f32/i32/u32).
 * F16, BF16 and F64 are READ by converting to f32, and I64 by converting to i32 (an error names the
 * tensor if a value does not fit in i32); the converted tensor records the file's dtype in `stored`.
 * Any other dtype (U8, I8, BOOL, F8_*, U64, ...) is rejected with an error naming it and the file.
 *
 * The writer pads the header with spaces to a multiple of 8 bytes (so the data section is 8-aligned),
 * lays tensors out contiguously in the order given, and writes "__metadata__" only when non-empty.
 * f32 tensors may be WRITTEN as F16 or BF16 (`storeAs`; round to nearest even, overflow to ±∞ in F16).
 * Every reader error is a WgflowError that names the file.
 */
import { writeFileAtomic } from './atomic-file.js';
import { WgflowError } from './errors.js';
import { f16BitsToNumber } from './half-bits.js';
import { INPUT_LIMITS, readInputFile } from './input-file.js';
import type { DTypeName } from './program.js';
import { parseSafetensorsHeader } from './safetensors-header.js';
import type { TypedArray } from './session.js';

export { SAFETENSORS_MAX_HEADER_BYTES } from './safetensors-header.js';

export type SafetensorsDType = 'F32' | 'I32' | 'U32' | 'F16' | 'BF16' | 'F64' | 'I64';

const ITEM_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F32: 4,
  I32: 4,
  U32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
};
const TO_FILE: Readonly<Record<DTypeName, SafetensorsDType>> = { f32: 'F32', i32: 'I32', u32: 'U32' };

export interface SafeTensor {
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly dtype: DTypeName;
  /** The dtype in the file (differs from `dtype` when the reader converted: F16/BF16/F64 → f32, I64 → i32). */
  readonly stored: SafetensorsDType;
}

export interface SafetensorsContents {
  /** In data-offset order. */
  readonly tensors: Map<string, SafeTensor>;
  readonly metadata: Record<string, string>;
}

export interface TensorToWrite {
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly dtype: DTypeName;
  /** f32 only: store as F16 or BF16 (half the bytes; values rounded to nearest even). Default: the dtype's own. */
  readonly storeAs?: 'F16' | 'BF16';
}

export type TensorsToWrite = Iterable<readonly [string, TensorToWrite]> | Readonly<Record<string, TensorToWrite>>;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function entriesOf(tensors: TensorsToWrite): (readonly [string, TensorToWrite])[] {
  if (Symbol.iterator in tensors) return [...(tensors as Iterable<readonly [string, TensorToWrite]>)];
  return Object.entries(tensors as Readonly<Record<string, TensorToWrite>>);
}

/** Serializes tensors (in the given order) and string metadata to safetensors bytes. */
export function encodeSafetensors(
  tensors: TensorsToWrite,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  if (!LITTLE_ENDIAN) throw new WgflowError('safetensors: big-endian hosts are not supported');
  const header: Record<string, unknown> = {};
  const list = entriesOf(tensors);
  const seen = new Set<string>();
  let offset = 0;
  const payloads: Uint8Array[] = [];
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new WgflowError('safetensors: "__metadata__" cannot be a tensor name');
    if (seen.has(name)) throw new WgflowError(`safetensors: duplicate tensor name "${name}"`);
    seen.add(name);
    if (!TO_FILE[t.dtype])
      throw new WgflowError(`safetensors: tensor "${name}" has unsupported dtype ${String(t.dtype)}`);
    if (t.storeAs !== undefined && (t.dtype !== 'f32' || (t.storeAs !== 'F16' && t.storeAs !== 'BF16')))
      throw new WgflowError(
        `safetensors: tensor "${name}": storeAs ${String(t.storeAs)} needs f32 data and F16 or BF16 (got ${t.dtype})`,
      );
    const dtype = t.storeAs ?? TO_FILE[t.dtype];
    for (const d of t.shape)
      if (!Number.isSafeInteger(d) || d < 0)
        throw new WgflowError(`safetensors: tensor "${name}" has a bad shape [${t.shape.join(',')}]`);
    const n = elementCount(t.shape);
    if (t.data.length !== n)
      throw new WgflowError(
        `safetensors: tensor "${name}" shape [${t.shape.join(',')}] needs ${n} values, data has ${t.data.length}`,
      );
    const bytes =
      t.storeAs === undefined
        ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
        : toHalf(t.data as Float32Array, t.storeAs);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    payloads.push(bytes);
  }
  const meta = Object.entries(metadata);
  if (meta.length > 0) {
    for (const [k, v] of meta)
      if (typeof v !== 'string') throw new WgflowError(`safetensors: metadata "${k}" must be a string`);
    header.__metadata__ = { ...metadata };
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const p of payloads) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const f32Bits = new Uint32Array(1);
const f32View = new Float32Array(f32Bits.buffer);

/** IEEE binary16 bits of a number: round to nearest even, overflow to ±∞, subnormals kept, NaN stays NaN. */
export function f32ToF16Bits(v: number): number {
  f32View[0] = v;
  const x = f32Bits[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent (and up to ∞): correct
  return sign | h;
}

/** bfloat16 bits of a number: the top half of its f32 bits, rounded to nearest even; NaN stays NaN. */
export function f32ToBf16Bits(v: number): number {
  f32View[0] = v;
  const x = f32Bits[0] as number;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

function toHalf(data: Float32Array, as: 'F16' | 'BF16'): Uint8Array {
  const out = new Uint8Array(data.length * 2);
  const view = new DataView(out.buffer);
  const conv = as === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < data.length; i++) view.setUint16(i * 2, conv(data[i] as number) & 0xffff, true);
  return out;
}

function convert(dtype: SafetensorsDType, bytes: Uint8Array, n: number, what: string): [DTypeName, TypedArray] {
  // Copy to a fresh, aligned buffer first (the data section need not be aligned for the element size).
  // (Not bytes.slice(): on a Node Buffer that is a view into a shared pool, not a copy.)
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  const view = new DataView(copy);
  switch (dtype) {
    case 'F32':
      return ['f32', new Float32Array(copy)];
    case 'I32':
      return ['i32', new Int32Array(copy)];
    case 'U32':
      return ['u32', new Uint32Array(copy)];
    case 'F16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(view.getUint16(i * 2, true));
      return ['f32', out];
    }
    case 'BF16': {
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      return ['f32', new Float32Array(bits.buffer)];
    }
    case 'F64':
      return ['f32', Float32Array.from(new Float64Array(copy))];
    case 'I64': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = view.getBigInt64(i * 8, true);
        if (v < -2147483648n || v > 2147483647n)
          throw new WgflowError(`${what}: I64 value ${v} at index ${i} does not fit in i32`);
        out[i] = Number(v);
      }
      return ['i32', out];
    }
  }
}

/**
 * Parses safetensors bytes. `file` names the source in every error message. The header is checked by
 * parseSafetensorsHeader (safetensors-header.ts): length, JSON, dtypes, shapes, offsets that tile the
 * data section exactly, and shape × dtype size equal to each tensor's byte length.
 */
export function decodeSafetensors(bytes: Uint8Array, file = '<bytes>'): SafetensorsContents {
  if (!LITTLE_ENDIAN) throw new WgflowError('safetensors: big-endian hosts are not supported');
  const where = `safetensors file ${file}`;
  const { entries, metadata, data } = parseSafetensorsHeader(bytes, file, ITEM_BYTES);
  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const sd = e.dtype as SafetensorsDType;
    const [dtype, arr] = convert(
      sd,
      data.subarray(e.begin, e.end),
      elementCount(e.shape),
      `${where}: tensor "${e.name}"`,
    );
    tensors.set(e.name, { data: arr, shape: [...e.shape], dtype, stored: sd });
  }
  return { tensors, metadata };
}

/** Options of {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /** Refuse files larger than this (bytes, checked before reading). Default INPUT_LIMITS.weightsBytes (16 GiB). */
  readonly maxBytes?: number;
  /** What the file is, for messages (default 'safetensors file'). */
  readonly what?: string;
}

/** Reads and validates a safetensors file (see decodeSafetensors): a regular file within the size limit. */
export async function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): Promise<SafetensorsContents> {
  const bytes = await readInputFile(path, {
    what: opts.what ?? 'safetensors file',
    maxBytes: opts.maxBytes ?? INPUT_LIMITS.weightsBytes,
  });
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
