/**
 * Box ops for detection (Faster R-CNN, spec §2, §3, §9). Boxes are [N,4] f32 rows (x1, y1, x2, y2).
 *
 * Conventions: torchvision's by default (continuous coordinates, width = x2 − x1); `plusOne: true`
 * selects py-faster-rcnn's inclusive pixel convention (width = x2 − x1 + 1) where the spec lists it.
 *
 * Ops (each one kernel, one thread per output row or pair):
 * - box_iou(a [N,4], b [M,4]) → [N,M]   TV: inter/union, so 0/0 (two zero-area boxes) is NaN, as in
 *   torchvision; plusOne (PFR bbox_overlaps): 0 whenever the boxes do not overlap (no NaN).
 * - box_area(b [N,4]) → [N]
 * - box_encode(anchors [N,4], gt [N,4]) → deltas [N,4]       {weights, plusOne}
 * - box_decode(anchors [N,4], deltas [N,4K]) → boxes [N,4K]  {weights, clampLog, plusOne}
 *   (the DSL helpers take torchvision's order: encodeBoxes(gt, anchors), decodeBoxes(deltas, anchors),
 *   and the clamp as `bboxXformClip`)
 * - box_convert(b [N,4]) → [N,4]                              {from, to} ∈ xyxy | xywh | cxcywh
 * - small_box_mask(b [N,4]) → u32 [N] (1 = keep: w ≥ minSize and h ≥ minSize) {minSize, plusOne}
 * and the DSL helper clipBoxes ([N,4] or [N,4K]; elementwise maximum/minimum, fuses with its neighbours).
 *
 * Gradients: box_iou, box_area, box_encode, box_decode and box_convert are differentiable. Each
 * forward op has its own kernel; its gradient rule rebuilds the same formula from elementwise DSL
 * ops (the "composite" functions below) and differentiates that with autodiff (a vector-Jacobian
 * product seeded with dy). The composites are tested against the kernels' CPU references.
 * decode: the upper clamp on dw/dh (TV's ln(1000/16)) makes the gradient 0 above the clamp (½ exactly at it).
 */
import { grad } from '../compiler/autodiff.js';
import { type Dim, dimProd } from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import type { Expr } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type GradArgs, type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { GraphBuilder, Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtType, numel, sameDims, type TensorType, typeOf } from '../compiler/types.js';
import { type Box, iouF64 } from './kit/iou.js';
import { perThread } from './kit/launch.js';
import { storeOut } from './kit/store.js';

// ---------------------------------------------------------------- attributes

/** TV's BoxCoder clamp: dw, dh ≤ ln(1000/16). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

export type BoxFormat = 'xyxy' | 'xywh' | 'cxcywh';
const FORMATS: readonly BoxFormat[] = ['xyxy', 'xywh', 'cxcywh'];

function plusOneOf(attrs: Attrs): boolean {
  const v = attrs.plusOne ?? false;
  if (typeof v !== 'boolean') fail(`attribute plusOne must be a boolean, got ${fmtValue(v)}`);
  return v;
}

/** [wx, wy, ww, wh], default [1,1,1,1]; must be finite and nonzero. */
function weightsOf(attrs: Attrs): [number, number, number, number] {
  const v = attrs.weights ?? [1, 1, 1, 1];
  if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x !== 0)) {
    fail(`attribute weights must be 4 finite nonzero numbers [wx, wy, ww, wh], got ${fmtValue(v)}`);
  }
  return v as [number, number, number, number];
}

/** Upper clamp on dw/dh after dividing by the weights; null = no clamp (PFR). Default: TV's ln(1000/16). */
function clampOf(attrs: Attrs): number | null {
  const v = attrs.clampLog === undefined ? BBOX_XFORM_CLIP : attrs.clampLog;
  if (v !== null && (typeof v !== 'number' || Number.isNaN(v)))
    fail(`attribute clampLog must be a number or null, got ${fmtValue(v)}`);
  return v;
}

function formatOf(attrs: Attrs, key: 'from' | 'to'): BoxFormat {
  const v = attrs[key];
  if (typeof v !== 'string' || !(FORMATS as readonly string[]).includes(v)) {
    fail(`attribute ${key} must be one of ${FORMATS.join(', ')}, got ${fmtValue(v)}`);
  }
  return v as BoxFormat;
}

