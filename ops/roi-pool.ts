/**
 * RoIPool (Fast R-CNN's max pooling over regions of interest), with the semantics of caffe-fast-rcnn's
 * roi_pooling_layer ≡ torchvision's roi_pool kernels (spec §4):
 *
 *   rs_w = round(x1·s), rs_h = round(y1·s), re_w = round(x2·s), re_h = round(y2·s)   (C round: half away from 0)
 *   roi_w = max(re_w − rs_w + 1, 1), roi_h likewise;  bin_h = roi_h / PH (float)
 *   hstart = floor(ph·bin_h) + rs_h, hend = ceil((ph+1)·bin_h) + rs_h, clamped to [0, H] (w likewise)
 *   empty bin → 0; else the max over the bin, starting from −FLT_MAX with a strict '>' (first max in a
 *   row-major scan; NaN never wins).
 *
 * Inputs: features f32 [N,C,H,W], rois f32 [K,5] rows (batch index, x1, y1, x2, y2); the batch index is a
 * float truncated toward zero as in torchvision. Output f32 [K,C,PH,PW].
 * Attributes: pooledH, pooledW, spatialScale, roundingMode ('c' | 'half_even').
 *
 * Exactness: everything discrete is computed exactly as torchvision's float32 kernel does. x·s is one f32
 * product (correctly rounded on the GPU as on the CPU); bin_h = roi_h / PH is the correctly rounded f32
 * quotient — WGSL's division may be off by 2.5 ulp, so the kernel computes it by integer long division —
 * and ph·bin_h one more f32 product. This matters: with 7 bins and roi_h = 57, 7·fl(57/7) = 57.0000038, so
 * the last bin ends at 58 (one pixel past the box), in torchvision as here. The CPU reference rounds the
 * RoI coordinates to f32 and uses Math.fround for the same steps, so the two agree to the pixel.
 *
 * Rounding modes. py-faster-rcnn (caffe) and torchvision agree: both use C's round (half away from zero),
 * and both use the inclusive +1 box width, so 'c' (the default) is right for either pipeline. 'half_even'
 * (numpy / torch.round / WGSL round) is offered to reproduce ports that round with those, and because it
 * is the rounding a naive WGSL port would get; it only differs for coordinates·scale exactly at .5.
 *
 * Deviations, all for inputs torchvision leaves undefined: a batch index outside [0, N) gives an all-zero
 * output row and no gradient (torchvision reads out of bounds); rounded coordinates are clamped to
 * ±2^20 feature-map pixels so that the integer bin arithmetic cannot overflow.
 *
 * Backward: the gradient w.r.t. features is the op roi_pool_grad, a GATHER (caffe's GPU formulation):
 * each input element (n,c,h,w) visits the RoIs of image n whose bins can contain it and adds the dy of
 * every candidate bin whose argmax is this element (the argmaxes are computed once per bin by a first
 * pass into a scratch buffer the size of dy). One thread handles a pixel for a block of channels,
 * sharing the RoI walk between them. No atomics; deterministic. RoIPool is piecewise constant in the box
 * coordinates, so no gradient flows to rois. Both ops first compute each RoI's integer geometry once (a
 * small per-RoI kernel into a scratch buffer).
 */
import { type Dim, dimMax, dimMul, dimProd, isSym } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { KernelBuilder } from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtShape, sameDims, type TensorType, typeOf } from '../compiler/types.js';
import { divD, modD, sizeF32, sizeI32 } from './kit/indexing.js';
import { linearGroups, threadIndex, WG } from './kit/launch.js';
import { cRound, roundHalfEven } from './kit/rounding.js';

// ---------------------------------------------------------------------------------------------
// Shared with roi-align.ts: input checks, attributes, kernel helpers

export const FLT_MAX = 3.4028234663852886e38;
/** Largest pooled size accepted (keeps the integer bin arithmetic far from overflow). */
export const MAX_POOLED = 256;
/** Rounded RoIPool coordinates are clamped to ±COORD_LIMIT feature-map pixels. */
export const COORD_LIMIT = 2 ** 20;

