/**
 * Matrix multiplication (batched, with transposed operands) and the shared tiled GEMM kernel
 * generator that conv2d's implicit GEMM also uses. `linear` is torch's nn.Linear as matmul + add.
 */
import { type Dim, dimCeilDiv, dimEq, dimMax, dimMul, dimProd } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import type { DeviceLimits } from '../compiler/limits.js';
import { type LowerArgs, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { type DimShape, dimsOf, fmtShape, numel, type TensorType, typeOf } from '../compiler/types.js';
import { sumToShape } from './util.js';

// ---------------------------------------------------------------------------------------------
// Tiled, register-blocked GEMM kernel generator
// ---------------------------------------------------------------------------------------------

/**
 * Tile shape of the GEMM kernel: a workgroup computes a BM×BN block of C, staging BM×BK of A and
 * BK×BN of B in workgroup memory per step; each thread accumulates TM×TN outputs in registers.
 */
export interface GemmTile {
  readonly BM: number;
  readonly BN: number;
  readonly BK: number;
  readonly TM: number;
  readonly TN: number;
}

/** A GEMM C[b][m][n] = Σ_k A[b][m][k]·B[b][k][n] described by how to read A and B and write C. */
export interface GemmProblem {
  readonly name: string;
  /** M, N and K may be run-time sizes (the grid, the bounds checks and the k loop then read them). */
  readonly M: Dim;
  readonly N: Dim;
  readonly K: Dim;
  /** Independent problems (one per workgroup layer). */
  readonly batch: number;
  readonly tile: GemmTile;
  /** A's axis that is contiguous in memory: consecutive threads load along it. */
  readonly aContig: 'm' | 'k';
  /** B's axis that is contiguous in memory. */
  readonly bContig: 'k' | 'n';
  /**
   * A[b][m][k] as an f32 expression (may emit statements). Called only with m < M and k < K
   * (u32 each), so it needs to check nothing else unless the operand has implicit zeros (padding).
   */
  loadA(kb: K.KernelBuilder, b: Expr, m: Expr, k: Expr): Expr;
  /** B[b][k][n], called only with k < K and n < N. */
  loadB(kb: K.KernelBuilder, b: Expr, k: Expr, n: Expr): Expr;
  /** Stores the accumulated C[b][m][n] (only called in bounds: b < batch, m < M, n < N). */
  store(kb: K.KernelBuilder, b: Expr, m: Expr, n: Expr, acc: Expr): void;
}

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);
const isPow2 = (d: number): boolean => d > 0 && (d & (d - 1)) === 0;

/** u32 x / d for a constant d (a shift when d is a power of two). */
export function divC(x: Expr, d: number): Expr {
  if (d === 1) return x;
  return isPow2(d) ? K.shr(x, Math.log2(d)) : K.div(x, K.u32(d));
}

/** u32 x % d for a constant d (a mask when d is a power of two). */
export function modC(x: Expr, d: number): Expr {
  if (d === 1) return K.u32(0);
  return isPow2(d) ? K.bitAnd(x, K.u32(d - 1)) : K.mod(x, K.u32(d));
}

/** u32 x / d for a size that may be a run-time size. */
export function divD(x: Expr, d: Dim): Expr {
  return typeof d === 'number' ? divC(x, d) : K.div(x, K.size(d));
}

/** u32 x % d for a size that may be a run-time size. */
export function modD(x: Expr, d: Dim): Expr {
  return typeof d === 'number' ? modC(x, d) : K.mod(x, K.size(d));
}

/** Whether a size is a static multiple of a block (no bounds check needed). */
const evenIn = (d: Dim, block: number): boolean => typeof d === 'number' && d % block === 0;

/** Threads per workgroup of a tile. */
export function tileThreads(t: GemmTile): number {
  return (t.BM / t.TM) * (t.BN / t.TN);
}

