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
 * Both run on the kit's one GEMM generator (ops/kit/gemm.ts), as matmul and conv2d do.
 *
 * The forward op (ops/conv2d.ts) calls these two from its gradient rule with the conv attributes
 * {stride, padding, dilation, groups} plus inputShape / weightShape; over run-time sizes (N, H, W),
 * grad_input takes the forward input itself as a third input for its shape instead of inputShape.
 */
import { type Dim, dimEq, dimMax, dimMul, dimProd } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, registerOp } from '../compiler/registry.js';
import { type DimShape, dimsOf, fmtShape, type TensorType, typeOf } from '../compiler/types.js';
import {
  type Conv2dAttrs,
  type Conv2dDims,
  checkConv2dDimsDyn,
  conv2dAttrs,
  forEachConv2dTap,
} from './conv-geometry.js';
import { chooseTile, chooseTileSplitK, gemmKernel, splitKSum } from './kit/gemm.js';
import { orZero } from './kit/guard.js';
import { divC, divD, modC, modD, unflatten } from './kit/indexing.js';
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

/** The sizes of one convolution, after checking that x, w and dy agree (N, H and W may be run-time sizes). */
function checkDims(
  x: DimShape,
  w: DimShape,
  dy: DimShape,
  a: Conv2dAttrs,
  names: { x: string; w: string; dy: string },
): Conv2dDims<Dim> {
  const d = checkConv2dDimsDyn(x, w, a, names);
  const want = [d.N, d.O, d.OH, d.OW];
  if (dy.length !== 4 || !dy.every((n, i) => dimEq(n, want[i] as Dim))) {
    fail(
      `${names.dy} ${fmtShape(dy)} should be ${fmtShape(want)} for ${names.x} ${fmtShape(x)} and ${names.w} ${fmtShape(w)}`,
    );
  }
  return d;
}

function need4f32(t: TensorType | undefined, what: string): DimShape {
  if (!t) fail(`missing input ${what}`);
  const dims = dimsOf(t);
  if (dims.length !== 4) fail(`${what} must be rank 4 (NCHW / OIHW), got ${fmtShape(dims)}`);
  if (t.dtype !== 'f32') fail(`${what} must be f32, got ${t.dtype}`);
  return dims;
}

/**
 * [dy, weight] with the forward input's shape in `inputShape`, or [dy, weight, x] where x (the forward
 * input, not read) gives that shape: the form the gradient of a convolution over run-time sizes takes,
 * whose input size is not a function of dy's (floor division by the stride).
 */
function gradInputDims(inputs: readonly TensorType[], attrs: Attrs): Conv2dDims<Dim> {
  if (inputs.length !== 2 && inputs.length !== 3)
    fail(`takes [dy, weight] or [dy, weight, x], got ${inputs.length} inputs`);
  const dy = need4f32(inputs[0], 'dy');
  const w = need4f32(inputs[1], 'weight');
  const like = inputs[2];
  const x = like ? need4f32(like, 'x') : shape4(attrs, 'inputShape');
  const xName = like ? 'x' : 'inputShape';
  return checkDims(x, w, dy, conv2dAttrs(attrs), { x: xName, w: 'weight', dy: 'dy' });
}

function gradWeightDims(inputs: readonly TensorType[], attrs: Attrs): Conv2dDims<Dim> {
  if (inputs.length !== 2) fail(`takes [x, dy], got ${inputs.length} inputs`);
  const x = need4f32(inputs[0], 'x');
  const dy = need4f32(inputs[1], 'dy');
  const w = shape4(attrs, 'weightShape');
  return checkDims(x, w, dy, conv2dAttrs(attrs), { x: 'x', w: 'weightShape', dy: 'dy' });
}

// ---------------------------------------------------------------------------------------------
// Lowerings: implicit GEMMs on the kit's generator (ops/kit/gemm.ts), one GEMM layer per group

