/**
 * RoIAlign with torchvision's semantics (roi_align_kernel.cpp / roi_align_common.h, spec §4):
 *
 *   off = aligned ? 0.5 : 0;  start_w = x1·s − off;  roi_w = x2·s − off − start_w;  !aligned: roi_w = max(roi_w, 1)
 *   bin_w = roi_w / PW;  grid_w = samplingRatio > 0 ? samplingRatio : ceil(roi_w / PW);  count = max(grid_h·grid_w, 1)
 *   sample y = start_h + ph·bin_h + (iy + 0.5)·bin_h / grid_h   (x likewise)
 *   out = Σ bilinear(y, x) / count, where bilinear is 0 when y < −1 ∨ y > H ∨ x < −1 ∨ x > W; else
 *   y = max(y, 0); y_lo = ⌊y⌋; if y_lo ≥ H − 1 { y_lo = y_hi = H − 1; y = y_lo } else y_hi = y_lo + 1; ly = y − y_lo …
 *
 * Inputs: features f32 [N,C,H,W], rois f32 [K,5] (batch index as a float, x1, y1, x2, y2). Output f32
 * [K,C,PH,PW]. Attributes: pooledH, pooledW, spatialScale, samplingRatio (adaptive when ≤ 0), aligned.
 * A batch index outside [0, N) gives a zero output row and zero gradients (torchvision reads out of bounds).
 *
 * Gradients (the rule returns both):
 * - roi_align_grad_features (features, rois, dy) → [N,C,H,W]: a GATHER. Every sample's bilinear weight
 *   factors as wy(row)·wx(col) (the validity test is a product too), so for an input pixel (n,c,h,w) and
 *   a RoI of image n the contribution is Σ_ph,pw dy[k,c,ph,pw]·A_y(ph)·A_x(pw)/count with
 *   A_y(ph) = Σ_iy wy_(ph,iy)(h). RoIs whose sample extent is farther than one pixel from (h, w) are
 *   skipped at once, only the bins whose samples can reach the pixel are visited, and one thread serves
 *   a block of channels with the same weights. No atomics; deterministic.
 * - roi_align_grad_rois (features, rois, dy) → [K,5], the gradient w.r.t. the box coordinates (column 0,
 *   the batch index, gets 0). Sample positions are affine in the box: y = y1·s − off + a_y·roi_h with
 *   a_y = (ph + (iy + 0.5)/grid_h)/PH and roi_h = (y2 − y1)·s, so ∂y/∂y1 = s·(1 − a_y·u), ∂y/∂y2 = s·a_y·u
 *   where u = 0 when !aligned and roi_h was clamped up to 1 (max(·,1) is taken as unclamped at exactly 1).
 *   ∂bilinear/∂y = hx·(v3 − v1) + lx·(v4 − v2) inside the image, 0 where y was clamped (y ≤ 0, or
 *   y_lo ≥ H − 1) or the sample is out of range. The adaptive grid size ceil(roi/P) is piecewise constant:
 *   its jumps are ignored (derivative 0), as are the jumps of the out-of-range test at y = −1 and y = H —
 *   the gradient is the derivative almost everywhere. One workgroup per RoI reduces
 *   C·PH·PW·grid_h·grid_w terms in workgroup memory (fixed order: deterministic).
 *
 * Precision: kernels compute in f32 like torchvision; the CPU reference is float64 (so that finite
 * differences work). The adaptive grid size is the exact ceiling of roi_h / PH on both (WGSL's division
 * is corrected with one exact multiply-compare), so only inputs that put a sample exactly on a
 * discontinuity (y = −1 or y = H) can tell the f32 and f64 results apart.
 */
import { type Dim, dimMax, dimMul, dimProd } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { KernelBuilder } from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { typeOf } from '../compiler/types.js';
import { divD, lastI32, modD, sizeF32, sizeI32 } from './kit/indexing.js';
import { linearGroups, threadIndex, WG } from './kit/launch.js';
import {
  bufOf,
  CHANNEL_BLOCK,
  cpuBatchIndex,
  emitBatchIndex,
  f,
  i,
  outputPair,
  pooledAttr,
  type RoiDims,
  roiDims,
  roiGradInfer,
  scaleAttr,
  u,
} from './roi-pool.js';

export interface RoiAlignParams {
  readonly PH: number;
  readonly PW: number;
  readonly scale: number;
  readonly samplingRatio: number;
  readonly aligned: boolean;
}

export function roiAlignParams(attrs: Attrs): RoiAlignParams {
  const PH = pooledAttr(attrs, 'pooledH');
  const PW = pooledAttr(attrs, 'pooledW');
  const scale = scaleAttr(attrs);
  const sr = attrs.samplingRatio;
  if (typeof sr !== 'number' || !Number.isInteger(sr) || sr > 64) {
    fail(`attribute samplingRatio must be an integer ≤ 64 (≤ 0: adaptive), got ${fmtValue(sr)}`);
  }
  const aligned = attrs.aligned;
  if (typeof aligned !== 'boolean') fail(`attribute aligned must be a boolean, got ${fmtValue(aligned)}`);
  return { PH, PW, scale, samplingRatio: sr, aligned };
}

// ---------------------------------------------------------------------------------------------
// Float64 reference

interface AlignRoi {
  readonly b: number;
  readonly startH: number;
  readonly startW: number;
  readonly binH: number;
  readonly binW: number;
  readonly gh: number;
  readonly gw: number;
  readonly count: number;
  /** 1 when roi_h (roi_w) is not clamped by max(·, 1). */
  readonly uH: number;
  readonly uW: number;
}

