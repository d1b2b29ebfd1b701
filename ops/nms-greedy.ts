/**
 * The kernels of the `nms` op's main path (ops/nms.ts): a blocked greedy walk over the boxes in score
 * order that only ever compares a candidate with boxes already KEPT and stops once maxOutput are kept.
 *
 * 1. runsort: the scores are cut into runs of R consecutive boxes (R = 32, more when there would be
 *    over 256 runs); one workgroup per run rank-sorts it by (descending score key, index) — each
 *    thread counts the run's elements that precede its own, one barrier (on a CPU driver barriers
 *    cost more than R comparisons) — into scratch (key and original index per element).
 * 2. walk: one workgroup of B (≤ 64) threads per problem. Thread 0 merges the sorted runs with a
 *    tournament tree (a pop is log2(runs) comparisons; equal keys: the lower run, i.e. the lower
 *    index, wins) into blocks of B candidates, loading their boxes into workgroup memory. Per block:
 *    (a) thread t tests candidate t against every box kept so far, stopping at the first that
 *        suppresses it; a survivor computes its mask row against the block's earlier candidates (one
 *        u32 word per 32 of them);
 *    (b) thread 0 resolves the block in order: a survivor is kept when none of the boxes kept in this
 *        block suppresses it (mask row AND the block's kept bits), until maxOutput are kept; it
 *        appends the kept boxes to the kept list, writes their indices, and selects the next block.
 *    Two barriers per block. The block loop has a fixed trip count (barriers stay in uniform control
 *    flow); once maxOutput boxes are kept or the boxes run out, the remaining blocks do nothing.
 * This is exactly the greedy pass of the CPU reference: a box is kept iff it is among the first
 * maxOutput boxes (in stable descending score order, ops/sort.ts's key order) that no earlier kept box
 * suppresses. IoUs: at most N · maxOutput against kept boxes plus B²/2 per block, far fewer than the
 * N² of the bitmask algorithm, and the walk ends early when maxOutput boxes are kept. The IoU is the
 * reference's float32 formula in the same operation order, the higher-scored box first.
 *
 * Workgroup memory: 7·B + B²/32 words for the block, 4 per tree leaf, and the kept list: 5 words per
 * kept box (coordinates and area) when they fit, else its index (the box is then read from the input).
 * When even the indices do not fit (maxOutput of several thousand), greedyNmsGeometry returns
 * undefined and the op falls back to the bitmask kernels.
 */
import { type Dim, dimMax, dimMul } from '../compiler/dims.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import type { DeviceLimits } from '../compiler/limits.js';
import type { LowerArgs } from '../compiler/registry.js';
import { type BoxK, emitArea, emitIou, emitOne } from './kit/iou-emit.js';

/** A box in kernel expressions: corners and area (float32). */
export interface BoxExprs {
  readonly x1: Expr;
  readonly y1: Expr;
  readonly x2: Expr;
  readonly y2: Expr;
  readonly area: Expr;
}

/**
 * Whether box `a` (the higher-scored one) suppresses box `c`: their float32 IoU (ops/kit/iou-emit.ts)
 * compared with the float32 threshold. NaN (0/0 for two empty boxes) compares false: never suppresses.
 */
export function emitSuppresses(
  kb: K.KernelBuilder,
  a: BoxExprs,
  c: BoxExprs,
  o: { readonly plusOne: boolean; readonly inclusive: boolean; readonly threshold: number },
): Expr {
  const one = o.plusOne ? emitOne(kb, a.x1) : undefined;
  const box = (b: BoxExprs): BoxK => [b.x1, b.y1, b.x2, b.y2];
  const iou = emitIou(kb, box(a), a.area, box(c), c.area, one);
  const thr = K.f32(o.threshold);
  return o.inclusive ? K.ge(iou, thr) : K.gt(iou, thr);
}

const SENTINEL = 0xffffffff;

/**
 * The u32 sort key of a float32 score for a DESCENDING order (ops/sort.ts's transform: NaN above
 * +Infinity, -0 == +0, then flipped), smaller key = earlier. Real keys are ≤ 0xfffffffe, so SENTINEL
 * (padding, exhausted runs) sorts after all of them.
 */
