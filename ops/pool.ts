/**
 * 2-D max pooling over NCHW tensors, with PyTorch's semantics: floor or ceil output sizes (in ceil
 * mode the last window must start inside the input or the left padding), padding that counts as −∞,
 * NaN propagating, and ties going to the first maximum in row-major window order.
 *
 * The backward op max_pool2d_grad is a gather: each dx element visits the windows that contain it,
 * recomputes each window's argmax and adds that window's dy when the argmax is this element. When
 * windows cannot overlap (stride ≥ kernel, VGG's case) one thread per window cell writes the cell's
 * dx elements instead (still one writer per element; 4× fewer reads for 2×2 windows).
 */
import { type Dim, dimAdd, dimCeilDiv, dimFloorDiv, dimMin, dimMin2, dimMul, dimProd } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { KernelBuilder } from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtShape, sameDims, type TensorType, typeOf } from '../compiler/types.js';
import { sizeI32 } from './kit/indexing.js';
import { linearGroups, threadIndex } from './kit/launch.js';
import { boolAttr, numsAttr } from './util.js';

export interface PoolParams {
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  readonly ceilMode: boolean;
}

function pairAttr(attrs: Attrs, key: string, min: number): [number, number] {
  const v = numsAttr(attrs, key);
  if (v.length !== 2 || !v.every((x) => Number.isInteger(x) && x >= min)) {
    fail(`attribute ${key} must be two integers ≥ ${min}, got ${fmtValue(attrs[key])}`);
  }
  return [v[0] as number, v[1] as number];
}

export function poolParams(attrs: Attrs): PoolParams {
  const [kh, kw] = pairAttr(attrs, 'kernel', 1);
  const [sh, sw] = pairAttr(attrs, 'stride', 1);
  const [ph, pw] = pairAttr(attrs, 'padding', 0);
  const ceilMode = boolAttr(attrs, 'ceilMode');
  if (2 * ph > kh || 2 * pw > kw) fail(`padding [${ph},${pw}] must be at most half the kernel [${kh},${kw}]`);
  return { kh, kw, sh, sw, ph, pw, ceilMode };
}

/** PyTorch's pooling_output_shape (dilation 1). */
export function poolOutSize(inSize: number, k: number, s: number, p: number, ceilMode: boolean): number {
  let out = Math.floor((inSize + 2 * p - (k - 1) - 1 + (ceilMode ? s - 1 : 0)) / s) + 1;
  if (ceilMode && (out - 1) * s >= inSize + p) out--;
  return out;
}

/**
 * {@link poolOutSize} for a size that may be known only at run time. PyTorch's ceil-mode correction
 * (drop the last window when it starts past the input and its left padding, `(out − 1)·s ≥ in + p`)
 * is the same as capping `out` at ⌊(in + p − 1)/s⌋ + 1, the count of windows that start inside; it
 * lowers `out` by at most one because padding is at most half the kernel (test/pool.test.ts checks
 * the two forms agree over a range of sizes).
 */
export function poolOutDim(inSize: Dim, k: number, s: number, p: number, ceilMode: boolean): Dim {
  if (typeof inSize === 'number') return poolOutSize(inSize, k, s, p, ceilMode);
  const out = dimAdd(dimFloorDiv(dimAdd(inSize, 2 * p - (k - 1) - 1 + (ceilMode ? s - 1 : 0)), s), 1);
  return ceilMode ? dimMin2(out, dimAdd(dimFloorDiv(dimAdd(inSize, p - 1), s), 1)) : out;
}

/** Sizes of one pooling: static numbers (the CPU reference) or run-time sizes (the kernels). */
interface PoolDims<D extends Dim = Dim> {
  readonly N: D;
  readonly C: D;
  readonly H: D;
  readonly W: D;
  readonly OH: D;
  readonly OW: D;
  readonly p: PoolParams;
}

function poolDims(x: TensorType | undefined, attrs: Attrs): PoolDims {
  if (!x) fail('missing input x');
  const dims = dimsOf(x);
  if (dims.length !== 4) fail(`x must be rank 4 (NCHW), got ${fmtShape(dims)}`);
  if (x.dtype !== 'f32') fail(`x must be f32, got ${x.dtype}`);
  const p = poolParams(attrs);
  const [N, C, H, W] = dims as [Dim, Dim, Dim, Dim];
  const OH = poolOutDim(H, p.kh, p.sh, p.ph, p.ceilMode);
  const OW = poolOutDim(W, p.kw, p.sw, p.pw, p.ceilMode);
  if (dimMin(OH) < 1 || dimMin(OW) < 1)
    fail(`kernel [${p.kh},${p.kw}] does not fit x ${fmtShape(dims)} padded by [${p.ph},${p.pw}]`);
  return { N, C, H, W, OH, OW, p };
}

