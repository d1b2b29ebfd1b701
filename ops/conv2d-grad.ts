/**
 * Backward passes of conv2d: the input gradient (conv2d_grad_input) and the weight gradient
 * (conv2d_grad_weight). Both are gather formulations (one thread owns each output element; no
 * atomics), written as implicit GEMMs tiled through workgroup memory with register blocking:
 *
 * - grad_input, per group g:  dx[(n,h,w), c] = Σ_(o,kh,kw) dy[n, o, oh, ow] · W[o, c, kh, kw]
 *   with oh = (h + ph − kh·dh) / sh (the tap is skipped unless that divides exactly and lands
 *   inside dy), i.e. M = N·H·W, N = C/g, K = (O/g)·KH·KW.
 * - grad_weight, per group g: dW[o, (c,kh,kw)] = Σ_(n,oh,ow) dy[n, o, oh, ow] · x[n, c, ih, iw]
 *   with ih = oh·sh − ph + kh·dh, i.e. M = O/g, N = (C/g)·KH·KW, K = N·OH·OW. K is long, so it is
 *   split across workgroups into a scratch buffer and summed by a second kernel.
 *
 * The forward op (ops/conv2d.ts) calls these two from its gradient rule with the conv attributes
 * {stride, padding, dilation, groups} plus inputShape / weightShape.
 */
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { KernelBuilder } from '../compiler/kernel/build.js';
import type { DeviceLimits } from '../compiler/limits.js';
import { type LowerArgs, registerOp } from '../compiler/registry.js';
import { fmtShape, type Shape, type TensorType } from '../compiler/types.js';
import { type Conv2dAttrs, type Conv2dDims, checkConv2dDims, conv2dAttrs, forEachConv2dTap } from './conv-geometry.js';
import { numsAttr } from './util.js';

// ---------------------------------------------------------------------------------------------
// Attributes and shapes

function shape4(attrs: Attrs, key: string): [number, number, number, number] {
  const v = numsAttr(attrs, key);
  if (v.length !== 4 || !v.every((x) => Number.isInteger(x) && x > 0)) {
    fail(`attribute ${key} must be 4 positive integers, got ${JSON.stringify(attrs[key])}`);
  }
  return [v[0] as number, v[1] as number, v[2] as number, v[3] as number];
}

/** The sizes of one convolution, after checking that x, w and dy agree. */
function checkDims(
  x: Shape,
  w: Shape,
  dy: Shape,
  a: Conv2dAttrs,
  names: { x: string; w: string; dy: string },
): Conv2dDims {
  const d = checkConv2dDims(x, w, a, names);
  const want = [d.N, d.O, d.OH, d.OW];
  if (dy.length !== 4 || !dy.every((n, i) => n === want[i])) {
    fail(
      `${names.dy} ${fmtShape(dy)} should be ${fmtShape(want)} for ${names.x} ${fmtShape(x)} and ${names.w} ${fmtShape(w)}`,
    );
  }
  return d;
}

function need4f32(t: TensorType | undefined, what: string): Shape {
  if (!t) fail(`missing input ${what}`);
  if (t.shape.length !== 4) fail(`${what} must be rank 4 (NCHW / OIHW), got ${fmtShape(t.shape)}`);
  if (t.dtype !== 'f32') fail(`${what} must be f32, got ${t.dtype}`);
  return t.shape;
}

function gradInputDims(inputs: readonly TensorType[], attrs: Attrs): Conv2dDims {
  if (inputs.length !== 2) fail(`takes [dy, weight], got ${inputs.length} inputs`);
  const dy = need4f32(inputs[0], 'dy');
  const w = need4f32(inputs[1], 'weight');
  const x = shape4(attrs, 'inputShape');
  return checkDims(x, w, dy, conv2dAttrs(attrs), { x: 'inputShape', w: 'weight', dy: 'dy' });
}

