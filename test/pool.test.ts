/** max_pool2d and max_pool2d_grad: PyTorch output sizes, ties, gradients, GPU kernels. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { dimEval, sizeSymbol } from '../compiler/dims.js';
import { interpret } from '../compiler/interpreter.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Pool2dOptions, type Tensor } from '../compiler/tensor.js';
import { numel } from '../compiler/types.js';
import { poolOutDim, poolOutSize } from '../ops/pool.js';
import { checkGpuVsCpu, checkGradients, freshSeed, rand } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

type P2 = [number, number];
interface Case {
  readonly x: [number, number, number, number];
  readonly kernel: P2;
  readonly stride: P2;
  readonly padding: P2;
  readonly ceilMode: boolean;
}

const opts = (c: Case): Pool2dOptions => ({
  kernel: c.kernel,
  stride: c.stride,
  padding: c.padding,
  ceilMode: c.ceilMode,
});

/** Distinct values, exact in f32 (no ties, and the GPU sees the same order as the CPU). */
function distinct(n: number, seed: number): number[] {
  const key = rand(n, seed, 0, 1);
  const perm = [...Array(n).keys()].sort((a, b) => (key[a] as number) - (key[b] as number));
  return perm.map((p) => (p - n / 2) / 64);
}

/** Small integers: many ties. */
function tied(n: number, seed: number): number[] {
  return rand(n, seed, 0, 1).map((u) => Math.floor(u * 4) - 2);
}

/**
 * Independent oracle: pads with −∞ explicitly, then scans each window row-major, keeping the first
 * maximum. Returns the pooled values and, per output, the flat x index of its argmax.
 */
function oracle(x: readonly number[], c: Case): { y: number[]; arg: number[]; shape: number[] } {
  const [N, C, H, W] = c.x;
  const [kh, kw] = c.kernel;
  const [sh, sw] = c.stride;
  const [ph, pw] = c.padding;
  const OH = poolOutSize(H, kh, sh, ph, c.ceilMode);
  const OW = poolOutSize(W, kw, sw, pw, c.ceilMode);
  const HP = Math.max(H + 2 * ph, (OH - 1) * sh + kh);
  const WP = Math.max(W + 2 * pw, (OW - 1) * sw + kw);
  const y: number[] = [];
  const arg: number[] = [];
  for (let nc = 0; nc < N * C; nc++) {
    const padded: { v: number; i: number }[] = [];
    for (let i = 0; i < HP; i++)
      for (let j = 0; j < WP; j++) {
        const h = i - ph;
        const w = j - pw;
        const inside = h >= 0 && h < H && w >= 0 && w < W;
        padded.push(
          inside
            ? { v: x[(nc * H + h) * W + w] as number, i: (nc * H + h) * W + w }
            : { v: Number.NEGATIVE_INFINITY, i: -1 },
        );
      }
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let best = { v: Number.NEGATIVE_INFINITY, i: -1 };
        for (let a = 0; a < kh; a++)
          for (let b = 0; b < kw; b++) {
            const e = padded[(oh * sh + a) * WP + ow * sw + b] as { v: number; i: number };
            if (e.i >= 0 && (best.i < 0 || e.v > best.v)) best = e;
          }
        y.push(best.v);
        arg.push(best.i);
      }
  }
  return { y, arg, shape: [N, C, OH, OW] };
}

const CASES: readonly Case[] = [
  { x: [2, 3, 7, 13], kernel: [2, 2], stride: [2, 2], padding: [0, 0], ceilMode: true },
  { x: [2, 3, 7, 13], kernel: [2, 2], stride: [2, 2], padding: [0, 0], ceilMode: false },
  { x: [1, 5, 9, 11], kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: false },
  { x: [1, 5, 9, 11], kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: true },
  { x: [2, 2, 8, 10], kernel: [3, 2], stride: [1, 3], padding: [1, 0], ceilMode: true },
  { x: [1, 6, 5, 5], kernel: [3, 3], stride: [3, 3], padding: [1, 1], ceilMode: true },
  { x: [1, 1, 4, 4], kernel: [1, 1], stride: [2, 2], padding: [0, 0], ceilMode: true },
  { x: [3, 2, 6, 7], kernel: [4, 4], stride: [2, 3], padding: [2, 2], ceilMode: false },
  { x: [1, 2, 11, 14], kernel: [2, 3], stride: [3, 4], padding: [1, 1], ceilMode: false },
  { x: [2, 3, 13, 7], kernel: [3, 2], stride: [3, 2], padding: [1, 0], ceilMode: true },
];