/** Whether a tile is well formed and fits the device. */
export function tileFits(t: GemmTile, limits: DeviceLimits): boolean {
  if (t.BM % t.TM !== 0 || t.BN % t.TN !== 0) return false;
  const threads = tileThreads(t);
  // the workgroup is 1-D: [threads, 1, 1]
  if (threads > limits.maxComputeInvocationsPerWorkgroup || threads > limits.maxComputeWorkgroupSizeX) return false;
  if ((t.BM * t.BK) % threads !== 0 || (t.BN * t.BK) % threads !== 0) return false;
  return (t.BM * t.BK + t.BK * t.BN) * 4 <= limits.maxComputeWorkgroupStorageSize;
}

/**
 * Candidate tiles (BK is picked per problem). Measured on lavapipe, where every workgroup-memory
 * read is a per-lane gather and the FMA itself is cheap, so throughput follows the loads per
 * multiply-add, (TM+TN)/(TM·TN): at 1024³, 16×16 register blocks on 128×64 tiles reach about
 * 23–24 GFLOP/s, on 64×64 tiles 22, while 8×8 blocks reach 12–14. Workgroups have a multiple of 8
 * threads (lavapipe's SIMD width is 8 lanes); 128×128 tiles with 64 threads were 4× slower.
 */
const BLOCKS: readonly Omit<GemmTile, 'BK'>[] = [
  { BM: 128, BN: 64, TM: 16, TN: 16 },
  { BM: 64, BN: 64, TM: 16, TN: 16 },
  { BM: 64, BN: 32, TM: 16, TN: 16 },
  { BM: 32, BN: 64, TM: 16, TN: 16 },
  { BM: 32, BN: 32, TM: 8, TN: 8 },
  { BM: 64, BN: 16, TM: 16, TN: 4 },
  { BM: 16, BN: 64, TM: 4, TN: 16 },
  { BM: 32, BN: 16, TM: 8, TN: 4 },
  { BM: 16, BN: 32, TM: 4, TN: 8 },
  { BM: 64, BN: 8, TM: 16, TN: 2 },
  { BM: 8, BN: 64, TM: 2, TN: 16 },
  { BM: 32, BN: 8, TM: 8, TN: 2 },
  { BM: 8, BN: 32, TM: 2, TN: 8 },
  { BM: 16, BN: 16, TM: 4, TN: 4 },
  { BM: 16, BN: 8, TM: 4, TN: 2 },
  { BM: 8, BN: 16, TM: 2, TN: 4 },
  { BM: 8, BN: 8, TM: 2, TN: 2 },
];

/** Workgroups the cost model wants at least, so that every CPU core (or GPU unit) has work. */
const MIN_PARALLEL = 4;

/**
 * Modelled run time of a tile: padded multiply-adds × (1 + 11 × loads per multiply-add), where
 * the loads are the inner loop's TM+TN workgroup reads per TM·TN products plus the staging of
 * (BM+BN)·BK elements per BM·BN·BK products; the factor 11 was fitted to lavapipe timings.
 * Fewer than MIN_PARALLEL workgroups leaves cores idle and counts proportionally more.
 */
export function tileCost(t: GemmTile, M: number, N: number, Kd: number, batch: number): number {
  const pm = ceilDiv(M, t.BM) * t.BM;
  const pn = ceilDiv(N, t.BN) * t.BN;
  const pk = ceilDiv(Kd, t.BK) * t.BK;
  const loads = (t.TM + t.TN) / (t.TM * t.TN) + (2 * (t.BM + t.BN)) / (t.BM * t.BN);
  const groups = ceilDiv(M, t.BM) * ceilDiv(N, t.BN) * batch;
  const parallel = (MIN_PARALLEL * ceilDiv(groups, MIN_PARALLEL)) / groups;
  return pm * pn * pk * batch * (1 + 11 * loads) * parallel;
}

/** The cheapest candidate tile (by tileCost) that fits the device; BK is 32 or 16 (less K padding). */
export function chooseTile(M: number, N: number, Kd: number, batch: number, limits: DeviceLimits): GemmTile {
  let best: GemmTile | null = null;
  let bestCost = Number.POSITIVE_INFINITY;
  for (const b of BLOCKS) {
    for (const BK of [32, 16]) {
      const t: GemmTile = { ...b, BK };
      if (!tileFits(t, limits)) continue;
      const c = tileCost(t, M, N, Kd, batch);
      if (c < bestCost * 0.999) {
        best = t;
        bestCost = c;
      }
    }
  }
  if (!best) throw new Error('gemm: no tile fits the device limits');
  return best;
}