function minSizeOf(attrs: Attrs): number {
  const v = attrs.minSize;
  if (typeof v !== 'number' || Number.isNaN(v)) fail(`attribute minSize must be a number, got ${fmtValue(v)}`);
  return v;
}

/**
 * Checks a boxes input: f32 [N,4] (or [N,4K] with `perClass`; 4K is a static size). Returns N, which may
 * be a run-time size.
 */
export function checkBoxes(t: TensorType | undefined, what: string, perClass = false): Dim {
  if (!t) fail(`missing input ${what}`);
  const dims = dimsOf(t);
  const width = dims[1];
  const ok =
    t.dtype === 'f32' &&
    dims.length === 2 &&
    typeof width === 'number' &&
    (perClass ? width % 4 === 0 && width > 0 : width === 4);
  if (!ok) fail(`${what} must be f32 [N,${perClass ? '4K' : '4'}] boxes (x1,y1,x2,y2), got ${fmtType(t)}`);
  return dims[0] as Dim;
}

/** The row count N of a lowered boxes input (a size expression where N is a run-time size). */
const rowsOf = (t: TensorType): Dim => dimsOf(t)[0] as Dim;

// ---------------------------------------------------------------- kernel helpers

/** Loads the 4 consecutive values at flat index `base` (u32) of a buffer into fresh variables. */
function loadRow(kb: K.KernelBuilder, buf: LowerArgs['output']['buf'], base: Expr, name: string): Expr[] {
  return [0, 1, 2, 3].map((c) => kb.let(`${name}${c}`, K.load(buf, c === 0 ? base : K.add(base, K.u32(c)))));
}

const half = (e: Expr): Expr => K.mul(e, K.f32(0.5));

/** width or height: hi − lo (+1 for PFR). */
function extent(lo: Expr, hi: Expr, plusOne: boolean): Expr {
  const d = K.sub(hi, lo);
  return plusOne ? K.add(d, K.f32(1)) : d;
}

// ---------------------------------------------------------------- float64 references

const rowOf = (d: Float64Array, i: number, stride = 4, col = 0): Box => {
  const o = i * stride + col;
  return [d[o] as number, d[o + 1] as number, d[o + 2] as number, d[o + 3] as number];
};

function encodeRef(a: Box, g: Box, wts: readonly number[], plusOne: boolean): number[] {
  const off = plusOne ? 1 : 0;
  const aw = a[2] - a[0] + off;
  const ah = a[3] - a[1] + off;
  const acx = a[0] + 0.5 * aw;
  const acy = a[1] + 0.5 * ah;
  const gw = g[2] - g[0] + off;
  const gh = g[3] - g[1] + off;
  const gcx = g[0] + 0.5 * gw;
  const gcy = g[1] + 0.5 * gh;
  const [wx, wy, ww, wh] = wts as [number, number, number, number];
  return [(wx * (gcx - acx)) / aw, (wy * (gcy - acy)) / ah, ww * Math.log(gw / aw), wh * Math.log(gh / ah)];
}

function decodeRef(a: Box, d: Box, wts: readonly number[], clamp: number | null, plusOne: boolean): number[] {
  const off = plusOne ? 1 : 0;
  const aw = a[2] - a[0] + off;
  const ah = a[3] - a[1] + off;
  const acx = a[0] + 0.5 * aw;
  const acy = a[1] + 0.5 * ah;
  const [wx, wy, ww, wh] = wts as [number, number, number, number];
  const dx = d[0] / wx;
  const dy = d[1] / wy;
  let dw = d[2] / ww;
  let dh = d[3] / wh;
  if (clamp !== null) {
    dw = Math.min(dw, clamp);
    dh = Math.min(dh, clamp);
  }
  const pcx = dx * aw + acx;
  const pcy = dy * ah + acy;
  const pw = Math.exp(dw) * aw;
  const ph = Math.exp(dh) * ah;
  return [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph];
}

/** torchvision box_convert: same format → copy; otherwise through xyxy. */
function convertRef(b: Box, from: BoxFormat, to: BoxFormat): number[] {
  if (from === to) return [...b];
  let x: Box = b;
  if (from === 'xywh') x = [b[0], b[1], b[0] + b[2], b[1] + b[3]];
  else if (from === 'cxcywh') x = [b[0] - 0.5 * b[2], b[1] - 0.5 * b[3], b[0] + 0.5 * b[2], b[1] + 0.5 * b[3]];
  if (to === 'xywh') return [x[0], x[1], x[2] - x[0], x[3] - x[1]];
  if (to === 'cxcywh') return [(x[0] + x[2]) / 2, (x[1] + x[3]) / 2, x[2] - x[0], x[3] - x[1]];
  return [...x];
}

