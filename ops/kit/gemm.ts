/**
 * The one tiled GEMM kernel generator: matmul, conv2d's implicit GEMM and both conv2d gradients are
 * GEMMs described by how to read A and B and store C ({@link GemmProblem}), with an optional split of
 * K across workgroups ({@link SplitK}, summed by {@link splitKSum}). Tiles are chosen by a cost model
 * fitted on lavapipe ({@link chooseTile}).
 */
import { type Dim, dimCeilDiv, dimMax, dimProd } from '../../compiler/dims.js';
import type { BufRef, Expr, Kernel } from '../../compiler/kernel/ast.js';
import * as K from '../../compiler/kernel/build.js';
import type { DeviceLimits } from '../../compiler/limits.js';
import { setTuning } from '../../compiler/tuning.js';
import { orZero } from './guard.js';
import { divC, divD, modC, modD } from './indexing.js';
import { perThread } from './launch.js';

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
  /**
   * Split-K: K is cut into `parts` ranges of `chunk` (a multiple of BK) that separate workgroups
   * accumulate; part s covers [s·chunk, min(K, (s+1)·chunk)) and its sums go to `store` with s, for
   * {@link splitKSum} to add up. Over a run-time K, `chunk` is that of the bound and the kernel cuts
   * the actual K into the same number of parts instead. Absent: one part.
   */
  readonly splitK?: SplitK;
  /**
   * Stage A ('m'-contiguous) by rows: each thread keeps its rows for a tile, so the first step of
   * loadA runs once per row and tile rather than per element. Worth it where decoding a row costs
   * run-time divisions: conv 3×3 64→64 at 64×64 over run-time N, H, W ran in 20.1 ms this way
   * against 24.4 ms flat (the exact-shape program: 19.7 ms), while a static conv 16→64 at 100×100
   * ran 8 % slower (14.4 against 13.3 ms) and matmul 1024³ 3× slower with its B staged so.
   */
  readonly stageRowsA?: boolean;
  /** A's axis that is contiguous in memory: consecutive threads load along it. */
  readonly aContig: 'm' | 'k';
  /** B's axis that is contiguous in memory. */
  readonly bContig: 'k' | 'n';
  /**
   * Reads A in two steps: `loadA(kb, b, m)` decodes row m (u32, < M: the tile's rows past M read row
   * M − 1, and their products are never stored); the function it returns gives A[b][m][k] as an f32 expression
   * for a k < K, emitting statements if needed (the k padding past K is zeroed by the generator). So
   * a loader checks nothing unless its operand has implicit zeros (conv padding). The first step runs
   * per staged element, or once per row and tile with `stageRowsA`.
   */
  loadA(kb: K.KernelBuilder, b: Expr, m: Expr): (k: Expr) => Expr;
  /** B[b][k][n] in the same two steps: column n (< N, clamped as the rows of A), then each k < K. */
  loadB(kb: K.KernelBuilder, b: Expr, n: Expr): (k: Expr) => Expr;
  /**
   * Stores the accumulated C[b][m][n] (only called in bounds: b < batch, m < M, n < N); `part` is the
   * split-K part (the literal 0 without splitK).
   */
  store(kb: K.KernelBuilder, b: Expr, m: Expr, n: Expr, acc: Expr, part: Expr): void;
}

/** How K is split across workgroups (see {@link GemmProblem.splitK}). */
export interface SplitK {
  readonly parts: number;
  readonly chunk: number;
}

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

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

/** A tile without its BK (which is picked per problem). */
export type GemmBlock = Omit<GemmTile, 'BK'>;