/**
 * The GEMM kernel: one workgroup per (n-tile, m-tile, batch) in a 1-D grid. Each k step stages a
 * BM×BK tile of A and a BK×BN tile of B in workgroup memory (zero-filled outside the matrices),
 * then every thread multiplies TM values of A by TN values of B into its TM×TN accumulators.
 *
 * The loops are real loops over private arrays rather than unrolled straight-line code: on
 * lavapipe that compiles in well under a second (fully unrolled 16×16 blocks took 5–40 s in
 * LLVM) and runs as fast or faster. Thread t owns rows ty + i·WY and columns tx + j·WX.
 */
export function gemmKernel(p: GemmProblem, limits: DeviceLimits): Kernel {
  const { BM, BN, BK, TM, TN } = p.tile;
  if (!tileFits(p.tile, limits))
    throw new Error(`gemm ${p.name}: tile ${JSON.stringify(p.tile)} does not fit the device`);
  const WX = BN / TN;
  const WY = BM / TM;
  const T = WX * WY;
  const gx = dimCeilDiv(p.N, BN);
  const gy = dimCeilDiv(p.M, BM);
  const groups = dimProd([gx, gy, p.batch]);
  const evenM = evenIn(p.M, BM);
  const evenN = evenIn(p.N, BN);
  const evenK = evenIn(p.K, BK);
  // Grids past the per-dimension limit get folded into 2-D, which may add workgroups past the end.
  const mayFold = dimMax(groups) > limits.maxComputeWorkgroupsPerDimension;

  const kb = new K.KernelBuilder(p.name);
  const As = kb.array('As', 'f32', BM * BK, 'workgroup');
  const Bs = kb.array('Bs', 'f32', BK * BN, 'workgroup');
  const accArr = kb.array('acc', 'f32', TM * TN, 'private');
  const aArr = kb.array('a', 'f32', TM, 'private');
  const bArr = kb.array('b', 'f32', TN, 'private');
  const u = K.u32;
  const and = (conds: Expr[]): Expr | null => (conds.length === 0 ? null : conds.reduce((a, b) => K.and(a, b)));
  const loop = (base: string, n: number, body: (i: Expr) => void): void => kb.for(base, u(0), u(n), body, { t: 'u32' });

  const wg = kb.let('wg', K.builtin('wg_linear'));
  const bx = kb.let('bx', modD(wg, gx));
  const rest = kb.let('rest', divD(wg, gx));
  const by = kb.let('by', modD(rest, gy));
  const bzRaw = kb.let('bz', divD(rest, gy));
  // Extra workgroups (from grid folding) compute a clamped problem and store nothing.
  const bz = p.batch === 1 ? u(0) : kb.let('bzc', K.min(bzRaw, u(p.batch - 1)));
  // local_invocation_id.x, not local_invocation_index: lavapipe derives the latter with runtime
  // integer divisions per lane. The workgroup is 1-D, so both are the same number.
  const lidx = kb.let('lidx', K.builtin('lid_x'));
  const tx = WY === 1 ? lidx : kb.let('tx', modC(lidx, WX));
  const ty = WY === 1 ? u(0) : kb.let('ty', divC(lidx, WX));
  const m0 = kb.let('m0', K.mul(by, u(BM)));
  const n0 = kb.let('n0', K.mul(bx, u(BN)));

  loop('i', TM * TN, (i) => kb.astore(accArr, i, K.f32(0)));

  /**
   * Copies this thread's share of one operand's tile into workgroup memory (laid out [k][outer]
   * with row length `rowLen`), zero outside the matrix. Consecutive threads walk the operand's
   * contiguous axis so that global reads are coalesced.
   */
  const stage = (
    arr: string,
    kContig: boolean,
    rowLen: number,
    kt: Expr,
    base: Expr,
    size: Dim,
    even: boolean,
    load: (o: Expr, k: Expr) => Expr,
  ): void => {
    const contigLen = kContig ? BK : rowLen;
    loop('r', (rowLen * BK) / T, (r) => {
      const e = kb.let('e', K.add(lidx, K.mul(r, u(T))));
      const c = kb.let('c', modC(e, contigLen));
      const o = kb.let('o', divC(e, contigLen));
      const kk = kContig ? c : o;
      const oo = kContig ? o : c;
      const gk = kb.let('gk', K.add(kt, kk));
      const go = kb.let('go', K.add(base, oo));
      const dst = K.add(K.mul(kk, u(rowLen)), oo);
      const conds: Expr[] = [];
      if (!even) conds.push(K.lt(go, K.size(size)));
      if (!evenK) conds.push(K.lt(gk, K.size(p.K)));
      const cond = and(conds);
      if (cond === null) {
        kb.astore(arr, dst, load(go, gk));
      } else {
        const v = kb.var('v', K.f32(0));
        kb.if(cond, () => kb.assign(v, load(go, gk)));
        kb.astore(arr, dst, v);
      }
    });
  };

  kb.for(
    'kt',
    u(0),
    K.size(p.K),
    (kt) => {
      stage(As, p.aContig === 'k', BM, kt, m0, p.M, evenM, (m, k) => p.loadA(kb, bz, m, k));
      stage(Bs, p.bContig === 'k', BN, kt, n0, p.N, evenN, (n, k) => p.loadB(kb, bz, k, n));
      kb.barrier();
      loop('kk', BK, (kk) => {
        const aBase = kb.let('ai', K.add(K.mul(kk, u(BM)), ty));
        const bBase = kb.let('bi', K.add(K.mul(kk, u(BN)), tx));
        loop('i', TM, (i) => kb.astore(aArr, i, kb.aload(As, 'f32', K.add(aBase, K.mul(i, u(WY))))));
        loop('j', TN, (j) => kb.astore(bArr, j, kb.aload(Bs, 'f32', K.add(bBase, K.mul(j, u(WX))))));
        loop('i', TM, (i) => {
          const av = kb.let('av', kb.aload(aArr, 'f32', i));
          const row = kb.let('row', K.mul(i, u(TN)));
          loop('j', TN, (j) => {
            const idx = kb.let('ci', K.add(row, j));
            kb.astore(accArr, idx, K.call('fma', av, kb.aload(bArr, 'f32', j), kb.aload(accArr, 'f32', idx)));
          });
        });
      });
      kb.barrier();
    },
    { t: 'u32', step: BK },
  );

  const storeConds = (gm: Expr, gn: Expr): Expr | null => {
    const conds: Expr[] = [];
    if (mayFold) conds.push(K.lt(bzRaw, u(p.batch)));
    if (!evenM) conds.push(K.lt(gm, K.size(p.M)));
    if (!evenN) conds.push(K.lt(gn, K.size(p.N)));
    return and(conds);
  };
  loop('i', TM, (i) => {
    const gm = kb.let('gm', K.add(m0, K.add(ty, K.mul(i, u(WY)))));
    loop('j', TN, (j) => {
      const gn = kb.let('gn', K.add(n0, K.add(tx, K.mul(j, u(WX)))));
      const st = (): void => p.store(kb, bz, gm, gn, kb.aload(accArr, 'f32', K.add(K.mul(i, u(TN)), j)));
      const cond = storeConds(gm, gn);
      if (cond === null) st();
      else kb.if(cond, st);
    });
  });
  return kb.finish([T, 1, 1], { linear: groups });
}

