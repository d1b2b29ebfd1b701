/**
 * Sorting: `argsort` along the last axis (a stable bitonic sort of (key, index) pairs), and the DSL
 * helpers `argsort`, `sortValues` and `topk` built on it.
 *
 * Order (identical on the GPU and in the CPU reference):
 * - keys are compared as the values stored on the device (f32 inputs: float32 values; i32/u32: integers);
 * - -0 and +0 are equal; NaN compares greater than every number, +Infinity included (all NaNs are equal).
 *   So ascending puts NaNs last and descending puts them first, as torch.sort / torch.argsort do;
 * - STABLE: equal keys keep ascending original index order, in both directions (descending is
 *   "key descending, index ascending", torch.sort(stable=True, descending=True)).
 *
 * Kernels: every (key, index) pair is mapped to a pair of u32 whose lexicographic order is the order
 * above (keys through an order-preserving bit transform, flipped for descending; the index breaks
 * ties), so all pairs of a row are distinct and any correct sorting network yields the stable result.
 * Each row is padded to P = next power of two with sentinel pairs (0xffffffff, 0xffffffff) that
 * sort after every real pair. Bitonic sort: blocks of B elements (B limited by workgroup memory) are
 * sorted in workgroup memory by one kernel; each later stage k > B runs one global-memory
 * compare-exchange kernel per distance j >= B, then one workgroup-memory kernel for the distances
 * j < B. Scratch: 2 u32 per padded element. The last pass writes i32 indices.
 */
import { type Dim, dimEq, dimFmt, dimMax, dimMin, dimMul, dimProd } from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import type { DeviceLimits } from '../compiler/limits.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { type DType, dimsOf, fmtShape, type TensorType, typeOf } from '../compiler/types.js';
import { linearGroups } from './kit/launch.js';
import { linearWorkgroupSize } from './rows.js';
import { arange } from './sizes.js';
import { boolAttr } from './util.js';

// ---------------------------------------------------------------- the order

const SENTINEL = 0xffffffff;
const f32View = new DataView(new ArrayBuffer(4));

/** The u32 sort key of a value (CPU mirror of the kernels' key transform). */
export function sortKeyOf(v: number, dtype: DType, descending: boolean): number {
  let k: number;
  if (dtype === 'f32') {
    f32View.setFloat32(0, v);
    let b = f32View.getUint32(0);
    if ((b & 0x7fffffff) >>> 0 > 0x7f800000)
      k = SENTINEL; // NaN: above +inf
    else {
      if ((b & 0x7fffffff) === 0) b = 0; // -0 == +0
      k = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    }
  } else if (dtype === 'i32') k = ((v | 0) ^ 0x80000000) >>> 0;
  else k = v >>> 0;
  return descending ? ~k >>> 0 : k;
}

/** Stable argsort of `values` (one row) in the order documented above. */
export function cpuArgsortRow(values: ArrayLike<number>, dtype: DType, descending: boolean): number[] {
  const keys = Array.from(values, (v) => sortKeyOf(v, dtype, descending));
  const idx = keys.map((_, i) => i);
  idx.sort((a, b) => (keys[a] as number) - (keys[b] as number) || a - b);
  return idx;
}

/** The kernels' key transform (u32). */
function keyExpr(kb: K.KernelBuilder, x: Expr, dtype: DType, descending: boolean): Expr {
  let k: Expr;
  if (dtype === 'f32') {
    const b0 = kb.let('bits', K.bitcast('u32', x));
    const mag = kb.let('mag', K.bitAnd(b0, 0x7fffffff));
    const b = kb.let('b', K.select(K.eq(mag, 0), K.u32(0), b0));
    const mapped = K.select(K.ne(K.bitAnd(b, 0x80000000), 0), K.bitXor(b, 0xffffffff), K.bitOr(b, 0x80000000));
    k = K.select(K.gt(mag, 0x7f800000), K.u32(SENTINEL), mapped);
  } else if (dtype === 'i32') k = K.bitXor(K.bitcast('u32', x), 0x80000000);
  else k = x;
  return kb.let('key', descending ? K.bitXor(k, 0xffffffff) : k);
}