describe('max_pool2d: shapes', () => {
  it('computes output sizes exactly like PyTorch', () => {
    // (in, kernel, stride, pad, ceil) -> out, checked against torch.nn.MaxPool2d
    const table: [number, number, number, number, boolean, number][] = [
      [224, 2, 2, 0, true, 112],
      [7, 2, 2, 0, true, 4],
      [7, 2, 2, 0, false, 3],
      [13, 2, 2, 0, true, 7],
      [4, 1, 2, 0, true, 2], // the last window would start past the input: dropped
      [5, 3, 3, 1, true, 2], // ... or in the right padding: dropped
      [5, 3, 3, 1, false, 2],
      [6, 3, 2, 1, true, 4],
      [6, 3, 2, 1, false, 3],
      [9, 3, 2, 1, true, 5],
      [10, 3, 2, 0, true, 5],
      [10, 3, 2, 0, false, 4],
    ];
    for (const [i, k, s, p, c, o] of table)
      expect(poolOutSize(i, k, s, p, c), `in ${i} k ${k} s ${s} p ${p} ceil ${c}`).toBe(o);
  });

  it("the run-time-size form of the output size equals PyTorch's rule at every size", () => {
    const H = sizeSymbol('H', 64);
    for (let k = 1; k <= 5; k++)
      for (let s = 1; s <= 4; s++)
        for (let p = 0; 2 * p <= k; p++)
          for (const c of [false, true]) {
            const d = poolOutDim(H, k, s, p, c);
            for (let h = 1; h <= 64; h++) {
              const want = poolOutSize(h, k, s, p, c);
              if (want >= 1) expect(dimEval(d, { H: h }), `in ${h} k ${k} s ${s} p ${p} ceil ${c}`).toBe(want);
            }
          }
  });

  it('declares shapes and rejects bad attributes clearly', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 7, 13]);
    expect(x.maxPool2d({ kernel: 2, ceilMode: true }).shape).toEqual([2, 3, 4, 7]);
    expect(x.maxPool2d({ kernel: 2 }).shape).toEqual([2, 3, 3, 6]);
    expect(x.maxPool2d({ kernel: [3, 2], stride: [1, 3], padding: [1, 0] }).shape).toEqual([2, 3, 7, 4]);
    expect(() => x.maxPool2d({ kernel: 2, padding: 2 })).toThrow(
      /^max_pool2d: padding \[2,2\] must be at most half the kernel \[2,2\]/,
    );
    expect(() => x.maxPool2d({ kernel: 9 })).toThrow(/kernel \[9,9\] does not fit x \[2,3,7,13\]/);
    expect(() => x.maxPool2d({ kernel: 0 })).toThrow(/attribute kernel must be two integers ≥ 1/);
    expect(() => g.input('v', [3, 7, 13]).maxPool2d({ kernel: 2 })).toThrow(
      /x must be rank 4 \(NCHW\), got \[3,7,13\]/,
    );
    expect(() =>
      g.apply('max_pool2d_grad', [x, g.input('dy', [2, 3, 4, 7])], {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        ceilMode: false,
      }),
    ).toThrow(/dy f32\[2,3,4,7\] should be f32\[2,3,3,6\]/);
  });
});

