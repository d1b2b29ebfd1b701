/** matmul (batched, transposed operands, broadcast) and linear: shape rule, CPU reference, gradients, GPU kernel. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { numel, type Shape } from '../compiler/types.js';
import { chooseTile, tileCost, tileFits } from '../ops/kit/gemm.js';
import { linear } from '../ops/matmul.js';
import { checkGpuVsCpu, checkGradients, freshSeed, rand } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

/** Naive reference: op(A)·op(B) over a batch, with a rank-2 operand shared by every batch entry. */
function naive(a: number[], as: Shape, b: number[], bs: Shape, transA: boolean, transB: boolean): number[] {
  const ra = as.length;
  const rb = bs.length;
  const M = (transA ? as[ra - 1] : as[ra - 2]) as number;
  const Kd = (transA ? as[ra - 2] : as[ra - 1]) as number;
  const N = (transB ? bs[rb - 2] : bs[rb - 1]) as number;
  const batch = Math.max(numel(as.slice(0, -2)), numel(bs.slice(0, -2)));
  const out: number[] = [];
  for (let t = 0; t < batch; t++) {
    const ao = ra > 2 ? t * M * Kd : 0;
    const bo = rb > 2 ? t * Kd * N : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < Kd; k++) {
          const av = transA ? a[ao + k * M + i] : a[ao + i * Kd + k];
          const bv = transB ? b[bo + j * Kd + k] : b[bo + k * N + j];
          s += (av as number) * (bv as number);
        }
        out.push(s);
      }
    }
  }
  return out;
}

interface Case {
  readonly a: Shape;
  readonly b: Shape;
  readonly transA: boolean;
  readonly transB: boolean;
}

const cases: Case[] = [
  { a: [3, 4], b: [4, 5], transA: false, transB: false },
  { a: [4, 3], b: [4, 5], transA: true, transB: false },
  { a: [3, 4], b: [5, 4], transA: false, transB: true },
  { a: [4, 3], b: [5, 4], transA: true, transB: true },
  { a: [2, 3, 4], b: [2, 4, 5], transA: false, transB: false },
  { a: [2, 2, 4, 3], b: [2, 2, 5, 4], transA: true, transB: true },
  { a: [2, 3, 4], b: [4, 5], transA: false, transB: false },
  { a: [2, 3, 4], b: [5, 4], transA: false, transB: true },
  { a: [2, 4, 3], b: [4, 5], transA: true, transB: false },
  { a: [3, 4], b: [2, 4, 5], transA: false, transB: false },
  { a: [4, 3], b: [2, 5, 4], transA: true, transB: true },
];

const label = (c: Case): string => `A[${c.a}]${c.transA ? 'ᵀ' : ''} · B[${c.b}]${c.transB ? 'ᵀ' : ''}`;

describe('matmul shape rule', () => {
  it('infers [...batch, M, N] for every transpose combination and broadcast', () => {
    const g = new GraphBuilder();
    expect(g.input('a', [3, 4]).matmul(g.input('b', [4, 5])).shape).toEqual([3, 5]);
    expect(g.input('c', [4, 3]).matmul(g.input('d', [5, 4]), { transA: true, transB: true }).shape).toEqual([3, 5]);
    expect(g.input('e', [2, 6, 3, 4]).matmul(g.input('f', [4, 5])).shape).toEqual([2, 6, 3, 5]);
    expect(g.input('h', [3, 4]).matmul(g.input('i', [7, 4, 5])).shape).toEqual([7, 3, 5]);
  });

  it('rejects mismatched inner dimensions, batch dimensions, ranks and dtypes with clear messages', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [3, 4]);
    expect(() => a.matmul(g.input('b', [5, 6]))).toThrow(/inner dimensions differ.*K=4.*K=5/);
    expect(() => a.matmul(g.input('c', [6, 4]), { transB: false })).toThrow(/inner dimensions differ/);
    expect(() => g.input('d', [2, 3, 4]).matmul(g.input('e', [3, 4, 5]))).toThrow(
      /batch dimensions \[2\] and \[3\] differ/,
    );
    expect(() => g.input('f', [4]).matmul(g.input('h', [4, 2]))).toThrow(/rank ≥ 2/);
    expect(() => g.input('i', [3, 4], 'i32').matmul(g.input('j', [4, 2], 'i32'))).toThrow(/f32/);
  });
});