// ---------------------------------------------------------------- composites (for gradients)

/** Column range [from, to) of the last axis. */
function cols(t: Tensor, from: number, to: number): Tensor {
  return t.slice(
    t.shape.map((_, i) => (i === t.rank - 1 ? from : 0)),
    t.shape.map((d, i) => (i === t.rank - 1 ? to : d)),
  );
}

/** Splits [N,4] boxes into (lo, hi) = ((x1,y1), (x2,y2)), each [N,2]. */
function loHi(b: Tensor): [Tensor, Tensor] {
  return [cols(b, 0, 2), cols(b, 2, 4)];
}

const sizeOf = (lo: Tensor, hi: Tensor, plusOne: boolean): Tensor => (plusOne ? hi.sub(lo).add(1) : hi.sub(lo));

/** box_iou from elementwise ops on broadcast [N,M,2] tensors. */
export function boxIouComposite(a: Tensor, b: Tensor, plusOne: boolean): Tensor {
  const n = a.dims[0] as Dim;
  const m = b.dims[0] as Dim;
  const [la, ha] = loHi(a);
  const [lb, hb] = loHi(b);
  const whA = sizeOf(la, ha, plusOne);
  const whB = sizeOf(lb, hb, plusOne);
  const areaA = cols(whA, 0, 1)
    .mul(cols(whA, 1, 2))
    .reshape([n, 1]);
  const areaB = cols(whB, 0, 1)
    .mul(cols(whB, 1, 2))
    .reshape([1, m]);
  const lt = la.reshape([n, 1, 2]).maximum(lb.reshape([1, m, 2]));
  const rb = ha.reshape([n, 1, 2]).minimum(hb.reshape([1, m, 2]));
  const wh = sizeOf(lt, rb, plusOne).relu();
  const inter = cols(wh, 0, 1)
    .mul(cols(wh, 1, 2))
    .reshape([n, m]);
  const iou = inter.div(areaA.add(areaB).sub(inter));
  return plusOne ? a.builder.where(inter.gt(0), iou, 0) : iou;
}

export function boxAreaComposite(b: Tensor, plusOne: boolean): Tensor {
  const [lo, hi] = loHi(b);
  const wh = sizeOf(lo, hi, plusOne);
  return cols(wh, 0, 1)
    .mul(cols(wh, 1, 2))
    .reshape([b.dims[0] as Dim]);
}

/** (centre, size) of [N,4] boxes, each [N,2]. */
function centreSize(b: Tensor, plusOne: boolean): [Tensor, Tensor] {
  const [lo, hi] = loHi(b);
  const wh = sizeOf(lo, hi, plusOne);
  return [lo.add(wh.mul(0.5)), wh];
}

export function boxEncodeComposite(anchors: Tensor, gt: Tensor, weights: readonly number[], plusOne: boolean): Tensor {
  const g = anchors.builder;
  const [ac, aw] = centreSize(anchors, plusOne);
  const [gc, gw] = centreSize(gt, plusOne);
  const wxy = g.constant([weights[0] as number, weights[1] as number], [2]);
  const wwh = g.constant([weights[2] as number, weights[3] as number], [2]);
  const txy = wxy.mul(gc.sub(ac)).div(aw);
  const twh = wwh.mul(gw.div(aw).log());
  return g.concat([txy, twh], 1);
}

export function boxDecodeComposite(
  anchors: Tensor,
  deltas: Tensor,
  weights: readonly number[],
  clampLog: number | null,
  plusOne: boolean,
): Tensor {
  const g = anchors.builder;
  const n = anchors.dims[0] as Dim;
  const k = (deltas.shape[1] as number) / 4;
  const [ac, aw] = centreSize(anchors, plusOne);
  const acr = ac.reshape([n, 1, 2]);
  const awr = aw.reshape([n, 1, 2]);
  const d = deltas.reshape([n, k, 4]);
  const wxy = g.constant([weights[0] as number, weights[1] as number], [2]);
  const wwh = g.constant([weights[2] as number, weights[3] as number], [2]);
  const dxy = cols(d, 0, 2).div(wxy);
  let dwh = cols(d, 2, 4).div(wwh);
  if (clampLog !== null) dwh = dwh.minimum(clampLog);
  const pc = dxy.mul(awr).add(acr);
  const pwh = dwh.exp().mul(awr).mul(0.5);
  return g.concat([pc.sub(pwh), pc.add(pwh)], 2).reshape([n, 4 * k]);
}