// ---------------------------------------------------------------- kernels

const nextPow2 = (n: number): number => {
  let p = 1;
  while (p < n) p *= 2;
  return p;
};
const floorPow2 = (n: number): number => {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
};
const log2 = (p: number): number => Math.round(Math.log2(p));

export interface ArgsortLowering {
  /** Kernel name prefix. */
  readonly name: string;
  readonly limits: DeviceLimits;
  readonly scratch: LowerArgs['scratch'];
  /** Keys, [rows, n] row-major. */
  readonly input: BufRef;
  readonly keyType: DType;
  /** The row count (a run-time size when the leading axes are). */
  readonly rows: Dim;
  /** The row length; a run-time size sorts rows padded to the largest (the padding sorts last). */
  readonly n: Dim;
  readonly descending: boolean;
  /** When given, the last pass writes the sorted indices as i32 here ([rows, n] row-major). */
  readonly out?: BufRef;
}

export interface ArgsortKernels {
  readonly kernels: Kernel[];
  /** u32 scratch holding the sorted original indices: row r at [r * rowStride, r * rowStride + n). */
  readonly indices: BufRef;
  readonly rowStride: number;
}

/** Geometry of the bitonic sort: padded row length P, block size B (a power of two ≤ P), threads T. */
export function argsortGeometry(n: number, limits: DeviceLimits): { P: number; B: number; T: number } {
  const P = Math.max(2, nextPow2(n));
  // two u32 arrays of B elements in workgroup memory
  const bMax = floorPow2(Math.floor(limits.maxComputeWorkgroupStorageSize / 8));
  if (bMax < 2)
    throw new WgflowError(
      `argsort: maxComputeWorkgroupStorageSize ${limits.maxComputeWorkgroupStorageSize} is too small`,
    );
  const B = Math.min(P, bMax);
  const T = Math.max(1, Math.min(linearWorkgroupSize(limits), B / 2));
  return { P, B, T };
}

/**
 * The kernels of a stable argsort along rows of `n` keys (exported so that ops needing a sort, like
 * nms, can run it on their own inputs with their own scratch).
 */
