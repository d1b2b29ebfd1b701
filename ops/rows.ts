/**
 * Kernel scaffolding for "row" ops (softmax, log_softmax, argmax, softmax cross-entropy): a tensor
 * seen as [outer, len, inner] with the row running along `len` (element stride `inner`). Short rows
 * get one thread each; long rows get one workgroup each, with reductions in workgroup memory.
 */
import { type Dim, dimMax, dimProd, dimSub } from '../compiler/dims.js';
import type { Expr, Kernel, Scalar } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import type { DeviceLimits } from '../compiler/limits.js';
import type { DimShape, Shape } from '../compiler/types.js';
import { linearGroups } from './kit/launch.js';

/** Rows of at most this many elements are handled by one thread each. */
export const THREAD_ROW_MAX = 64;

/** The [outer, len, inner] view of a tensor: static numbers, or run-time sizes in a kernel. */
export interface RowGeom<D extends Dim = number> {
  readonly outer: D;
  readonly len: D;
  readonly inner: D;
}

/** The [outer, len, inner] view of `shape` around `axis` (already normalized). */
export function rowGeom(shape: Shape, axis: number): RowGeom {
  return rowGeomDims(shape, axis) as RowGeom;
}

/** {@link rowGeom} for axes that may be run-time sizes. */
export function rowGeomDims(dims: DimShape, axis: number): RowGeom<Dim> {
  return { outer: dimProd(dims.slice(0, axis)), len: dims[axis] as Dim, inner: dimProd(dims.slice(axis + 1)) };
}

export type RowReduce = 'sum' | 'max';

export interface RowCtx {
  readonly kb: K.KernelBuilder;
  /** 'thread': one thread per row; 'workgroup': one workgroup per row. */
  readonly mode: 'thread' | 'workgroup';
  /** Row index (u32), clamped into range so loads are always in bounds. */
  readonly row: Expr;
  /** Whether this invocation owns a real row (guard every store with it). */
  readonly valid: Expr;
  /** Flat index (u32) of the row's first element. */
  readonly base: Expr;
  /** Whether this invocation writes per-row results (lane 0 of a workgroup; every thread in thread mode). */
  readonly leader: Expr;
  /** Loops over this invocation's share of the row: j is the u32 position along the row, idx its flat index. */
  forEach(body: (j: Expr, idx: Expr) => void): void;
  /** Combines per-invocation partial values across the row (identity in thread mode). Call at top level only. */
  reduce(v: Expr, op: RowReduce): Expr;
  /** Arg-max combine of (value, position) pairs: greater value wins, ties go to the smaller position. Top level only. */
  reduceArgmax(v: Expr, pos: Expr): { value: Expr; pos: Expr };
}