/** Sizes of a RoI op: the image count, feature map size and RoI count may be run-time sizes. */
export interface RoiDims {
  readonly N: Dim;
  readonly C: number;
  readonly H: Dim;
  readonly W: Dim;
  readonly K: Dim;
}

/** Checks features f32 [N,C,H,W] and rois f32 [K,5]. */
export function roiDims(features: TensorType | undefined, rois: TensorType | undefined): RoiDims {
  if (!features || !rois) fail('takes [features, rois]');
  if (features.shape.length !== 4) fail(`features must be rank 4 (NCHW), got ${fmtShape(features.shape)}`);
  if (features.dtype !== 'f32') fail(`features must be f32, got ${features.dtype}`);
  if (rois.dtype !== 'f32') fail(`rois must be f32 (batch index as a float, as in torchvision), got ${rois.dtype}`);
  const fd = dimsOf(features);
  const rd = dimsOf(rois);
  if (rd.length !== 2 || rd[1] !== 5) {
    fail(`rois must be [K,5] rows (batch index, x1, y1, x2, y2), got ${fmtShape(rd)}`);
  }
  const [N, C, H, W] = fd as [Dim, Dim, Dim, Dim];
  if (isSym(C)) fail(`features ${fmtShape(fd)}: the channel count must be a static size`);
  return { N, C, H, W, K: rd[0] as Dim };
}

export function pooledAttr(attrs: Attrs, key: string): number {
  const v = attrs[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_POOLED) {
    fail(`attribute ${key} must be an integer in [1, ${MAX_POOLED}], got ${fmtValue(v)}`);
  }
  return v;
}

export function scaleAttr(attrs: Attrs): number {
  const v = attrs.spatialScale;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    fail(`attribute spatialScale must be a positive finite number, got ${fmtValue(v)}`);
  }
  return v;
}

/** Checks dy against the pooled shape [K,C,PH,PW]. */
export function checkDy(dy: TensorType | undefined, d: RoiDims, PH: number, PW: number): void {
  const want = [d.K, d.C, PH, PW];
  if (!dy) fail('takes [features, rois, dy]');
  if (dy.dtype !== 'f32' || !sameDims(dimsOf(dy), want)) {
    fail(`dy ${dy.dtype}${fmtShape(dimsOf(dy))} should be f32${fmtShape(want)} (the pooled shape)`);
  }
}

/**
 * The shape rule of a RoI backward op taking (features, rois, dy): dy is checked against the pooled
 * shape [K, C, PH, PW] and the output is f32 `out(dims)`.
 */
export function roiGradInfer(
  params: (attrs: Attrs) => { readonly PH: number; readonly PW: number },
  out: (d: RoiDims) => Dim[],
): (inputs: readonly TensorType[], attrs: Attrs) => TensorType {
  return ([x, rois, dy], attrs) => {
    const d = roiDims(x, rois);
    const p = params(attrs);
    checkDy(dy, d, p.PH, p.PW);
    return typeOf(out(d), 'f32');
  };
}

export type Rounding = 'c' | 'half_even';

export interface RoiPoolParams {
  readonly PH: number;
  readonly PW: number;
  readonly scale: number;
  readonly rounding: Rounding;
}

export function roiPoolParams(attrs: Attrs): RoiPoolParams {
  const PH = pooledAttr(attrs, 'pooledH');
  const PW = pooledAttr(attrs, 'pooledW');
  const scale = scaleAttr(attrs);
  const r = attrs.roundingMode ?? 'c';
  if (r !== 'c' && r !== 'half_even') fail(`attribute roundingMode must be 'c' or 'half_even', got ${fmtValue(r)}`);
  return { PH, PW, scale, rounding: r };
}

/** Batch index of RoI row `k`, or −1 when it is outside [0, N) (torchvision truncates the float). */
export function cpuBatchIndex(rois: Float64Array, k: number, N: number): number {
  const b = Math.fround(rois[k * 5] as number);
  return b > -1 && b < N ? Math.trunc(b) : -1;
}

