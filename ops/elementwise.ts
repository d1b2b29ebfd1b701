/**
 * Elementwise ops with numpy broadcasting: unary math, binary arithmetic, comparisons, where, cast.
 * Each definition holds its dtype rule, float64 CPU reference, gradient rule and kernel expression;
 * the fuser chains any number of them into one kernel.
 */

import { fail } from '../compiler/errors.js';
import { fmtValue } from '../compiler/ir.js';
import type { Expr } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type GradArgs, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { DTYPES, type DType, dimsOf, type TensorType, typeOf } from '../compiler/types.js';
import { broadcastOrFail, cpuBroadcast, sumToShape } from './util.js';

const wrapI32 = (v: number): number => v | 0;
const wrapU32 = (v: number): number => v >>> 0;

/** Integer results wrap like the GPU's 32-bit arithmetic. */
function wrap(dt: DType, v: number): number {
  return dt === 'i32' ? wrapI32(v) : dt === 'u32' ? wrapU32(v) : v;
}

interface UnaryDef {
  readonly floatOnly: boolean;
  readonly cpu: (x: number, dt: DType) => number;
  readonly expr: (x: Expr) => Expr;
  readonly grad: (x: Tensor, y: Tensor, dy: Tensor) => Tensor;
}

const unaries: Record<string, UnaryDef> = {
  neg: { floatOnly: false, cpu: (x, dt) => wrap(dt, -x), expr: (x) => K.neg(x), grad: (_x, _y, dy) => dy.neg() },
  abs: {
    floatOnly: false,
    cpu: (x, dt) => wrap(dt, Math.abs(x)),
    expr: (x) => K.abs(x),
    grad: (x, _y, dy) => dy.mul(signOf(x)),
  },
  exp: { floatOnly: true, cpu: Math.exp, expr: K.exp, grad: (_x, y, dy) => dy.mul(y) },
  log: { floatOnly: true, cpu: Math.log, expr: K.log, grad: (x, _y, dy) => dy.div(x) },
  sqrt: { floatOnly: true, cpu: Math.sqrt, expr: K.sqrt, grad: (_x, y, dy) => dy.div(y.mul(2)) },
  relu: {
    floatOnly: true,
    cpu: (x) => Math.max(x, 0), // NaN stays NaN, as torch.relu
    expr: (x) => K.max(x, 0),
    grad: (x, _y, dy) => dy.mul(x.gt(0).cast('f32')),
  },
  sigmoid: {
    floatOnly: true,
    cpu: (x) => 1 / (1 + Math.exp(-x)),
    expr: (x) => K.div(1, K.add(1, K.exp(K.neg(x)))),
    grad: (_x, y, dy) => dy.mul(y.mul(y.neg().add(1))),
  },
  tanh: {
    floatOnly: true,
    cpu: Math.tanh,
    expr: (x) => K.call('tanh', x),
    grad: (_x, y, dy) => dy.mul(y.mul(y).neg().add(1)),
  },
  // The three below follow PyTorch's CPU kernels (torch 1.13, aten/src/ATen/native/cpu/Activation.cpp),
  // forward and backward, including which side of each kink the gradient takes.
  relu6: {
    // hardtanh(x, 0, 6); backward passes dy only strictly inside (0, 6)
    floatOnly: true,
    cpu: (x) => Math.min(Math.max(x, 0), 6),
    expr: (x) => K.min(K.max(x, 0), 6),
    grad: (x, _y, dy) => dy.mul(x.gt(0).cast('f32').mul(x.lt(6).cast('f32'))),
  },
  hardsigmoid: {
    // min(max(x + 3, 0), 6) / 6; backward dy · (1/6) strictly inside (-3, 3)
    floatOnly: true,
    cpu: (x) => Math.min(Math.max(x + 3, 0), 6) / 6,
    expr: (x) => K.div(K.min(K.max(K.add(x, 3), 0), 6), 6),
    grad: (x, _y, dy) => dy.mul(x.gt(-3).cast('f32').mul(x.lt(3).cast('f32'))).mul(1 / 6), // dy · (1/6) as aten
  },
  hardswish: {
    // x · min(max(x + 3, 0), 6) / 6 (the product first, as PyTorch); backward 0 below -3,
    // dy · (x / 3 + 0.5) on [-3, 3), dy from 3 on. At exactly 3 aten itself is not consistent: its
    // vectorized loop (every full vector of a tensor) gives dy, its scalar tail dy · 1.5; we take
    // the vectorized loop's rule, which is what nearly every element of a real tensor gets.
    floatOnly: true,
    cpu: (x) => (x * Math.min(Math.max(x + 3, 0), 6)) / 6,
    expr: (x) => K.div(K.mul(x, K.min(K.max(K.add(x, 3), 0), 6)), 6),
    grad: (x, _y, dy) => {
      const g = x.builder;
      return dy.mul(g.where(x.lt(-3), 0, g.where(x.lt(3), x.div(3).add(0.5), 1)));
    },
  },
};