describe('matmul CPU reference', () => {
  for (const c of cases) {
    it(`matches a naive loop: ${label(c)}`, () => {
      const seed = freshSeed();
      const g = new GraphBuilder();
      const y = g.input('a', c.a).matmul(g.input('b', c.b), { transA: c.transA, transB: c.transB });
      const a = rand(c.a, seed);
      const b = rand(c.b, seed + 1);
      const got = (interpret(g.graph, { a, b }, [y.id])[0] as RefTensor).data;
      const want = naive(a, c.a, b, c.b, c.transA, c.transB);
      expect(got.length).toBe(want.length);
      want.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 12));
    });
  }
});

describe('matmul gradients (finite differences)', () => {
  for (const c of cases) {
    it(label(c), () => {
      const seed = freshSeed();
      checkGradients(
        (g) => {
          const a = g.input('a', c.a);
          const b = g.input('b', c.b);
          return { out: a.matmul(b, { transA: c.transA, transB: c.transB }), wrt: [a, b] };
        },
        { a: rand(c.a, seed), b: rand(c.b, seed + 1) },
        { seed },
      );
    });
  }

  it('linear(x, W, b) = x·Wᵀ + b', () => {
    const seed = freshSeed();
    checkGradients(
      (g) => {
        const x = g.input('x', [2, 3, 5]);
        const w = g.input('w', [4, 5]);
        const b = g.input('b', [4]);
        return { out: linear(x, w, b), wrt: [x, w, b] };
      },
      { x: rand([2, 3, 5], seed), w: rand([4, 5], seed + 1), b: rand([4], seed + 2) },
      { seed },
    );
  });
});

describe('linear', () => {
  it('follows torch.nn.Linear: weight [out, in], bias broadcast over rows', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3]);
    const w = g.input('w', [4, 3]);
    const b = g.input('b', [4]);
    const y = linear(x, w, b);
    const y0 = linear(x, w);
    expect(y.shape).toEqual([2, 4]);
    const xs = [1, 2, 3, 4, 5, 6];
    const ws = [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1];
    const bs = [10, 20, 30, 40];
    const [out, out0] = interpret(g.graph, { x: xs, w: ws, b: bs }, [y.id, y0.id]) as [RefTensor, RefTensor];
    expect([...out.data]).toEqual([11, 22, 33, 46, 14, 25, 36, 55]);
    expect([...out0.data]).toEqual([1, 2, 3, 6, 4, 5, 6, 15]);
  });
});

describe('matmul tiling', () => {
  const lim = limitsFrom({ maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 1024 });
  it('register-blocks big problems with 16×16 per thread and fits the WebGPU default limits', () => {
    const t = chooseTile(1024, 1024, 1024, 1, lim);
    expect(t.TM * t.TN).toBeGreaterThanOrEqual(256);
    const d = chooseTile(1024, 1024, 1024, 1, WEBGPU_DEFAULT_LIMITS);
    expect(tileFits(d, WEBGPU_DEFAULT_LIMITS)).toBe(true);
    expect((d.BM * d.BK + d.BK * d.BN) * 4).toBeLessThanOrEqual(WEBGPU_DEFAULT_LIMITS.maxComputeWorkgroupStorageSize);
  });
  it('picks thin tiles for thin problems', () => {
    const t = chooseTile(4096, 6, 27, 1, lim);
    expect(t.BN).toBeLessThanOrEqual(8);
    expect(tileCost(t, 4096, 6, 27, 1)).toBeLessThan(
      tileCost({ BM: 64, BN: 64, BK: 32, TM: 16, TN: 16 }, 4096, 6, 27, 1),
    );
  });
});