export const u = K.u32;
export const i = K.i32;
export const f = K.f32;

export const bufOf = (args: LowerArgs, k: number): BufRef => (args.inputs[k] as { buf: BufRef }).buf;

/** Emits the batch index (i32) of the RoI whose row starts at `base` (u32), −1 when outside [0, N). */
export function emitBatchIndex(kb: KernelBuilder, rois: BufRef, base: Expr, N: Dim): Expr {
  const bf = kb.let('bf', K.load(rois, base));
  return kb.let('b', K.select(K.and(K.gt(bf, -1), K.lt(bf, sizeF32(N))), K.cast('i32', bf), i(-1)));
}

// ---------------------------------------------------------------------------------------------
// Float64 (f32-faithful) reference

const clampCoord = (v: number): number => Math.min(Math.max(v, -COORD_LIMIT), COORD_LIMIT);

interface PoolRoi {
  readonly b: number;
  readonly rsH: number;
  readonly rsW: number;
  readonly binH: number;
  readonly binW: number;
}

function cpuPoolRoi(rois: Float64Array, k: number, N: number, p: RoiPoolParams): PoolRoi {
  const s = Math.fround(p.scale);
  const rnd = p.rounding === 'c' ? cRound : roundHalfEven;
  const q = (j: number): number => clampCoord(rnd(Math.fround(Math.fround(rois[k * 5 + j] as number) * s)));
  const rsW = q(1);
  const rsH = q(2);
  const reW = q(3);
  const reH = q(4);
  const roiW = Math.max(reW - rsW + 1, 1);
  const roiH = Math.max(reH - rsH + 1, 1);
  return { b: cpuBatchIndex(rois, k, N), rsH, rsW, binH: Math.fround(roiH / p.PH), binW: Math.fround(roiW / p.PW) };
}

/** [start, end) of bin `pb` along an axis of size `size`, clamped, as torchvision's float32 code computes it. */
function binRange(pb: number, bin: number, rs: number, size: number): [number, number] {
  const lo = Math.floor(Math.fround(pb * bin)) + rs;
  const hi = Math.ceil(Math.fround((pb + 1) * bin)) + rs;
  return [Math.min(Math.max(lo, 0), size), Math.min(Math.max(hi, 0), size)];
}

/**
 * Plane index (h·W + w) of the bin's maximum, −1 when none beats −FLT_MAX, −2 for an empty bin.
 * Values are compared as the f32 numbers the GPU sees.
 */
function cpuBinArgmax(
  x: Float64Array,
  base: number,
  W: number,
  hs: number,
  he: number,
  ws: number,
  we: number,
): number {
  if (he <= hs || we <= ws) return -2;
  let best = -FLT_MAX;
  let arg = -1;
  for (let h = hs; h < he; h++) {
    for (let w = ws; w < we; w++) {
      const v = Math.fround(x[base + h * W + w] as number);
      if (v > best) {
        best = v;
        arg = h * W + w;
      }
    }
  }
  return arg;
}

/** Calls fn(k, c, ph, pw, argmax, imageBase) for every output element of a valid RoI. */
function forEachBin(
  x: RefTensor,
  rois: RefTensor,
  p: RoiPoolParams,
  fn: (k: number, c: number, ph: number, pw: number, arg: number, base: number) => void,
): void {
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const Kn = rois.shape[0] as number;
  for (let k = 0; k < Kn; k++) {
    const r = cpuPoolRoi(rois.data, k, N, p);
    if (r.b < 0) continue;
    for (let c = 0; c < C; c++) {
      const base = (r.b * C + c) * H * W;
      for (let ph = 0; ph < p.PH; ph++) {
        const [hs, he] = binRange(ph, r.binH, r.rsH, H);
        for (let pw = 0; pw < p.PW; pw++) {
          const [ws, we] = binRange(pw, r.binW, r.rsW, W);
          fn(k, c, ph, pw, cpuBinArgmax(x.data, base, W, hs, he, ws, we), base);
        }
      }
    }
  }
}

