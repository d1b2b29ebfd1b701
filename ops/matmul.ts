/**
 * Matrix multiplication (batched, with transposed operands) on the kit's GEMM generator
 * (ops/kit/gemm.ts). `linear` is torch's nn.Linear as matmul + add.
 */
import { type Dim, dimEq, dimMax, dimMul } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { type DimShape, dimsOf, fmtShape, numel, type TensorType, typeOf } from '../compiler/types.js';
import { chooseTile, gemmKernel } from './kit/gemm.js';
import { sumToShape } from './util.js';

/** M, N and K may be run-time sizes; batch dims are static. */
interface MatmulDims<D extends Dim = Dim> {
  readonly M: D;
  readonly N: D;
  readonly K: D;
  /** Output batch dims. */
  readonly batchShape: number[];
  readonly aBatched: boolean;
  readonly bBatched: boolean;
}

function transFlags(attrs: Attrs): { transA: boolean; transB: boolean } {
  const ta = attrs.transA ?? false;
  const tb = attrs.transB ?? false;
  if (typeof ta !== 'boolean' || typeof tb !== 'boolean')
    fail(`transA/transB must be booleans, got ${JSON.stringify(ta)}/${JSON.stringify(tb)}`);
  return { transA: ta, transB: tb };
}

function matmulDims(a: DimShape, b: DimShape, attrs: Attrs): MatmulDims {
  const { transA, transB } = transFlags(attrs);
  if (a.length < 2 || b.length < 2) fail(`operands must have rank ≥ 2, got A ${fmtShape(a)} and B ${fmtShape(b)}`);
  const ra = a.length;
  const rb = b.length;
  const M = (transA ? a[ra - 1] : a[ra - 2]) as Dim;
  const Ka = (transA ? a[ra - 2] : a[ra - 1]) as Dim;
  const Kb = (transB ? b[rb - 1] : b[rb - 2]) as Dim;
  const N = (transB ? b[rb - 2] : b[rb - 1]) as Dim;
  if (!dimEq(Ka, Kb)) {
    fail(
      `inner dimensions differ: A ${fmtShape(a)}${transA ? ' (transposed)' : ''} has K=${Ka}, B ${fmtShape(b)}${transB ? ' (transposed)' : ''} has K=${Kb}`,
    );
  }
  const ba = a.slice(0, ra - 2);
  const bb = b.slice(0, rb - 2);
  if (![...ba, ...bb].every((d) => typeof d === 'number'))
    fail(`batch dimensions must be static sizes, got A ${fmtShape(a)} and B ${fmtShape(b)}`);
  if (ba.length > 0 && bb.length > 0 && !(ba.length === bb.length && ba.every((d, i) => d === bb[i]))) {
    fail(
      `batch dimensions ${fmtShape(ba)} and ${fmtShape(bb)} differ (they must match exactly, or one operand must be rank 2)`,
    );
  }
  return {
    M,
    N,
    K: Ka,
    batchShape: (ba.length > 0 ? [...ba] : [...bb]) as number[],
    aBatched: ba.length > 0,
    bBatched: bb.length > 0,
  };
}

registerOp({
  name: 'matmul',
  kind: 'gemm',
  dynamic: true,
  infer: ([a, b], attrs) => {
    const ta = a as TensorType;
    const tb = b as TensorType;
    if (ta.dtype !== 'f32' || tb.dtype !== 'f32') fail(`needs f32 operands, got ${ta.dtype} and ${tb.dtype}`);
    const d = matmulDims(dimsOf(ta), dimsOf(tb), attrs);
    return typeOf([...d.batchShape, d.M, d.N], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [a, b] = inputs as [(typeof inputs)[0] & object, (typeof inputs)[0] & object];
    const { transA, transB } = transFlags(attrs);
    const d = matmulDims(a.shape, b.shape, attrs) as MatmulDims<number>;
    const { M, N, K: Kd } = d;
    const batch = numel(d.batchShape);
    const out = new Float64Array(batch * M * N);
    const A = a.data;
    const B = b.data;
    for (let bi = 0; bi < batch; bi++) {
      const ao = d.aBatched ? bi * M * Kd : 0;
      const bo = d.bBatched ? bi * Kd * N : 0;
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < Kd; k++) {
            const av = A[ao + (transA ? k * M + m : m * Kd + k)] as number;
            const bv = B[bo + (transB ? n * Kd + k : k * N + n)] as number;
            s += av * bv;
          }
          out[(bi * M + m) * N + n] = s;
        }
      }
    }
    return out;
  },
  grad: ({ inputs, attrs, dy }) => {
    const [a, b] = inputs as [Tensor, Tensor];
    const { transA, transB } = transFlags(attrs);
    const d = matmulDims(a.dims, b.dims, attrs);
    const { M, N, K: Kd } = d;
    // Y = op(A)·op(B).  d op(A) = dY·op(B)ᵀ,  d op(B) = op(A)ᵀ·dY.
    let da: Tensor;
    if (d.bBatched || !d.aBatched || transA) {
      da = transA ? b.matmul(dy, { transA: transB, transB: true }) : dy.matmul(b, { transB: !transB });
      da = sumToShape(da, a.dims);
    } else {
      // B is shared across the batch and A is [batch..., M, K]: fold the batch into M.
      da = dy.matmul(b, { transB: !transB });
    }
    let db: Tensor;
    if (!d.bBatched && d.aBatched && !transA) {
      // B shared over a batched, non-transposed A: fold the batch into the contraction.
      const batch = numel(d.batchShape);
      const a2 = a.reshape([dimMul(batch, M), Kd]);
      const dy2 = dy.reshape([dimMul(batch, M), N]);
      db = transB ? dy2.matmul(a2, { transA: true }) : a2.matmul(dy2, { transA: true });
    } else {
      db = transB ? dy.matmul(a, { transA: true, transB: transA }) : a.matmul(dy, { transA: !transA });
      db = sumToShape(db, b.dims);
    }
    return [da, db];
  },
  lower: (args) => [lowerMatmul(args)],
});