function emitDescendingKey(kb: K.KernelBuilder, x: Expr): Expr {
  const b0 = kb.let('bits', K.bitcast('u32', x));
  const mag = kb.let('mag', K.bitAnd(b0, 0x7fffffff));
  const b = kb.let('b', K.select(K.eq(mag, 0), K.u32(0), b0));
  const mapped = K.select(K.ne(K.bitAnd(b, 0x80000000), 0), K.bitXor(b, 0xffffffff), K.bitOr(b, 0x80000000));
  return kb.let('key', K.bitXor(K.select(K.gt(mag, 0x7f800000), K.u32(SENTINEL), mapped), 0xffffffff));
}

/** Geometry of the walk: block size B (walk threads), run length R (sorted runs), runs per problem. */
export interface GreedyNmsGeometry {
  readonly B: number;
  readonly R: number;
  readonly runs: number;
  /** Leaves of the merge's tournament tree: the power of two ≥ runs. */
  readonly leaves: number;
  /** The kept boxes' coordinates and areas in workgroup memory (else only their indices). */
  readonly keptBoxes: boolean;
  /** Threads of the run sort (a power of two ≤ R). */
  readonly sortThreads: number;
}

/** Walk block size: 64 beat 32, 128 and 256 on lavapipe (larger blocks compute more in-block IoUs). */
const MAX_BLOCK = 64;
/** Runs are at least this long, and longer when there would be more than MAX_RUNS of them. */
const MIN_RUN = 32;
const MAX_RUNS = 256;

/** Workgroup words the walk kernel needs. */
const walkWords = (g: GreedyNmsGeometry, m: number): number =>
  7 * g.B + (g.B * g.B) / 32 + (g.keptBoxes ? 5 : 1) * m + 4 * g.leaves + 1;

/**
 * The geometry for n boxes and capacity m, or undefined when the walk does not fit the device's
 * workgroup memory or invocation limits (the op then uses the bitmask kernels).
 */