function floorPow2(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** Invocations per workgroup for a 1-D launch, within the device's limits. */
export function linearWorkgroupSize(limits: DeviceLimits): number {
  return floorPow2(Math.min(256, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX));
}

/**
 * Builds one kernel over all rows. `build` emits the body through the RowCtx; reductions must be
 * called at the top level of `build` (not inside kb.if / forEach), since they contain barriers.
 */
export function rowKernel(
  name: string,
  geom: RowGeom<Dim>,
  limits: DeviceLimits,
  build: (ctx: RowCtx) => void,
  opts: {
    forceMode?: 'thread' | 'workgroup' /** workgroup-memory bytes used per lane (default 8) */;
    sharedBytesPerLane?: number;
  } = {},
): Kernel {
  // Run-time sizes: the mode and workgroup size follow the largest row; loops and guards the actual sizes.
  const rowsDim = dimProd([geom.outer, geom.inner]);
  const rows = K.size(rowsDim);
  const lenMax = dimMax(geom.len);
  const len = K.size(geom.len);
  const mode = opts.forceMode ?? (lenMax <= THREAD_ROW_MAX ? 'thread' : 'workgroup');
  const kb = new K.KernelBuilder(name);
  const inner = K.size(geom.inner);
  const rowBase = (row: Expr): Expr => {
    if (geom.inner === 1) return K.mul(row, len);
    const o = K.div(row, inner);
    const i = K.mod(row, inner);
    return K.add(K.mul(o, K.size(dimProd([geom.len, geom.inner]))), i);
  };
  const flatOf = (base: Expr, j: Expr): Expr => (geom.inner === 1 ? K.add(base, j) : K.add(base, K.mul(j, inner)));
  const lastRow = K.size(dimSub(rowsDim, 1));
  /** The row of thread / workgroup `id` (clamped; `valid` false past the last row) and its first element. */
  const rowOf = (id: Expr): { valid: Expr; row: Expr; base: Expr } => {
    const valid = kb.let('valid', K.lt(id, rows));
    const row = kb.let('row', K.min(id, lastRow));
    return { valid, row, base: kb.let('base', rowBase(row)) };
  };

  if (mode === 'thread') {
    const wg = linearWorkgroupSize(limits);
    const at = rowOf(kb.let('tid', K.add(K.mul(K.builtin('wg_linear'), wg), K.builtin('lidx'))));
    build({
      kb,
      mode,
      ...at,
      leader: K.bool(true),
      forEach: (body) => kb.for('j', 0, len, (j) => body(j, flatOf(at.base, j)), { t: 'u32' }),
      reduce: (v) => v,
      reduceArgmax: (value, pos) => ({ value, pos }),
    });
    return kb.finish([wg, 1, 1], { linear: linearGroups(rowsDim, wg) });
  }

  // One workgroup per row: a power of two no larger than the row, the device limits and workgroup memory.
  let wg = Math.min(linearWorkgroupSize(limits), floorPow2(lenMax));
  const sharedBytes = opts.sharedBytesPerLane ?? 8;
  while (wg > 1 && wg * sharedBytes > limits.maxComputeWorkgroupStorageSize) wg /= 2;
  const lidx = K.builtin('lidx');
  const at = rowOf(kb.let('wg', K.builtin('wg_linear')));
  const arrays = new Map<string, string>();
  const shared = (role: string, t: Scalar): string => {
    const key = `${role}_${t}`;
    let a = arrays.get(key);
    if (a === undefined) {
      a = kb.array(key, t, wg, 'workgroup');
      arrays.set(key, a);
    }
    return a;
  };
  const combine = (a: Expr, b: Expr, op: RowReduce): Expr => (op === 'sum' ? K.add(a, b) : K.max(a, b));
  build({
    kb,
    mode,
    ...at,
    leader: K.eq(lidx, 0),
    forEach: (body) => kb.for('j', lidx, len, (j) => body(j, flatOf(at.base, j)), { t: 'u32', step: wg }),
    reduce: (v, op) => {
      const arr = shared('red', v.t);
      kb.astore(arr, lidx, v);
      kb.barrier();
      for (let s = wg / 2; s >= 1; s /= 2) {
        kb.if(K.lt(lidx, s), () => {
          kb.astore(arr, lidx, combine(kb.aload(arr, v.t, lidx), kb.aload(arr, v.t, K.add(lidx, s)), op));
        });
        kb.barrier();
      }
      const r = kb.let('red', kb.aload(arr, v.t, K.u32(0)));
      kb.barrier(); // everyone has read the result before the array is reused
      return r;
    },
    reduceArgmax: (value, pos) => {
      const va = shared('amax_v', value.t);
      const pa = shared('amax_p', pos.t);
      kb.astore(va, lidx, value);
      kb.astore(pa, lidx, pos);
      kb.barrier();
      for (let s = wg / 2; s >= 1; s /= 2) {
        kb.if(K.lt(lidx, s), () => {
          const other = kb.let('ov', kb.aload(va, value.t, K.add(lidx, s)));
          const otherPos = kb.let('op', kb.aload(pa, pos.t, K.add(lidx, s)));
          const mine = kb.let('mv', kb.aload(va, value.t, lidx));
          const minePos = kb.let('mp', kb.aload(pa, pos.t, lidx));
          const take = K.or(K.gt(other, mine), K.and(K.eq(other, mine), K.lt(otherPos, minePos)));
          kb.if(take, () => {
            kb.astore(va, lidx, other);
            kb.astore(pa, lidx, otherPos);
          });
        });
        kb.barrier();
      }
      const rv = kb.let('rv', kb.aload(va, value.t, K.u32(0)));
      const rp = kb.let('rp', kb.aload(pa, pos.t, K.u32(0)));
      kb.barrier();
      return { value: rv, pos: rp };
    },
  });
  return kb.finish([wg, 1, 1], { linear: rowsDim });
}