/** The sizes of a pooling over an input of a known shape (the CPU reference's). */
function staticPoolDims(shape: readonly number[], attrs: Attrs): PoolDims<number> {
  return poolDims({ shape, dtype: 'f32' }, attrs) as PoolDims<number>;
}

// ---------------------------------------------------------------------------------------------
// Float64 reference

/** Index within the H×W plane of the window's (first) maximum; −1 never happens for valid params. */
function windowArgmax(x: Float64Array, base: number, d: PoolDims<number>, oh: number, ow: number): number {
  const { H, W, p } = d;
  let best = Number.NEGATIVE_INFINITY;
  let arg = -1;
  for (let i = 0; i < p.kh; i++) {
    const ih = oh * p.sh - p.ph + i;
    if (ih < 0 || ih >= H) continue;
    for (let j = 0; j < p.kw; j++) {
      const iw = ow * p.sw - p.pw + j;
      if (iw < 0 || iw >= W) continue;
      const v = x[base + ih * W + iw] as number;
      if (arg < 0 || v > best || Number.isNaN(v)) {
        best = v;
        arg = ih * W + iw;
      }
    }
  }
  return arg;
}

function cpuPool(x: Float64Array, d: PoolDims<number>): Float64Array {
  const { N, C, H, W, OH, OW } = d;
  const out = new Float64Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++) {
    const base = nc * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const a = windowArgmax(x, base, d, oh, ow);
        out[(nc * OH + oh) * OW + ow] = a < 0 ? Number.NEGATIVE_INFINITY : (x[base + a] as number);
      }
    }
  }
  return out;
}

function cpuPoolGrad(x: Float64Array, dy: Float64Array, d: PoolDims<number>): Float64Array {
  const { N, C, H, W, OH, OW } = d;
  const dx = new Float64Array(N * C * H * W);
  for (let nc = 0; nc < N * C; nc++) {
    const base = nc * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const a = windowArgmax(x, base, d, oh, ow);
        if (a >= 0) dx[base + a] = (dx[base + a] as number) + (dy[(nc * OH + oh) * OW + ow] as number);
      }
    }
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Kernels

const i = K.i32;

/**
 * Emits the argmax of window (oh, ow) (i32) of the plane at `base`; returns [best value, plane
 * index]. Loops have constant trip counts (positions outside the input are skipped): llvmpipe runs
 * 8 invocations in SIMD, and uniform loops beat per-lane clamped bounds.
 */
function emitArgmax(kb: KernelBuilder, x: BufRef, base: Expr, oh: Expr, ow: Expr, d: PoolDims): [Expr, Expr] {
  const { p } = d;
  const H = sizeI32(d.H);
  const W = sizeI32(d.W);
  const best = kb.var('best', K.f32(Number.NEGATIVE_INFINITY));
  const arg = kb.var('arg', i(-1));
  const h0 = kb.let('h0', K.sub(K.mul(oh, i(p.sh)), i(p.ph)));
  const w0 = kb.let('w0', K.sub(K.mul(ow, i(p.sw)), i(p.pw)));
  kb.for('a', i(0), i(p.kh), (a) => {
    const ih = kb.let('ih', K.add(h0, a));
    kb.for('b', i(0), i(p.kw), (b) => {
      const iw = kb.let('iw', K.add(w0, b));
      const inside = K.and(K.and(K.ge(ih, i(0)), K.lt(ih, H)), K.and(K.ge(iw, i(0)), K.lt(iw, W)));
      kb.if(inside, () => {
        const pos = kb.let('pos', K.add(K.mul(ih, W), iw));
        const v = kb.let('v', K.load(x, K.add(base, K.cast('u32', pos))));
        kb.if(K.or(K.or(K.lt(arg, i(0)), K.gt(v, best)), K.call('isnan', v)), () => {
          kb.assign(best, v);
          kb.assign(arg, pos);
        });
      });
    });
  });
  return [best, arg];
}