export function lowerArgsortKernels(o: ArgsortLowering): ArgsortKernels {
  const { rows, n, limits } = o;
  const { P, B, T } = argsortGeometry(dimMax(n), limits);
  const nE = K.size(n);
  const totalMax = dimMax(rows) * P;
  if (totalMax * 4 > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)) {
    throw new WgflowError(
      `argsort: ${dimFmt(rows)} rows padded to ${P} elements need ${totalMax * 4}-byte scratch buffers, over the binding limit`,
    );
  }
  const keys = o.scratch('u32', totalMax);
  const vals = o.scratch('u32', totalMax);
  const blocksPerRow = P / B;
  const blocks = dimMul(rows, blocksPerRow);
  const kernels: Kernel[] = [];

  /** Compare-exchange of (ka, va) at position i and (kb, vb) at i + j; returns whether to swap. */
  const shouldSwap = (ka: Expr, va: Expr, kbv: Expr, vb: Expr, ascending: Expr): Expr => {
    const greater = K.or(K.gt(ka, kbv), K.and(K.eq(ka, kbv), K.gt(va, vb)));
    return K.select(ascending, greater, K.not(greater));
  };

  /**
   * One workgroup per block of B elements: load (from the input with the key transform, or from the
   * scratch), run bitonic steps in workgroup memory, store (to the scratch, or the final indices).
   */
  const localKernel = (kname: string, mode: { first: boolean; stage?: number; final: boolean }): Kernel => {
    const kb = new K.KernelBuilder(kname);
    const sk = kb.array('skey', 'u32', B, 'workgroup');
    const sv = kb.array('sval', 'u32', B, 'workgroup');
    const lidx = K.builtin('lidx');
    const blk = kb.let('blk', K.builtin('wg_linear'));
    // Extra workgroups of a folded grid work on a clamped block and store nothing (no early return before barriers).
    const valid = kb.let('valid', K.lt(blk, K.size(blocks)));
    const b = kb.let('b', K.min(blk, K.sub(K.size(blocks), K.u32(1))));
    const row = kb.let('row', blocksPerRow === 1 ? b : K.div(b, K.u32(blocksPerRow)));
    const base = kb.let('base', blocksPerRow === 1 ? K.u32(0) : K.mul(K.mod(b, K.u32(blocksPerRow)), K.u32(B)));
    const rowOff = kb.let('rowoff', K.mul(row, K.u32(P)));
    /** body(e, pos) for this thread's elements e of the block (pos: the element's position in the row). */
    const eachOfBlock = (body: (e: Expr, pos: Expr) => void): void =>
      kb.for('e', lidx, K.u32(B), (e) => body(e, kb.let('pos', K.add(base, e))), { t: 'u32', step: T });
    eachOfBlock((e, pos) => {
      if (mode.first) {
        const real = kb.let('real', K.lt(pos, nE));
        const src = kb.let('src', K.add(K.mul(row, nE), K.min(pos, K.sub(nE, K.u32(1)))));
        const key = keyExpr(kb, K.load(o.input, src), o.keyType, o.descending);
        kb.astore(sk, e, K.select(real, key, K.u32(SENTINEL)));
        kb.astore(sv, e, K.select(real, pos, K.u32(SENTINEL)));
      } else {
        const at = kb.let('at', K.add(rowOff, pos));
        kb.astore(sk, e, K.load(keys, at));
        kb.astore(sv, e, K.load(vals, at));
      }
    });
    kb.barrier();
    /** One bitonic step at distance j (u32) of stage k (u32), over the block in workgroup memory. */
    const step = (k: Expr, j: Expr): void => {
      kb.for(
        'p',
        lidx,
        K.u32(B / 2),
        (p) => {
          const i = kb.let('i', K.sub(K.mul(p, K.u32(2)), K.bitAnd(p, K.sub(j, K.u32(1)))));
          const l = kb.let('l', K.add(i, j));
          const asc = kb.let('asc', K.eq(K.bitAnd(K.add(base, i), k), K.u32(0)));
          const ka = kb.let('ka', kb.aload(sk, 'u32', i));
          const va = kb.let('va', kb.aload(sv, 'u32', i));
          const kl = kb.let('kl', kb.aload(sk, 'u32', l));
          const vl = kb.let('vl', kb.aload(sv, 'u32', l));
          kb.if(shouldSwap(ka, va, kl, vl, asc), () => {
            kb.astore(sk, i, kl);
            kb.astore(sv, i, vl);
            kb.astore(sk, l, ka);
            kb.astore(sv, l, va);
          });
        },
        { t: 'u32', step: T },
      );
      kb.barrier();
    };
    if (mode.first) {
      // stages k = 2, 4, ..., B; distances j = k/2, ..., 1
      kb.for(
        'lk',
        K.u32(1),
        K.u32(log2(B) + 1),
        (lk) => {
          const k = kb.let('k', K.shl(K.u32(1), lk));
          kb.for(
            's',
            K.u32(0),
            lk,
            (s) => {
              const j = kb.let('j', K.shl(K.u32(1), K.sub(K.sub(lk, K.u32(1)), s)));
              step(k, j);
            },
            { t: 'u32' },
          );
        },
        { t: 'u32' },
      );
    } else {
      const stage = mode.stage as number;
      kb.for(
        's',
        K.u32(0),
        K.u32(log2(B)),
        (s) => {
          const j = kb.let('j', K.shr(K.u32(B / 2), s));
          step(K.u32(stage), j);
        },
        { t: 'u32' },
      );
    }
    kb.if(valid, () => {
      eachOfBlock((e, pos) => {
        if (mode.final && o.out) {
          const out = o.out;
          kb.if(K.lt(pos, nE), () => {
            const v = kb.aload(sv, 'u32', e);
            kb.store(out, K.add(K.mul(row, nE), pos), out.t === 'i32' ? K.cast('i32', v) : v);
          });
        } else {
          const at = kb.let('at', K.add(rowOff, pos));
          kb.store(keys, at, kb.aload(sk, 'u32', e));
          kb.store(vals, at, kb.aload(sv, 'u32', e));
        }
      });
    });
    return kb.finish([T, 1, 1], { linear: blocks });
  };

  /** One compare-exchange per thread at distance j >= B of stage k, in global memory. */
  const globalKernel = (kname: string, k: number, j: number): Kernel => {
    const WG = linearWorkgroupSize(limits);
    const pairs = dimMul(rows, P / 2);
    const kb = new K.KernelBuilder(kname);
    const gid = kb.let('gid', K.add(K.mul(K.builtin('wg_linear'), K.u32(WG)), K.builtin('lidx')));
    kb.if(K.lt(gid, K.size(pairs)), () => {
      const row = kb.let('row', K.div(gid, K.u32(P / 2)));
      const q = kb.let('q', K.mod(gid, K.u32(P / 2)));
      const i = kb.let('i', K.sub(K.mul(q, K.u32(2)), K.bitAnd(q, K.u32(j - 1))));
      const asc = kb.let('asc', K.eq(K.bitAnd(i, K.u32(k)), K.u32(0)));
      const ai = kb.let('ai', K.add(K.mul(row, K.u32(P)), i));
      const al = kb.let('al', K.add(ai, K.u32(j)));
      const ka = kb.let('ka', K.load(keys, ai));
      const va = kb.let('va', K.load(vals, ai));
      const kl = kb.let('kl', K.load(keys, al));
      const vl = kb.let('vl', K.load(vals, al));
      kb.if(shouldSwap(ka, va, kl, vl, asc), () => {
        kb.store(keys, ai, kl);
        kb.store(vals, ai, vl);
        kb.store(keys, al, ka);
        kb.store(vals, al, va);
      });
    });
    return kb.finish([WG, 1, 1], { linear: linearGroups(pairs, WG) });
  };

  kernels.push(localKernel(`${o.name}_sort`, { first: true, final: P === B }));
  for (let k = 2 * B; k <= P; k *= 2) {
    for (let j = k / 2; j >= B; j /= 2) kernels.push(globalKernel(`${o.name}_k${k}_j${j}`, k, j));
    kernels.push(localKernel(`${o.name}_merge${k}`, { first: false, stage: k, final: k === P }));
  }
  return { kernels, indices: vals, rowStride: P };
}