/** sign(x) as f32: -1, 0 or 1 (the subgradient of |x| at 0 is 0, as in PyTorch). */
function signOf(x: Tensor): Tensor {
  return x.gt(0).cast('f32').sub(x.lt(0).cast('f32'));
}

for (const [name, def] of Object.entries(unaries)) {
  registerOp({
    name,
    kind: 'elementwise',
    dynamic: true,
    infer: ([x]) => {
      const t = x as TensorType;
      if (def.floatOnly && t.dtype !== 'f32') fail(`needs f32, got ${t.dtype}`);
      if (name === 'neg' && t.dtype === 'u32') fail('cannot negate u32');
      return t;
    },
    cpu: ({ inputs, out }) => {
      const x = inputs[0]?.data as Float64Array;
      return x.map((v) => def.cpu(v, out.dtype));
    },
    expr: ({ args }) => def.expr(args[0] as Expr),
    grad: ({ inputs, output, dy }) => [def.grad(inputs[0] as Tensor, output, dy)],
  });
}

interface BinaryDef {
  /** 'float': f32 only; 'any': same dtype in and out; 'compare': same dtype in, u32 0/1 out. */
  readonly types: 'float' | 'any' | 'compare';
  readonly cpu: (a: number, b: number, dt: DType) => number;
  readonly expr: (a: Expr, b: Expr) => Expr;
  readonly grad?: (a: Tensor, b: Tensor, y: Tensor, dy: Tensor) => [Tensor | null, Tensor | null];
}

function intDiv(a: number, b: number, dt: DType): number {
  if (b === 0) return a; // WGSL: integer division by zero yields the dividend
  return wrap(dt, Math.trunc(a / b));
}

function intMod(a: number, b: number): number {
  return b === 0 ? 0 : a % b;
}

/** pow with the sign rules of C's pow for negative bases and integer exponents; NaN otherwise. */
function powRef(a: number, b: number): number {
  if (b === 0) return 1;
  return a ** b;
}

function powExpr(a: Expr, b: Expr): Expr {
  if (b.k === 'lit') {
    // constant exponent: small integers by multiplication, others by pow (NaN for negative bases)
    const e = b.v;
    if (Number.isInteger(e) && Math.abs(e) <= 4) {
      if (e === 0) return K.f32(1);
      let r = a;
      for (let i = 1; i < Math.abs(e); i++) r = K.mul(r, a);
      return e > 0 ? r : K.div(1, r);
    }
    if (!Number.isInteger(e)) return K.select(K.lt(a, 0), Number.NaN, K.call('pow', a, b));
  }
  const r = K.call('pow', K.abs(a), b);
  const isInt = K.eq(K.call('floor', b), b);
  const half = K.mul(b, 0.5);
  const odd = K.and(isInt, K.ne(K.call('floor', half), half));
  const negBase = K.select(isInt, K.select(odd, K.neg(r), r), Number.NaN);
  return K.select(K.eq(b, 0), 1, K.select(K.lt(a, 0), negBase, r));
}