function gradWeightDims(inputs: readonly TensorType[], attrs: Attrs): Conv2dDims {
  if (inputs.length !== 2) fail(`takes [x, dy], got ${inputs.length} inputs`);
  const x = need4f32(inputs[0], 'x');
  const dy = need4f32(inputs[1], 'dy');
  const w = shape4(attrs, 'weightShape');
  return checkDims(x, w, dy, conv2dAttrs(attrs), { x: 'x', w: 'weightShape', dy: 'dy' });
}

// ---------------------------------------------------------------------------------------------
// Tiled implicit GEMM (shared by both ops)

/** One GEMM operand: how a thread loads element (row-or-column idx, k) of A (idx = m) or B (idx = n). */
interface Operand {
  readonly buf: BufRef;
  /**
   * Emitted once per thread before the K loop, for its fixed idx (u32, maybe out of range) and group g.
   * Returns a loader that, for a k (u32, < K), emits code and gives the flat index into buf and an
   * optional validity condition (false: the element is 0).
   */
  setup(kb: KernelBuilder, idx: Expr, g: Expr): (k: Expr) => { index: Expr; valid: Expr | null };
}

export interface TileConfig {
  readonly TM: number;
  readonly TN: number;
  readonly TK: number;
  readonly RM: number;
  readonly RN: number;
}

interface GemmSpec {
  readonly name: string;
  /** Per-group GEMM sizes. */
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly groups: number;
  /** K is cut into `splits` chunks of `chunk` (a multiple of TK); split s covers [s·chunk, min(K, (s+1)·chunk)). */
  readonly splits: number;
  readonly chunk: number;
  readonly a: Operand;
  readonly b: Operand;
  readonly tile: TileConfig;
  /** Emitted once per output row (m < M); returns a per-column store. */
  storeRow(kb: KernelBuilder, m: Expr, g: Expr, s: Expr): (n: Expr, value: Expr) => void;
}

const pow2AtLeast = (x: number, cap: number): number => {
  let p = 1;
  while (p < x && p < cap) p *= 2;
  return p;
};

/**
 * A tile shape for an M×N (per group) GEMM. Measured on lavapipe (llvmpipe runs a workgroup as
 * 8-wide SIMD loops in one CPU thread, and reads workgroup memory one lane at a time): fat threads
 * win, because each k step costs RM + RN scalar workgroup-memory reads per lane against RM·RN vector
 * multiply-adds. 16×16 outputs per thread in a 128×64 tile ran at 10-13 GFLOP/s, against ~5 for 8×8
 * and ~3 for 4×4 blocks. Small dimensions get smaller tiles; the tile shrinks until there are at
 * least `minWorkgroups` workgroups, and always fits the workgroup storage and invocation limits.
 */
export function chooseTile(M: number, N: number, limits: DeviceLimits, groups = 1, minWorkgroups = 1): TileConfig {
  const maxT = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  const dimTile = (D: number): number => Math.max(4, pow2AtLeast(D, 128));
  let TM = dimTile(M);
  let TN = dimTile(N);
  // at most 128×64: the larger dimension keeps 128
  if (TM >= 128 && TN >= 128) {
    if (M >= N) TN = 64;
    else TM = 64;
  }
  const TK = 16;
  const count = (): number => Math.ceil(M / TM) * Math.ceil(N / TN) * groups;
  const fits = (): boolean => (TM + TN) * TK * 4 <= limits.maxComputeWorkgroupStorageSize;
  while ((count() < minWorkgroups || !fits()) && (TM > 16 || TN > 16)) {
    if (TM >= TN) TM /= 2;
    else TN /= 2;
  }
  let RM = Math.min(16, TM);
  let RN = Math.min(16, TN);
  while ((TM / RM) * (TN / RN) < 4 && (RM > 1 || RN > 1)) {
    // tiny tiles: keep a few lanes busy rather than one thread doing everything
    if (RM >= RN) RM /= 2;
    else RN /= 2;
  }
  while ((TM / RM) * (TN / RN) > maxT) {
    if (RN < TN && (RN < RM || RM === TM)) RN *= 2;
    else RM *= 2;
  }
  return { TM, TN, TK, RM, RN };
}