/** torchvision box_convert from elementwise ops (through xyxy, as TV does). */
export function boxConvertComposite(b: Tensor, from: BoxFormat, to: BoxFormat): Tensor {
  const g = b.builder;
  if (from === to) return b.reshape(b.dims);
  let lo = cols(b, 0, 2);
  let hi = cols(b, 2, 4);
  if (from === 'xywh') hi = lo.add(hi);
  else if (from === 'cxcywh') [lo, hi] = [lo.sub(hi.mul(0.5)), lo.add(hi.mul(0.5))];
  if (to === 'xywh') return g.concat([lo, hi.sub(lo)], 1);
  if (to === 'cxcywh') return g.concat([lo.add(hi).div(2), hi.sub(lo)], 1);
  return g.concat([lo, hi], 1);
}

/**
 * Vector-Jacobian product of `f` at `inputs`, seeded with `dy`. Each input is first wrapped in its
 * own identity view, so an input passed twice (box_iou(x, x)) gets each use's share only.
 */
function compositeVjp(inputs: readonly Tensor[], dy: Tensor, f: (xs: Tensor[]) => Tensor): (Tensor | null)[] {
  const proxies = inputs.map((t) => t.reshape(t.dims));
  return grad(f(proxies), proxies, dy);
}

// ---------------------------------------------------------------- box_iou

