/**
 * The tensors of a loaded state dict: torch's dtypes with their raw values, materialised contiguously
 * (row-major) whatever the file's strides were, and their conversion to Float32Array.
 */
import { WgflowError } from '../errors.js';
import { bf16BitsToFloat32, f16BitsToFloat32 } from '../half-bits.js';

/** torch dtypes a state dict may hold. f16 and bf16 data are their raw 16-bit patterns. */
export type TorchDType = 'f64' | 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';

/** The typed array holding each dtype's values (bool: 0/1 bytes). */
export interface TorchDataOf {
  f64: Float64Array;
  f32: Float32Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  i64: BigInt64Array;
  i32: Int32Array;
  i16: Int16Array;
  i8: Int8Array;
  u8: Uint8Array;
  bool: Uint8Array;
}
export type TorchTensorData = TorchDataOf[TorchDType];

export interface StateTensor<D extends TorchDType = TorchDType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  /** Contiguous row-major values; length = product of shape. */
  readonly data: TorchDataOf[D];
}

/** An ordered state dict: key → tensor, in the file's order. */
export type StateDict = Map<string, StateTensor>;

type DataCtor = { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): TorchTensorData };

const CTOR: Readonly<Record<TorchDType, DataCtor>> = {
  f64: Float64Array,
  f32: Float32Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i64: BigInt64Array,
  i32: Int32Array,
  i16: Int16Array,
  i8: Int8Array,
  u8: Uint8Array,
  bool: Uint8Array,
};

export const ELEMENT_BYTES: Readonly<Record<TorchDType, number>> = {
  f64: 8,
  f32: 4,
  f16: 2,
  bf16: 2,
  i64: 8,
  i32: 4,
  i16: 2,
  i8: 1,
  u8: 1,
  bool: 1,
};

/** The readers view stored bytes as typed arrays, which use the host's byte order: files are little-endian. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A typed array of `dtype` over a whole ArrayBuffer (byte length a multiple of the element size). */
export function typedView(dtype: TorchDType, buffer: ArrayBuffer): TorchTensorData {
  return new CTOR[dtype](buffer, 0, buffer.byteLength / ELEMENT_BYTES[dtype]);
}

/** Copies bytes into a fresh ArrayBuffer (aligned for any element size; never a view into a pooled Node Buffer). */
export function copyToBuffer(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.length);
  new Uint8Array(out).set(bytes);
  return out;
}

export const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * The values as f32: f32 data is returned as is (not copied); f16, bf16 and integers convert exactly
 * where f32 can hold them; f64 and large integers round to nearest.
 */
export function toFloat32(t: StateTensor): Float32Array {
  const d = t.data;
  switch (t.dtype) {
    case 'f32':
      return d as Float32Array;
    case 'f16':
      return f16BitsToFloat32(d as Uint16Array);
    case 'bf16':
      return bf16BitsToFloat32(d as Uint16Array);
    case 'i64': {
      const src = d as BigInt64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i] as bigint);
      return out;
    }
    case 'f64':
    case 'i32':
    case 'i16':
    case 'i8':
    case 'u8':
    case 'bool':
      return Float32Array.from(d as Exclude<TorchTensorData, BigInt64Array>);
    default:
      throw new WgflowError(`toFloat32: unknown dtype ${String(t.dtype)}`);
  }
}
