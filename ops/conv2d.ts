/**
 * 2-D convolution, NCHW input and OIHW weight (I = C / groups), with stride, padding, dilation and
 * groups. The kernel is an implicit GEMM on the tiled, register-blocked generator of matmul.ts:
 * per group g, M = N·OH·OW rows, Og = O/groups columns and K = Cg·KH·KW, where the A tile (the
 * im2col matrix) is gathered from x on the fly while it is staged. The fused elementwise epilogue
 * is applied at the store, so conv + bias + ReLU is one dispatch.
 */
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { Expr } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { fmtShape, type Shape, type TensorType } from '../compiler/types.js';
import { chooseTile, divC, gemmKernel, modC } from './matmul.js';

export interface Conv2dAttrs {
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  readonly dh: number;
  readonly dw: number;
  readonly groups: number;
}

/** Output extent along one axis: floor((in + 2·pad − dil·(k−1) − 1) / stride) + 1 (≤ 0 when the kernel does not fit). */
export function conv2dOutSize(inSize: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((inSize + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}

function pairOf(attrs: Attrs, key: string, min: number): [number, number] {
  const v = attrs[key];
  if (
    !Array.isArray(v) ||
    v.length !== 2 ||
    !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= min)
  ) {
    fail(`attribute ${key} must be a pair of integers ≥ ${min}, got ${JSON.stringify(v)}`);
  }
  return [v[0] as number, v[1] as number];
}

export function conv2dAttrs(attrs: Attrs): Conv2dAttrs {
  const [sh, sw] = pairOf(attrs, 'stride', 1);
  const [ph, pw] = pairOf(attrs, 'padding', 0);
  const [dh, dw] = pairOf(attrs, 'dilation', 1);
  const groups = attrs.groups;
  if (typeof groups !== 'number' || !Number.isInteger(groups) || groups < 1) {
    fail(`attribute groups must be a positive integer, got ${JSON.stringify(groups)}`);
  }
  return { sh, sw, ph, pw, dh, dw, groups };
}

/** Every size of a convolution, after the shape rule's checks. */
export interface Conv2dDims extends Conv2dAttrs {
  readonly N: number;
  readonly C: number;
  readonly H: number;
  readonly W: number;
  readonly O: number;
  readonly KH: number;
  readonly KW: number;
  readonly OH: number;
  readonly OW: number;
  /** Channels per group: C / groups and O / groups. */
  readonly Cg: number;
  readonly Og: number;
}

export function conv2dDims(x: Shape, w: Shape, attrs: Attrs): Conv2dDims {
  const a = conv2dAttrs(attrs);
  if (x.length !== 4) fail(`input must be NCHW (rank 4), got ${fmtShape(x)}`);
  if (w.length !== 4) fail(`weight must be OIHW (rank 4), got ${fmtShape(w)}`);
  const [N, C, H, W] = x as [number, number, number, number];
  const [O, I, KH, KW] = w as [number, number, number, number];
  if (C % a.groups !== 0) fail(`input channels ${C} (input ${fmtShape(x)}) are not divisible by groups=${a.groups}`);
  if (O % a.groups !== 0) fail(`output channels ${O} (weight ${fmtShape(w)}) are not divisible by groups=${a.groups}`);
  if (I !== C / a.groups) {
    fail(
      `channel mismatch: weight ${fmtShape(w)} has ${I} input channels, but input ${fmtShape(x)} has C/groups = ${C}/${a.groups} = ${C / a.groups}`,
    );
  }
  const OH = conv2dOutSize(H, KH, a.sh, a.ph, a.dh);
  const OW = conv2dOutSize(W, KW, a.sw, a.pw, a.dw);
  if (OH <= 0 || OW <= 0) {
    fail(
      `output size ${OH}x${OW} ≤ 0: kernel ${KH}x${KW} with dilation ${a.dh}x${a.dw} does not fit input ${H}x${W} padded by ${a.ph}x${a.pw}`,
    );
  }
  return { ...a, N, C, H, W, O, KH, KW, OH, OW, Cg: C / a.groups, Og: O / a.groups };
}

/** Float64 direct convolution. */
function conv2dRef(x: RefTensor, w: RefTensor, d: Conv2dDims): Float64Array {
  const { N, C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  const out = new Float64Array(N * O * OH * OW);
  const X = x.data;
  const Wt = w.data;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let s = 0;
          for (let ci = 0; ci < Cg; ci++) {
            const c = g * Cg + ci;
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * d.sh - d.ph + kh * d.dh;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * d.sw - d.pw + kw * d.dw;
                if (iw < 0 || iw >= W) continue;
                s +=
                  (X[((n * C + c) * H + ih) * W + iw] as number) * (Wt[((o * Cg + ci) * KH + kh) * KW + kw] as number);
              }
            }
          }
          out[((n * O + o) * OH + oh) * OW + ow] = s;
        }
      }
    }
  }
  return out;
}