function cpuAlignRoi(rois: Float64Array, k: number, N: number, p: RoiAlignParams): AlignRoi {
  const s = p.scale;
  const off = p.aligned ? 0.5 : 0;
  const r = (j: number): number => rois[k * 5 + j] as number;
  const startW = r(1) * s - off;
  const startH = r(2) * s - off;
  const rawW = r(3) * s - off - startW;
  const rawH = r(4) * s - off - startH;
  const roiW = p.aligned ? rawW : Math.max(rawW, 1);
  const roiH = p.aligned ? rawH : Math.max(rawH, 1);
  const gh = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(roiH / p.PH);
  const gw = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(roiW / p.PW);
  return {
    b: cpuBatchIndex(rois, k, N),
    startH,
    startW,
    binH: roiH / p.PH,
    binW: roiW / p.PW,
    gh,
    gw,
    count: Math.max(gh * gw, 1),
    uH: p.aligned || rawH >= 1 ? 1 : 0,
    uW: p.aligned || rawW >= 1 ? 1 : 0,
  };
}

/** One axis of torchvision's bilinear_interpolate: validity, taps, weights, and d(weights)/dy gate. */
interface Axis {
  readonly ok: boolean;
  readonly lo: number;
  readonly hi: number;
  /** weight of `hi` (ly); `lo` gets 1 − l */
  readonly l: number;
  /** 1 where the clamped coordinate moves with y (0 < y and y_lo < size − 1) */
  readonly moves: number;
}

function axis(y: number, size: number): Axis {
  if (y < -1 || y > size || Number.isNaN(y)) return { ok: false, lo: 0, hi: 0, l: 0, moves: 0 };
  let yc = Math.max(y, 0); // torchvision: if (y <= 0) y = 0
  let lo = Math.trunc(yc);
  let hi: number;
  let moves = y > 0 ? 1 : 0;
  if (lo >= size - 1) {
    lo = hi = size - 1;
    yc = lo;
    moves = 0;
  } else hi = lo + 1;
  return { ok: true, lo, hi, l: yc - lo, moves };
}

/** Sample coordinate: start + pb·bin + (it + 0.5)·bin/grid (torchvision's expression order). */
const sampleAt = (start: number, pb: number, bin: number, it: number, grid: number): number =>
  start + pb * bin + ((it + 0.5) * bin) / grid;

function forEachSample(
  x: RefTensor,
  rois: RefTensor,
  p: RoiAlignParams,
  fn: (k: number, r: AlignRoi, ph: number, pw: number, iy: number, ix: number, ay: Axis, ax: Axis) => void,
): void {
  const [N, , H, W] = x.shape as [number, number, number, number];
  const Kn = rois.shape[0] as number;
  for (let k = 0; k < Kn; k++) {
    const r = cpuAlignRoi(rois.data, k, N, p);
    if (r.b < 0) continue;
    for (let ph = 0; ph < p.PH; ph++) {
      for (let pw = 0; pw < p.PW; pw++) {
        for (let iy = 0; iy < r.gh; iy++) {
          const ay = axis(sampleAt(r.startH, ph, r.binH, iy, r.gh), H);
          for (let ix = 0; ix < r.gw; ix++) {
            const ax = axis(sampleAt(r.startW, pw, r.binW, ix, r.gw), W);
            if (ay.ok && ax.ok) fn(k, r, ph, pw, iy, ix, ay, ax);
          }
        }
      }
    }
  }
}

function cpuRoiAlign(x: RefTensor, rois: RefTensor, p: RoiAlignParams): Float64Array {
  const [, C, H, W] = x.shape as [number, number, number, number];
  const out = new Float64Array((rois.shape[0] as number) * C * p.PH * p.PW);
  forEachSample(x, rois, p, (k, r, ph, pw, _iy, _ix, ay, ax) => {
    for (let c = 0; c < C; c++) {
      const base = (r.b * C + c) * H * W;
      const v = (yy: number, xx: number): number => x.data[base + yy * W + xx] as number;
      const val =
        (1 - ay.l) * (1 - ax.l) * v(ay.lo, ax.lo) +
        (1 - ay.l) * ax.l * v(ay.lo, ax.hi) +
        ay.l * (1 - ax.l) * v(ay.hi, ax.lo) +
        ay.l * ax.l * v(ay.hi, ax.hi);
      const o = ((k * C + c) * p.PH + ph) * p.PW + pw;
      out[o] = (out[o] as number) + val / r.count;
    }
  });
  return out;
}

/** Scatter form (the natural reference): every sample adds dy·w/count to its four taps. */
function cpuRoiAlignGradFeatures(x: RefTensor, rois: RefTensor, dy: RefTensor, p: RoiAlignParams): Float64Array {
  const [, C, H, W] = x.shape as [number, number, number, number];
  const dx = new Float64Array(x.data.length);
  forEachSample(x, rois, p, (k, r, ph, pw, _iy, _ix, ay, ax) => {
    for (let c = 0; c < C; c++) {
      const base = (r.b * C + c) * H * W;
      const g = (dy.data[((k * C + c) * p.PH + ph) * p.PW + pw] as number) / r.count;
      const add = (yy: number, xx: number, w: number): void => {
        dx[base + yy * W + xx] = (dx[base + yy * W + xx] as number) + g * w;
      };
      add(ay.lo, ax.lo, (1 - ay.l) * (1 - ax.l));
      add(ay.lo, ax.hi, (1 - ay.l) * ax.l);
      add(ay.hi, ax.lo, ay.l * (1 - ax.l));
      add(ay.hi, ax.hi, ay.l * ax.l);
    }
  });
  return dx;
}