/** The GEMM family's tuning table (compiler/tuning.ts), one per target. */
export interface GemmTuning {
  /** Candidate blocks. */
  readonly blocks: readonly GemmBlock[];
  /** The k step of every tile... */
  readonly bk: number;
  /** ...except where K fits in this smaller one, which is then taken. */
  readonly smallBk: number;
  /** Workgroups the cost model wants at least, so that every core (or GPU unit) has work. */
  readonly minParallel: number;
  /** Weight of the loads per multiply-add in {@link tileCost}. */
  readonly loadCost: number;
  /** When set, every GEMM takes this tile if it fits (tests force each candidate in turn). */
  readonly force?: GemmTile;
}

declare module '../../compiler/tuning.js' {
  interface TuningTables {
    gemm: GemmTuning;
  }
}

/**
 * The WebGPU table, fitted on lavapipe, where every workgroup-memory read is a per-lane gather and
 * the FMA itself is cheap, so throughput follows the loads per multiply-add, (TM+TN)/(TM·TN): at
 * 1024³, 16×16 register blocks on 128×64 tiles reach about 23–24 GFLOP/s, on 64×64 tiles 22, while
 * 8×8 blocks reach 12–14. Workgroups have a multiple of 8 threads (lavapipe's SIMD width is 8 lanes);
 * 128×128 tiles with 64 threads were 4× slower. BK is 32: with BK = 16 many tiles fall off a cliff
 * that the cost model does not see (conv 16→64 3×3 at 100×100: 43 ms on 128×64×16 tiles, 14 ms on
 * 128×64×32; the weight gradient of 16→32 3×3 at 64×64, batch 8: 83 ms on 32×64×16, 29 ms on
 * 32×64×32), so BK = 16 is taken only where all of K fits in it (no k loop at all).
 */
export const WEBGPU_GEMM: GemmTuning = {
  blocks: [
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
    // thin problems (3 to 16 columns, e.g. the input gradient of a conv with 3 or 16 input
    // channels): one 8-lane SIMD row of fat threads. dx of a 3→32 3×3 stride-2 conv at 96×128 ran in
    // 11 ms on 128×4 tiles of 16×4 against 23 ms on 64×8 tiles of 16×2; dx of 16→32 3×3 at 64×64,
    // batch 8, in 29 ms on 128×16 tiles of 16×16 against 45 ms on 128×8 and 44 ms on 64×16. (Wide
    // blocks the other way, 32×128 or 64×128 of 16×16, ran 3–4× slower than 32×64.)
    { BM: 128, BN: 16, TM: 16, TN: 16 },
    { BM: 128, BN: 8, TM: 16, TN: 8 },
    { BM: 128, BN: 4, TM: 16, TN: 4 },
  ],
  bk: 32,
  smallBk: 16,
  minParallel: 4,
  loadCost: 11,
};

/**
 * The CUDA table: the usual GPU shapes (256 or 128 threads, 4×4 to 8×8 outputs per thread), so that
 * lavapipe's fat-thread tiles do not flow into CUDA kernels. Not measured on a GPU yet: the tuning
 * issue (per-adapter selection, the H200 run) replaces it with measured choices.
 */
export const CUDA_GEMM: GemmTuning = {
  blocks: [
    { BM: 128, BN: 128, TM: 8, TN: 8 },
    { BM: 128, BN: 64, TM: 8, TN: 4 },
    { BM: 64, BN: 128, TM: 4, TN: 8 },
    { BM: 64, BN: 64, TM: 4, TN: 4 },
    { BM: 64, BN: 32, TM: 4, TN: 2 },
    { BM: 32, BN: 64, TM: 2, TN: 4 },
    { BM: 32, BN: 32, TM: 2, TN: 2 },
    { BM: 64, BN: 16, TM: 4, TN: 1 },
    { BM: 16, BN: 64, TM: 1, TN: 4 },
    { BM: 16, BN: 16, TM: 1, TN: 1 },
  ],
  bk: 16,
  smallBk: 16,
  minParallel: 132,
  loadCost: 4,
};

setTuning('webgpu', 'gemm', WEBGPU_GEMM);
setTuning('cuda', 'gemm', CUDA_GEMM);