const cmp = (f: (a: number, b: number) => boolean) => (a: number, b: number) => (f(a, b) ? 1 : 0);
const u = (c: Expr): Expr => K.select(c, K.u32(1), K.u32(0));

const binaries: Record<string, BinaryDef> = {
  add: {
    types: 'any',
    cpu: (a, b, dt) => wrap(dt, a + b),
    expr: K.add,
    grad: (_a, _b, _y, dy) => [dy, dy],
  },
  sub: {
    types: 'any',
    cpu: (a, b, dt) => wrap(dt, a - b),
    expr: K.sub,
    grad: (_a, _b, _y, dy) => [dy, dy.neg()],
  },
  mul: {
    types: 'any',
    cpu: (a, b, dt) => (dt === 'f32' ? a * b : wrap(dt, Math.imul(a, b))),
    expr: K.mul,
    grad: (a, b, _y, dy) => [dy.mul(b), dy.mul(a)],
  },
  div: {
    types: 'any',
    cpu: (a, b, dt) => (dt === 'f32' ? a / b : intDiv(a, b, dt)),
    expr: K.div,
    grad: (a, b, _y, dy) => [dy.div(b), dy.mul(a).div(b.mul(b)).neg()],
  },
  mod: {
    types: 'any',
    cpu: (a, b, dt) => (dt === 'f32' ? a % b : intMod(a, b)),
    expr: K.mod,
  },
  pow: {
    types: 'float',
    cpu: powRef,
    expr: powExpr,
    grad: (a, b, y, dy) => {
      const da = dy.mul(b).mul(a.pow(b.sub(1)));
      // d/db a^b = a^b ln a, defined for a > 0 (0 elsewhere, as PyTorch does at a = 0)
      const pos = a.gt(0);
      const safeA = a.builder.where(pos, a, 1);
      const db = a.builder.where(pos, dy.mul(y).mul(safeA.log()), 0);
      return [da, db];
    },
  },
  maximum: {
    types: 'any',
    cpu: (a, b) => Math.max(a, b),
    expr: K.max,
    grad: (a, b, _y, dy) => tieSplit(a, b, dy, 'gt'),
  },
  minimum: {
    types: 'any',
    cpu: (a, b) => Math.min(a, b),
    expr: K.min,
    grad: (a, b, _y, dy) => tieSplit(a, b, dy, 'lt'),
  },
  lt: { types: 'compare', cpu: cmp((a, b) => a < b), expr: (a, b) => u(K.lt(a, b)) },
  le: { types: 'compare', cpu: cmp((a, b) => a <= b), expr: (a, b) => u(K.le(a, b)) },
  gt: { types: 'compare', cpu: cmp((a, b) => a > b), expr: (a, b) => u(K.gt(a, b)) },
  ge: { types: 'compare', cpu: cmp((a, b) => a >= b), expr: (a, b) => u(K.ge(a, b)) },
  eq: { types: 'compare', cpu: cmp((a, b) => a === b), expr: (a, b) => u(K.eq(a, b)) },
  ne: { types: 'compare', cpu: cmp((a, b) => a !== b), expr: (a, b) => u(K.ne(a, b)) },
};

/** max/min gradient: to the winner; split in half on ties (PyTorch's rule). */
function tieSplit(a: Tensor, b: Tensor, dy: Tensor, win: 'gt' | 'lt'): [Tensor, Tensor] {
  const aw = (win === 'gt' ? a.gt(b) : a.lt(b)).cast('f32');
  const bw = (win === 'gt' ? b.gt(a) : b.lt(a)).cast('f32');
  const tie = a.eq(b).cast('f32').mul(0.5);
  return [dy.mul(aw.add(tie)), dy.mul(bw.add(tie))];
}