function lowerPool(args: LowerArgs): Kernel[] {
  const d = poolDims(args.inputs[0]?.type, args.attrs);
  const x = (args.inputs[0] as { buf: BufRef }).buf;
  const out = args.output.buf;
  const { N, C, H, W, OH, OW } = d;
  const count = dimProd([N, C, OH, OW]);
  const kb = new KernelBuilder(`${args.name}_maxpool`);
  const idx = threadIndex(kb);
  kb.if(K.lt(idx, K.size(count)), () => {
    const nc = kb.let('nc', K.div(idx, K.size(dimMul(OH, OW))));
    const r = kb.let('r', K.mod(idx, K.size(dimMul(OH, OW))));
    const oh = kb.let('oh', K.div(r, K.size(OW)));
    const ow = kb.let('ow', K.mod(r, K.size(OW)));
    const base = kb.let('base', K.mul(nc, K.size(dimMul(H, W))));
    const [best] = emitArgmax(kb, x, base, K.cast('i32', oh), K.cast('i32', ow), d);
    const v = args.hasEpilogue ? args.epilogue(best, [K.div(nc, K.size(C)), K.mod(nc, K.size(C)), oh, ow], idx) : best;
    kb.store(out, idx, v);
  });
  return [kb.finish([256, 1, 1], { linear: linearGroups(count) })];
}

function lowerPoolGrad(args: LowerArgs): Kernel[] {
  const d = poolDims(args.inputs[0]?.type, args.attrs);
  const x = (args.inputs[0] as { buf: BufRef }).buf;
  const dy = (args.inputs[1] as { buf: BufRef }).buf;
  const out = args.output.buf;
  const { N, C, H, W, OH, OW, p } = d;
  if (p.sh >= p.kh && p.sw >= p.kw && !args.hasEpilogue) return [lowerPoolGradCells(d, x, dy, out, args.name)];
  const count = dimProd([N, C, H, W]);
  const kb = new KernelBuilder(`${args.name}_maxpool_grad`);
  const idx = threadIndex(kb);
  kb.if(K.lt(idx, K.size(count)), () => {
    const nc = kb.let('nc', K.div(idx, K.size(dimMul(H, W))));
    const pos = kb.let('pos', K.cast('i32', K.mod(idx, K.size(dimMul(H, W)))));
    const h = kb.let('h', K.div(pos, sizeI32(W)));
    const w = kb.let('w', K.mod(pos, sizeI32(W)));
    const base = kb.let('base', K.mul(nc, K.size(dimMul(H, W))));
    const dyBase = kb.let('dybase', K.mul(nc, K.size(dimMul(OH, OW))));
    // The windows containing h are oh = top − a for a < ⌈kh/sh⌉ with top = ⌊(h + ph)/sh⌋, those
    // with 0 ≤ oh < OH whose extent oh·sh − ph + kh reaches past h (same along w).
    const ohTop = kb.let('ohtop', K.div(K.add(h, i(p.ph)), i(p.sh)));
    const owTop = kb.let('owtop', K.div(K.add(w, i(p.pw)), i(p.sw)));
    const acc = kb.var('acc', K.f32(0));
    kb.for('a', i(0), i(Math.ceil(p.kh / p.sh)), (a) => {
      const oh = kb.let('oh', K.sub(ohTop, a));
      const hitH = K.and(
        K.and(K.ge(oh, i(0)), K.lt(oh, sizeI32(OH))),
        K.gt(K.mul(oh, i(p.sh)), K.sub(h, i(p.kh - p.ph))),
      );
      kb.if(hitH, () => {
        kb.for('b', i(0), i(Math.ceil(p.kw / p.sw)), (b) => {
          const ow = kb.let('ow', K.sub(owTop, b));
          const hitW = K.and(
            K.and(K.ge(ow, i(0)), K.lt(ow, sizeI32(OW))),
            K.gt(K.mul(ow, i(p.sw)), K.sub(w, i(p.kw - p.pw))),
          );
          kb.if(hitW, () => {
            const [, arg] = emitArgmax(kb, x, base, oh, ow, d);
            kb.if(K.eq(arg, pos), () => {
              const di = K.add(dyBase, K.cast('u32', K.add(K.mul(oh, sizeI32(OW)), ow)));
              kb.assign(acc, K.add(acc, K.load(dy, di)));
            });
          });
        });
      });
    });
    kb.store(
      out,
      idx,
      args.hasEpilogue
        ? args.epilogue(acc, [K.div(nc, K.size(C)), K.mod(nc, K.size(C)), K.cast('u32', h), K.cast('u32', w)], idx)
        : acc,
    );
  });
  return [kb.finish([256, 1, 1], { linear: linearGroups(count) })];
}

/**
 * Non-overlapping windows (stride ≥ kernel, e.g. VGG's 2×2 stride 2): each window lies inside its
 * own sh×sw cell of the input, and the cells tile the input. One thread per cell finds the window's
 * argmax once and writes every dx element of the cell (dy at the argmax, 0 elsewhere): still one
 * writer per element, with a quarter of the reads of the per-element form for 2×2 windows.
 */