/**
 * Modelled run time of a tile: padded multiply-adds × (1 + loadCost × loads per multiply-add), where
 * the loads are the inner loop's TM+TN workgroup reads per TM·TN products plus the staging of
 * (BM+BN)·BK elements per BM·BN·BK products; loadCost 11 was fitted to lavapipe timings.
 * Fewer than minParallel workgroups leaves cores idle and counts proportionally more; so does a count
 * that is not a multiple of minParallel, up to 4·minParallel workgroups (past that the last round's
 * idle cores were measured to matter less than the tile: the conv weight gradient 128×1152×950 ran
 * 10 % faster on 18 workgroups of 128×64 than on 36 of 64×64).
 */
export function tileCost(
  t: GemmTile,
  M: number,
  N: number,
  Kd: number,
  batch: number,
  tuning: GemmTuning = WEBGPU_GEMM,
): number {
  const pm = ceilDiv(M, t.BM) * t.BM;
  const pn = ceilDiv(N, t.BN) * t.BN;
  const pk = ceilDiv(Kd, t.BK) * t.BK;
  const loads = (t.TM + t.TN) / (t.TM * t.TN) + (2 * (t.BM + t.BN)) / (t.BM * t.BN);
  const groups = ceilDiv(M, t.BM) * ceilDiv(N, t.BN) * batch;
  const P = tuning.minParallel;
  const parallel = groups >= 4 * P ? 1 : (P * ceilDiv(groups, P)) / groups;
  return pm * pn * pk * batch * (1 + tuning.loadCost * loads) * parallel;
}

/** The cheapest candidate tile of the target's table (by {@link tileCost}) that fits the device. */
export function chooseTile(
  M: number,
  N: number,
  Kd: number,
  batch: number,
  limits: DeviceLimits,
  tuning: GemmTuning = WEBGPU_GEMM,
): GemmTile {
  return cheapestTile(limits, tuning, Kd, (t) => tileCost(t, M, N, Kd, batch, tuning));
}

/**
 * {@link chooseTile} for a GEMM that may split K ({@link chooseSplitK}, whose scratch holds `outCount`
 * values per part): each candidate is costed with its own split, whose extra workgroups count as
 * parallelism (the conv weight gradient 64×576×4096 ran 11 % faster on 64×64 tiles in 4 parts than on
 * 64×32 tiles in 2, which the split-blind choice picked).
 */
export function chooseTileSplitK(
  M: number,
  N: number,
  Kd: number,
  batch: number,
  outCount: number,
  limits: DeviceLimits,
  tuning: GemmTuning = WEBGPU_GEMM,
): { tile: GemmTile; splitK: SplitK } {
  const split = (t: GemmTile): SplitK =>
    chooseSplitK(ceilDiv(M, t.BM) * ceilDiv(N, t.BN) * batch, Kd, outCount, t.BK, limits);
  const tile = cheapestTile(limits, tuning, Kd, (t) => {
    const s = split(t);
    return tileCost(t, M, N, Math.min(Kd, s.chunk), batch * s.parts, tuning);
  });
  return { tile, splitK: split(tile) };
}

