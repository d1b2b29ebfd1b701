/**
 * Nearest-neighbour resizing of NCHW maps to a given size, as `F.interpolate(x, size=(H', W'),
 * mode='nearest')` in PyTorch 1.13 (the FPN top-down path): output row o reads input row
 *   o                                   when H' = H,
 *   o >> 1                              when H' = 2·H,
 *   min(⌊f32(o) · f32(H / H')⌋, H − 1)  otherwise, in float32 as aten's nearest_idx,
 * and the same along W. The CPU reference computes the index the same way in float32 (it is part of
 * the op's definition, not a precision choice). The sizes may be run-time sizes.
 *
 * The backward op is a gather: each dx element sums dy over the output rows and columns whose source
 * it is. Candidates are the rows ⌊h·H'/H⌋ − 1 … ⌈(h+1)·H'/H⌉ (integer arithmetic, a margin of one for
 * float32 rounding), each checked with the forward's own index rule, so the sets are exactly the
 * forward's.
 */
import { type Dim, dimMul, dimProd, SymDim } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import type { Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtShape, sameDims, type TensorType, typeOf } from '../compiler/types.js';
import { sizeF32 } from './kit/indexing.js';
import { perThread } from './kit/launch.js';
import { storeOut } from './kit/store.js';

/** The `size` attribute: [H', W'], each a positive integer or a run-time size. */
function sizeAttr(attrs: Attrs): [Dim, Dim] {
  const s = attrs.size;
  const ok = (d: unknown): d is Dim => d instanceof SymDim || (typeof d === 'number' && Number.isInteger(d) && d >= 1);
  if (!Array.isArray(s) || s.length !== 2 || !s.every(ok))
    fail(`attribute size must be [H, W], positive integers or run-time sizes, got ${fmtValue(s)}`);
  return [s[0] as Dim, s[1] as Dim];
}

function inputDims(x: TensorType | undefined): [Dim, Dim, Dim, Dim] {
  if (!x) fail('missing input x');
  const d = dimsOf(x);
  if (d.length !== 4) fail(`x must be rank 4 (NCHW), got ${fmtShape(d)}`);
  if (x.dtype !== 'f32') fail(`x must be f32, got ${x.dtype}`);
  return d as [Dim, Dim, Dim, Dim];
}

/** aten's nearest_idx in float32: the input index output index `o` of `outSize` reads from `inSize`. */
export function nearestSource(o: number, inSize: number, outSize: number): number {
  if (outSize === inSize) return o;
  if (outSize === 2 * inSize) return o >> 1;
  const scale = Math.fround(inSize / outSize);
  return Math.min(Math.floor(Math.fround(Math.fround(o) * scale)), inSize - 1);
}

/** {@link nearestSource} as a kernel expression (u32 in, u32 out) for sizes that may be run-time sizes. */
function emitSource(o: Expr, inSize: Dim, outSize: Dim): Expr {
  const general = (): Expr => {
    // the scale as aten computes it: f32(in) / f32(out), rounded once (a literal when both are static)
    const scale =
      typeof inSize === 'number' && typeof outSize === 'number'
        ? K.f32(Math.fround(inSize / outSize))
        : K.div(sizeF32(inSize), sizeF32(outSize));
    const src = K.cast('u32', K.call('floor', K.mul(K.cast('f32', o), scale)));
    return K.min(src, K.sub(K.size(inSize), K.u32(1)));
  };
  if (typeof inSize === 'number' && typeof outSize === 'number') {
    if (outSize === inSize) return o;
    if (outSize === 2 * inSize) return K.shr(o, 1);
    return general();
  }
  const same = K.eq(K.size(outSize), K.size(inSize));
  const twice = K.eq(K.size(outSize), K.mul(K.size(inSize), K.u32(2)));
  return K.select(same, o, K.select(twice, K.shr(o, 1), general()));
}

function cpuUpsample(x: RefTensor, outH: number, outW: number): Float64Array {
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const out = new Float64Array(N * C * outH * outW);
  const rows = Array.from({ length: outH }, (_, o) => nearestSource(o, H, outH));
  const cols = Array.from({ length: outW }, (_, o) => nearestSource(o, W, outW));
  for (let nc = 0; nc < N * C; nc++)
    for (let oh = 0; oh < outH; oh++)
      for (let ow = 0; ow < outW; ow++)
        out[(nc * outH + oh) * outW + ow] = x.data[
          (nc * H + (rows[oh] as number)) * W + (cols[ow] as number)
        ] as number;
  return out;
}

function cpuUpsampleGrad(dy: RefTensor, H: number, W: number): Float64Array {
  const [N, C, outH, outW] = dy.shape as [number, number, number, number];
  const dx = new Float64Array(N * C * H * W);
  for (let nc = 0; nc < N * C; nc++)
    for (let oh = 0; oh < outH; oh++)
      for (let ow = 0; ow < outW; ow++) {
        const at = (nc * H + nearestSource(oh, H, outH)) * W + nearestSource(ow, W, outW);
        dx[at] = (dx[at] as number) + (dy.data[(nc * outH + oh) * outW + ow] as number);
      }
  return dx;
}