describe('max_pool2d: float64 references', () => {
  it('match an explicit −∞-padded oracle, first maximum winning ties (forward and backward)', () => {
    for (const [k, c] of CASES.entries()) {
      for (const data of ['distinct', 'tied'] as const) {
        const seed = freshSeed();
        const n = numel(c.x);
        const x = data === 'distinct' ? distinct(n, seed) : tied(n, seed);
        const o = oracle(x, c);
        const dy = rand(o.shape, seed + 1);
        const g = new GraphBuilder();
        const tx = g.input('x', c.x);
        const y = tx.maxPool2d(opts(c));
        const dx = g.apply('max_pool2d_grad', [tx, g.input('dy', o.shape)], y.node.attrs);
        expect(y.shape).toEqual(o.shape);
        const [ry, rdx] = interpret(g.graph, { x, dy }, [y.id, dx.id]) as [RefTensor, RefTensor];
        expect([...ry.data], `case ${k} ${data} seed ${seed}`).toEqual(o.y);
        const want = new Array<number>(n).fill(0);
        o.arg.forEach((a, i) => {
          want[a] = (want[a] as number) + (dy[i] as number);
        });
        [...rdx.data].forEach((v, i) =>
          expect(v, `case ${k} ${data} seed ${seed}: dx[${i}]`).toBeCloseTo(want[i] as number, 12),
        );
      }
    }
  });

  it('sends a tied window gradient to its first maximum, and propagates NaN', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [1, 1, 2, 4]);
    const y = x.maxPool2d({ kernel: 2 });
    const dx = g.apply('max_pool2d_grad', [x, g.input('dy', [1, 1, 1, 2])], y.node.attrs);
    const [ry, rdx] = interpret(g.graph, { x: [1, 3, 5, 2, 3, 0, 5, Number.NaN], dy: [10, 20] }, [y.id, dx.id]) as [
      RefTensor,
      RefTensor,
    ];
    expect(ry.data[0]).toBe(3);
    expect(Number.isNaN(ry.data[1] as number)).toBe(true);
    expect([...rdx.data]).toEqual([0, 10, 0, 0, 0, 0, 0, 20]);
  });

  it('gradient matches finite differences (inputs without ties)', () => {
    for (const c of CASES) {
      const seed = freshSeed();
      const build = (g: GraphBuilder) => {
        const x = g.input('x', c.x);
        return { out: x.maxPool2d(opts(c)), wrt: [x] };
      };
      try {
        checkGradients(build, { x: distinct(numel(c.x), seed) }, { seed, samples: 32 });
      } catch (e) {
        throw new Error(`${JSON.stringify(c)} seed ${seed}: ${(e as Error).message}`);
      }
    }
  });
});

describe('max_pool2d: GPU kernels vs float64 references', () => {
  for (const [k, c] of CASES.entries()) {
    const label = `x ${JSON.stringify(c.x)} k ${c.kernel} s ${c.stride} p ${c.padding} ${c.ceilMode ? 'ceil' : 'floor'}`;
    it(`forward and backward ${k}: ${label}`, async () => {
      const seed = freshSeed();
      const n = numel(c.x);
      for (const x of [distinct(n, seed), tied(n, seed)]) {
        await checkGpuVsCpu(
          (g) => {
            const tx = g.input('x', c.x);
            const y = tx.maxPool2d(opts(c));
            const dx = g.apply('max_pool2d_grad', [tx, g.input('dy', y.shape)], y.node.attrs);
            return { y, dx };
          },
          { feeds: { x }, seed, rtol: 1e-6 },
        );
      }
    });
  }
  it('VGG-style 2×2 stride-2 ceil pooling of an odd 57×56 map, gradient through autodiff', async () => {
    const seed = freshSeed();
    const shape = [2, 3, 57, 56] as const;
    await checkGpuVsCpu(
      (g) => {
        const x = g.input('x', shape);
        const y = x.maxPool2d({ kernel: 2, stride: 2, ceilMode: true });
        const r = g.input('r', y.shape);
        const [dx] = grad(y.mul(r).sum(), [x]) as [Tensor];
        return { y, dx };
      },
      { feeds: { x: distinct(numel(shape), seed) }, seed, rtol: 1e-6 },
    );
  });
});

describe('max_pool2d: run-time sizes', () => {
  it('one program for every batch and image size (overlapping and cell-wise gradients)', async () => {
    await checkRunTimeSizes({
      symbols: { N: 3, H: 41, W: 37 },
      build: (g, { N, H, W }) => {
        const x = g.input('x', [N as number, 3, H as number, W as number]);
        const y = x.maxPool2d({ kernel: 3, stride: 2, padding: 1, ceilMode: true });
        const z = x.maxPool2d({ kernel: 2, stride: 2, ceilMode: true });
        // weights that differ per window: each window's gradient is 2·max (y·y) or exp(max)
        const [dx] = grad(y.mul(y).sum().add(z.exp().sum()), [x]) as [Tensor];
        return { y, z, dx };
      },
      sizes: [
        { N: 1, H: 1, W: 1 },
        { N: 2, H: 41, W: 37 },
        { N: 3, H: 8, W: 9 },
        { N: 1, H: 17, W: 2 },
        { N: 2, H: 30, W: 31 },
        { N: 3, H: 5, W: 36 },
      ],
      tol: 1e-6,
    });
  });
});
