/**
 * Tensors whose dtype and shape are part of their TYPE, for the typed modules the compiler generates
 * next to an artifact (compiler/typed-module.ts). `typedTensor('f32', [1, 3, 64, 80], data)` has type
 * `TypedTensor<'f32', readonly [1, 3, 64, 80]>` (the shape is inferred as a literal tuple), so handing
 * a tensor of another shape or dtype to a generated `run()` is a compile-time error; the constructor
 * checks at run time that the data has exactly as many values as the shape.
 */
import { WgflowError } from './errors.js';
import type { DTypeName } from './program.js';

/** The typed array of a dtype. */
export type ArrayOf<D extends DTypeName> = D extends 'f32' ? Float32Array : D extends 'i32' ? Int32Array : Uint32Array;

/** Brand: only typedTensor() makes TypedTensors, so the value count has been checked. */
export const TYPED_TENSOR: unique symbol = Symbol('wgflow.TypedTensor');

export interface TypedTensor<D extends DTypeName, S extends readonly number[]> {
  readonly dtype: D;
  readonly shape: S;
  readonly data: ArrayOf<D>;
  readonly [TYPED_TENSOR]: S;
}

/** Any typed tensor (for generic code). */
export type AnyTypedTensor = TypedTensor<DTypeName, readonly number[]>;

const ARRAY_OF: Readonly<Record<DTypeName, Float32ArrayConstructor | Int32ArrayConstructor | Uint32ArrayConstructor>> =
  {
    f32: Float32Array,
    i32: Int32Array,
    u32: Uint32Array,
  };

/**
 * Makes a typed tensor. `data`: the dtype's typed array (kept, not copied) or plain numbers (copied).
 * Throws when the value count is not the product of the shape, or a typed array of another dtype is given.
 */
export function typedTensor<const D extends DTypeName, const S extends readonly number[]>(
  dtype: D,
  shape: S,
  data: ArrayOf<D> | readonly number[],
): TypedTensor<D, S> {
  const ctor = ARRAY_OF[dtype];
  if (!ctor) throw new WgflowError(`typedTensor: unknown dtype ${JSON.stringify(dtype)} (f32, i32 or u32)`);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new WgflowError(`typedTensor: shape [${shape.join(', ')}] is not a list of non-negative integers`);
  const n = shape.reduce((a, b) => a * b, 1);
  let values: ArrayOf<D>;
  if (Array.isArray(data)) values = ctor.from(data as readonly number[]) as ArrayOf<D>;
  else if (data instanceof ctor) values = data as ArrayOf<D>;
  else
    throw new WgflowError(
      `typedTensor: ${dtype} [${shape.join(', ')}] needs a ${ctor.name} or a number list, got ${(data as object)?.constructor?.name ?? typeof data}`,
    );
  if (values.length !== n)
    throw new WgflowError(`typedTensor: ${dtype} [${shape.join(', ')}] needs ${n} values, got ${values.length}`);
  const t = { dtype, shape: Object.freeze([...shape]) as unknown as S, data: values };
  Object.defineProperty(t, TYPED_TENSOR, { value: t.shape, enumerable: false });
  return t as TypedTensor<D, S>;
}

/** True for values made by typedTensor(). */
export function isTypedTensor(v: unknown): v is AnyTypedTensor {
  return typeof v === 'object' && v !== null && TYPED_TENSOR in v;
}
