import { type Dim, dimEq, dimFmt, dimMax, dimMul, dimProd, isSym } from './dims.js';

/** Element types a tensor may have. Booleans (compare results) are stored as u32 0/1. */
export type DType = 'f32' | 'i32' | 'u32';
export const DTYPES: readonly DType[] = ['f32', 'i32', 'u32'];

/** A static shape; for a tensor with run-time sizes, its upper bound. */
export type Shape = readonly number[];
/** A shape whose axes may be run-time sizes (compiler/dims.ts). */
export type DimShape = readonly Dim[];

export interface TensorType {
  /** The shape, or its upper bound when some axes are run-time sizes (memory is planned for it). */
  readonly shape: Shape;
  readonly dtype: DType;
  /** Present when some axis is a run-time size: every axis, static ones as numbers. */
  readonly dims?: DimShape;
}

/** The axes of a type, run-time sizes included. */
export function dimsOf(t: TensorType): DimShape {
  return t.dims ?? t.shape;
}

/** True when some axis of `t` is a run-time size. */
export function isDynamic(t: TensorType): boolean {
  return t.dims !== undefined;
}

/** The type of a tensor with these axes: `dims` only when some axis is a run-time size. */
export function typeOf(dims: DimShape, dtype: DType): TensorType {
  if (!dims.some(isSym)) return { shape: dims as Shape, dtype };
  return { shape: dims.map(dimMax), dtype, dims: [...dims] };
}

/** Element count, possibly a run-time size. */
export function numelDims(dims: DimShape): Dim {
  return dimProd(dims);
}

/** Same axes (run-time sizes compared symbolically). */
export function sameDims(a: DimShape, b: DimShape): boolean {
  return a.length === b.length && a.every((d, i) => dimEq(d, b[i] as Dim));
}

/** Same dtype and axes. */
export function sameType(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && sameDims(dimsOf(a), dimsOf(b));
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a contiguous tensor. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i] as number;
  }
  return s;
}

/** Row-major strides of a contiguous tensor whose axes may be run-time sizes. */
export function dimStrides(dims: DimShape): Dim[] {
  const s = new Array<Dim>(dims.length);
  let acc: Dim = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc = dimMul(acc, dims[i] as Dim);
  }
  return s;
}

export function fmtShape(shape: DimShape): string {
  return `[${shape.map(dimFmt).join(',')}]`;
}

export function fmtType(t: TensorType): string {
  return `${t.dtype}${fmtShape(dimsOf(t))}`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function bytesOf(t: TensorType): number {
  return numel(t.shape) * 4;
}

/** Numpy-style broadcast of two shapes, or null when they are incompatible. */
export function broadcastShapes(a: Shape, b: Shape): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalizes a possibly negative axis against a rank; returns -1 when out of range. */
export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank && Number.isInteger(a) ? a : -1;
}

/**
 * Numpy-style broadcast of shapes with run-time sizes, or null. A run-time size broadcasts only
 * against itself or a static 1 (it is never taken to be 1 at run time).
 */
export function broadcastDims(a: DimShape, b: DimShape): Dim[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<Dim>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da === 1) out[i] = db;
    else if (db === 1 || dimEq(da, db)) out[i] = da;
    else return null;
  }
  return out;
}