// ---------------------------------------------------------------------------------------------
// matmul op
// ---------------------------------------------------------------------------------------------

/** M, N and K may be run-time sizes; batch dims are static. */
interface MatmulDims<D extends Dim = Dim> {
  readonly M: D;
  readonly N: D;
  readonly K: D;
  /** Output batch dims. */
  readonly batchShape: number[];
  readonly aBatched: boolean;
  readonly bBatched: boolean;
}

function transFlags(attrs: Attrs): { transA: boolean; transB: boolean } {
  const ta = attrs.transA ?? false;
  const tb = attrs.transB ?? false;
  if (typeof ta !== 'boolean' || typeof tb !== 'boolean')
    fail(`transA/transB must be booleans, got ${JSON.stringify(ta)}/${JSON.stringify(tb)}`);
  return { transA: ta, transB: tb };
}

function matmulDims(a: DimShape, b: DimShape, attrs: Attrs): MatmulDims {
  const { transA, transB } = transFlags(attrs);
  if (a.length < 2 || b.length < 2) fail(`operands must have rank ≥ 2, got A ${fmtShape(a)} and B ${fmtShape(b)}`);
  const ra = a.length;
  const rb = b.length;
  const M = (transA ? a[ra - 1] : a[ra - 2]) as Dim;
  const Ka = (transA ? a[ra - 2] : a[ra - 1]) as Dim;
  const Kb = (transB ? b[rb - 1] : b[rb - 2]) as Dim;
  const N = (transB ? b[rb - 2] : b[rb - 1]) as Dim;
  if (!dimEq(Ka, Kb)) {
    fail(
      `inner dimensions differ: A ${fmtShape(a)}${transA ? ' (transposed)' : ''} has K=${Ka}, B ${fmtShape(b)}${transB ? ' (transposed)' : ''} has K=${Kb}`,
    );
  }
  const ba = a.slice(0, ra - 2);
  const bb = b.slice(0, rb - 2);
  if (![...ba, ...bb].every((d) => typeof d === 'number'))
    fail(`batch dimensions must be static sizes, got A ${fmtShape(a)} and B ${fmtShape(b)}`);
  if (ba.length > 0 && bb.length > 0 && !(ba.length === bb.length && ba.every((d, i) => d === bb[i]))) {
    fail(
      `batch dimensions ${fmtShape(ba)} and ${fmtShape(bb)} differ (they must match exactly, or one operand must be rank 2)`,
    );
  }
  return {
    M,
    N,
    K: Ka,
    batchShape: (ba.length > 0 ? [...ba] : [...bb]) as number[],
    aBatched: ba.length > 0,
    bBatched: bb.length > 0,
  };
}

