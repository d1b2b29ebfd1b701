/** Element types a tensor may have. Booleans (compare results) are stored as u32 0/1. */
export type DType = 'f32' | 'i32' | 'u32';
export const DTYPES: readonly DType[] = ['f32', 'i32', 'u32'];

export type Shape = readonly number[];

export interface TensorType {
  readonly shape: Shape;
  readonly dtype: DType;
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

export function fmtShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function fmtType(t: TensorType): string {
  return `${t.dtype}${fmtShape(t.shape)}`;
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