function lowerMatmul(args: LowerArgs): Kernel {
  const [ia, ib] = args.inputs as [LowerArgs['inputs'][0] & object, LowerArgs['inputs'][0] & object];
  const { transA, transB } = transFlags(args.attrs);
  const d = matmulDims(dimsOf(ia.type), dimsOf(ib.type), args.attrs);
  const { M, N, K: Kd, batchShape } = d;
  const batch = numel(batchShape);
  const u = K.u32;
  const sz = K.size;
  const A = ia.buf;
  const B = ib.buf;
  const C = args.output.buf;
  // A batched and non-transposed, B shared: the batch folds into M (one big GEMM).
  const fold = batch > 1 && d.aBatched && !d.bBatched && !transA;
  const gM = fold ? dimMul(batch, M) : M;
  const gBatch = fold ? 1 : batch;
  const aStride = d.aBatched && !fold ? dimMul(M, Kd) : 0;
  const bStride = d.bBatched ? dimMul(Kd, N) : 0;
  const off = (b: Expr, stride: Dim, idx: Expr): Expr =>
    stride === 0 || gBatch === 1 ? idx : K.add(K.mul(b, sz(stride)), idx);

  /** Output coordinates [batch..., m, n] of element (b, m, n) of the (possibly folded) GEMM. */
  const coords = (b: Expr, m: Expr, n: Expr): Expr[] => {
    let bLin = b;
    let mm = m;
    if (fold) {
      bLin = K.div(m, sz(M));
      mm = K.mod(m, sz(M));
    }
    const cs: Expr[] = [];
    let t = bLin;
    for (let i = batchShape.length - 1; i >= 0; i--) {
      const dim = batchShape[i] as number;
      cs.unshift(i === 0 ? t : K.mod(t, u(dim)));
      t = K.div(t, u(dim));
    }
    return [...cs, mm, n];
  };

  return gemmKernel(
    {
      name: args.name,
      M: gM,
      N,
      K: Kd,
      batch: gBatch,
      // tiles chosen for the largest sizes
      tile: chooseTile(dimMax(gM), dimMax(N), dimMax(Kd), gBatch, args.limits, args.tuning.gemm),
      aContig: transA ? 'm' : 'k',
      bContig: transB ? 'k' : 'n',
      loadA: (_kb, b, m) => (k) =>
        K.load(A, off(b, aStride, transA ? K.add(K.mul(k, sz(M)), m) : K.add(K.mul(m, sz(Kd)), k))),
      loadB: (_kb, b, n) => (k) =>
        K.load(B, off(b, bStride, transB ? K.add(K.mul(n, sz(Kd)), k) : K.add(K.mul(k, sz(N)), n))),
      store: (kb, b, m, n, acc) => {
        const flat = kb.let('flat', K.add(K.mul(gBatch === 1 ? m : K.add(K.mul(b, sz(M)), m), sz(N)), n));
        kb.store(C, flat, args.epilogue(acc, coords(b, m, n), flat));
      },
    },
    args.limits,
  );
}

/** torch.nn.Linear: y = x·Wᵀ + b with weight [out, in] and bias [out] broadcast over rows. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = x.matmul(weight, { transB: true });
  return bias ? y.add(bias) : y;
}