registerOp({
  name: 'matmul',
  kind: 'gemm',
  dynamic: true,
  infer: ([a, b], attrs) => {
    const ta = a as TensorType;
    const tb = b as TensorType;
    if (ta.dtype !== 'f32' || tb.dtype !== 'f32') fail(`needs f32 operands, got ${ta.dtype} and ${tb.dtype}`);
    const d = matmulDims(dimsOf(ta), dimsOf(tb), attrs);
    return typeOf([...d.batchShape, d.M, d.N], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [a, b] = inputs as [(typeof inputs)[0] & object, (typeof inputs)[0] & object];
    const { transA, transB } = transFlags(attrs);
    const d = matmulDims(a.shape, b.shape, attrs) as MatmulDims<number>;
    const { M, N, K: Kd } = d;
    const batch = numel(d.batchShape);
    const out = new Float64Array(batch * M * N);
    const A = a.data;
    const B = b.data;
    for (let bi = 0; bi < batch; bi++) {
      const ao = d.aBatched ? bi * M * Kd : 0;
      const bo = d.bBatched ? bi * Kd * N : 0;
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < Kd; k++) {
            const av = A[ao + (transA ? k * M + m : m * Kd + k)] as number;
            const bv = B[bo + (transB ? n * Kd + k : k * N + n)] as number;
            s += av * bv;
          }
          out[(bi * M + m) * N + n] = s;
        }
      }
    }
    return out;
  },
  grad: ({ inputs, attrs, dy }) => {
    const [a, b] = inputs as [Tensor, Tensor];
    const { transA, transB } = transFlags(attrs);
    const d = matmulDims(a.dims, b.dims, attrs);
    const { M, N, K: Kd } = d;
    // Y = op(A)·op(B).  d op(A) = dY·op(B)ᵀ,  d op(B) = op(A)ᵀ·dY.
    let da: Tensor;
    if (d.bBatched || !d.aBatched || transA) {
      da = transA ? b.matmul(dy, { transA: transB, transB: true }) : dy.matmul(b, { transB: !transB });
      da = sumToShape(da, a.dims);
    } else {
      // B is shared across the batch and A is [batch..., M, K]: fold the batch into M.
      da = dy.matmul(b, { transB: !transB });
    }
    let db: Tensor;
    if (!d.bBatched && d.aBatched && !transA) {
      // B shared over a batched, non-transposed A: fold the batch into the contraction.
      const batch = numel(d.batchShape);
      const a2 = a.reshape([dimMul(batch, M), Kd]);
      const dy2 = dy.reshape([dimMul(batch, M), N]);
      db = transB ? dy2.matmul(a2, { transA: true }) : a2.matmul(dy2, { transA: true });
    } else {
      db = transB ? dy.matmul(a, { transA: true, transB: transA }) : a.matmul(dy, { transA: !transA });
      db = sumToShape(db, b.dims);
    }
    return [da, db];
  },
  lower: (args) => [lowerMatmul(args)],
});

