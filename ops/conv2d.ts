/**
 * 2-D convolution, NCHW input and OIHW weight (I = C / groups), with stride, padding, dilation and
 * groups. The kernel is an implicit GEMM on the tiled, register-blocked generator of matmul.ts:
 * per group g, M = N·OH·OW rows, Og = O/groups columns and K = Cg·KH·KW, where the A tile (the
 * im2col matrix) is gathered from x on the fly while it is staged. The fused elementwise epilogue
 * is applied at the store, so conv + bias + ReLU is one dispatch.
 */
import { type Dim, dimMax, dimProd } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { Expr } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { type DimShape, dimsOf, fmtShape, type TensorType, typeOf } from '../compiler/types.js';
import { type Conv2dDims, checkConv2dDimsDyn, conv2dAttrs, forEachConv2dTap } from './conv-geometry.js';
import { chooseTile, gemmKernel } from './kit/gemm.js';
import { orZero } from './kit/guard.js';
import { divD, modD } from './kit/indexing.js';

/** The sizes of a conv2d; N, H and W may be run-time sizes (also in its gradients). */
export function conv2dDims(x: DimShape, w: DimShape, attrs: Attrs): Conv2dDims<Dim> {
  const a = conv2dAttrs(attrs);
  if (x.length !== 4) fail(`input must be NCHW (rank 4), got ${fmtShape(x)}`);
  if (w.length !== 4) fail(`weight must be OIHW (rank 4), got ${fmtShape(w)}`);
  return checkConv2dDimsDyn(x, w, a);
}

/** Float64 direct convolution. */
function conv2dRef(x: RefTensor, w: RefTensor, d: Conv2dDims): Float64Array {
  const out = new Float64Array(d.N * d.O * d.OH * d.OW);
  const X = x.data;
  const Wt = w.data;
  forEachConv2dTap(d, (xi, wi, yi) => {
    out[yi] = (out[yi] as number) + (X[xi] as number) * (Wt[wi] as number);
  });
  return out;
}