registerOp({
  name: 'conv2d',
  kind: 'gemm',
  infer: ([x, w], attrs) => {
    const tx = x as TensorType;
    const tw = w as TensorType;
    if (tx.dtype !== 'f32' || tw.dtype !== 'f32') fail(`needs f32 input and weight, got ${tx.dtype} and ${tw.dtype}`);
    const d = conv2dDims(tx.shape, tw.shape, attrs);
    return { shape: [d.N, d.O, d.OH, d.OW], dtype: 'f32' };
  },
  cpu: ({ inputs, attrs }) => {
    const [x, w] = inputs as [RefTensor, RefTensor];
    return conv2dRef(x, w, conv2dDims(x.shape, w.shape, attrs));
  },
  grad: ({ inputs, attrs, dy }) => {
    // Both are gather formulations in ops/conv2d-grad.ts (conv attributes + the shape to produce).
    const [x, w] = inputs as [Tensor, Tensor];
    const b = dy.builder;
    return [
      b.apply('conv2d_grad_input', [dy, w], { ...attrs, inputShape: [...x.shape] }),
      b.apply('conv2d_grad_weight', [x, dy], { ...attrs, weightShape: [...w.shape] }),
    ];
  },
  lower: (args) => [lowerConv2d(args)],
});

function lowerConv2d(args: LowerArgs): ReturnType<typeof gemmKernel> {
  const [ix, iw] = args.inputs as [LowerArgs['inputs'][0] & object, LowerArgs['inputs'][0] & object];
  const d = conv2dDims(ix.type.shape, iw.type.shape, args.attrs);
  const { C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  const u = K.u32;
  const X = ix.buf;
  const Wb = iw.buf;
  const Y = args.output.buf;
  const M = d.N * OH * OW;
  const Kd = Cg * KH * KW;
  // Padding taps can be skipped statically when no window ever leaves the input.
  const rowsInside = d.ph === 0 && (OH - 1) * d.sh + (KH - 1) * d.dh < H;
  const colsInside = d.pw === 0 && (OW - 1) * d.sw + (KW - 1) * d.dw < W;

  return gemmKernel(
    {
      name: args.name,
      M,
      N: Og,
      K: Kd,
      batch: d.groups,
      tile: chooseTile(M, Og, Kd, d.groups, args.limits),
      // For a fixed tap, consecutive output pixels read consecutive input pixels (stride 1).
      aContig: 'm',
      bContig: 'k',
      loadA: (kb, g, m, k) => {
        // m = (n, oh, ow), k = (ci, kh, kw); input pixel (oh·sh − ph + kh·dh, ow·sw − pw + kw·dw).
        const ow = kb.let('ow', modC(m, OW));
        const t = kb.let('t', divC(m, OW));
        const oh = kb.let('oh', modC(t, OH));
        const n = kb.let('n', divC(t, OH));
        const kw = kb.let('kw', modC(k, KW));
        const t2 = kb.let('t2', divC(k, KW));
        const kh = kb.let('kh', modC(t2, KH));
        const ci = kb.let('ci', divC(t2, KH));
        // u32 arithmetic: a tap above or left of the input wraps to a huge value and fails `< H`.
        const ih = kb.let('ih', K.sub(K.add(K.mul(oh, u(d.sh)), K.mul(kh, u(d.dh))), u(d.ph)));
        const iwv = kb.let('iw', K.sub(K.add(K.mul(ow, u(d.sw)), K.mul(kw, u(d.dw))), u(d.pw)));
        const c = d.groups === 1 ? ci : K.add(K.mul(g, u(Cg)), ci);
        const idx = K.add(K.mul(K.add(K.mul(K.add(K.mul(n, u(C)), c), u(H)), ih), u(W)), iwv);
        const conds: Expr[] = [];
        if (!rowsInside) conds.push(K.lt(ih, u(H)));
        if (!colsInside) conds.push(K.lt(iwv, u(W)));
        if (conds.length === 0) return K.load(X, idx);
        const v = kb.var('xv', K.f32(0));
        kb.if(
          conds.reduce((p, q) => K.and(p, q)),
          () => kb.assign(v, K.load(X, idx)),
        );
        return v;
      },
      // weight [O, Cg·KH·KW] row-major: column o of group g is row g·Og + o.
      loadB: (_kb, g, k, o) => K.load(Wb, K.add(K.mul(d.groups === 1 ? o : K.add(K.mul(g, u(Og)), o), u(Kd)), k)),
      store: (kb, g, m, o, acc) => {
        const ow = kb.let('sow', modC(m, OW));
        const t = kb.let('st', divC(m, OW));
        const oh = kb.let('soh', modC(t, OH));
        const n = kb.let('sn', divC(t, OH));
        const oc = d.groups === 1 ? o : kb.let('oc', K.add(K.mul(g, u(Og)), o));
        const flat = kb.let('flat', K.add(K.mul(K.add(K.mul(K.add(K.mul(n, u(O)), oc), u(OH)), oh), u(OW)), ow));
        kb.store(Y, flat, args.epilogue(acc, [n, oc, oh, ow], flat));
      },
    },
    args.limits,
  );
}