function lowerPoolGradCells(d: PoolDims, x: BufRef, dy: BufRef, out: BufRef, name: string): Kernel {
  const { N, C, H, W, OH, OW, p } = d;
  // cells along h: rows [c·sh − ph, (c+1)·sh − ph) for c < CH cover [0, H); cells c ≥ OH hold no window
  const CH = dimCeilDiv(dimAdd(H, p.ph), p.sh);
  const CW = dimCeilDiv(dimAdd(W, p.pw), p.sw);
  const count = dimProd([N, C, CH, CW]);
  const kb = new KernelBuilder(`${name}_maxpool_grad`);
  const idx = threadIndex(kb);
  kb.if(K.lt(idx, K.size(count)), () => {
    const nc = kb.let('nc', K.div(idx, K.size(dimMul(CH, CW))));
    const r = kb.let('r', K.cast('i32', K.mod(idx, K.size(dimMul(CH, CW)))));
    const ch = kb.let('ch', K.div(r, sizeI32(CW)));
    const cw = kb.let('cw', K.mod(r, sizeI32(CW)));
    const base = kb.let('base', K.mul(nc, K.size(dimMul(H, W))));
    const hasWin = kb.let('haswin', K.and(K.lt(ch, sizeI32(OH)), K.lt(cw, sizeI32(OW))));
    const arg = kb.var('warg', i(-1));
    const g = kb.var('g', K.f32(0));
    kb.if(hasWin, () => {
      const [, a] = emitArgmax(kb, x, base, ch, cw, d);
      kb.assign(arg, a);
      kb.assign(
        g,
        K.load(dy, K.add(K.mul(nc, K.size(dimMul(OH, OW))), K.cast('u32', K.add(K.mul(ch, sizeI32(OW)), cw)))),
      );
    });
    const h0 = kb.let('h0', K.sub(K.mul(ch, i(p.sh)), i(p.ph)));
    const w0 = kb.let('w0', K.sub(K.mul(cw, i(p.sw)), i(p.pw)));
    kb.for('a', i(0), i(p.sh), (a) => {
      const ih = kb.let('ih', K.add(h0, a));
      kb.for('b', i(0), i(p.sw), (b) => {
        const iw = kb.let('iw', K.add(w0, b));
        const inside = K.and(K.and(K.ge(ih, i(0)), K.lt(ih, sizeI32(H))), K.and(K.ge(iw, i(0)), K.lt(iw, sizeI32(W))));
        kb.if(inside, () => {
          const pos = kb.let('pos', K.add(K.mul(ih, sizeI32(W)), iw));
          kb.store(out, K.add(base, K.cast('u32', pos)), K.select(K.eq(pos, arg), g, K.f32(0)));
        });
      });
    });
  });
  return kb.finish([256, 1, 1], { linear: linearGroups(count) });
}

// ---------------------------------------------------------------------------------------------
// Registration

registerOp({
  name: 'max_pool2d',
  kind: 'opaque',
  dynamic: true,
  infer: ([x], attrs) => {
    const d = poolDims(x, attrs);
    return typeOf([d.N, d.C, d.OH, d.OW], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const x = inputs[0] as RefTensor;
    return cpuPool(x.data, staticPoolDims(x.shape, attrs));
  },
  grad: ({ inputs, attrs, dy }) => [dy.builder.apply('max_pool2d_grad', [inputs[0] as Tensor, dy], attrs)],
  lower: lowerPool,
});

registerOp({
  name: 'max_pool2d_grad',
  kind: 'opaque',
  dynamic: true,
  infer: ([x, dy], attrs) => {
    const d = poolDims(x, attrs);
    if (!dy) fail('takes [x, dy], got 1 input');
    const want = [d.N, d.C, d.OH, d.OW];
    if (dy.dtype !== 'f32' || !sameDims(dimsOf(dy), want)) {
      fail(
        `dy ${dy.dtype}${fmtShape(dimsOf(dy))} should be f32${fmtShape(want)} (the pooled shape of x ${fmtShape([d.N, d.C, d.H, d.W])})`,
      );
    }
    return typeOf([d.N, d.C, d.H, d.W], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const x = inputs[0] as RefTensor;
    const dy = inputs[1] as RefTensor;
    return cpuPoolGrad(x.data, dy.data, staticPoolDims(x.shape, attrs));
  },
  lower: lowerPoolGrad,
});