for (const [name, def] of Object.entries(binaries)) {
  registerOp({
    name,
    kind: 'elementwise',
    dynamic: true,
    infer: ([a, b]) => {
      const ta = a as TensorType;
      const tb = b as TensorType;
      if (ta.dtype !== tb.dtype) fail(`dtypes ${ta.dtype} and ${tb.dtype} differ (cast one first)`);
      if (def.types === 'float' && ta.dtype !== 'f32') fail(`needs f32, got ${ta.dtype}`);
      return typeOf(broadcastOrFail([dimsOf(ta), dimsOf(tb)]), def.types === 'compare' ? 'u32' : ta.dtype);
    },
    cpu: ({ inputs, out }) => {
      const dt = (inputs[0] as { dtype: DType }).dtype;
      return cpuBroadcast(inputs, out.shape, (v) => def.cpu(v[0] as number, v[1] as number, dt));
    },
    expr: ({ args }) => def.expr(args[0] as Expr, args[1] as Expr),
    ...(def.grad
      ? {
          grad: ({ inputs, output, dy }: GradArgs) => {
            const [a, b] = inputs as [Tensor, Tensor];
            if (a.dtype !== 'f32') return [null, null];
            const [ga, gb] = (def.grad as NonNullable<BinaryDef['grad']>)(a, b, output, dy);
            return [ga && sumToShape(ga, a.dims), gb && sumToShape(gb, b.dims)];
          },
        }
      : {}),
  });
}

registerOp({
  name: 'where',
  kind: 'elementwise',
  dynamic: true,
  infer: ([c, a, b]) => {
    const [tc, ta, tb] = [c, a, b] as TensorType[] as [TensorType, TensorType, TensorType];
    if (tc.dtype !== 'u32') fail(`condition must be u32 (a comparison result), got ${tc.dtype}`);
    if (ta.dtype !== tb.dtype) fail(`branches have dtypes ${ta.dtype} and ${tb.dtype}`);
    return typeOf(broadcastOrFail([dimsOf(tc), dimsOf(ta), dimsOf(tb)]), ta.dtype);
  },
  cpu: ({ inputs, out }) =>
    cpuBroadcast(inputs, out.shape, (v) => ((v[0] as number) !== 0 ? (v[1] as number) : (v[2] as number))),
  expr: ({ args }) => K.select(K.ne(args[0] as Expr, K.u32(0)), args[1] as Expr, args[2] as Expr),
  grad: ({ inputs, dy }) => {
    const [c, a, b] = inputs as [Tensor, Tensor, Tensor];
    if (a.dtype !== 'f32') return [null, null, null];
    const g = dy.builder;
    return [null, sumToShape(g.where(c, dy, 0), a.dims), sumToShape(g.where(c, 0, dy), b.dims)];
  },
});

registerOp({
  name: 'cast',
  kind: 'elementwise',
  dynamic: true,
  infer: ([x], attrs) => {
    const dt = attrs.dtype as DType;
    if (!DTYPES.includes(dt)) fail(`unknown dtype ${fmtValue(attrs.dtype)}`);
    return { ...(x as TensorType), dtype: dt };
  },
  cpu: ({ inputs, out }) => {
    const x = inputs[0]?.data as Float64Array;
    const to = out.dtype;
    // f32 -> int truncates toward zero, saturating like WGSL's conversion
    if (to === 'i32') return x.map((v) => Math.max(-2147483648, Math.min(2147483647, Math.trunc(v))));
    if (to === 'u32') {
      const from = inputs[0]?.dtype;
      if (from === 'i32') return x.map((v) => v >>> 0);
      return x.map((v) => Math.max(0, Math.min(4294967295, Math.trunc(v))));
    }
    return x.slice();
  },
  expr: ({ args, out }) => K.cast(out.dtype, args[0] as Expr),
  grad: ({ inputs, dy }) => [(inputs[0] as Tensor).dtype === 'f32' ? dy.cast('f32') : null],
});