function cpuRoiAlignGradRois(x: RefTensor, rois: RefTensor, dy: RefTensor, p: RoiAlignParams): Float64Array {
  const [, C, H, W] = x.shape as [number, number, number, number];
  const Kn = rois.shape[0] as number;
  // per RoI: Σ G·∂B/∂y, Σ G·∂B/∂y·a_y, and the same for x
  const acc = new Float64Array(Kn * 4);
  const rr: (AlignRoi | undefined)[] = new Array(Kn);
  forEachSample(x, rois, p, (k, r, ph, pw, iy, ix, ay, ax) => {
    rr[k] = r;
    const fy = (ph + (iy + 0.5) / r.gh) / p.PH;
    const fx = (pw + (ix + 0.5) / r.gw) / p.PW;
    for (let c = 0; c < C; c++) {
      const base = (r.b * C + c) * H * W;
      const v = (yy: number, xx: number): number => x.data[base + yy * W + xx] as number;
      const v1 = v(ay.lo, ax.lo);
      const v2 = v(ay.lo, ax.hi);
      const v3 = v(ay.hi, ax.lo);
      const v4 = v(ay.hi, ax.hi);
      const g = (dy.data[((k * C + c) * p.PH + ph) * p.PW + pw] as number) / r.count;
      const dby = ay.moves * ((1 - ax.l) * (v3 - v1) + ax.l * (v4 - v2));
      const dbx = ax.moves * ((1 - ay.l) * (v2 - v1) + ay.l * (v4 - v3));
      acc[k * 4] = (acc[k * 4] as number) + g * dby;
      acc[k * 4 + 1] = (acc[k * 4 + 1] as number) + g * dby * fy;
      acc[k * 4 + 2] = (acc[k * 4 + 2] as number) + g * dbx;
      acc[k * 4 + 3] = (acc[k * 4 + 3] as number) + g * dbx * fx;
    }
  });
  const out = new Float64Array(Kn * 5);
  const s = p.scale;
  for (let k = 0; k < Kn; k++) {
    const r = rr[k];
    if (!r) continue;
    const [sy, ty, sx, tx] = [acc[k * 4], acc[k * 4 + 1], acc[k * 4 + 2], acc[k * 4 + 3]] as [
      number,
      number,
      number,
      number,
    ];
    out[k * 5 + 1] = s * (sx - tx * r.uW);
    out[k * 5 + 2] = s * (sy - ty * r.uH);
    out[k * 5 + 3] = s * tx * r.uW;
    out[k * 5 + 4] = s * ty * r.uH;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Kernels

interface AlignGeom {
  readonly b: Expr;
  readonly startH: Expr;
  readonly startW: Expr;
  readonly roiH: Expr;
  readonly roiW: Expr;
  readonly binH: Expr;
  readonly binW: Expr;
  /** i32 sample grid sizes (≤ 0: no samples) */
  readonly gh: Expr;
  readonly gw: Expr;
  readonly count: Expr;
  readonly uH: Expr;
  readonly uW: Expr;
}

/** Smallest integer g with g·P ≥ v, i.e. the exact ceil(v / P) (WGSL's '/' may be off by 2.5 ulp). */
function emitCeilDiv(kb: KernelBuilder, v: Expr, P: number): Expr {
  const g = kb.var('cg', K.call('ceil', K.div(v, f(P))));
  kb.if(K.ge(K.mul(K.sub(g, f(1)), f(P)), v), () => kb.assign(g, K.sub(g, f(1))));
  kb.if(K.lt(K.mul(g, f(P)), v), () => kb.assign(g, K.add(g, f(1))));
  return kb.let('cgi', K.cast('i32', g));
}

function emitAlignGeom(kb: KernelBuilder, rois: BufRef, k: Expr, d: RoiDims, p: RoiAlignParams): AlignGeom {
  const base = kb.let('rb', K.mul(k, u(5)));
  const b = emitBatchIndex(kb, rois, base, d.N);
  const s = f(Math.fround(p.scale));
  const off = f(p.aligned ? 0.5 : 0);
  const c = (j: number): Expr => K.load(rois, K.add(base, u(j)));
  const startW = kb.let('sw', K.sub(K.mul(c(1), s), off));
  const startH = kb.let('sh', K.sub(K.mul(c(2), s), off));
  const rawW = kb.let('rw', K.sub(K.sub(K.mul(c(3), s), off), startW));
  const rawH = kb.let('rh', K.sub(K.sub(K.mul(c(4), s), off), startH));
  const roiW = p.aligned ? rawW : kb.let('rw1', K.max(rawW, f(1)));
  const roiH = p.aligned ? rawH : kb.let('rh1', K.max(rawH, f(1)));
  const gh = p.samplingRatio > 0 ? i(p.samplingRatio) : emitCeilDiv(kb, roiH, p.PH);
  const gw = p.samplingRatio > 0 ? i(p.samplingRatio) : emitCeilDiv(kb, roiW, p.PW);
  return {
    b,
    startH,
    startW,
    roiH,
    roiW,
    binH: kb.let('bh', K.div(roiH, f(p.PH))),
    binW: kb.let('bw', K.div(roiW, f(p.PW))),
    gh,
    gw,
    count: kb.let('cnt', K.cast('f32', K.max(K.mul(gh, gw), i(1)))),
    uH: p.aligned ? f(1) : kb.let('uh', K.select(K.ge(rawH, f(1)), f(1), f(0))),
    uW: p.aligned ? f(1) : kb.let('uw', K.select(K.ge(rawW, f(1)), f(1), f(0))),
  };
}

/** Sample coordinate (f32) for bin pb (i32) and grid index it (i32). */
function emitSample(kb: KernelBuilder, start: Expr, pb: Expr, bin: Expr, it: Expr, grid: Expr): Expr {
  return kb.let(
    'sp',
    K.add(
      K.add(start, K.mul(K.cast('f32', pb), bin)),
      K.div(K.mul(K.add(K.cast('f32', it), f(0.5)), bin), K.cast('f32', grid)),
    ),
  );
}

interface AxisE {
  readonly ok: Expr;
  readonly lo: Expr;
  readonly hi: Expr;
  readonly l: Expr;
  readonly hw: Expr;
  readonly moves: Expr;
}

function emitAxis(kb: KernelBuilder, y: Expr, size: Dim): AxisE {
  const ok = kb.let('aok', K.and(K.ge(y, f(-1)), K.le(y, sizeF32(size))));
  const yc0 = kb.let('ayc', K.call('clamp', y, f(0), sizeF32(size)));
  const lo0 = kb.let('alo', K.cast('i32', yc0));
  const last = lastI32(size);
  const top = kb.let('atop', K.ge(lo0, last));
  const lo = kb.let('alo1', K.select(top, last, lo0));
  const hi = kb.let('ahi', K.select(top, last, K.add(lo0, i(1))));
  const l = kb.let('al', K.select(top, f(0), K.sub(yc0, K.cast('f32', lo0))));
  return {
    ok,
    lo,
    hi,
    l,
    hw: kb.let('ah', K.sub(f(1), l)),
    moves: K.and(K.gt(y, f(0)), K.not(top)),
  };
}

/**
 * Channels per thread of the forward kernel (they share the sample positions and weights). On lavapipe
 * (300 RoIs, 7×7, 512 channels, sampling 2): 8 → 72 ms, 16 → 35 ms, 32 and 64 → 34 ms.
 */
const FORWARD_CHANNEL_BLOCK = 32;
/**
 * Fixed sampling grids up to this size per axis get the taps of all their samples computed once per
 * thread (straight-line code, registers); larger or adaptive grids walk the samples per channel.
 */
const MAX_FIXED_GRID = 4;

/** The four taps (plane offsets, u32) and bilinear weights of one sample, and whether it is inside. */
interface SampleTaps {
  readonly ok: Expr;
  readonly offsets: readonly [Expr, Expr, Expr, Expr];
  readonly weights: readonly [Expr, Expr, Expr, Expr];
}

function emitSampleTaps(kb: KernelBuilder, ay: AxisE, ax: AxisE, W: Dim): SampleTaps {
  const ok = kb.let('sok', K.and(ay.ok, ax.ok));
  const at = (yy: Expr, xx: Expr): Expr =>
    kb.let('tap', K.select(ok, K.cast('u32', K.add(K.mul(yy, sizeI32(W)), xx)), u(0)));
  return {
    ok,
    offsets: [at(ay.lo, ax.lo), at(ay.lo, ax.hi), at(ay.hi, ax.lo), at(ay.hi, ax.hi)],
    weights: [
      kb.let('w1', K.mul(ay.hw, ax.hw)),
      kb.let('w2', K.mul(ay.hw, ax.l)),
      kb.let('w3', K.mul(ay.l, ax.hw)),
      kb.let('w4', K.mul(ay.l, ax.l)),
    ],
  };
}

/** The reference's sample value (w1·v1 + w2·v2) + (w3·v3 + w4·v4) of a plane starting at `plane`. */
function sampleValue(x: BufRef, plane: Expr, t: SampleTaps): Expr {
  const v = (q: number): Expr => K.mul(t.weights[q] as Expr, K.load(x, K.add(plane, t.offsets[q] as Expr)));
  return K.add(K.add(v(0), v(1)), K.add(v(2), v(3)));
}

/**
 * One axis of a bin's fixed sample grid as "slots": pixels with a weight and whether a tap of a sample
 * inside the map lands there. The pooled value of a channel is Σ over slot pairs (a, b) of
 * [touched_a ∧ touched_b] · weight_a · weight_b · v[index_a, index_b] — bilinear sampling is separable,
 * and a 2-D sample is inside iff both its coordinates are.
 */
interface AxisSlots {
  readonly index: readonly Expr[];
  readonly weight: readonly Expr[];
  readonly touched: readonly Expr[];
}

/** Every sample's two taps as their own slots (2·S slots): the reference's 4·S² products. */
function directSlots(axes: readonly AxisE[]): AxisSlots {
  return {
    index: axes.flatMap((a) => [a.lo, a.hi]),
    weight: axes.flatMap((a) => [a.hw, a.l]),
    touched: axes.flatMap((a) => [a.ok, a.ok]),
  };
}

/**
 * The taps folded onto a window of n consecutive pixels from the lowest tap of the samples inside the
 * map, each pixel with its summed weight; `fits` says whether every such tap lies in the window.
 */
function windowSlots(kb: KernelBuilder, axes: readonly AxisE[], n: number, size: Dim): AxisSlots & { fits: Expr } {
  const sizeI = sizeI32(size);
  const last = lastI32(size);
  const start0 = axes.reduce<Expr>((m, a) => K.min(m, K.select(a.ok, a.lo, sizeI)), sizeI);
  const start = kb.let('ws', K.min(start0, last));
  const fits = kb.let(
    'wfit',
    axes.reduce<Expr>((all, a) => K.and(all, K.or(K.not(a.ok), K.lt(K.sub(a.hi, start), i(n)))), K.bool(true)),
  );
  const index: Expr[] = [];
  const weight: Expr[] = [];
  const touched: Expr[] = [];
  for (let d = 0; d < n; d++) {
    const at = kb.let('wat', K.add(start, i(d)));
    index.push(kb.let('wix', K.min(at, last)));
    let w: Expr = f(0);
    let t: Expr = K.bool(false);
    for (const a of axes) {
      const onLo = K.and(a.ok, K.eq(a.lo, at));
      const onHi = K.and(a.ok, K.eq(a.hi, at));
      w = K.add(K.add(w, K.select(onLo, a.hw, f(0))), K.select(onHi, a.l, f(0)));
      t = K.or(t, K.or(onLo, onHi));
    }
    weight.push(kb.let('ww', w));
    touched.push(kb.let('wt', t));
  }
  return { fits, index, weight, touched };
}

/**
 * Forward: one thread per (RoI k, block of CB channels, bin ph, pw), the bin fastest (neighbouring
 * threads read neighbouring pixels); the RoI geometry is computed once per thread, then every channel
 * of the block is pooled with what the thread precomputed:
 * - fixed sampling grids of S² ≤ MAX_FIXED_GRID² samples: the taps and bilinear weights of all samples
 *   (straight-line code, registers), per axis as slots (AxisSlots). Along an axis whose bins are
 *   shorter than S pixels (samples less than a pixel apart), all taps fall in a window of S + 1
 *   pixels, read once with summed weights (at S = 2: 3 pixels instead of 4 taps; a bin of such a RoI
 *   loads 9 pixels instead of 16). The choice is per RoI and axis (the same for all its bins).
 * - adaptive or larger grids: each channel walks the samples (the reference's loop).
 * Pixels no tap lands on are skipped, so NaN/Inf features propagate from exactly the pixels the
 * reference reads. The sum is mathematically the reference's, Σ over samples inside the map of the
 * four taps' w·v, / count (the window's weights are summed first: a few ulps of f32 rounding apart).
 * The last block of a C that CB does not divide skips the missing channels.
 */
function lowerRoiAlign(args: LowerArgs): Kernel[] {
  const d = roiDims(args.inputs[0]?.type, args.inputs[1]?.type);
  const p = roiAlignParams(args.attrs);
  const x = bufOf(args, 0);
  const rois = bufOf(args, 1);
  const out = args.output.buf;
  const { C, H, W } = d;
  const { PH, PW } = p;
  const CB = Math.min(C, FORWARD_CHANNEL_BLOCK);
  const NB = Math.ceil(C / CB);
  const bins = PH * PW;
  const total = dimMul(d.K, NB * bins);
  const HW = dimMul(H, W);
  const kb = new KernelBuilder(`${args.name}_roialign`);
  const idx = threadIndex(kb);
  kb.if(K.lt(idx, K.size(total)), () => {
    const bin = kb.let('bin', K.mod(idx, u(bins)));
    const kcb = kb.let('kcb', K.div(idx, u(bins)));
    const k = kb.let('k', K.div(kcb, u(NB)));
    const c0 = kb.let('c0', K.mul(K.mod(kcb, u(NB)), u(CB)));
    const ph = kb.let('ph', K.cast('i32', K.div(bin, u(PW))));
    const pw = kb.let('pw', K.cast('i32', K.mod(bin, u(PW))));
    const g = emitAlignGeom(kb, rois, k, d, p);
    const live = kb.let('live', K.ge(g.b, i(0)));
    // plane of channel c0 of image b (clamped for a dead RoI, whose sums stay 0)
    const base = kb.let('base', K.mul(K.add(K.mul(K.cast('u32', K.max(g.b, i(0))), u(C)), c0), K.size(HW)));
    /** For every channel j of the block: acc = sum(plane of channel j), stored as acc / count. */
    const eachChannel = (sum: (plane: Expr, acc: Expr) => void): void => {
      kb.for('j', 0, CB, (j) => {
        const c = kb.let('c', K.add(c0, K.cast('u32', j)));
        const channel = () => {
          const plane = kb.let('plane', K.add(base, K.mul(K.cast('u32', j), K.size(HW))));
          const acc = kb.var('acc', f(0));
          kb.if(live, () => sum(plane, acc));
          const oi = kb.let('oi', K.add(K.mul(K.add(K.mul(k, u(C)), c), u(bins)), bin));
          const res = kb.let('res', K.div(acc, g.count));
          const coords = [k, c, K.cast('u32', ph), K.cast('u32', pw)];
          kb.store(out, oi, args.hasEpilogue ? args.epilogue(res, coords, oi) : res);
        };
        if (C % CB === 0) channel();
        else kb.if(K.lt(c, u(C)), channel);
      });
    };
    /** Pools every channel over the slot pairs of the two axes (the cell weights computed once). */
    const pooled = (ys: AxisSlots, xs: AxisSlots): void => {
      const cells = ys.index.flatMap((r, a) =>
        xs.index.map((q, b) => ({
          offset: kb.let('coff', K.cast('u32', K.add(K.mul(r, sizeI32(W)), q))),
          weight: kb.let('cw', K.mul(ys.weight[a] as Expr, xs.weight[b] as Expr)),
          touched: kb.let('ct', K.and(ys.touched[a] as Expr, xs.touched[b] as Expr)),
        })),
      );
      eachChannel((plane, acc) => {
        for (const cl of cells) {
          const v = K.mul(cl.weight, K.load(x, K.add(plane, cl.offset)));
          kb.assign(acc, K.add(acc, K.select(cl.touched, v, f(0))));
        }
      });
    };
    const S = p.samplingRatio;
    if (S > 0 && S <= MAX_FIXED_GRID) {
      const grid = Array.from({ length: S }, (_, t) => t);
      const ays = grid.map((iy) => emitAxis(kb, emitSample(kb, g.startH, ph, g.binH, i(iy), g.gh), H));
      const axs = grid.map((ix) => emitAxis(kb, emitSample(kb, g.startW, pw, g.binW, i(ix), g.gw), W));
      const dy = directSlots(ays);
      const dx = directSlots(axs);
      if (S === 1) pooled(dy, dx);
      else {
        const wy = windowSlots(kb, ays, S + 1, H);
        const wx = windowSlots(kb, axs, S + 1, W);
        // per RoI: bins shorter than S pixels put all taps in the window (`fits` guards rounding)
        const winY = kb.let('winy', K.and(K.lt(g.binH, f(S)), wy.fits));
        const winX = kb.let('winx', K.and(K.lt(g.binW, f(S)), wx.fits));
        kb.if(
          winY,
          () =>
            kb.if(
              winX,
              () => pooled(wy, wx),
              () => pooled(wy, dx),
            ),
          () =>
            kb.if(
              winX,
              () => pooled(dy, wx),
              () => pooled(dy, dx),
            ),
        );
      }
    } else {
      eachChannel((plane, acc) => {
        kb.for('iy', 0, g.gh, (iy) => {
          const ay = emitAxis(kb, emitSample(kb, g.startH, ph, g.binH, iy, g.gh), H);
          kb.for('ix', 0, g.gw, (ix) => {
            const ax = emitAxis(kb, emitSample(kb, g.startW, pw, g.binW, ix, g.gw), W);
            const t = emitSampleTaps(kb, ay, ax, W);
            kb.if(t.ok, () => kb.assign(acc, K.add(acc, sampleValue(x, plane, t))));
          });
        });
      });
    }
  });
  return [kb.finish([WG, 1, 1], { linear: linearGroups(total) })];
}

/** Σ over the grid of one bin of the weight that axis samples give to pixel t (0 when the axis test fails). */
function emitAxisWeight(kb: KernelBuilder, start: Expr, pb: Expr, bin: Expr, grid: Expr, t: Expr, size: Dim): Expr {
  const a = kb.var('aw', f(0));
  kb.for('it', 0, grid, (it) => {
    const ax = emitAxis(kb, emitSample(kb, start, pb, bin, it, grid), size);
    const w = K.add(K.select(K.eq(ax.lo, t), ax.hw, f(0)), K.select(K.eq(ax.hi, t), ax.l, f(0)));
    kb.assign(a, K.add(a, K.select(ax.ok, w, f(0))));
  });
  return a;
}

/** Per-RoI geometry (8 f32 per RoI): b (−1 invalid), startH, startW, binH, binW, gh, gw, count. */
const AGEOM = 8;

function alignGeometryKernel(args: LowerArgs, d: RoiDims, p: RoiAlignParams, geom: BufRef): Kernel {
  const kb = new KernelBuilder(`${args.name}_roigeom`);
  const k = threadIndex(kb);
  kb.if(K.lt(k, K.size(d.K)), () => {
    const g = emitAlignGeom(kb, bufOf(args, 1), k, d, p);
    const o = kb.let('go', K.mul(k, u(AGEOM)));
    const vals = [
      K.cast('f32', g.b),
      g.startH,
      g.startW,
      g.binH,
      g.binW,
      K.cast('f32', g.gh),
      K.cast('f32', g.gw),
      g.count,
    ];
    vals.forEach((v, j) => kb.store(geom, K.add(o, u(j)), v));
  });
  return kb.finish([WG, 1, 1], { linear: linearGroups(d.K) });
}

/**
 * Bins [lo, hi) whose samples can reach pixel t: the samples of bin pb lie between start + pb·bin and
 * start + (pb+1)·bin and must be within one pixel of t. One bin of slack each way absorbs rounding; a
 * non-positive bin (aligned, reversed box) gets every bin.
 */
function emitBinRange(kb: KernelBuilder, start: Expr, bin: Expr, t: Expr, P: number): [Expr, Expr] {
  const pos = kb.let('bpos', K.gt(bin, f(1e-20)));
  const safe = kb.let('bsafe', K.select(pos, bin, f(1)));
  const lo = K.call('clamp', K.sub(K.call('floor', K.div(K.sub(K.sub(t, f(1)), start), safe)), f(1)), f(0), f(P));
  const hi = K.call('clamp', K.add(K.call('floor', K.div(K.sub(K.add(t, f(1)), start), safe)), f(2)), f(0), f(P));
  return [kb.let('blo', K.select(pos, K.cast('i32', lo), i(0))), kb.let('bhi', K.select(pos, K.cast('i32', hi), i(P)))];
}

/**
 * d features: (1) per-RoI geometry into a scratch buffer; (2) one thread per input pixel (n, h, w) and
 * block of CHANNEL_BLOCK channels walks the RoIs of image n, skips those whose samples stay more than a
 * pixel away, and for the candidate bins adds dy·A_y(ph)·A_x(pw)/count for each of its channels (the
 * weights are shared by the channels).
 */
function lowerRoiAlignGradFeatures(args: LowerArgs): Kernel[] {
  const d = roiDims(args.inputs[0]?.type, args.inputs[1]?.type);
  const p = roiAlignParams(args.attrs);
  const dy = bufOf(args, 2);
  const out = args.output.buf;
  const geom = args.scratch('f32', dimMax(d.K) * AGEOM);
  const { N, C, H, W } = d;
  const { PH, PW } = p;
  const CB = Math.min(C, CHANNEL_BLOCK);
  const NB = Math.ceil(C / CB);
  const HW = dimMul(H, W);
  const total = dimProd([N, NB, HW]);
  const kb = new KernelBuilder(`${args.name}_roialign_gradx`);
  const idx = threadIndex(kb);
  kb.if(K.lt(idx, K.size(total)), () => {
    const pos = kb.let('pos', K.cast('i32', modD(idx, HW)));
    const nb = kb.let('nb', divD(idx, HW));
    const n = kb.let('n', K.cast('f32', K.div(nb, u(NB))));
    const c0 = kb.let('c0', K.mul(K.mod(nb, u(NB)), u(CB)));
    const h = kb.let('h', K.div(pos, sizeI32(W)));
    const w = kb.let('w', K.mod(pos, sizeI32(W)));
    const hf = kb.let('hf', K.cast('f32', h));
    const wf = kb.let('wf', K.cast('f32', w));
    const acc = kb.array('acc', 'f32', CB, 'private');
    kb.for('j', 0, CB, (j) => kb.astore(acc, j, f(0)));
    kb.for('k', 0, sizeI32(d.K), (k) => {
      const o = kb.let('go', K.mul(K.cast('u32', k), u(AGEOM)));
      const gl = (j: number, name: string): Expr => kb.let(name, K.load(geom, K.add(o, u(j))));
      const b = gl(0, 'gb');
      const startH = gl(1, 'gsh');
      const startW = gl(2, 'gsw');
      const binH = gl(3, 'gbh');
      const binW = gl(4, 'gbw');
      const ghf = gl(5, 'ggh');
      const gwf = gl(6, 'ggw');
      // samples lie between start and start + P·bin; a pixel is touched by samples within one pixel of
      // it (the clamps at 0 and size − 1 included). Half a pixel of slack covers rounding.
      const near = (start: Expr, bin: Expr, P: number, t: Expr): Expr => {
        const end = K.add(start, K.mul(bin, f(P)));
        return K.and(K.le(K.min(start, end), K.add(t, f(1.5))), K.ge(K.max(start, end), K.sub(t, f(1.5))));
      };
      const live = K.and(
        K.and(K.eq(b, n), K.and(K.gt(ghf, f(0)), K.gt(gwf, f(0)))),
        K.and(near(startH, binH, PH, hf), near(startW, binW, PW, wf)),
      );
      kb.if(live, () => {
        const gh = kb.let('gh', K.cast('i32', ghf));
        const gw = kb.let('gw', K.cast('i32', gwf));
        const count = gl(7, 'gcnt');
        const [phLo, phHi] = emitBinRange(kb, startH, binH, hf, PH);
        const [pwLo, pwHi] = emitBinRange(kb, startW, binW, wf, PW);
        const dyBase = kb.let('dyb', K.mul(K.add(K.mul(K.cast('u32', k), u(C)), c0), u(PH * PW)));
        kb.for('ph', phLo, phHi, (ph) => {
          const ay = emitAxisWeight(kb, startH, ph, binH, gh, h, H);
          kb.if(K.ne(ay, f(0)), () => {
            kb.for('pw', pwLo, pwHi, (pw) => {
              const ax = emitAxisWeight(kb, startW, pw, binW, gw, w, W);
              kb.if(K.ne(ax, f(0)), () => {
                const wt = kb.let('wt', K.div(K.mul(ay, ax), count));
                const ob = kb.let('ob', K.add(dyBase, K.cast('u32', K.add(K.mul(ph, i(PW)), pw))));
                kb.for('j', 0, CB, (j) => {
                  const ju = K.cast('u32', j);
                  const add = () =>
                    kb.astore(
                      acc,
                      j,
                      K.add(kb.aload(acc, 'f32', j), K.mul(K.load(dy, K.add(ob, K.mul(ju, u(PH * PW)))), wt)),
                    );
                  if (C % CB === 0) add();
                  else kb.if(K.lt(K.add(c0, ju), u(C)), add);
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
        const nu = K.cast('u32', n);
        const oi = kb.let('oi', K.add(K.mul(K.add(K.mul(nu, u(C)), c), K.size(HW)), K.cast('u32', pos)));
        const v = kb.aload(acc, 'f32', j);
        kb.store(out, oi, args.hasEpilogue ? args.epilogue(v, [nu, c, K.cast('u32', h), K.cast('u32', w)], oi) : v);
      });
    });
  });
  return [alignGeometryKernel(args, d, p, geom), kb.finish([WG, 1, 1], { linear: linearGroups(total) })];
}

function lowerRoiAlignGradRois(args: LowerArgs): Kernel[] {
  const d = roiDims(args.inputs[0]?.type, args.inputs[1]?.type);
  const p = roiAlignParams(args.attrs);
  const x = bufOf(args, 0);
  const rois = bufOf(args, 1);
  const dy = bufOf(args, 2);
  const out = args.output.buf;
  const { C, H, W } = d;
  const { PH, PW } = p;
  // workgroup size: a power of two within the device limits (4 f32 partial sums per thread in shared memory)
  let wg = 1;
  while (
    wg * 2 <= Math.min(256, args.limits.maxComputeInvocationsPerWorkgroup, args.limits.maxComputeWorkgroupSizeX) &&
    wg * 2 * 16 <= args.limits.maxComputeWorkgroupStorageSize
  )
    wg *= 2;
  const kb = new KernelBuilder(`${args.name}_roialign_gradrois`);
  const sums = kb.array('red', 'f32', 4 * wg, 'workgroup');
  const lidx = K.builtin('lidx');
  const wid = kb.let('wid', K.builtin('wg_linear'));
  const kOk = kb.let('kok', K.lt(wid, K.size(d.K)));
  const k = kb.let('k', K.select(kOk, wid, u(0)));
  const g = emitAlignGeom(kb, rois, k, d, p);
  const live = K.and(kOk, K.and(K.ge(g.b, i(0)), K.and(K.gt(g.gh, i(0)), K.gt(g.gw, i(0)))));
  const ghu = kb.let('ghu', K.cast('u32', K.max(g.gh, i(1))));
  const gwu = kb.let('gwu', K.cast('u32', K.max(g.gw, i(1))));
  const items = kb.let('items', K.select(live, K.mul(K.mul(u(C * PH * PW), ghu), gwu), u(0)));
  const sy = kb.var('sy', f(0));
  const ty = kb.var('ty', f(0));
  const sx = kb.var('sx', f(0));
  const tx = kb.var('tx', f(0));
  kb.for(
    'it',
    lidx,
    items,
    (it) => {
      const ix = kb.let('ix', K.mod(it, gwu));
      const r1 = kb.let('r1', K.div(it, gwu));
      const iy = kb.let('iy', K.mod(r1, ghu));
      const r2 = kb.let('r2', K.div(r1, ghu)); // (c·PH + ph)·PW + pw
      const pw = kb.let('pw', K.mod(r2, u(PW)));
      const ph = kb.let('ph', K.mod(K.div(r2, u(PW)), u(PH)));
      const c = kb.let('c', K.div(r2, u(PH * PW)));
      const iyi = K.cast('i32', iy);
      const ixi = K.cast('i32', ix);
      const ay = emitAxis(kb, emitSample(kb, g.startH, K.cast('i32', ph), g.binH, iyi, g.gh), H);
      const ax = emitAxis(kb, emitSample(kb, g.startW, K.cast('i32', pw), g.binW, ixi, g.gw), W);
      kb.if(K.and(ay.ok, ax.ok), () => {
        const base = kb.let('base', K.mul(K.add(K.mul(K.cast('u32', g.b), u(C)), c), K.size(dimMul(H, W))));
        const v = (yy: Expr, xx: Expr): Expr =>
          kb.let('v', K.load(x, K.add(base, K.cast('u32', K.add(K.mul(yy, sizeI32(W)), xx)))));
        const v1 = v(ay.lo, ax.lo);
        const v2 = v(ay.lo, ax.hi);
        const v3 = v(ay.hi, ax.lo);
        const v4 = v(ay.hi, ax.hi);
        const gv = kb.let('gv', K.div(K.load(dy, K.add(K.mul(k, u(C * PH * PW)), r2)), g.count));
        const dby = kb.let(
          'dby',
          K.select(ay.moves, K.mul(gv, K.add(K.mul(ax.hw, K.sub(v3, v1)), K.mul(ax.l, K.sub(v4, v2)))), f(0)),
        );
        const dbx = kb.let(
          'dbx',
          K.select(ax.moves, K.mul(gv, K.add(K.mul(ay.hw, K.sub(v2, v1)), K.mul(ay.l, K.sub(v4, v3)))), f(0)),
        );
        const fy = K.div(K.add(K.cast('f32', ph), K.div(K.add(K.cast('f32', iy), f(0.5)), K.cast('f32', ghu))), f(PH));
        const fx = K.div(K.add(K.cast('f32', pw), K.div(K.add(K.cast('f32', ix), f(0.5)), K.cast('f32', gwu))), f(PW));
        kb.assign(sy, K.add(sy, dby));
        kb.assign(ty, K.add(ty, K.mul(dby, fy)));
        kb.assign(sx, K.add(sx, dbx));
        kb.assign(tx, K.add(tx, K.mul(dbx, fx)));
      });
    },
    { step: wg, t: 'u32' },
  );
  const parts = [sy, ty, sx, tx];
  parts.forEach((v, j) => kb.astore(sums, K.add(lidx, u(j * wg)), v));
  for (let s = wg / 2; s >= 1; s /= 2) {
    kb.barrier();
    kb.if(K.lt(lidx, u(s)), () => {
      for (let j = 0; j < 4; j++) {
        const at = K.add(lidx, u(j * wg));
        kb.astore(sums, at, K.add(kb.aload(sums, 'f32', at), kb.aload(sums, 'f32', K.add(at, u(s)))));
      }
    });
  }
  kb.barrier();
  kb.if(K.and(kOk, K.eq(lidx, u(0))), () => {
    const S = f(Math.fround(p.scale));
    const r = (j: number): Expr => kb.aload(sums, 'f32', u(j * wg));
    const tot = [
      f(0),
      K.mul(S, K.sub(r(2), K.mul(r(3), g.uW))),
      K.mul(S, K.sub(r(0), K.mul(r(1), g.uH))),
      K.mul(S, K.mul(r(3), g.uW)),
      K.mul(S, K.mul(r(1), g.uH)),
    ];
    tot.forEach((v, j) => {
      const o = kb.let('o', K.add(K.mul(k, u(5)), u(j)));
      kb.store(out, o, args.hasEpilogue ? args.epilogue(v, [k, u(j)], o) : v);
    });
  });
  return [kb.finish([wg, 1, 1], { linear: d.K })];
}

// ---------------------------------------------------------------------------------------------
// Registration and DSL helper

registerOp({
  name: 'roi_align',
  kind: 'opaque',
  dynamic: true,
  infer: ([x, rois], attrs) => {
    const d = roiDims(x, rois);
    const p = roiAlignParams(attrs);
    return typeOf([d.K, d.C, p.PH, p.PW], 'f32');
  },
  cpu: ({ inputs, attrs }) => cpuRoiAlign(inputs[0] as RefTensor, inputs[1] as RefTensor, roiAlignParams(attrs)),
  grad: ({ inputs, attrs, dy }) => {
    const ins = [inputs[0] as Tensor, inputs[1] as Tensor, dy];
    return [
      dy.builder.apply('roi_align_grad_features', ins, attrs),
      dy.builder.apply('roi_align_grad_rois', ins, attrs),
    ];
  },
  lower: lowerRoiAlign,
});

registerOp({
  name: 'roi_align_grad_features',
  kind: 'opaque',
  dynamic: true,
  infer: roiGradInfer(roiAlignParams, (d) => [d.N, d.C, d.H, d.W]),
  cpu: ({ inputs, attrs }) =>
    cpuRoiAlignGradFeatures(
      inputs[0] as RefTensor,
      inputs[1] as RefTensor,
      inputs[2] as RefTensor,
      roiAlignParams(attrs),
    ),
  lower: lowerRoiAlignGradFeatures,
});

registerOp({
  name: 'roi_align_grad_rois',
  kind: 'opaque',
  dynamic: true,
  infer: roiGradInfer(roiAlignParams, (d) => [d.K, 5]),
  cpu: ({ inputs, attrs }) =>
    cpuRoiAlignGradRois(inputs[0] as RefTensor, inputs[1] as RefTensor, inputs[2] as RefTensor, roiAlignParams(attrs)),
  lower: lowerRoiAlignGradRois,
});

export interface RoiAlignOptions {
  /** Output size (PH, PW), or one number for both. */
  readonly outputSize: number | readonly [number, number];
  /** Box coordinates are multiplied by this. Default 1. */
  readonly spatialScale?: number;
  /** Samples per bin along each axis; ≤ 0 (default −1): adaptive ceil(roi / output size). */
  readonly samplingRatio?: number;
  /** Pixel-centre alignment (shift by −0.5). Default false (torchvision's default). */
  readonly aligned?: boolean;
}

/** roi_align attributes from torchvision-style options. */
export function roiAlignAttrs(opts: RoiAlignOptions): Attrs {
  const [pooledH, pooledW] = outputPair(opts.outputSize);
  return {
    pooledH,
    pooledW,
    spatialScale: opts.spatialScale ?? 1,
    samplingRatio: opts.samplingRatio ?? -1,
    aligned: opts.aligned ?? false,
  };
}

/** DSL: RoIAlign of features f32 [N,C,H,W] over rois f32 [K,5] → f32 [K,C,PH,PW] (differentiable in both). */
export function roiAlign(features: Tensor, rois: Tensor, opts: RoiAlignOptions): Tensor {
  return features.builder.apply('roi_align', [features, rois], roiAlignAttrs(opts));
}