function gemmKernel(spec: GemmSpec): Kernel {
  const { M, N, K: Kdim, groups, splits, chunk, tile } = spec;
  const { TM, TN, TK, RM, RN } = tile;
  const tM = TM / RM;
  const tN = TN / RN;
  const T = tM * tN;
  const okDim = (D: number): boolean => (T % D === 0 ? TK % (T / D) === 0 : D % T === 0);
  if (!okDim(TM) || !okDim(TN) || chunk % TK !== 0) {
    throw new Error(`internal: bad GEMM tile ${JSON.stringify(tile)} for chunk ${chunk}`);
  }
  const tilesM = Math.ceil(M / TM);
  const tilesN = Math.ceil(N / TN);
  const total = tilesM * tilesN * groups * splits;
  const kb = new KernelBuilder(spec.name);
  const As = kb.array('As', 'f32', TK * TM, 'workgroup');
  const Bs = kb.array('Bs', 'f32', TK * TN, 'workgroup');
  const u = K.u32;
  const t = kb.let('t', K.builtin('lidx'));
  const wg = kb.let('wg', K.builtin('wg_linear'));
  const wgOk = kb.let('wgok', K.lt(wg, u(total)));
  const tileN = kb.let('tile_n', K.mod(wg, u(tilesN)));
  const r1 = kb.let('r1', K.div(wg, u(tilesN)));
  const tileM = kb.let('tile_m', K.mod(r1, u(tilesM)));
  const r2 = kb.let('r2', K.div(r1, u(tilesM)));
  const g = kb.let('g', groups === 1 ? u(0) : K.mod(r2, u(groups)));
  const s = kb.let('s', splits === 1 ? u(0) : K.min(K.div(r2, u(groups)), u(splits - 1)));
  const m0 = kb.let('m0', K.mul(tileM, u(TM)));
  const n0 = kb.let('n0', K.mul(tileN, u(TN)));
  const kBegin = kb.let('kbeg', K.mul(s, u(chunk)));
  const kEnd = kb.let('kend', splits === 1 ? u(Kdim) : K.min(K.add(kBegin, u(chunk)), u(Kdim)));

  // loads: each thread owns `per` rows of the A tile (columns of the B tile), every `kStep`-th k of
  // them; the operand decodes a row once per K tile, not per element. Runtime loops keep the shader
  // small (lavapipe's LLVM compile time grows fast with unrolled code).
  interface Owner {
    readonly lane: Expr;
    readonly k0: Expr;
    readonly lanes: number;
    readonly per: number;
    readonly kStep: number;
  }
  const owner = (width: number, tag: string): Owner => {
    const lanes = Math.min(T, width);
    const lane = kb.let(`${tag}lane`, lanes === T ? t : K.mod(t, u(lanes)));
    const k0 = kb.let(`${tag}k0`, lanes === T ? u(0) : K.div(t, u(lanes)));
    return { lane, k0, lanes, per: width / lanes, kStep: T / lanes };
  };
  const aOwn = owner(TM, 'a');
  const bOwn = owner(TN, 'b');

  // compute mapping: rows tm + i·tM, columns tn + j·tN
  const tm = kb.let('tm', K.mod(t, u(tM)));
  const tn = kb.let('tn', K.div(t, u(tM)));
  const acc: Expr[][] = [];
  for (let i = 0; i < RM; i++) {
    const row: Expr[] = [];
    for (let j = 0; j < RN; j++) row.push(kb.var(`acc${i}_${j}`, K.f32(0)));
    acc.push(row);
  }

  const numKT = Math.ceil(Math.min(chunk, Kdim) / TK);
  const fill = (kBase: Expr, arr: string, width: number, o: Owner, base: Expr, size: number, op: Operand): void => {
    const body = (q: Expr | null): void => {
      const slot = q === null ? o.lane : kb.let('slot', K.add(o.lane, K.mul(q, u(o.lanes))));
      const idx = kb.let('idx', K.add(base, slot));
      const ok = kb.let('ok', K.and(wgOk, K.lt(idx, u(size))));
      const load = op.setup(kb, idx, g);
      const one = (j: Expr | null): void => {
        const kk = kb.let('kk', j === null ? o.k0 : K.add(o.k0, K.mul(j, u(o.kStep))));
        const k = kb.let('k', K.add(kBase, kk));
        const v = kb.var('v', K.f32(0));
        kb.if(K.and(ok, K.lt(k, kEnd)), () => {
          const { index, valid } = load(k);
          if (valid) kb.if(valid, () => kb.assign(v, K.load(op.buf, index)));
          else kb.assign(v, K.load(op.buf, index));
        });
        kb.astore(arr, K.add(K.mul(kk, u(width)), slot), v);
      };
      if (TK / o.kStep === 1) one(null);
      else kb.for('j', u(0), u(TK / o.kStep), one, { t: 'u32' });
    };
    if (o.per === 1) body(null);
    else kb.for('q', u(0), u(o.per), body, { t: 'u32' });
  };
  kb.for(
    'kt',
    u(0),
    u(numKT),
    (kt) => {
      const kBase = kb.let('kbase', K.add(kBegin, K.mul(kt, u(TK))));
      fill(kBase, As, TM, aOwn, m0, M, spec.a);
      fill(kBase, Bs, TN, bOwn, n0, N, spec.b);
      kb.barrier();
      // one k step: RM + RN workgroup reads, RM·RN multiply-adds (a runtime loop: unrolling it
      // measured no faster on lavapipe and compiles slower)
      kb.for(
        'kk',
        u(0),
        u(TK),
        (kk) => {
          const aBase = kb.let('ab', K.add(K.mul(kk, u(TM)), tm));
          const bBase = kb.let('bb', K.add(K.mul(kk, u(TN)), tn));
          const av: Expr[] = [];
          const bv: Expr[] = [];
          for (let i = 0; i < RM; i++) av.push(kb.let('a', kb.aload(As, 'f32', K.add(aBase, u(i * tM)))));
          for (let j = 0; j < RN; j++) bv.push(kb.let('b', kb.aload(Bs, 'f32', K.add(bBase, u(j * tN)))));
          for (let i = 0; i < RM; i++) {
            for (let j = 0; j < RN; j++) {
              const a = acc[i]?.[j] as Expr;
              kb.assign(a, K.add(a, K.mul(av[i] as Expr, bv[j] as Expr)));
            }
          }
        },
        { t: 'u32' },
      );
      kb.barrier();
    },
    { t: 'u32' },
  );

  for (let i = 0; i < RM; i++) {
    const m = kb.let('m', K.add(m0, K.add(tm, u(i * tM))));
    kb.if(K.and(wgOk, K.lt(m, u(M))), () => {
      const st = spec.storeRow(kb, m, g, s);
      for (let j = 0; j < RN; j++) {
        const n = kb.let('n', K.add(n0, K.add(tn, u(j * tN))));
        kb.if(K.lt(n, u(N)), () => st(n, acc[i]?.[j] as Expr));
      }
    });
  }
  return kb.finish([T, 1, 1], { linear: total });
}