// ---------------------------------------------------------------- the op

/** The row length of a sort's input (the last axis) and its row count (both may be run-time sizes). */
function sortRows(x: TensorType): { n: Dim; rows: Dim } {
  const dims = dimsOf(x);
  return { n: dims[dims.length - 1] as Dim, rows: dimProd(dims.slice(0, -1)) };
}

function sortInfer(inputs: readonly TensorType[], attrs: Attrs): TensorType {
  if (inputs.length !== 1) fail(`takes one input, got ${inputs.length}`);
  const x = inputs[0] as TensorType;
  if (x.shape.length === 0) fail('needs a tensor of rank >= 1 (sorts along the last axis), got a scalar');
  boolAttr(attrs, 'descending');
  const { n } = sortRows(x);
  if (dimMax(n) >= 2 ** 31) fail(`rows of ${dimMax(n)} elements are too long for i32 indices`);
  return typeOf(dimsOf(x), 'i32');
}

registerOp({
  name: 'argsort',
  kind: 'opaque',
  dynamic: true,
  infer: sortInfer,
  cpu: ({ inputs, attrs }) => {
    const x = inputs[0] as RefTensor;
    const n = x.shape[x.shape.length - 1] as number;
    const rows = x.data.length / n;
    const desc = boolAttr(attrs, 'descending');
    const out = new Float64Array(x.data.length);
    for (let r = 0; r < rows; r++) {
      const idx = cpuArgsortRow(x.data.subarray(r * n, (r + 1) * n), x.dtype, desc);
      idx.forEach((v, i) => {
        out[r * n + i] = v;
      });
    }
    return out;
  },
  // Indices carry no gradient (sortValues/topk values get theirs through gather).
  grad: () => [null],
  lower: (a) => {
    const x = a.inputs[0];
    if (!x) throw new Error('internal: argsort without an input');
    const { n, rows } = sortRows(x.type);
    return lowerArgsortKernels({
      name: a.name,
      limits: a.limits,
      scratch: a.scratch,
      input: x.buf,
      keyType: x.type.dtype,
      rows,
      n,
      descending: boolAttr(a.attrs, 'descending'),
      out: a.output.buf,
    }).kernels;
  },
});