describe('matmul on the GPU', () => {
  const gpuCases: (Case & { name: string })[] = [
    { name: 'odd 7×5 · 5×13', a: [7, 5], b: [5, 13], transA: false, transB: false },
    { name: 'tile-aligned 128×64 · 64×64', a: [128, 64], b: [64, 64], transA: false, transB: false },
    { name: 'M/N/K off the tile, transA', a: [37, 100], b: [37, 70], transA: true, transB: false },
    { name: 'big odd 193×150 · 150×131, transB', a: [193, 150], b: [131, 150], transA: false, transB: true },
    { name: 'batched both transposed', a: [3, 9, 6], b: [3, 11, 9], transA: true, transB: true },
    { name: 'batched A, shared B (folded into M)', a: [2, 3, 7, 10], b: [10, 6], transA: false, transB: false },
    { name: 'outer product (K = 1)', a: [9, 1], b: [1, 17], transA: false, transB: false },
    { name: 'row vector (M = 1) against a wide matrix', a: [1, 40], b: [40, 300], transA: false, transB: false },
    { name: 'shared A, batched B', a: [3, 5], b: [4, 3, 9], transA: true, transB: false },
  ];
  for (const c of gpuCases) {
    it(c.name, async () => {
      await checkGpuVsCpu((g) => g.input('a', c.a).matmul(g.input('b', c.b), { transA: c.transA, transB: c.transB }));
    });
  }

  it('runs more workgroups than one grid dimension holds (folded grid)', async () => {
    // 70000 independent 3×2 products: one 8×8 tile each, so the 1-D grid exceeds 65535 workgroups.
    await checkGpuVsCpu((g) => g.input('a', [70000, 3, 4]).matmul(g.input('b', [70000, 4, 2])));
  });

  it('fuses linear + bias + ReLU into the GEMM epilogue (one dispatch)', async () => {
    const { spec } = await checkGpuVsCpu((g) =>
      linear(g.input('x', [2, 9, 20]), g.param('w', [12, 20]), g.param('b', [12])).relu(),
    );
    expect(spec.stats.dispatches).toBe(1);
    expect(spec.kernels[0]?.wgsl).toContain('max(');
  });

  it('computes gradients of a batched product on the GPU', async () => {
    await checkGpuVsCpu((g) => {
      const a = g.param('a', [2, 5, 7]);
      const b = g.param('b', [7, 3]);
      const y = a.matmul(b).relu();
      const loss = y.mul(y).sum();
      const [da, db] = grad(loss, [a, b]) as [Tensor, Tensor];
      return { da, db };
    });
  });
});

describe('matmul: run-time sizes', () => {
  it('one program for every row count: linear + bias + relu (fused epilogue), transposed and batched operands, gradients (the weight gradient contracts over the run-time axis)', async () => {
    await checkRunTimeSizes({
      symbols: { N: 70 },
      build: (g, { N }) => {
        const x = g.input('x', [N as number, 37]);
        const w = g.input('w', [23, 37]);
        const bias = g.input('bias', [23]);
        const y = linear(x, w, bias).relu();
        const xb = g.input('xb', [2, N as number, 9]);
        const b = g.input('b', [9, 6]);
        const z = xb.matmul(b);
        const loss = y.sum().add(z.mul(z).sum());
        // dw = dyᵀ·x and db = xbᵀ·dz contract over the run-time axis
        const [dx, dw, dxb, db] = grad(loss, [x, w, xb, b]) as [Tensor, Tensor, Tensor, Tensor];
        return { y, z, dx, dw, dxb, db };
      },
      sizes: [70, 1, 33].map((N) => ({ N })),
      tol: 1e-5,
    });
  });
});