export function greedyNmsGeometry(n: number, m: number, limits: DeviceLimits): GreedyNmsGeometry | undefined {
  const maxThreads = Math.min(MAX_BLOCK, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  if (maxThreads < 32) return undefined;
  let R = MIN_RUN;
  while (Math.ceil(n / R) > MAX_RUNS) R *= 2;
  if (4 * R > limits.maxComputeWorkgroupStorageSize) return undefined;
  const runs = Math.ceil(n / R);
  let leaves = 1;
  while (leaves < runs) leaves *= 2;
  let sortThreads = 1;
  while (sortThreads * 2 <= Math.min(R, 256, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX))
    sortThreads *= 2;
  let B0 = 32;
  while (B0 < n && B0 * 2 <= maxThreads) B0 *= 2;
  // kept boxes in workgroup memory when they fit (faster tests), else their indices
  for (const keptBoxes of [true, false]) {
    for (let B = B0; B >= 32; B /= 2) {
      const g = { B, R, runs, leaves, keptBoxes, sortThreads };
      if (walkWords(g, m) * 4 <= limits.maxComputeWorkgroupStorageSize) return g;
    }
  }
  return undefined;
}

export interface GreedyNmsLowering {
  /** Kernel name prefix. */
  readonly name: string;
  readonly scratch: LowerArgs['scratch'];
  /** Boxes f32 [problems, n, 4] and scores f32 [problems, n]; n may be a run-time size (up to its bound). */
  readonly boxes: BufRef;
  readonly scores: BufRef;
  /** i32 [problems, m + 1]: kept indices, -1 padding, count. */
  readonly out: BufRef;
  /** The problem count (a run-time size when the leading axes are). */
  readonly problems: Dim;
  readonly n: Dim;
  readonly maxOutput: number;
  /** From greedyNmsGeometry. */
  readonly geometry: GreedyNmsGeometry;
  readonly plusOne: boolean;
  readonly inclusive: boolean;
  /** The float32 threshold (ops/nms.ts f32Threshold). */
  readonly threshold: number;
}

/**
 * Kernel 1: every run of R consecutive boxes sorted by (descending score key, index), into sortedKey /
 * sortedPos (padding: SENTINEL, sorted last). A rank sort: the keys of the run in workgroup memory,
 * each thread counts the run's elements that precede its own and scatters it to that rank (one
 * barrier; on a CPU driver, barriers cost more than the R comparisons per element).
 */
function runSortKernel(o: GreedyNmsLowering, sortedKey: BufRef, sortedPos: BufRef): Kernel {
  const { n, problems } = o;
  const nE = K.size(n);
  const { R, runs } = o.geometry;
  const T = o.geometry.sortThreads;
  const kb = new K.KernelBuilder(`${o.name}_runsort`);
  const lidx = K.builtin('lidx');
  const sk = kb.array('skey', 'u32', R, 'workgroup');
  const wg = kb.let('wg', K.builtin('wg_linear'));
  // extra workgroups of a folded grid sort a clamped run and store nothing (no early return before barriers)
  const runsAll = dimMul(problems, runs);
  const valid = kb.let('valid', K.lt(wg, K.size(runsAll)));
  const id = kb.let('id', K.min(wg, K.sub(K.size(runsAll), K.u32(1))));
  const prob = kb.let('prob', K.div(id, K.u32(runs)));
  const run0 = kb.let('run0', K.mul(K.sub(id, K.mul(prob, K.u32(runs))), K.u32(R)));
  const keyAt = (e: Expr): Expr => {
    const pos = kb.let('pos', K.add(run0, e));
    const key = emitDescendingKey(kb, K.load(o.scores, K.add(K.mul(prob, nE), K.min(pos, K.sub(nE, K.u32(1))))));
    return kb.let('k', K.select(K.lt(pos, nE), key, K.u32(SENTINEL)));
  };
  kb.for('e', lidx, K.u32(R), (e) => kb.astore(sk, e, keyAt(e)), { t: 'u32', step: T });
  kb.barrier();
  kb.if(valid, () => {
    const dst = kb.let('dst', K.mul(id, K.u32(R)));
    kb.for(
      'e',
      lidx,
      K.u32(R),
      (e) => {
        const ke = kb.let('ke', kb.aload(sk, 'u32', e));
        const rank = kb.var('rank', K.u32(0));
        kb.for(
          'j',
          K.u32(0),
          K.u32(R),
          (j) => {
            const kj = kb.let('kj', kb.aload(sk, 'u32', j));
            const before = K.or(K.lt(kj, ke), K.and(K.eq(kj, ke), K.lt(j, e)));
            kb.assign(rank, K.add(rank, K.select(before, K.u32(1), K.u32(0))));
          },
          { t: 'u32' },
        );
        const pos = kb.let('p', K.add(run0, e));
        kb.store(sortedKey, K.add(dst, rank), ke);
        kb.store(sortedPos, K.add(dst, rank), K.select(K.lt(pos, nE), pos, K.u32(SENTINEL)));
      },
      { t: 'u32', step: T },
    );
  });
  return kb.finish([T, 1, 1], { linear: runsAll });
}

/** The run-sort and walk kernels of the greedy path. */
export function lowerGreedyNmsKernels(o: GreedyNmsLowering): Kernel[] {
  const { n, problems } = o;
  const { B, R, runs, leaves: L } = o.geometry;
  const m = o.maxOutput;
  const sortedKey = o.scratch('u32', dimMax(problems) * runs * R);
  const sortedPos = o.scratch('u32', dimMax(problems) * runs * R);

  // ---- kernel 2: the walk, one workgroup per problem
  const WD = B / 32; // mask words per block row
  // blocks for the largest n: past the actual boxes the merge yields no candidate and a block does nothing
  const blocks = Math.ceil(dimMax(n) / B);
  const kb = new K.KernelBuilder(`${o.name}_walk`);
  const lidx = K.builtin('lidx');
  const u = K.u32;
  const wg = kb.let('wg', K.builtin('wg_linear'));
  const valid = kb.let('valid', K.lt(wg, K.size(problems)));
  const prob = kb.let('prob', K.min(wg, K.sub(K.size(problems), u(1))));
  // the block: candidates' original indices (SENTINEL: none), boxes, suppressed flags, mask rows
  const cand = kb.array('cand', 'u32', B, 'workgroup');
  const blk = ['x1', 'y1', 'x2', 'y2', 'area'].map((nm) => kb.array(`b${nm}`, 'f32', B, 'workgroup'));
  const sup = kb.array('sup', 'u32', B, 'workgroup');
  const mask = kb.array('mask', 'u32', B * WD, 'workgroup');
  // the kept boxes: original indices, or coordinates and areas
  const kept = o.geometry.keptBoxes
    ? ['x1', 'y1', 'x2', 'y2', 'area'].map((nm) => kb.array(`k${nm}`, 'f32', m, 'workgroup'))
    : [kb.array('kept', 'u32', m, 'workgroup')];
  // the merge of the sorted runs: next element of each run, its key (SENTINEL: exhausted), and a
  // tournament tree over the L ≥ runs leaves (node i: the run with the smallest head key below it)
  const head = kb.array('head', 'u32', L, 'workgroup');
  const headKey = kb.array('headkey', 'u32', L, 'workgroup');
  const tree = kb.array('tree', 'u32', 2 * L, 'workgroup');
  const state = kb.array('state', 'u32', 1, 'workgroup'); // [0]: kept count
  const boxBase = kb.let('boxbase', K.mul(prob, K.size(n)));
  const runBase = kb.let('runbase', K.mul(prob, u(runs * R)));
  const outBase = kb.let('outbase', K.mul(prob, u(m + 1)));

  /** Box `orig` (u32 original index) of this problem, with its area. */
  const inputBox = (orig: Expr): BoxExprs => {
    const at = kb.let('at', K.mul(K.add(boxBase, orig), u(4)));
    const [x1, y1, x2, y2] = [0, 1, 2, 3].map((j) => kb.let('c', K.load(o.boxes, j === 0 ? at : K.add(at, u(j))))) as [
      Expr,
      Expr,
      Expr,
      Expr,
    ];
    return { x1, y1, x2, y2, area: emitArea(kb, [x1, y1, x2, y2], o.plusOne ? emitOne(kb, x1) : undefined) };
  };
  /** Box i (u32) of five workgroup arrays (x1, y1, x2, y2, area). */
  const arraysBox = (arrs: readonly string[], i: Expr, tag: string): BoxExprs => {
    const [x1, y1, x2, y2, area] = arrs.map((a, j) => kb.let(`${tag}${j}`, kb.aload(a, 'f32', i))) as [
      Expr,
      Expr,
      Expr,
      Expr,
      Expr,
    ];
    return { x1, y1, x2, y2, area };
  };
  const blockBox = (t: Expr): BoxExprs => arraysBox(blk, t, 's');
  /** Kept box j (u32). */
  const keptBox = (j: Expr): BoxExprs =>
    o.geometry.keptBoxes ? arraysBox(kept, j, 'k') : inputBox(kb.aload(kept[0] as string, 'u32', j));
  /** Tree node `node` (u32) := the better of its children (the left one on ties: lower run, lower index). */
  const replay = (node: Expr): void => {
    const l = kb.let('tl', kb.aload(tree, 'u32', K.mul(node, u(2))));
    const r = kb.let('tr', kb.aload(tree, 'u32', K.add(K.mul(node, u(2)), u(1))));
    kb.astore(tree, node, K.select(K.lt(kb.aload(headKey, 'u32', r), kb.aload(headKey, 'u32', l)), r, l));
  };
  /** Thread 0: the next B boxes in score order into the block (cand SENTINEL where none is left). */
  const selectCandidates = (): void => {
    kb.for(
      't',
      u(0),
      u(B),
      (t) => {
        const w = kb.let('win', kb.aload(tree, 'u32', u(1)));
        const c = kb.var('cd', u(SENTINEL));
        kb.if(K.ne(kb.aload(headKey, 'u32', w), u(SENTINEL)), () => {
          const h = kb.let('h', kb.aload(head, 'u32', w));
          const at = kb.let('hat', K.add(K.add(runBase, K.mul(w, u(R))), h));
          const orig = kb.let('orig', K.load(sortedPos, at));
          kb.assign(c, orig);
          const h1 = kb.let('h1', K.add(h, u(1)));
          kb.astore(head, w, h1);
          kb.astore(
            headKey,
            w,
            K.select(
              K.lt(h1, u(R)),
              K.load(sortedKey, K.min(K.add(at, u(1)), K.sub(K.size(dimMul(problems, runs * R)), u(1)))),
              u(SENTINEL),
            ),
          );
          for (let lev = 1; 1 << lev <= L; lev++) replay(K.shr(K.add(u(L), w), u(lev)));
          const b = inputBox(orig);
          [b.x1, b.y1, b.x2, b.y2, b.area].forEach((v, j) => kb.astore(blk[j] as string, t, v));
        });
        kb.astore(cand, t, c);
      },
      { t: 'u32' },
    );
  };

  kb.for(
    'r',
    lidx,
    u(L),
    (r) => {
      const live = kb.let('live', K.lt(r, u(runs)));
      kb.astore(head, r, u(0));
      const first = K.load(sortedKey, K.add(runBase, K.mul(K.min(r, u(runs - 1)), u(R))));
      kb.astore(headKey, r, K.select(live, first, u(SENTINEL)));
      kb.astore(tree, K.add(u(L), r), r);
    },
    { t: 'u32', step: B },
  );
  kb.barrier();
  kb.if(K.eq(lidx, u(0)), () => {
    kb.astore(state, u(0), u(0));
    if (L > 1) kb.for('nd', 1, L, (nd) => replay(K.sub(u(L), K.cast('u32', nd))), { t: 'i32' });
    selectCandidates();
  });
  kb.barrier();
  kb.for(
    'blk',
    u(0),
    u(blocks),
    () => {
      const nk = kb.let('nk', kb.aload(state, 'u32', u(0)));
      // (a) the candidate against the boxes kept so far; a survivor computes its mask row against
      // the earlier candidates of the block
      const s = kb.var('s', u(1));
      kb.if(K.and(K.ne(kb.aload(cand, 'u32', lidx), u(SENTINEL)), K.lt(nk, u(m))), () => {
        const c = blockBox(lidx);
        kb.assign(s, u(0));
        kb.for(
          'j',
          u(0),
          nk,
          (j) => {
            kb.if(emitSuppresses(kb, keptBox(j), c, o), () => {
              kb.assign(s, u(1));
              kb.brk();
            });
          },
          { t: 'u32' },
        );
        kb.if(K.eq(s, u(0)), () => {
          kb.for(
            'w',
            u(0),
            K.add(K.shr(lidx, u(5)), u(1)),
            (w) => {
              const bits = kb.var('bits', u(0));
              const j0 = kb.let('j0', K.mul(w, u(32)));
              kb.for(
                'b',
                u(0),
                K.min(u(32), K.sub(lidx, j0)),
                (b) => {
                  kb.if(emitSuppresses(kb, blockBox(K.add(j0, b)), c, o), () =>
                    kb.assign(bits, K.bitOr(bits, K.shl(u(1), b))),
                  );
                },
                { t: 'u32' },
              );
              kb.astore(mask, K.add(K.mul(lidx, u(WD)), w), bits);
            },
            { t: 'u32' },
          );
        });
      });
      kb.astore(sup, lidx, s);
      kb.barrier();
      // (b) thread 0 keeps the block's survivors in order, then selects the next block
      kb.if(K.eq(lidx, u(0)), () => {
        const keptBits = kb.array('keptbits', 'u32', WD, 'private');
        kb.for('w', u(0), u(WD), (w) => kb.astore(keptBits, w, u(0)), { t: 'u32' });
        const cnt = kb.var('cnt', nk);
        kb.for(
          't',
          u(0),
          u(B),
          (t) => {
            kb.if(K.and(K.eq(kb.aload(sup, 'u32', t), u(0)), K.lt(cnt, u(m))), () => {
              const hit = kb.var('hit', u(0));
              kb.for(
                'w',
                u(0),
                K.add(K.shr(t, u(5)), u(1)),
                (w) => {
                  const row = kb.aload(mask, 'u32', K.add(K.mul(t, u(WD)), w));
                  kb.assign(hit, K.bitOr(hit, K.bitAnd(row, kb.aload(keptBits, 'u32', w))));
                },
                { t: 'u32' },
              );
              kb.if(K.eq(hit, u(0)), () => {
                const w = kb.let('kw', K.shr(t, u(5)));
                kb.astore(keptBits, w, K.bitOr(kb.aload(keptBits, 'u32', w), K.shl(u(1), K.bitAnd(t, u(31)))));
                const ci = kb.let('ci', kb.aload(cand, 'u32', t));
                if (o.geometry.keptBoxes) {
                  const b = blockBox(t);
                  [b.x1, b.y1, b.x2, b.y2, b.area].forEach((v, j) => kb.astore(kept[j] as string, cnt, v));
                } else kb.astore(kept[0] as string, cnt, ci);
                kb.if(valid, () => kb.store(o.out, K.add(outBase, cnt), K.cast('i32', ci)));
                kb.assign(cnt, K.add(cnt, u(1)));
              });
            });
          },
          { t: 'u32' },
        );
        kb.astore(state, u(0), cnt);
        kb.if(K.lt(cnt, u(m)), selectCandidates);
      });
      kb.barrier();
    },
    { t: 'u32' },
  );
  const count = kb.let('count', kb.aload(state, 'u32', u(0)));
  kb.if(valid, () => {
    kb.for('k', K.add(count, lidx), u(m), (k) => kb.store(o.out, K.add(outBase, k), K.i32(-1)), {
      t: 'u32',
      step: B,
    });
    kb.if(K.eq(lidx, u(0)), () => kb.store(o.out, K.add(outBase, u(m)), K.cast('i32', count)));
  });
  return [runSortKernel(o, sortedKey, sortedPos), kb.finish([B, 1, 1], { linear: problems })];
}