// ---------------------------------------------------------------- DSL helpers

/** Stable argsort (i32 indices) along the last axis; NaN counts as larger than +Infinity. */
export function argsort(x: Tensor, descending = false): Tensor {
  return x.builder.apply('argsort', [x], { descending });
}

/**
 * Takes x[l..., idx[l..., j], t...] (numpy take_along_axis): idx [...L, k] indexes axis L.length of
 * x [...L, n, ...T] (the leading dimensions L are shared; they, n and k may be run-time sizes), giving
 * [...L, k, ...T]. With T empty this is the last axis. Differentiable in x through gather.
 */
export function takeAlongAxis(x: Tensor, idx: Tensor): Tensor {
  const axis = idx.rank - 1;
  const n = x.dims[axis] as Dim;
  const k = idx.dims[axis] as Dim;
  const lead = x.dims.slice(0, axis);
  const tail = x.dims.slice(axis + 1);
  if (axis < 0 || axis >= x.rank || !lead.every((d, i) => dimEq(d, idx.dims[i] as Dim))) {
    throw new WgflowError(
      `takeAlongAxis: indices ${fmtShape(idx.dims)} must have the leading dimensions of x ${fmtShape(x.dims)}`,
    );
  }
  const rows = dimProd(lead);
  const flatX = x.reshape([dimMul(rows, n), ...tail]);
  let flatIdx = idx;
  if (rows !== 1) {
    const g = x.builder;
    // row offsets r·n, with n read at run time where it is a run-time size
    const r = arange(g, rows).reshape([rows, 1]);
    const offsets = typeof n === 'number' ? r.mul(n) : r.mul(g.apply('size_value', [], { dim: n, dtype: 'i32' }));
    flatIdx = idx.reshape([rows, k]).add(offsets);
  }
  return flatX.gather(flatIdx.reshape([dimMul(rows, k)]), 0).reshape([...lead, k, ...tail]);
}

/**
 * Takes x[..., idx[..., j]] along the last axis (numpy take_along_axis with indices into the last
 * axis of x; idx has x's leading dimensions and any last length). Differentiable in x through gather.
 */
export function takeAlongLastAxis(x: Tensor, idx: Tensor): Tensor {
  if (idx.rank !== x.rank)
    throw new WgflowError(
      `takeAlongLastAxis: indices ${fmtShape(idx.dims)} must have the leading dimensions of x ${fmtShape(x.dims)}`,
    );
  return takeAlongAxis(x, idx);
}

/** x sorted along its last axis (stable; see argsort for the order of NaNs). */
export function sortValues(x: Tensor, descending = false): Tensor {
  return takeAlongLastAxis(x, argsort(x, descending));
}

/** The k largest elements along the last axis, in descending order (ties: lower index first), and their indices. */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const n = x.dims[x.rank - 1];
  if (n === undefined) throw new WgflowError('topk: x must have rank >= 1');
  if (!Number.isInteger(k) || k < 1 || k > dimMin(n)) {
    const range = typeof n === 'number' ? `${n}` : `${dimMin(n)}, the smallest size of ${dimFmt(n)}`;
    throw new WgflowError(
      `topk: k = ${k} must be an integer in [1, ${range}] for x ${fmtShape(x.dims)} (last axis of size ${dimFmt(n)})`,
    );
  }
  const order = argsort(x, true);
  const lead = x.dims.slice(0, -1);
  const indices = k === n ? order : order.slice([...lead.map(() => 0), 0], [...lead, k]);
  return { values: takeAlongLastAxis(x, indices), indices };
}