/** out[i] = Σ_s scratch[s·count + i], one thread per element. */
function splitSumKernel(name: string, scratch: BufRef, out: BufRef, count: number, splits: number): Kernel {
  const kb = new KernelBuilder(name);
  const i = kb.let('i', K.add(K.mul(K.builtin('wg_linear'), K.u32(256)), K.builtin('lidx')));
  kb.if(K.lt(i, K.u32(count)), () => {
    const acc = kb.var('acc', K.f32(0));
    kb.for(
      's',
      K.u32(0),
      K.u32(splits),
      (s) => kb.assign(acc, K.add(acc, K.load(scratch, K.add(K.mul(s, K.u32(count)), i)))),
      { t: 'u32' },
    );
    kb.store(out, i, acc);
  });
  return kb.finish([256, 1, 1], { linear: Math.ceil(count / 256) });
}

// ---------------------------------------------------------------------------------------------
// Lowerings

const i32 = (e: Expr): Expr => K.cast('i32', e);

export function lowerGradInput(args: LowerArgs, tileOverride?: TileConfig): Kernel[] {
  const d = gradInputDims(
    args.inputs.map((b) => b.type),
    args.attrs,
  );
  const [dyB, wB] = args.inputs.map((b) => b.buf) as [BufRef, BufRef];
  const out = args.output.buf;
  const { N, C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  const KK = KH * KW;
  const HW = H * W;
  const OHW = OH * OW;
  const u = K.u32;
  const M = N * HW;
  const Kdim = Og * KK;
  const tile = tileOverride ?? chooseTile(M, Cg, args.limits, d.groups, 8);

  // A[(n,h,w), (o,kh,kw)] = dy[n, g·Og + o, oh, ow] where the tap lands
  const a: Operand = {
    buf: dyB,
    setup: (kb, m, g) => {
      const nImg = kb.let('n_img', K.div(m, u(HW)));
      const hw = kb.let('hw', K.mod(m, u(HW)));
      const hp = kb.let('hp', K.add(i32(K.div(hw, u(W))), K.i32(d.ph)));
      const wp = kb.let('wp', K.add(i32(K.mod(hw, u(W))), K.i32(d.pw)));
      const rowBase = kb.let('dybase', K.add(K.mul(nImg, u(O * OHW)), K.mul(g, u(Og * OHW))));
      return (k) => {
        const o = kb.let('o', K.div(k, u(KK)));
        const kk = kb.let('kk', K.mod(k, u(KK)));
        const th = kb.let('th', K.sub(hp, K.mul(i32(K.div(kk, u(KW))), K.i32(d.dh))));
        const tw = kb.let('tw', K.sub(wp, K.mul(i32(K.mod(kk, u(KW))), K.i32(d.dw))));
        // th ≥ 0 first, so the u32 casts below only see non-negative values
        let valid = K.and(K.ge(th, K.i32(0)), K.ge(tw, K.i32(0)));
        const thu = K.cast('u32', K.max(th, K.i32(0)));
        const twu = K.cast('u32', K.max(tw, K.i32(0)));
        const oh = d.sh === 1 ? thu : K.div(thu, u(d.sh));
        const ow = d.sw === 1 ? twu : K.div(twu, u(d.sw));
        if (d.sh !== 1) valid = K.and(valid, K.eq(K.mod(thu, u(d.sh)), u(0)));
        if (d.sw !== 1) valid = K.and(valid, K.eq(K.mod(twu, u(d.sw)), u(0)));
        const ohv = kb.let('oh', oh);
        const owv = kb.let('ow', ow);
        valid = K.and(valid, K.and(K.lt(ohv, u(OH)), K.lt(owv, u(OW))));
        const index = K.add(K.add(rowBase, K.mul(o, u(OHW))), K.add(K.mul(ohv, u(OW)), owv));
        return { index, valid };
      };
    },
  };
  // B[(o,kh,kw), c] = w[g·Og + o, c, kh, kw]
  const b: Operand = {
    buf: wB,
    setup: (kb, c, g) => {
      const colBase = kb.let('wbase', K.add(K.mul(g, u(Og * Cg * KK)), K.mul(c, u(KK))));
      return (k) => {
        const o = K.div(k, u(KK));
        const kk = K.mod(k, u(KK));
        return { index: K.add(colBase, K.add(K.mul(o, u(Cg * KK)), kk)), valid: null };
      };
    },
  };
  const kernel = gemmKernel({
    name: `${args.name}_gemm`,
    M,
    N: Cg,
    K: Kdim,
    groups: d.groups,
    splits: 1,
    chunk: Math.ceil(Kdim / tile.TK) * tile.TK,
    a,
    b,
    tile,
    storeRow: (kb, m, g) => {
      const nImg = kb.let('sn', K.div(m, u(HW)));
      const hw = kb.let('shw', K.mod(m, u(HW)));
      const base = kb.let('sbase', K.add(K.add(K.mul(nImg, u(C * HW)), K.mul(g, u(Cg * HW))), hw));
      return (c, value) => {
        const flat = kb.let('flat', K.add(base, K.mul(c, u(HW))));
        const v = args.hasEpilogue
          ? args.epilogue(value, [nImg, K.add(K.mul(g, u(Cg)), c), K.div(hw, u(W)), K.mod(hw, u(W))], flat)
          : value;
        kb.store(out, flat, v);
      };
    },
  });
  return [kernel];
}

/** Number of K splits for grad_weight: enough workgroups to keep the device busy, chunks of ≥ 1024. */
function chooseSplits(
  tiles: number,
  Kdim: number,
  outCount: number,
  limits: DeviceLimits,
  TK: number,
): { splits: number; chunk: number } {
  // Measured on lavapipe: a few long chunks beat many short ones (24 splits ran 30% slower than 4-6).
  const target = 32;
  const minChunk = 1024;
  let splits = Math.max(1, Math.min(Math.ceil(target / tiles), Math.floor(Kdim / minChunk)));
  const maxByMem = Math.floor(limits.maxStorageBufferBindingSize / (4 * outCount));
  splits = Math.max(1, Math.min(splits, maxByMem, 1024));
  let chunk = Math.ceil(Math.ceil(Kdim / splits) / TK) * TK;
  splits = Math.ceil(Kdim / chunk);
  if (splits === 1) chunk = Math.ceil(Kdim / TK) * TK;
  return { splits, chunk };
}

export function lowerGradWeight(args: LowerArgs, tileOverride?: TileConfig, splitsOverride?: number): Kernel[] {
  const d = gradWeightDims(
    args.inputs.map((b) => b.type),
    args.attrs,
  );
  const [xB, dyB] = args.inputs.map((b) => b.buf) as [BufRef, BufRef];
  const out = args.output.buf;
  const { N, C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  const KK = KH * KW;
  const OHW = OH * OW;
  const u = K.u32;
  const Mdim = Og;
  const Ndim = Cg * KK;
  const Kdim = N * OHW;
  const tile = tileOverride ?? chooseTile(Mdim, Ndim, args.limits, d.groups, 1);
  const tiles = Math.ceil(Mdim / tile.TM) * Math.ceil(Ndim / tile.TN) * d.groups;
  const outCount = O * Cg * KK;
  let { splits, chunk } = chooseSplits(tiles, Kdim, outCount, args.limits, tile.TK);
  if (splitsOverride !== undefined) {
    chunk = Math.ceil(Math.ceil(Kdim / splitsOverride) / tile.TK) * tile.TK;
    splits = Math.ceil(Kdim / chunk);
  }

  // A[o, (n,oh,ow)] = dy[n, g·Og + o, oh, ow]
  const a: Operand = {
    buf: dyB,
    setup: (kb, o, g) => {
      const rowBase = kb.let('dybase', K.mul(K.add(K.mul(g, u(Og)), o), u(OHW)));
      return (k) => {
        const nImg = K.div(k, u(OHW));
        const ohw = K.mod(k, u(OHW));
        return { index: K.add(rowBase, K.add(K.mul(nImg, u(O * OHW)), ohw)), valid: null };
      };
    },
  };
  // B[(n,oh,ow), (c,kh,kw)] = x[n, g·Cg + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]
  const b: Operand = {
    buf: xB,
    setup: (kb, col, g) => {
      const c = kb.let('c', K.div(col, u(KK)));
      const kk = kb.let('kk', K.mod(col, u(KK)));
      const offH = kb.let('offh', K.sub(K.mul(i32(K.div(kk, u(KW))), K.i32(d.dh)), K.i32(d.ph)));
      const offW = kb.let('offw', K.sub(K.mul(i32(K.mod(kk, u(KW))), K.i32(d.dw)), K.i32(d.pw)));
      const chanBase = kb.let('xbase', K.mul(K.add(K.mul(g, u(Cg)), c), u(H * W)));
      return (k) => {
        const nImg = kb.let('n_img', K.div(k, u(OHW)));
        const ohw = kb.let('ohw', K.mod(k, u(OHW)));
        const ih = kb.let('ih', K.add(i32(K.mul(K.div(ohw, u(OW)), u(d.sh))), offH));
        const iw = kb.let('iw', K.add(i32(K.mul(K.mod(ohw, u(OW)), u(d.sw))), offW));
        const valid = K.and(
          K.and(K.ge(ih, K.i32(0)), K.lt(ih, K.i32(H))),
          K.and(K.ge(iw, K.i32(0)), K.lt(iw, K.i32(W))),
        );
        const index = K.add(K.add(K.mul(nImg, u(C * H * W)), chanBase), K.cast('u32', K.add(K.mul(ih, K.i32(W)), iw)));
        return { index, valid };
      };
    },
  };
  const scratch = splits > 1 ? args.scratch('f32', splits * outCount) : null;
  const kernel = gemmKernel({
    name: `${args.name}_gemm`,
    M: Mdim,
    N: Ndim,
    K: Kdim,
    groups: d.groups,
    splits,
    chunk,
    a,
    b,
    tile,
    storeRow: (kb, o, g, s) => {
      const base = kb.let('sbase', K.mul(K.add(K.mul(g, u(Og)), o), u(Ndim)));
      const sBase = scratch ? kb.let('ssplit', K.add(base, K.mul(s, u(outCount)))) : base;
      return (col, value) => {
        if (scratch) {
          kb.store(scratch, K.add(sBase, col), value);
        } else {
          const flat = kb.let('flat', K.add(base, col));
          kb.store(out, flat, args.hasEpilogue ? args.epilogue(value, weightCoords(flat, Cg, KH, KW), flat) : value);
        }
      };
    },
  });
  if (!scratch) return [kernel];
  return [kernel, splitSumKernel(`${args.name}_sum`, scratch, out, outCount, splits)];
}

function weightCoords(flat: Expr, Cg: number, KH: number, KW: number): Expr[] {
  const u = K.u32;
  return [
    K.div(flat, u(Cg * KH * KW)),
    K.mod(K.div(flat, u(KH * KW)), u(Cg)),
    K.mod(K.div(flat, u(KW)), u(KH)),
    K.mod(flat, u(KW)),
  ];
}

// ---------------------------------------------------------------------------------------------
// Registration

registerOp({
  name: 'conv2d_grad_input',
  kind: 'opaque',
  infer: (inputs, attrs) => {
    const d = gradInputDims(inputs, attrs);
    return { shape: [d.N, d.C, d.H, d.W], dtype: 'f32' };
  },
  cpu: ({ inputs, attrs }) => {
    const d = gradInputDims(
      inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
      attrs,
    );
    const dy = (inputs[0] as { data: Float64Array }).data;
    const w = (inputs[1] as { data: Float64Array }).data;
    const dx = new Float64Array(d.N * d.C * d.H * d.W);
    forEachConv2dTap(d, (xi, wi, yi) => {
      dx[xi] = (dx[xi] as number) + (dy[yi] as number) * (w[wi] as number);
    });
    return dx;
  },
  lower: (args) => lowerGradInput(args),
});

registerOp({
  name: 'conv2d_grad_weight',
  kind: 'opaque',
  infer: (inputs, attrs) => {
    const d = gradWeightDims(inputs, attrs);
    return { shape: [d.O, d.Cg, d.KH, d.KW], dtype: 'f32' };
  },
  cpu: ({ inputs, attrs }) => {
    const d = gradWeightDims(
      inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
      attrs,
    );
    const x = (inputs[0] as { data: Float64Array }).data;
    const dy = (inputs[1] as { data: Float64Array }).data;
    const dw = new Float64Array(d.O * d.Cg * d.KH * d.KW);
    forEachConv2dTap(d, (xi, wi, yi) => {
      dw[wi] = (dw[wi] as number) + (dy[yi] as number) * (x[xi] as number);
    });
    return dw;
  },
  lower: (args) => lowerGradWeight(args),
});