registerOp({
  name: 'conv2d',
  kind: 'gemm',
  dynamic: true,
  infer: ([x, w], attrs) => {
    const tx = x as TensorType;
    const tw = w as TensorType;
    if (tx.dtype !== 'f32' || tw.dtype !== 'f32') fail(`needs f32 input and weight, got ${tx.dtype} and ${tw.dtype}`);
    const d = conv2dDims(dimsOf(tx), dimsOf(tw), attrs);
    return typeOf([d.N, d.O, d.OH, d.OW], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [x, w] = inputs as [RefTensor, RefTensor];
    return conv2dRef(x, w, conv2dDims(x.shape, w.shape, attrs) as Conv2dDims);
  },
  grad: ({ inputs, attrs, dy }) => {
    // Both are gather formulations in ops/conv2d-grad.ts (conv attributes + the shape to produce).
    const [x, w] = inputs as [Tensor, Tensor];
    const b = dy.builder;
    return [
      // over run-time sizes, x itself (not read) carries the shape to produce
      x.dynamic
        ? b.apply('conv2d_grad_input', [dy, w, x], attrs)
        : b.apply('conv2d_grad_input', [dy, w], { ...attrs, inputShape: [...x.shape] }),
      b.apply('conv2d_grad_weight', [x, dy], { ...attrs, weightShape: [...w.shape] }),
    ];
  },
  lower: (args) => [lowerConv2d(args)],
});

function lowerConv2d(args: LowerArgs): ReturnType<typeof gemmKernel> {
  const [ix, iw] = args.inputs as [LowerArgs['inputs'][0] & object, LowerArgs['inputs'][0] & object];
  const d = conv2dDims(dimsOf(ix.type), dimsOf(iw.type), args.attrs);
  const { C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  const u = K.u32;
  const sz = K.size;
  const X = ix.buf;
  const Wb = iw.buf;
  const Y = args.output.buf;
  const M = dimProd([d.N, OH, OW]);
  const Kd = Cg * KH * KW;
  // Padding taps can be skipped statically when no window ever leaves the input (static sizes only).
  const inside = (o: Dim, s: number, k: number, dl: number, p: number, i: Dim): boolean =>
    typeof o === 'number' && typeof i === 'number' && p === 0 && (o - 1) * s + (k - 1) * dl < i;
  const rowsInside = inside(OH, d.sh, KH, d.dh, d.ph, H);
  const colsInside = inside(OW, d.sw, KW, d.dw, d.pw, W);

  return gemmKernel(
    {
      name: args.name,
      M,
      N: Og,
      K: Kd,
      batch: d.groups,
      tile: chooseTile(dimMax(M), Og, Kd, d.groups, args.limits, args.tuning.gemm),
      // For a fixed tap, consecutive output pixels read consecutive input pixels (stride 1).
      aContig: 'm',
      // over run-time sizes a row's decode costs divisions: once per row and tile
      stageRowsA: typeof M !== 'number',
      bContig: 'k',
      loadA: (kb, g, m) => {
        // m = (n, oh, ow), decoded once per row; k = (ci, kh, kw) per element; input pixel
        // (oh·sh − ph + kh·dh, ow·sw − pw + kw·dw). u32 arithmetic: a tap above or left of the input
        // wraps to a huge value and fails `< H`.
        const ow = kb.let('ow', modD(m, OW));
        const t = kb.let('t', divD(m, OW));
        const oh = kb.let('oh', modD(t, OH));
        const n = kb.let('n', divD(t, OH));
        const ih0 = kb.let('ih0', K.sub(K.mul(oh, u(d.sh)), u(d.ph)));
        const iw0 = kb.let('iw0', K.sub(K.mul(ow, u(d.sw)), u(d.pw)));
        const c0 = kb.let('c0', K.mul(n, u(C)));
        return (k) => {
          const kw = kb.let('kw', modD(k, KW));
          const t2 = kb.let('t2', divD(k, KW));
          const kh = kb.let('kh', modD(t2, KH));
          const ci = kb.let('ci', divD(t2, KH));
          const ih = kb.let('ih', K.add(ih0, K.mul(kh, u(d.dh))));
          const iwv = kb.let('iw', K.add(iw0, K.mul(kw, u(d.dw))));
          const c = K.add(c0, d.groups === 1 ? ci : K.add(K.mul(g, u(Cg)), ci));
          const idx = K.add(K.mul(K.add(K.mul(c, sz(H)), ih), sz(W)), iwv);
          const conds: Expr[] = [];
          if (!rowsInside) conds.push(K.lt(ih, sz(H)));
          if (!colsInside) conds.push(K.lt(iwv, sz(W)));
          return orZero(kb, conds, () => K.load(X, idx), 'xv');
        };
      },
      // weight [O, Cg·KH·KW] row-major: column o of group g is row g·Og + o.
      loadB: (kb, g, o) => {
        const row = kb.let('wrow', K.mul(d.groups === 1 ? o : K.add(K.mul(g, u(Og)), o), u(Kd)));
        return (k) => K.load(Wb, K.add(row, k));
      },
      store: (kb, g, m, o, acc) => {
        const ow = kb.let('sow', modD(m, OW));
        const t = kb.let('st', divD(m, OW));
        const oh = kb.let('soh', modD(t, OH));
        const n = kb.let('sn', divD(t, OH));
        const oc = d.groups === 1 ? o : kb.let('oc', K.add(K.mul(g, u(Og)), o));
        const flat = kb.let('flat', K.add(K.mul(K.add(K.mul(K.add(K.mul(n, u(O)), oc), sz(OH)), oh), sz(OW)), ow));
        kb.store(Y, flat, args.epilogue(acc, [n, oc, oh, ow], flat));
      },
    },
    args.limits,
  );
}