function cheapestTile(limits: DeviceLimits, tuning: GemmTuning, Kd: number, cost: (t: GemmTile) => number): GemmTile {
  if (tuning.force && tileFits(tuning.force, limits)) return tuning.force;
  let best: GemmTile | null = null;
  let bestCost = Number.POSITIVE_INFINITY;
  for (const b of tuning.blocks) {
    for (const BK of Kd <= tuning.smallBk ? [tuning.smallBk, tuning.bk] : [tuning.bk]) {
      const t: GemmTile = { ...b, BK };
      if (!tileFits(t, limits)) continue;
      const c = cost(t);
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
  const parts = p.splitK?.parts ?? 1;
  const chunk = p.splitK?.chunk ?? 0;
  if (parts > 1 && (chunk <= 0 || chunk % BK !== 0))
    throw new Error(`gemm ${p.name}: split-K chunk ${chunk} is not a positive multiple of BK=${BK}`);
  const layers = p.batch * parts;
  const gx = dimCeilDiv(p.N, BN);
  const gy = dimCeilDiv(p.M, BM);
  const groups = dimProd([gx, gy, layers]);
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
  const layer = layers === 1 ? u(0) : kb.let('bzc', K.min(bzRaw, u(layers - 1)));
  const bz = parts === 1 ? layer : p.batch === 1 ? u(0) : kb.let('bb', modC(layer, p.batch));
  const part = parts === 1 ? u(0) : p.batch === 1 ? layer : kb.let('part', divC(layer, p.batch));
  // this workgroup's range of k: all of K, or its split-K part. Over a run-time K the parts are the
  // ones chosen for its bound, and the chunk (a multiple of BK) is cut from the actual K at run time:
  // a chunk fixed for the bound would leave most parts idle on a smaller K (measured on the frcnn-small
  // weight gradients: 2.1× the time of the exact program).
  const chunkE =
    parts === 1 || typeof p.K === 'number'
      ? u(chunk)
      : kb.let('chunk', K.mul(divC(K.add(divC(K.add(K.size(p.K), u(parts - 1)), parts), u(BK - 1)), BK), u(BK)));
  const kBegin = parts === 1 ? u(0) : kb.let('kbeg', K.mul(part, chunkE));
  const kEnd = parts === 1 ? K.size(p.K) : kb.let('kend', K.min(K.add(kBegin, chunkE), K.size(p.K)));
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
   * with row length `rowLen`), zero past K. Consecutive threads walk the operand's
   * contiguous axis so that global reads are coalesced. One element per step of a flat loop: giving
   * each thread whole rows for a tile (so that a row is decoded once) measured 3× slower for matmul
   * 1024³ on lavapipe (419 against 131 ms) and no faster for the conv gradients.
   */
  const stage = (
    arr: string,
    kContig: boolean,
    rowLen: number,
    kt: Expr,
    base: Expr,
    size: Dim,
    even: boolean,
    load: (o: Expr) => (k: Expr) => Expr,
    rows: boolean,
  ): void => {
    const put = (kk: Expr, oo: Expr, read: (k: Expr) => Expr): void => {
      const gk = kb.let('gk', K.add(kt, kk));
      const dst = K.add(K.mul(kk, u(rowLen)), oo);
      // only the k padding must read as 0; rows (columns) past M (N) only feed outputs that are never
      // stored, so they read a clamped, in-bounds row instead of branching
      kb.astore(
        arr,
        dst,
        orZero(kb, evenK ? [] : [K.lt(gk, K.size(p.K))], () => read(gk)),
      );
    };
    // by rows (stageRowsA): one row per thread for every (T / rowLen)-th k, or rowLen / T rows per thread
    const clampRow = (o: Expr): Expr =>
      kb.let('go', even ? K.add(base, o) : K.min(K.add(base, o), K.sub(K.size(size), u(1))));
    if (!kContig && rows && (T % rowLen === 0 || rowLen % T === 0)) {
      if (T % rowLen === 0) {
        const oo = rowLen === T ? lidx : kb.let('o', modC(lidx, rowLen));
        const k0 = rowLen === T ? u(0) : kb.let('k0', divC(lidx, rowLen));
        const go = clampRow(oo);
        const read = load(go);
        loop('j', (BK * rowLen) / T, (j) => put(kb.let('c', K.add(k0, K.mul(j, u(T / rowLen)))), oo, read));
      } else {
        loop('q', rowLen / T, (q) => {
          const oo = kb.let('o', K.add(lidx, K.mul(q, u(T))));
          const go = clampRow(oo);
          const read = load(go);
          loop('j', BK, (j) => put(j, oo, read));
        });
      }
      return;
    }
    const contigLen = kContig ? BK : rowLen;
    loop('r', (rowLen * BK) / T, (r) => {
      const e = kb.let('e', K.add(lidx, K.mul(r, u(T))));
      const c = kb.let('c', modC(e, contigLen));
      const o = kb.let('o', divC(e, contigLen));
      const kk = kContig ? c : o;
      const oo = kContig ? o : c;
      put(kk, oo, load(clampRow(oo)));
    });
  };

  kb.for(
    'kt',
    kBegin,
    kEnd,
    (kt) => {
      stage(As, p.aContig === 'k', BM, kt, m0, p.M, evenM, (m) => p.loadA(kb, bz, m), p.stageRowsA ?? false);
      stage(Bs, p.bContig === 'k', BN, kt, n0, p.N, evenN, (n) => p.loadB(kb, bz, n), false);
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
    if (mayFold) conds.push(K.lt(bzRaw, u(layers)));
    if (!evenM) conds.push(K.lt(gm, K.size(p.M)));
    if (!evenN) conds.push(K.lt(gn, K.size(p.N)));
    return and(conds);
  };
  loop('i', TM, (i) => {
    const gm = kb.let('gm', K.add(m0, K.add(ty, K.mul(i, u(WY)))));
    loop('j', TN, (j) => {
      const gn = kb.let('gn', K.add(n0, K.add(tx, K.mul(j, u(WX)))));
      const st = (): void => p.store(kb, bz, gm, gn, kb.aload(accArr, 'f32', K.add(K.mul(i, u(TN)), j)), part);
      const cond = storeConds(gm, gn);
      if (cond === null) st();
      else kb.if(cond, st);
    });
  });
  return kb.finish([T, 1, 1], { linear: groups });
}

/**
 * The number of split-K parts for a GEMM of `tiles` output tiles (all layers) whose K is `Kd` long
 * (at its largest), and the chunk (a multiple of BK) each part covers. Measured on lavapipe for the
 * conv weight gradient: a few long chunks beat many short ones (24 parts ran 30 % slower than 4–6), so
 * parts aim at 32 workgroups in all with chunks of at least 1024; the scratch buffer of `outCount`
 * values per part must fit one binding.
 */
export function chooseSplitK(tiles: number, Kd: number, outCount: number, BK: number, limits: DeviceLimits): SplitK {
  const target = 32;
  const minChunk = 1024;
  let parts = Math.max(1, Math.min(Math.ceil(target / tiles), Math.floor(Kd / minChunk)));
  const maxByMem = Math.floor(limits.maxStorageBufferBindingSize / (4 * outCount));
  parts = Math.max(1, Math.min(parts, maxByMem, 1024));
  return splitKInto(parts, Kd, BK);
}

/** `parts` split-K parts of K = `Kd` (fewer when the chunks, rounded up to BK, cover K sooner). */
export function splitKInto(parts: number, Kd: number, BK: number): SplitK {
  let chunk = Math.ceil(Math.ceil(Kd / parts) / BK) * BK;
  const n = Math.ceil(Kd / chunk);
  if (n === 1) chunk = Math.ceil(Kd / BK) * BK;
  return { parts: n, chunk };
}

/**
 * out[i] = store(Σ_s scratch[s·count + i]) for i < count, one thread per element: the second kernel of
 * a split-K GEMM whose parts stored their sums at scratch[s·count + flat].
 */
export function splitKSum(
  name: string,
  scratch: BufRef,
  count: Dim,
  parts: number,
  store: (kb: K.KernelBuilder, flat: Expr, sum: Expr) => void,
): Kernel {
  return perThread(name, count, (kb, i) => {
    const acc = kb.var('acc', K.f32(0));
    kb.for(
      's',
      K.u32(0),
      K.u32(parts),
      (s) => kb.assign(acc, K.add(acc, K.load(scratch, K.add(K.mul(s, K.size(count)), i)))),
      { t: 'u32' },
    );
    store(kb, i, acc);
  });
}