function lowerUpsample(a: LowerArgs): Kernel[] {
  const x = a.inputs[0] as LowerArgs['output'];
  const [, , H, W] = inputDims(x.type);
  const [N, C, OH, OW] = dimsOf(a.output.type) as [Dim, Dim, Dim, Dim];
  return [
    perThread(a.name, dimProd([N, C, OH, OW]), (kb, t) => {
      const ow = kb.let('ow', K.mod(t, K.size(OW)));
      const r = kb.let('r', K.div(t, K.size(OW)));
      const oh = kb.let('oh', K.mod(r, K.size(OH)));
      const nc = kb.let('nc', K.div(r, K.size(OH)));
      const ih = kb.let('ih', emitSource(oh, H, OH));
      const iw = kb.let('iw', emitSource(ow, W, OW));
      const src = K.add(K.mul(K.add(K.mul(nc, K.size(H)), ih), K.size(W)), iw);
      storeOut(kb, a, t, K.load(x.buf, src), { coords: [K.div(nc, K.size(C)), K.mod(nc, K.size(C)), oh, ow] });
    }),
  ];
}

/** The output rows (or columns) whose source is input index `i`: a loop over candidates with the check. */
function eachTarget(
  kb: K.KernelBuilder,
  i: Expr,
  inSize: Dim,
  outSize: Dim,
  name: string,
  body: (o: Expr) => void,
): void {
  const inS = K.size(inSize);
  const outS = K.size(outSize);
  const lo = kb.let(`${name}lo`, K.div(K.mul(i, outS), inS));
  const from = kb.let(`${name}from`, K.select(K.gt(lo, K.u32(0)), K.sub(lo, K.u32(1)), K.u32(0)));
  const hi = K.add(K.div(K.add(K.mul(K.add(i, K.u32(1)), outS), K.sub(inS, K.u32(1))), inS), K.u32(1));
  const to = kb.let(`${name}to`, K.min(hi, outS));
  kb.for(name, from, to, (o) => kb.if(K.eq(emitSource(o, inSize, outSize), i), () => body(o)), { t: 'u32' });
}

function lowerUpsampleGrad(a: LowerArgs): Kernel[] {
  const dy = a.inputs[0] as LowerArgs['output'];
  const [N, C, OH, OW] = dimsOf(dy.type) as [Dim, Dim, Dim, Dim];
  const [, , H, W] = dimsOf(a.output.type) as [Dim, Dim, Dim, Dim];
  return [
    perThread(a.name, dimProd([N, C, H, W]), (kb, t) => {
      const w = kb.let('w', K.mod(t, K.size(W)));
      const r = kb.let('r', K.div(t, K.size(W)));
      const h = kb.let('h', K.mod(r, K.size(H)));
      const nc = kb.let('nc', K.div(r, K.size(H)));
      const base = kb.let('base', K.mul(nc, K.size(dimMul(OH, OW))));
      const acc = kb.var('acc', K.f32(0));
      eachTarget(kb, h, H, OH, 'oh', (oh) => {
        const row = kb.let('row', K.add(base, K.mul(oh, K.size(OW))));
        eachTarget(kb, w, W, OW, 'ow', (ow) => kb.assign(acc, K.add(acc, K.load(dy.buf, K.add(row, ow)))));
      });
      storeOut(kb, a, t, acc, { coords: [K.div(nc, K.size(C)), K.mod(nc, K.size(C)), h, w] });
    }),
  ];
}

registerOp({
  name: 'upsample_nearest2d',
  kind: 'opaque',
  dynamic: true,
  infer: ([x], attrs) => {
    const [N, C] = inputDims(x);
    const [OH, OW] = sizeAttr(attrs);
    return typeOf([N, C, OH, OW], 'f32');
  },
  cpu: ({ inputs, out }) => cpuUpsample(inputs[0] as RefTensor, out.shape[2] as number, out.shape[3] as number),
  grad: ({ inputs, dy }) => {
    const x = inputs[0] as Tensor;
    return [dy.builder.apply('upsample_nearest2d_grad', [dy], { inputSize: [x.dims[2] as Dim, x.dims[3] as Dim] })];
  },
  lower: lowerUpsample,
});

registerOp({
  name: 'upsample_nearest2d_grad',
  kind: 'opaque',
  dynamic: true,
  infer: ([dy], attrs) => {
    const [N, C] = inputDims(dy);
    const [H, W] = sizeAttr({ size: attrs.inputSize ?? null });
    return typeOf([N, C, H, W], 'f32');
  },
  cpu: ({ inputs, out }) => cpuUpsampleGrad(inputs[0] as RefTensor, out.shape[2] as number, out.shape[3] as number),
  grad: ({ inputs, dy }) => {
    const up = inputs[0] as Tensor;
    return [dy.builder.apply('upsample_nearest2d', [dy], { size: [up.dims[2] as Dim, up.dims[3] as Dim] })];
  },
  lower: lowerUpsampleGrad,
});

/**
 * DSL: `F.interpolate(x, size, mode='nearest')` for NCHW `x` ([H', W'] numbers or run-time sizes,
 * e.g. another map's `dims.slice(2)`).
 */
export function upsampleNearest(x: Tensor, size: readonly [Dim, Dim]): Tensor {
  const [H, W] = x.dims.slice(2) as [Dim, Dim];
  if (sameDims([H, W], size)) return x;
  return x.builder.apply('upsample_nearest2d', [x], { size: [...size] });
}