function lowerMatmul(args: LowerArgs): Kernel {
  const [ia, ib] = args.inputs as [LowerArgs['inputs'][0] & object, LowerArgs['inputs'][0] & object];
  const { transA, transB } = transFlags(args.attrs);
  const d = matmulDims(dimsOf(ia.type), dimsOf(ib.type), args.attrs);
  const { M, N, K: Kd, batchShape } = d;
  const batch = numel(batchShape);
  const u = K.u32;
  const sz = K.size;
  const A = ia.buf;
  const B = ib.buf;
  const C = args.output.buf;
  // A batched and non-transposed, B shared: the batch folds into M (one big GEMM).
  const fold = batch > 1 && d.aBatched && !d.bBatched && !transA;
  const gM = fold ? dimMul(batch, M) : M;
  const gBatch = fold ? 1 : batch;
  const aStride = d.aBatched && !fold ? dimMul(M, Kd) : 0;
  const bStride = d.bBatched ? dimMul(Kd, N) : 0;
  const off = (b: Expr, stride: Dim, idx: Expr): Expr =>
    stride === 0 || gBatch === 1 ? idx : K.add(K.mul(b, sz(stride)), idx);

  /** Output coordinates [batch..., m, n] of element (b, m, n) of the (possibly folded) GEMM. */
  const coords = (b: Expr, m: Expr, n: Expr): Expr[] => {
    let bLin = b;
    let mm = m;
    if (fold) {
      bLin = K.div(m, sz(M));
      mm = K.mod(m, sz(M));
    }
    const cs: Expr[] = [];
    let t = bLin;
    for (let i = batchShape.length - 1; i >= 0; i--) {
      const dim = batchShape[i] as number;
      cs.unshift(i === 0 ? t : K.mod(t, u(dim)));
      t = K.div(t, u(dim));
    }
    return [...cs, mm, n];
  };

  return gemmKernel(
    {
      name: args.name,
      M: gM,
      N,
      K: Kd,
      batch: gBatch,
      // tiles chosen for the largest sizes
      tile: chooseTile(dimMax(gM), dimMax(N), dimMax(Kd), gBatch, args.limits),
      aContig: transA ? 'm' : 'k',
      bContig: transB ? 'k' : 'n',
      loadA: (_kb, b, m, k) =>
        K.load(A, off(b, aStride, transA ? K.add(K.mul(k, sz(M)), m) : K.add(K.mul(m, sz(Kd)), k))),
      loadB: (_kb, b, k, n) =>
        K.load(B, off(b, bStride, transB ? K.add(K.mul(n, sz(Kd)), k) : K.add(K.mul(k, sz(N)), n))),
      store: (kb, b, m, n, acc) => {
        const flat = kb.let('flat', K.add(K.mul(gBatch === 1 ? m : K.add(K.mul(b, sz(M)), m), sz(N)), n));
        kb.store(C, flat, args.epilogue(acc, coords(b, m, n), flat));
      },
    },
    args.limits,
  );
}

/** torch.nn.Linear: y = x·Wᵀ + b with weight [out, in] and bias [out] broadcast over rows. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = x.matmul(weight, { transB: true });
  return bias ? y.add(bias) : y;
}