registerOp({
  name: 'box_iou',
  kind: 'opaque',
  dynamic: true,
  infer: ([a, b], attrs) => {
    plusOneOf(attrs);
    const n = checkBoxes(a, 'boxes1');
    const m = checkBoxes(b, 'boxes2');
    return typeOf([n, m], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [a, b] = inputs as [RefTensor, RefTensor];
    const plusOne = plusOneOf(attrs);
    const n = a.shape[0] as number;
    const m = b.shape[0] as number;
    const out = new Float64Array(n * m);
    for (let i = 0; i < n; i++) {
      const ra = rowOf(a.data, i);
      for (let j = 0; j < m; j++) out[i * m + j] = iouF64(ra, rowOf(b.data, j), plusOne);
    }
    return out;
  },
  grad: ({ inputs, attrs, dy }: GradArgs) => {
    const plusOne = plusOneOf(attrs);
    return compositeVjp(inputs, dy, ([a, b]) => boxIouComposite(a as Tensor, b as Tensor, plusOne));
  },
  lower: (a) => {
    const [ba, bb] = a.inputs as [LowerArgs['output'], LowerArgs['output']];
    const plusOne = plusOneOf(a.attrs);
    const n = rowsOf(ba.type);
    const m = rowsOf(bb.type);
    return [
      perThread(a.name, dimProd([n, m]), (kb, t) => {
        const i = m === 1 ? t : kb.let('i', K.div(t, K.size(m)));
        const j = m === 1 ? K.u32(0) : kb.let('j', K.mod(t, K.size(m)));
        const p = loadRow(kb, ba.buf, K.mul(i, K.u32(4)), 'a');
        const q = loadRow(kb, bb.buf, K.mul(j, K.u32(4)), 'b');
        const [a0, a1, a2, a3] = p as [Expr, Expr, Expr, Expr];
        const [b0, b1, b2, b3] = q as [Expr, Expr, Expr, Expr];
        const areaA = kb.let('areaA', K.mul(extent(a0, a2, plusOne), extent(a1, a3, plusOne)));
        const areaB = kb.let('areaB', K.mul(extent(b0, b2, plusOne), extent(b1, b3, plusOne)));
        const w = kb.let('w', K.max(extent(K.max(a0, b0), K.min(a2, b2), plusOne), K.f32(0)));
        const h = kb.let('h', K.max(extent(K.max(a1, b1), K.min(a3, b3), plusOne), K.f32(0)));
        const inter = kb.let('inter', K.mul(w, h));
        const union = kb.let('union', K.sub(K.add(areaA, areaB), inter));
        // TV: inter/union, NaN for 0/0 (written explicitly: WGSL leaves x/0 implementation-defined).
        // PFR: 0 unless the boxes overlap (bbox_overlaps never divides then).
        const q0 = K.div(inter, union);
        const v = plusOne
          ? K.select(K.gt(inter, K.f32(0)), q0, K.f32(0))
          : K.select(K.eq(union, K.f32(0)), K.f32(Number.NaN), q0);
        storeOut(kb, a, t, v);
      }),
    ];
  },
});

// ---------------------------------------------------------------- box_area

registerOp({
  name: 'box_area',
  kind: 'opaque',
  dynamic: true,
  infer: ([b], attrs) => {
    plusOneOf(attrs);
    return typeOf([checkBoxes(b, 'boxes')], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const b = inputs[0] as RefTensor;
    const off = plusOneOf(attrs) ? 1 : 0;
    const n = b.shape[0] as number;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const r = rowOf(b.data, i);
      out[i] = (r[2] - r[0] + off) * (r[3] - r[1] + off);
    }
    return out;
  },
  grad: ({ inputs, attrs, dy }) => {
    const plusOne = plusOneOf(attrs);
    return compositeVjp(inputs, dy, ([b]) => boxAreaComposite(b as Tensor, plusOne));
  },
  lower: (a) => {
    const b = a.inputs[0] as LowerArgs['output'];
    const plusOne = plusOneOf(a.attrs);
    return [
      perThread(a.name, rowsOf(b.type), (kb, t) => {
        const [x1, y1, x2, y2] = loadRow(kb, b.buf, K.mul(t, K.u32(4)), 'b') as [Expr, Expr, Expr, Expr];
        storeOut(kb, a, t, K.mul(extent(x1, x2, plusOne), extent(y1, y2, plusOne)));
      }),
    ];
  },
});

// ---------------------------------------------------------------- box_encode

/** Centre and size of a box row in the kernel: [cx, cy, w, h]. */
function centreSizeK(kb: K.KernelBuilder, r: readonly Expr[], plusOne: boolean, name: string): Expr[] {
  const [x1, y1, x2, y2] = r as [Expr, Expr, Expr, Expr];
  const w = kb.let(`${name}w`, extent(x1, x2, plusOne));
  const h = kb.let(`${name}h`, extent(y1, y2, plusOne));
  return [kb.let(`${name}cx`, K.add(x1, half(w))), kb.let(`${name}cy`, K.add(y1, half(h))), w, h];
}

registerOp({
  name: 'box_encode',
  kind: 'opaque',
  dynamic: true,
  infer: ([a, g], attrs) => {
    plusOneOf(attrs);
    weightsOf(attrs);
    const n = checkBoxes(a, 'anchors');
    const m = checkBoxes(g, 'gt');
    if (!sameDims([n], [m]))
      fail(
        `anchors and gt must have the same number of rows, got ${fmtType(a as TensorType)} and ${fmtType(g as TensorType)}`,
      );
    return typeOf([n, 4], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [a, g] = inputs as [RefTensor, RefTensor];
    const plusOne = plusOneOf(attrs);
    const w = weightsOf(attrs);
    const n = a.shape[0] as number;
    const out = new Float64Array(n * 4);
    for (let i = 0; i < n; i++) out.set(encodeRef(rowOf(a.data, i), rowOf(g.data, i), w, plusOne), i * 4);
    return out;
  },
  grad: ({ inputs, attrs, dy }) => {
    const plusOne = plusOneOf(attrs);
    const w = weightsOf(attrs);
    return compositeVjp(inputs, dy, ([a, g]) => boxEncodeComposite(a as Tensor, g as Tensor, w, plusOne));
  },
  lower: (a) => {
    const [ba, bg] = a.inputs as [LowerArgs['output'], LowerArgs['output']];
    const plusOne = plusOneOf(a.attrs);
    const [wx, wy, ww, wh] = weightsOf(a.attrs);
    return [
      perThread(a.name, rowsOf(ba.type), (kb, t) => {
        const base = kb.let('base', K.mul(t, K.u32(4)));
        const [acx, acy, aw, ah] = centreSizeK(kb, loadRow(kb, ba.buf, base, 'a'), plusOne, 'a') as [
          Expr,
          Expr,
          Expr,
          Expr,
        ];
        const [gcx, gcy, gw, gh] = centreSizeK(kb, loadRow(kb, bg.buf, base, 'g'), plusOne, 'g') as [
          Expr,
          Expr,
          Expr,
          Expr,
        ];
        const vals = [
          K.div(K.mul(K.f32(wx), K.sub(gcx, acx)), aw),
          K.div(K.mul(K.f32(wy), K.sub(gcy, acy)), ah),
          K.mul(K.f32(ww), K.log(K.div(gw, aw))),
          K.mul(K.f32(wh), K.log(K.div(gh, ah))),
        ];
        vals.forEach((v, c) => storeOut(kb, a, c === 0 ? base : K.add(base, K.u32(c)), v));
      }),
    ];
  },
});

// ---------------------------------------------------------------- box_decode

registerOp({
  name: 'box_decode',
  kind: 'opaque',
  dynamic: true,
  infer: ([a, d], attrs) => {
    plusOneOf(attrs);
    weightsOf(attrs);
    clampOf(attrs);
    const n = checkBoxes(a, 'anchors');
    const m = checkBoxes(d, 'deltas', true);
    if (!sameDims([n], [m]))
      fail(
        `anchors and deltas must have the same number of rows, got ${fmtType(a as TensorType)} and ${fmtType(d as TensorType)}`,
      );
    return typeOf(dimsOf(d as TensorType), 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [a, d] = inputs as [RefTensor, RefTensor];
    const plusOne = plusOneOf(attrs);
    const w = weightsOf(attrs);
    const clamp = clampOf(attrs);
    const n = a.shape[0] as number;
    const width = d.shape[1] as number;
    const out = new Float64Array(n * width);
    for (let i = 0; i < n; i++) {
      const ra = rowOf(a.data, i);
      for (let c = 0; c < width; c += 4)
        out.set(decodeRef(ra, rowOf(d.data, i, width, c), w, clamp, plusOne), i * width + c);
    }
    return out;
  },
  grad: ({ inputs, attrs, dy }) => {
    const plusOne = plusOneOf(attrs);
    const w = weightsOf(attrs);
    const clamp = clampOf(attrs);
    return compositeVjp(inputs, dy, ([a, d]) => boxDecodeComposite(a as Tensor, d as Tensor, w, clamp, plusOne));
  },
  lower: (a) => {
    const [ba, bd] = a.inputs as [LowerArgs['output'], LowerArgs['output']];
    const plusOne = plusOneOf(a.attrs);
    const [wx, wy, ww, wh] = weightsOf(a.attrs);
    const clamp = clampOf(a.attrs);
    const n = rowsOf(ba.type);
    const k = (bd.type.shape[1] as number) / 4;
    // one thread per (row, class): t = row·K + class; its 4 deltas start at 4t
    return [
      perThread(a.name, dimProd([n, k]), (kb, t) => {
        const row = k === 1 ? t : kb.let('row', K.div(t, K.u32(k)));
        const [acx, acy, aw, ah] = centreSizeK(kb, loadRow(kb, ba.buf, K.mul(row, K.u32(4)), 'a'), plusOne, 'a') as [
          Expr,
          Expr,
          Expr,
          Expr,
        ];
        const base = kb.let('base', K.mul(t, K.u32(4)));
        const [d0, d1, d2, d3] = loadRow(kb, bd.buf, base, 'd') as [Expr, Expr, Expr, Expr];
        const lim = (e: Expr): Expr => (clamp === null ? e : K.min(e, K.f32(clamp)));
        const pcx = kb.let('pcx', K.add(K.mul(K.div(d0, K.f32(wx)), aw), acx));
        const pcy = kb.let('pcy', K.add(K.mul(K.div(d1, K.f32(wy)), ah), acy));
        const pw = kb.let('pw', K.mul(K.exp(lim(K.div(d2, K.f32(ww)))), aw));
        const ph = kb.let('ph', K.mul(K.exp(lim(K.div(d3, K.f32(wh)))), ah));
        const vals = [K.sub(pcx, half(pw)), K.sub(pcy, half(ph)), K.add(pcx, half(pw)), K.add(pcy, half(ph))];
        vals.forEach((v, c) => storeOut(kb, a, c === 0 ? base : K.add(base, K.u32(c)), v));
      }),
    ];
  },
});

// ---------------------------------------------------------------- box_convert

registerOp({
  name: 'box_convert',
  kind: 'opaque',
  dynamic: true,
  infer: ([b], attrs) => {
    formatOf(attrs, 'from');
    formatOf(attrs, 'to');
    return typeOf([checkBoxes(b, 'boxes'), 4], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const b = inputs[0] as RefTensor;
    const from = formatOf(attrs, 'from');
    const to = formatOf(attrs, 'to');
    const n = b.shape[0] as number;
    const out = new Float64Array(n * 4);
    for (let i = 0; i < n; i++) out.set(convertRef(rowOf(b.data, i), from, to), i * 4);
    return out;
  },
  grad: ({ inputs, attrs, dy }) => {
    const from = formatOf(attrs, 'from');
    const to = formatOf(attrs, 'to');
    return compositeVjp(inputs, dy, ([b]) => boxConvertComposite(b as Tensor, from, to));
  },
  lower: (a) => {
    const b = a.inputs[0] as LowerArgs['output'];
    const from = formatOf(a.attrs, 'from');
    const to = formatOf(a.attrs, 'to');
    return [
      perThread(a.name, rowsOf(b.type), (kb, t) => {
        const base = kb.let('base', K.mul(t, K.u32(4)));
        const r = loadRow(kb, b.buf, base, 'b') as [Expr, Expr, Expr, Expr];
        let vals: Expr[] = r;
        if (from !== to) {
          let x: Expr[] = r;
          if (from === 'xywh') x = [r[0], r[1], K.add(r[0], r[2]), K.add(r[1], r[3])];
          else if (from === 'cxcywh') {
            const hw = kb.let('hw', half(r[2]));
            const hh = kb.let('hh', half(r[3]));
            x = [K.sub(r[0], hw), K.sub(r[1], hh), K.add(r[0], hw), K.add(r[1], hh)];
          }
          const xs = x.map((e, c) => kb.let(`x${c}`, e)) as [Expr, Expr, Expr, Expr];
          if (to === 'xywh') vals = [xs[0], xs[1], K.sub(xs[2], xs[0]), K.sub(xs[3], xs[1])];
          else if (to === 'cxcywh')
            vals = [
              K.div(K.add(xs[0], xs[2]), K.f32(2)),
              K.div(K.add(xs[1], xs[3]), K.f32(2)),
              K.sub(xs[2], xs[0]),
              K.sub(xs[3], xs[1]),
            ];
          else vals = xs;
        }
        vals.forEach((v, c) => storeOut(kb, a, c === 0 ? base : K.add(base, K.u32(c)), v));
      }),
    ];
  },
});

// ---------------------------------------------------------------- small_box_mask

registerOp({
  name: 'small_box_mask',
  kind: 'opaque',
  dynamic: true,
  infer: ([b], attrs) => {
    plusOneOf(attrs);
    minSizeOf(attrs);
    return typeOf([checkBoxes(b, 'boxes')], 'u32');
  },
  cpu: ({ inputs, attrs }) => {
    const b = inputs[0] as RefTensor;
    const off = plusOneOf(attrs) ? 1 : 0;
    const m = minSizeOf(attrs);
    const n = b.shape[0] as number;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const r = rowOf(b.data, i);
      out[i] = r[2] - r[0] + off >= m && r[3] - r[1] + off >= m ? 1 : 0;
    }
    return out;
  },
  lower: (a) => {
    const b = a.inputs[0] as LowerArgs['output'];
    const plusOne = plusOneOf(a.attrs);
    const m = K.f32(minSizeOf(a.attrs));
    return [
      perThread(a.name, rowsOf(b.type), (kb, t) => {
        const [x1, y1, x2, y2] = loadRow(kb, b.buf, K.mul(t, K.u32(4)), 'b') as [Expr, Expr, Expr, Expr];
        const keep = K.and(K.ge(extent(x1, x2, plusOne), m), K.ge(extent(y1, y2, plusOne), m));
        storeOut(kb, a, t, K.select(keep, K.u32(1), K.u32(0)));
      }),
    ];
  },
});

// ---------------------------------------------------------------- DSL helpers

export interface CodingOptions {
  /** Weights (wx, wy, ww, wh): TV RPN (1,1,1,1), RoI head (10,10,5,5) ≡ PFR target std (0.1,0.1,0.2,0.2). */
  readonly weights?: readonly [number, number, number, number];
  /** PFR's inclusive-pixel widths (x2 − x1 + 1). */
  readonly plusOne?: boolean;
}

export interface DecodeOptions extends CodingOptions {
  /**
   * torchvision's `bbox_xform_clip`: upper clamp on dw, dh (after the weights), ln(1000/16) by default;
   * null for none (PFR).
   */
  readonly bboxXformClip?: number | null;
}

/** IoU matrix [N,M] of boxes a [N,4] and b [M,4]. */
export function boxIou(a: Tensor, b: Tensor, opts: { plusOne?: boolean } = {}): Tensor {
  return a.builder.apply('box_iou', [a, b], { plusOne: opts.plusOne ?? false });
}

export function boxArea(b: Tensor, opts: { plusOne?: boolean } = {}): Tensor {
  return b.builder.apply('box_area', [b], { plusOne: opts.plusOne ?? false });
}

/**
 * torchvision's `BoxCoder.encode(reference_boxes, proposals)`: the regression targets [N,4] of the
 * reference boxes (ground truth) [N,4] relative to the proposals (anchors) [N,4].
 */
export function encodeBoxes(referenceBoxes: Tensor, proposals: Tensor, opts: CodingOptions = {}): Tensor {
  return proposals.builder.apply('box_encode', [proposals, referenceBoxes], {
    weights: [...(opts.weights ?? [1, 1, 1, 1])],
    plusOne: opts.plusOne ?? false,
  });
}

/**
 * torchvision's `BoxCoder.decode(rel_codes, boxes)`: boxes [N,4K] from the deltas `relCodes` [N,4K]
 * (K = 1, or one set per class) applied to `boxes` [N,4] (anchors or proposals).
 */
export function decodeBoxes(relCodes: Tensor, boxes: Tensor, opts: DecodeOptions = {}): Tensor {
  return boxes.builder.apply('box_decode', [boxes, relCodes], {
    weights: [...(opts.weights ?? [1, 1, 1, 1])],
    clampLog: opts.bboxXformClip === undefined ? BBOX_XFORM_CLIP : opts.bboxXformClip,
    plusOne: opts.plusOne ?? false,
  });
}

export function boxConvert(b: Tensor, from: BoxFormat, to: BoxFormat): Tensor {
  return b.builder.apply('box_convert', [b], { from, to });
}

/** u32 [N]: 1 where w ≥ minSize and h ≥ minSize (TV remove_small_boxes; PFR _filter_boxes with plusOne). */
export function smallBoxMask(b: Tensor, minSize: number, opts: { plusOne?: boolean } = {}): Tensor {
  return b.builder.apply('small_box_mask', [b], { minSize, plusOne: opts.plusOne ?? false });
}

/**
 * Clips boxes [N,4], or per-class boxes [N,4K] (as decodeBoxes gives), to an image: x to [0, W], y to
 * [0, H] (TV clip_boxes_to_image), or to [0, W−1] × [0, H−1] with plusOne (PFR clip_boxes). `size` is
 * [H, W] numbers or an f32 [2] tensor (H, W). Built from elementwise maximum/minimum, so it fuses; the
 * gradient passes inside the range, is 0 outside and ½ exactly on a bound (maximum/minimum split ties;
 * torch.clamp gives 1 there).
 */
export function clipBoxes(
  b: Tensor,
  size: readonly [number, number] | Tensor,
  opts: { plusOne?: boolean } = {},
): Tensor {
  const n = checkClipInput(b);
  const k = (b.shape[1] as number) / 4;
  if (k > 1) return clipBoxes(b.reshape([n * k, 4]), size, opts).reshape([n, 4 * k]);
  const g: GraphBuilder = b.builder;
  const off = opts.plusOne ? 1 : 0;
  let hi: Tensor;
  if (Array.isArray(size)) {
    const [h, w] = size as readonly [number, number];
    hi = g.constant([w - off, h - off, w - off, h - off], [4]);
  } else {
    const s = size as Tensor;
    if (s.dtype !== 'f32' || numel(s.shape) !== 2) {
      throw new WgflowError(`clipBoxes: size must be an f32 [2] tensor (H, W), got ${fmtType(s.type)}`);
    }
    hi = s.reshape([2]).gather(g.constant([1, 0, 1, 0], [4], 'i32'));
    if (off) hi = hi.sub(off);
  }
  return b.maximum(0).minimum(hi);
}

/** N of boxes [N,4K] for clipBoxes (any float dtype the elementwise ops take). */
function checkClipInput(b: Tensor): number {
  const cols = b.shape[1] as number;
  if (b.rank !== 2 || cols % 4 !== 0 || cols === 0)
    throw new WgflowError(`clipBoxes: boxes must be [N,4] or [N,4K], got ${fmtType(b.type)}`);
  return b.shape[0] as number;
}