function cpuRoiPool(x: RefTensor, rois: RefTensor, p: RoiPoolParams): Float64Array {
  const C = x.shape[1] as number;
  const out = new Float64Array((rois.shape[0] as number) * C * p.PH * p.PW);
  forEachBin(x, rois, p, (k, c, ph, pw, arg, base) => {
    out[((k * C + c) * p.PH + ph) * p.PW + pw] =
      arg === -2 ? 0 : arg === -1 ? -FLT_MAX : (x.data[base + arg] as number);
  });
  return out;
}

function cpuRoiPoolGrad(x: RefTensor, rois: RefTensor, dy: RefTensor, p: RoiPoolParams): Float64Array {
  const C = x.shape[1] as number;
  const dx = new Float64Array(x.data.length);
  forEachBin(x, rois, p, (k, c, ph, pw, arg, base) => {
    if (arg >= 0)
      dx[base + arg] = (dx[base + arg] as number) + (dy.data[((k * C + c) * p.PH + ph) * p.PW + pw] as number);
  });
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Kernels

/**
 * Emits the f32 nearest to a / d (ties to even), for an i32 `a` in [1, 2^24) and a constant d in
 * [1, 2^10], by binary long division (WGSL's '/' is only accurate to 2.5 ulp).
 */
export function emitDivRn(kb: KernelBuilder, a: Expr, d: number): Expr {
  const au = kb.let('da', K.cast('u32', a));
  const r = kb.var('dr', u(0));
  const m = kb.var('dm', u(0));
  const nb = kb.var('dn', u(0));
  const e = kb.var('de', i(0));
  const sticky = kb.var('ds', K.bool(false));
  // iteration t brings down the dividend bit of weight 2^(23−t) (zeros past the binary point); the quotient
  // bit it produces has that weight. Collect 25 significant bits (24 + the rounding bit).
  kb.for('dt', 0, 64, (t) => {
    const bit = K.select(K.lt(t, i(24)), K.bitAnd(K.shr(au, K.cast('u32', K.max(K.sub(i(23), t), i(0)))), u(1)), u(0));
    kb.assign(r, K.add(K.mul(r, u(2)), bit));
    const qb = kb.let('dq', K.ge(r, u(d)));
    kb.if(qb, () => kb.assign(r, K.sub(r, u(d))));
    kb.if(K.or(K.gt(nb, u(0)), qb), () => {
      kb.if(K.eq(nb, u(0)), () => kb.assign(e, K.sub(i(23), t)));
      kb.assign(m, K.add(K.mul(m, u(2)), K.select(qb, u(1), u(0))));
      kb.assign(nb, K.add(nb, u(1)));
    });
    kb.if(K.eq(nb, u(25)), () => {
      kb.assign(sticky, K.ne(r, u(0)));
      kb.brk();
    });
  });
  const roundBit = kb.let('drb', K.bitAnd(m, u(1)));
  const mant = kb.var('dmt', K.shr(m, 1));
  kb.if(K.and(K.eq(roundBit, u(1)), K.or(sticky, K.eq(K.bitAnd(mant, u(1)), u(1)))), () =>
    kb.assign(mant, K.add(mant, u(1))),
  );
  kb.if(K.eq(mant, u(1 << 24)), () => {
    kb.assign(mant, u(1 << 23));
    kb.assign(e, K.add(e, i(1)));
  });
  const bits = K.bitOr(K.shl(K.cast('u32', K.add(e, i(127))), 23), K.bitAnd(mant, u(0x7fffff)));
  return kb.let('dquot', K.bitcast('f32', bits));
}

/** Emits round(v) (f32 → f32) in the given mode, exactly (no a+0.5 rounding error). */
function emitRound(kb: KernelBuilder, v: Expr, mode: Rounding): Expr {
  const a = kb.let('ra', K.abs(v));
  const t = kb.let('rt', K.call('floor', a));
  const fr = kb.let('rf', K.sub(a, t)); // exact
  const up =
    mode === 'c'
      ? K.ge(fr, 0.5)
      : K.or(K.gt(fr, 0.5), K.and(K.eq(fr, 0.5), K.ne(K.sub(t, K.mul(K.call('floor', K.mul(t, 0.5)), 2)), 0)));
  const r = kb.let('rr', K.add(t, K.select(up, f(1), f(0))));
  return K.select(K.lt(v, 0), K.neg(r), r);
}

/** Per-RoI geometry (8 i32 per RoI): b (−1 invalid), rsH, rsW, roiH, roiW, bits(binH), bits(binW), 0. */
const GEOM = 8;

function geometryKernel(args: LowerArgs, d: RoiDims, p: RoiPoolParams, rois: BufRef, geom: BufRef): Kernel {
  const kb = new KernelBuilder(`${args.name}_roigeom`);
  const k = threadIndex(kb);
  kb.if(K.lt(k, K.size(d.K)), () => {
    const base = kb.let('rb', K.mul(k, u(5)));
    const b = emitBatchIndex(kb, rois, base, d.N);
    const q = (j: number): Expr => {
      const v = kb.let('rv', K.mul(K.load(rois, K.add(base, u(j))), f(Math.fround(p.scale))));
      return kb.let(
        'rq',
        K.cast('i32', K.call('clamp', emitRound(kb, v, p.rounding), f(-COORD_LIMIT), f(COORD_LIMIT))),
      );
    };
    const rsW = q(1);
    const rsH = q(2);
    const reW = q(3);
    const reH = q(4);
    const roiW = kb.let('rw', K.max(K.add(K.sub(reW, rsW), i(1)), i(1)));
    const roiH = kb.let('rh', K.max(K.add(K.sub(reH, rsH), i(1)), i(1)));
    const binH = emitDivRn(kb, roiH, p.PH);
    const binW = emitDivRn(kb, roiW, p.PW);
    const o = kb.let('ro', K.mul(k, u(GEOM)));
    const vals = [b, rsH, rsW, roiH, roiW, K.bitcast('i32', binH), K.bitcast('i32', binW), i(0)];
    vals.forEach((v, j) => kb.store(geom, K.add(o, u(j)), v));
  });
  return kb.finish([WG, 1, 1], { linear: linearGroups(d.K) });
}

interface GeomVals {
  readonly b: Expr;
  readonly rsH: Expr;
  readonly rsW: Expr;
  readonly roiH: Expr;
  readonly roiW: Expr;
  readonly binH: Expr;
  readonly binW: Expr;
}

function loadGeom(kb: KernelBuilder, geom: BufRef, k: Expr): GeomVals {
  const o = kb.let('go', K.mul(k, u(GEOM)));
  const g = (j: number, name: string): Expr => kb.let(name, K.load(geom, K.add(o, u(j))));
  return {
    b: g(0, 'gb'),
    rsH: g(1, 'grsh'),
    rsW: g(2, 'grsw'),
    roiH: g(3, 'groih'),
    roiW: g(4, 'groiw'),
    binH: kb.let('gbinh', K.bitcast('f32', K.load(geom, K.add(o, u(5))))),
    binW: kb.let('gbinw', K.bitcast('f32', K.load(geom, K.add(o, u(6))))),
  };
}

/** Clamped [start, end) of bin pb (i32) along an axis (torchvision's float32 arithmetic). */
function emitBin(kb: KernelBuilder, pb: Expr, bin: Expr, rs: Expr, size: Dim): [Expr, Expr] {
  const pf = K.cast('f32', pb);
  const lo = K.add(K.cast('i32', K.call('floor', K.mul(pf, bin))), rs);
  const hi = K.add(K.cast('i32', K.call('ceil', K.mul(K.add(pf, f(1)), bin))), rs);
  const n = sizeI32(size);
  return [kb.let('bs', K.call('clamp', lo, i(0), n)), kb.let('be', K.call('clamp', hi, i(0), n))];
}

/** Emits the scan of bin [hs,he)×[ws,we) of the plane at `base`: [best value, plane index or −1]. */
function emitBinArgmax(
  kb: KernelBuilder,
  x: BufRef,
  base: Expr,
  W: Dim,
  hs: Expr,
  he: Expr,
  ws: Expr,
  we: Expr,
): [Expr, Expr] {
  const best = kb.var('best', f(-FLT_MAX));
  const arg = kb.var('arg', i(-1));
  kb.for('h', hs, he, (h) => {
    kb.for('w', ws, we, (w) => {
      const pos = kb.let('pos', K.add(K.mul(h, sizeI32(W)), w));
      const v = kb.let('v', K.load(x, K.add(base, K.cast('u32', pos))));
      kb.if(K.gt(v, best), () => {
        kb.assign(best, v);
        kb.assign(arg, pos);
      });
    });
  });
  return [best, arg];
}

/**
 * One thread per output element (k, c, ph, pw): scans its bin. Stores the pooled value in `out` (through
 * the epilogue) or, for the backward pass, the argmax plane index in an i32 buffer (−1: none / empty).
 */
function binKernel(
  args: LowerArgs,
  d: RoiDims,
  p: RoiPoolParams,
  geom: BufRef,
  dst: { value: BufRef } | { argmax: BufRef },
): Kernel {
  const x = bufOf(args, 0);
  const { C, H, W } = d;
  const { PH, PW } = p;
  const count = dimMul(d.K, C * PH * PW);
  const kb = new KernelBuilder(`${args.name}_${'value' in dst ? 'roipool' : 'roipool_argmax'}`);
  const idx = threadIndex(kb);
  kb.if(K.lt(idx, K.size(count)), () => {
    const k = kb.let('k', K.div(idx, u(C * PH * PW)));
    const c = kb.let('c', K.mod(K.div(idx, u(PH * PW)), u(C)));
    const ph = kb.let('ph', K.mod(K.div(idx, u(PW)), u(PH)));
    const pw = kb.let('pw', K.mod(idx, u(PW)));
    const g = loadGeom(kb, geom, k);
    const [hs, he] = emitBin(kb, K.cast('i32', ph), g.binH, g.rsH, H);
    const [ws, we] = emitBin(kb, K.cast('i32', pw), g.binW, g.rsW, W);
    const res = kb.var('res', f(0));
    const arg = kb.var('resarg', i(-1));
    kb.if(K.and(K.ge(g.b, i(0)), K.and(K.gt(he, hs), K.gt(we, ws))), () => {
      const base = kb.let('base', K.mul(K.add(K.mul(K.cast('u32', g.b), u(C)), c), K.size(dimMul(H, W))));
      const [best, a] = emitBinArgmax(kb, x, base, W, hs, he, ws, we);
      kb.assign(res, best);
      kb.assign(arg, a);
    });
    if ('value' in dst) kb.store(dst.value, idx, args.hasEpilogue ? args.epilogue(res, [k, c, ph, pw], idx) : res);
    else kb.store(dst.argmax, idx, arg);
  });
  return kb.finish([WG, 1, 1], { linear: linearGroups(count) });
}

function lowerRoiPool(args: LowerArgs): Kernel[] {
  const d = roiDims(args.inputs[0]?.type, args.inputs[1]?.type);
  const p = roiPoolParams(args.attrs);
  const geom = args.scratch('i32', dimMax(d.K) * GEOM);
  return [geometryKernel(args, d, p, bufOf(args, 1), geom), binKernel(args, d, p, geom, { value: args.output.buf })];
}

/** Channels per thread in the backward gathers: the per-RoI work (geometry, candidate bins) is shared by them. */
export const CHANNEL_BLOCK = 16;

/**
 * Backward: (1) per-RoI geometry, (2) the argmax of every bin (one scan per bin, into a scratch buffer the
 * size of dy), (3) the gather: one thread per input pixel (n, h, w) and block of CHANNEL_BLOCK channels
 * walks the RoIs of image n, the candidate bins that can contain the pixel, and adds dy where the bin's
 * argmax is this pixel.
 */
function lowerRoiPoolGrad(args: LowerArgs): Kernel[] {
  const d = roiDims(args.inputs[0]?.type, args.inputs[1]?.type);
  const p = roiPoolParams(args.attrs);
  const dy = bufOf(args, 2);
  const out = args.output.buf;
  const geom = args.scratch('i32', dimMax(d.K) * GEOM);
  const argmax = args.scratch('i32', dimMax(d.K) * d.C * p.PH * p.PW);
  const { N, C, H, W } = d;
  const { PH, PW } = p;
  const CB = Math.min(C, CHANNEL_BLOCK);
  const NB = Math.ceil(C / CB);
  const HW = dimMul(H, W);
  const count = dimProd([N, NB, HW]);
  const kb = new KernelBuilder(`${args.name}_roipool_grad`);
  const idx = threadIndex(kb);
  kb.if(K.lt(idx, K.size(count)), () => {
    const pos = kb.let('pos', K.cast('i32', modD(idx, HW)));
    const nb = kb.let('nb', divD(idx, HW));
    const n = kb.let('n', K.cast('i32', K.div(nb, u(NB))));
    const c0 = kb.let('c0', K.mul(K.mod(nb, u(NB)), u(CB)));
    const h = kb.let('h', K.div(pos, sizeI32(W)));
    const w = kb.let('w', K.mod(pos, sizeI32(W)));
    const acc = kb.array('acc', 'f32', CB, 'private');
    kb.for('j', 0, CB, (j) => kb.astore(acc, j, f(0)));
    kb.for('k', 0, sizeI32(d.K), (k) => {
      const g = loadGeom(kb, geom, K.cast('u32', k));
      const hh = kb.let('hh', K.sub(h, g.rsH));
      const ww = kb.let('ww', K.sub(w, g.rsW));
      // bins span [rs, rs + roi] at most (floor(ph·bin) ≥ 0; the f32 end may pass rs + roi − 1 by one)
      const inside = K.and(K.and(K.ge(hh, i(0)), K.le(hh, g.roiH)), K.and(K.ge(ww, i(0)), K.le(ww, g.roiW)));
      kb.if(K.and(K.eq(g.b, n), inside), () => {
        // exact candidates are [floor(hh·PH/roi), ceil((hh+1)·PH/roi)); one more pixel each way covers
        // the f32 rounding of the bin edges (each edge is off by at most one); the bin is rechecked below.
        const candidates = (t: Expr, roi: Expr, P: number): [Expr, Expr] => [
          kb.let('clo', K.max(K.div(K.mul(K.sub(t, i(1)), i(P)), roi), i(0))),
          kb.let('chi', K.min(K.div(K.add(K.mul(K.add(t, i(2)), i(P)), K.sub(roi, i(1))), roi), i(P))),
        ];
        const [phLo, phHi] = candidates(hh, g.roiH, PH);
        const [pwLo, pwHi] = candidates(ww, g.roiW, PW);
        kb.for('ph', phLo, phHi, (ph) => {
          const [hs, he] = emitBin(kb, ph, g.binH, g.rsH, H);
          kb.if(K.and(K.le(hs, h), K.lt(h, he)), () => {
            kb.for('pw', pwLo, pwHi, (pw) => {
              const [ws, we] = emitBin(kb, pw, g.binW, g.rsW, W);
              kb.if(K.and(K.le(ws, w), K.lt(w, we)), () => {
                // index of (k, c0, ph, pw) in [K,C,PH,PW]; channel j adds j·PH·PW
                const o = kb.let(
                  'o',
                  K.add(
                    K.mul(K.add(K.mul(K.cast('u32', k), u(C)), c0), u(PH * PW)),
                    K.cast('u32', K.add(K.mul(ph, i(PW)), pw)),
                  ),
                );
                kb.for('j', 0, CB, (j) => {
                  const ju = K.cast('u32', j);
                  const oj = kb.let('oj', K.add(o, K.mul(ju, u(PH * PW))));
                  const ok =
                    C % CB === 0
                      ? K.eq(K.load(argmax, oj), pos)
                      : K.and(
                          K.lt(K.add(c0, ju), u(C)),
                          K.eq(K.load(argmax, K.min(oj, K.sub(K.size(dimMul(d.K, C * PH * PW)), u(1)))), pos),
                        );
                  kb.if(ok, () => kb.astore(acc, j, K.add(kb.aload(acc, 'f32', j), K.load(dy, oj))));
                });
              });
            });
          });
        });
      });
    });
    kb.for('j', 0, CB, (j) => {
      const c = kb.let('cj', K.add(c0, K.cast('u32', j)));
      kb.if(K.lt(c, u(C)), () => {
        const oi = kb.let('oi', K.add(K.mul(K.add(K.mul(K.cast('u32', n), u(C)), c), K.size(HW)), K.cast('u32', pos)));
        const v = kb.aload(acc, 'f32', j);
        kb.store(
          out,
          oi,
          args.hasEpilogue ? args.epilogue(v, [K.cast('u32', n), c, K.cast('u32', h), K.cast('u32', w)], oi) : v,
        );
      });
    });
  });
  return [
    geometryKernel(args, d, p, bufOf(args, 1), geom),
    binKernel(args, d, p, geom, { argmax }),
    kb.finish([WG, 1, 1], { linear: linearGroups(count) }),
  ];
}

// ---------------------------------------------------------------------------------------------
// Registration and DSL helper

registerOp({
  name: 'roi_pool',
  kind: 'opaque',
  dynamic: true,
  infer: ([x, rois], attrs) => {
    const d = roiDims(x, rois);
    const p = roiPoolParams(attrs);
    return typeOf([d.K, d.C, p.PH, p.PW], 'f32');
  },
  cpu: ({ inputs, attrs }) => cpuRoiPool(inputs[0] as RefTensor, inputs[1] as RefTensor, roiPoolParams(attrs)),
  grad: ({ inputs, attrs, dy }) => [
    dy.builder.apply('roi_pool_grad', [inputs[0] as Tensor, inputs[1] as Tensor, dy], attrs),
    null,
  ],
  lower: lowerRoiPool,
});

registerOp({
  name: 'roi_pool_grad',
  kind: 'opaque',
  dynamic: true,
  infer: roiGradInfer(roiPoolParams, (d) => [d.N, d.C, d.H, d.W]),
  cpu: ({ inputs, attrs }) =>
    cpuRoiPoolGrad(inputs[0] as RefTensor, inputs[1] as RefTensor, inputs[2] as RefTensor, roiPoolParams(attrs)),
  lower: lowerRoiPoolGrad,
});

export interface RoiPoolOptions {
  /** Output size (PH, PW), or one number for both. */
  readonly outputSize: number | readonly [number, number];
  /** Box coordinates are multiplied by this (1/16 for VGG16's conv5_3). Default 1. */
  readonly spatialScale?: number;
  /** 'c' (default: caffe / torchvision, half away from zero) or 'half_even'. */
  readonly roundingMode?: Rounding;
}

export function outputPair(v: number | readonly [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

/** roi_pool attributes from torchvision-style options. */
export function roiPoolAttrs(opts: RoiPoolOptions): Attrs {
  const [pooledH, pooledW] = outputPair(opts.outputSize);
  return { pooledH, pooledW, spatialScale: opts.spatialScale ?? 1, roundingMode: opts.roundingMode ?? 'c' };
}

/** DSL: RoIPool of features f32 [N,C,H,W] over rois f32 [K,5] → f32 [K,C,PH,PW]. */
export function roiPool(features: Tensor, rois: Tensor, opts: RoiPoolOptions): Tensor {
  return features.builder.apply('roi_pool', [features, rois], roiPoolAttrs(opts));
}