export function lowerGradInput(args: LowerArgs): Kernel[] {
  const d = gradInputDims(
    args.inputs.map((b) => b.type),
    args.attrs,
  );
  const [dyB, wB] = args.inputs.map((b) => b.buf) as [BufRef, BufRef];
  const out = args.output.buf;
  const { N, C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  const KK = KH * KW;
  const u = K.u32;
  const sz = K.size;
  const M = dimProd([N, H, W]);
  const Kd = Og * KK;
  /** (n, h, w) of GEMM row m. */
  const pixel = (kb: K.KernelBuilder, m: Expr, tag: string): [Expr, Expr, Expr] => {
    const w = kb.let(`${tag}w`, modD(m, W));
    const t = kb.let(`${tag}t`, divD(m, W));
    return [kb.let(`${tag}n`, divD(t, H)), kb.let(`${tag}h`, modD(t, H)), w];
  };
  return [
    gemmKernel(
      {
        name: `${args.name}_gemm`,
        M,
        N: Cg,
        K: Kd,
        batch: d.groups,
        tile: chooseTile(dimMax(M), Cg, Kd, d.groups, args.limits, args.tuning.gemm),
        // consecutive pixels read consecutive dy pixels (stride 1); W is staged along its columns (c)
        aContig: 'm',
        bContig: 'n',
        stageRowsA: typeof M !== 'number',
        // A[(n,h,w), (o,kh,kw)] = dy[n, g·Og + o, oh, ow] where (h + ph − kh·dh, w + pw − kw·dw) = (oh·sh, ow·sw)
        loadA: (kb, g, m) => {
          const [n, h, w] = pixel(kb, m, '');
          const h0 = kb.let('h0', K.add(h, u(d.ph)));
          const w0 = kb.let('w0', K.add(w, u(d.pw)));
          const o0 = kb.let('o0', d.groups === 1 ? K.mul(n, u(O)) : K.add(K.mul(n, u(O)), K.mul(g, u(Og))));
          return (k) => {
            const kw = kb.let('kw', modC(k, KW));
            const t2 = kb.let('t2', divC(k, KW));
            const kh = kb.let('kh', modC(t2, KH));
            const o = kb.let('o', divC(t2, KH));
            // u32 arithmetic: a tap above or left of dy wraps to a huge value and fails `< OH`
            const th = kb.let('th', K.sub(h0, K.mul(kh, u(d.dh))));
            const tw = kb.let('tw', K.sub(w0, K.mul(kw, u(d.dw))));
            const oh = kb.let('oh', divC(th, d.sh));
            const ow = kb.let('ow', divC(tw, d.sw));
            const conds: Expr[] = [K.lt(oh, sz(OH)), K.lt(ow, sz(OW))];
            if (d.sh !== 1) conds.push(K.eq(modC(th, d.sh), u(0)));
            if (d.sw !== 1) conds.push(K.eq(modC(tw, d.sw), u(0)));
            const idx = K.add(K.mul(K.add(K.mul(K.add(o0, o), sz(OH)), oh), sz(OW)), ow);
            return orZero(kb, conds, () => K.load(dyB, idx), 'dyv');
          };
        },
        // B[(o,kh,kw), c] = w[g·Og + o, c, kh, kw]
        loadB: (kb, g, c) => {
          const col = K.mul(c, u(KK));
          const base = kb.let('wcol', d.groups === 1 ? col : K.add(K.mul(g, u(Og * Cg * KK)), col));
          return (k) => K.load(wB, K.add(base, K.add(K.mul(divC(k, KK), u(Cg * KK)), modC(k, KK))));
        },
        store: (kb, g, m, c, acc) => {
          const [n, h, w] = pixel(kb, m, 's');
          const ch = d.groups === 1 ? c : kb.let('sc', K.add(K.mul(g, u(Cg)), c));
          const flat = kb.let('flat', K.add(K.mul(K.add(K.mul(K.add(K.mul(n, u(C)), ch), sz(H)), h), sz(W)), w));
          kb.store(out, flat, args.epilogue(acc, [n, ch, h, w], flat));
        },
      },
      args.limits,
    ),
  ];
}

/** The weight gradient's K = N·OH·OW is long: it is split across workgroups (split-K) and summed after. */
export function lowerGradWeight(args: LowerArgs): Kernel[] {
  const d = gradWeightDims(
    args.inputs.map((b) => b.type),
    args.attrs,
  );
  const [xB, dyB] = args.inputs.map((b) => b.buf) as [BufRef, BufRef];
  const out = args.output.buf;
  const { N, C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  const KK = KH * KW;
  const u = K.u32;
  const sz = K.size;
  const OHW = dimMul(OH, OW);
  const Nd = Cg * KK;
  const Kd = dimMul(N, OHW);
  const outCount = O * Nd;
  const { tile, splitK } = chooseTileSplitK(Og, Nd, dimMax(Kd), d.groups, outCount, args.limits, args.tuning.gemm);
  const scratch = splitK.parts > 1 ? args.scratch('f32', splitK.parts * outCount) : null;
  const weightCoords = (flat: Expr): Expr[] => unflatten(flat, [O, Cg, KH, KW]);
  const gemm = gemmKernel(
    {
      name: `${args.name}_gemm`,
      M: Og,
      N: Nd,
      K: Kd,
      batch: d.groups,
      tile,
      splitK,
      // dy staged along its rows (o), x along its columns (c, kh, kw): consecutive kw read consecutive pixels
      aContig: 'm',
      bContig: 'n',
      // A[o, (n,oh,ow)] = dy[n, g·Og + o, oh, ow]
      loadA: (kb, g, o) => {
        const row = kb.let('dyrow', K.mul(d.groups === 1 ? o : K.add(K.mul(g, u(Og)), o), sz(OHW)));
        return (k) => {
          const n = kb.let('n', divD(k, OHW));
          return K.load(dyB, K.add(K.add(row, K.mul(n, sz(dimMul(O, OHW)))), modD(k, OHW)));
        };
      },
      // B[(n,oh,ow), (c,kh,kw)] = x[n, g·Cg + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]
      loadB: (kb, g, col) => {
        const kw = kb.let('kw', modC(col, KW));
        const t = kb.let('t', divC(col, KW));
        const kh = kb.let('kh', modC(t, KH));
        const c = kb.let('c', divC(t, KH));
        // u32 arithmetic: a tap above or left of the input wraps to a huge value and fails `< H`
        const offH = kb.let('offh', K.sub(K.mul(kh, u(d.dh)), u(d.ph)));
        const offW = kb.let('offw', K.sub(K.mul(kw, u(d.dw)), u(d.pw)));
        const chan = kb.let('xchan', d.groups === 1 ? c : K.add(K.mul(g, u(Cg)), c));
        return (k) => {
          const ow = kb.let('ow', modD(k, OW));
          const t2 = kb.let('t2', divD(k, OW));
          const oh = kb.let('oh', modD(t2, OH));
          const n = kb.let('n', divD(t2, OH));
          const ih = kb.let('ih', K.add(K.mul(oh, u(d.sh)), offH));
          const iw = kb.let('iw', K.add(K.mul(ow, u(d.sw)), offW));
          const idx = K.add(K.mul(K.add(K.mul(K.add(K.mul(n, u(C)), chan), sz(H)), ih), sz(W)), iw);
          return orZero(kb, [K.lt(ih, sz(H)), K.lt(iw, sz(W))], () => K.load(xB, idx), 'xv');
        };
      },
      store: (kb, g, o, col, acc, part) => {
        const row = d.groups === 1 ? o : K.add(K.mul(g, u(Og)), o);
        const flat = kb.let('flat', K.add(K.mul(row, u(Nd)), col));
        if (scratch) kb.store(scratch, K.add(K.mul(part, u(outCount)), flat), acc);
        else kb.store(out, flat, args.epilogue(acc, weightCoords(flat), flat));
      },
    },
    args.limits,
  );
  if (!scratch) return [gemm];
  const sum = splitKSum(`${args.name}_sum`, scratch, outCount, splitK.parts, (kb, flat, s) =>
    kb.store(out, flat, args.epilogue(s, weightCoords(flat), flat)),
  );
  return [gemm, sum];
}

// ---------------------------------------------------------------------------------------------
// Registration

registerOp({
  name: 'conv2d_grad_input',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    const d = gradInputDims(inputs, attrs);
    return typeOf([d.N, d.C, d.H, d.W], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const d = gradInputDims(
      inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
      attrs,
    ) as Conv2dDims;
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
  dynamic: true,
  infer: (inputs, attrs) => {
    const d = gradWeightDims(inputs, attrs);
    return typeOf([d.O, d.Cg, d.KH, d.KW], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const d = gradWeightDims(
      inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
      attrs,
    ) as Conv2dDims;
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
