/** conv2d_grad_input / conv2d_grad_weight: shape rules, float64 references, GPU kernels. */
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import type { Attrs } from '../compiler/ir.js';
import { WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import { hasOp, type RefTensor } from '../compiler/registry.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { conv2dOutSize } from '../ops/conv-geometry.js';
import { checkGpuVsCpu, checkGradients, freshSeed, rand } from './helpers.js';

interface Case {
  readonly x: [number, number, number, number];
  readonly w: [number, number, number, number];
  readonly stride?: number | [number, number];
  readonly padding?: number | [number, number];
  readonly dilation?: number | [number, number];
  readonly groups?: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] =>
  v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v;

function convAttrs(c: Case): {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
} {
  return {
    stride: pair(c.stride, 1),
    padding: pair(c.padding, 0),
    dilation: pair(c.dilation, 1),
    groups: c.groups ?? 1,
  };
}

function dyShape(c: Case): [number, number, number, number] {
  const a = convAttrs(c);
  return [
    c.x[0],
    c.w[0],
    conv2dOutSize(c.x[2], c.w[2], a.stride[0], a.padding[0], a.dilation[0]),
    conv2dOutSize(c.x[3], c.w[3], a.stride[1], a.padding[1], a.dilation[1]),
  ];
}

/** Independent float64 forward convolution (gather form: one sum per output element). */
function convRef(x: readonly number[], w: readonly number[], c: Case): number[] {
  const [N, C, H, W] = c.x;
  const [O, Cg, KH, KW] = c.w;
  const { stride, padding, dilation, groups } = convAttrs(c);
  const [, , OH, OW] = dyShape(c);
  const Og = O / groups;
  const y: number[] = [];
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let s = 0;
          for (let ci = 0; ci < Cg; ci++) {
            const ch = Math.floor(o / Og) * Cg + ci;
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * stride[0] + kh * dilation[0] - padding[0];
                const iw = ow * stride[1] + kw * dilation[1] - padding[1];
                if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                s +=
                  (x[((n * C + ch) * H + ih) * W + iw] as number) * (w[((o * Cg + ci) * KH + kh) * KW + kw] as number);
              }
          }
          y.push(s);
        }
  return y;
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
};

/** Runs the two gradient ops' CPU references. */
function refGrads(c: Case, x: number[], w: number[], dy: number[]): { dx: Float64Array; dw: Float64Array } {
  const g = new GraphBuilder();
  const tx = g.input('x', c.x);
  const tw = g.input('w', c.w);
  const tdy = g.input('dy', dyShape(c));
  const attrs = convAttrs(c);
  const dx = g.apply('conv2d_grad_input', [tdy, tw], { ...attrs, inputShape: [...c.x] });
  const dw = g.apply('conv2d_grad_weight', [tx, tdy], { ...attrs, weightShape: [...c.w] });
  const [rx, rw] = interpret(g.graph, { x, w, dy }, [dx.id, dw.id]) as [RefTensor, RefTensor];
  return { dx: rx.data, dw: rw.data };
}

const CASES: readonly Case[] = [
  { x: [2, 5, 7, 13], w: [6, 5, 3, 3], padding: 1 },
  { x: [2, 6, 7, 13], w: [4, 3, 3, 3], padding: 1, stride: 2, groups: 2 },
  { x: [1, 3, 9, 11], w: [5, 3, 5, 5], padding: 2, dilation: 2 },
  { x: [2, 3, 7, 13], w: [5, 3, 1, 1] },
  { x: [3, 6, 17, 19], w: [10, 3, 3, 3], padding: [1, 0], stride: [2, 3], dilation: [1, 2], groups: 2 },
  { x: [1, 4, 8, 8], w: [4, 1, 3, 3], padding: 1, groups: 4 },
  { x: [2, 3, 6, 5], w: [2, 3, 5, 5], padding: 2, stride: 3 },
  { x: [2, 6, 9, 8], w: [4, 6, 1, 1], stride: 2 },
];

describe('conv2d gradients: shape rules', () => {
  it('infers dx and dW shapes', () => {
    const g = new GraphBuilder();
    const dy = g.input('dy', [2, 6, 4, 7]);
    const w = g.input('w', [6, 3, 3, 3]);
    const x = g.input('x', [2, 6, 7, 13]);
    const attrs = { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 2 };
    expect(g.apply('conv2d_grad_input', [dy, w], { ...attrs, inputShape: [2, 6, 7, 13] }).shape).toEqual([2, 6, 7, 13]);
    expect(g.apply('conv2d_grad_weight', [x, dy], { ...attrs, weightShape: [6, 3, 3, 3] }).shape).toEqual([6, 3, 3, 3]);
  });

  it('rejects mismatched shapes and attributes with clear messages', () => {
    const g = new GraphBuilder();
    const dy = g.input('dy', [2, 6, 5, 11]);
    const w = g.input('w', [6, 5, 3, 3]);
    const x = g.input('x', [2, 5, 7, 13]);
    const ok: Attrs = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 };
    expect(() => g.apply('conv2d_grad_input', [dy, w], { ...ok, inputShape: [2, 5, 7, 13] })).not.toThrow();
    expect(() => g.apply('conv2d_grad_input', [dy, w], { ...ok, inputShape: [2, 4, 7, 13] })).toThrow(
      /^conv2d_grad_input: channel mismatch: weight \[6,5,3,3\] has 5 input channels, but inputShape \[2,4,7,13\] has C\/groups = 4\/1 = 4/,
    );
    expect(() => g.apply('conv2d_grad_input', [dy, w], { ...ok, inputShape: [2, 5, 8, 13] })).toThrow(
      /dy \[2,6,5,11\] should be \[2,6,6,11\]/,
    );
    expect(() => g.apply('conv2d_grad_input', [dy, w], { ...ok, stride: [0, 1], inputShape: [2, 5, 7, 13] })).toThrow(
      /^conv2d_grad_input: attribute stride must be a pair of integers ≥ 1/,
    );
    expect(() => g.apply('conv2d_grad_input', [dy, w], ok)).toThrow(/attribute inputShape must be a list of numbers/);
    expect(() => g.apply('conv2d_grad_weight', [x, dy], { ...ok, groups: 2, weightShape: [6, 5, 3, 3] })).toThrow(
      /^conv2d_grad_weight: input channels 5 \(x \[2,5,7,13\]\) are not divisible by groups=2/,
    );
    expect(() => g.apply('conv2d_grad_weight', [x, dy], { ...ok, weightShape: [6, 5, 9, 3] })).toThrow(
      /^conv2d_grad_weight: output size -1x11 ≤ 0: kernel 9x3 with dilation 1x1 does not fit x 7x13/,
    );
    expect(() =>
      g.apply('conv2d_grad_weight', [x, g.input('d2', [2, 6, 5], 'f32')], { ...ok, weightShape: [6, 5, 3, 3] }),
    ).toThrow(/dy must be rank 4/);
  });
});

describe('conv2d gradients: float64 references', () => {
  it('satisfy <conv(x,w), dy> = <x, grad_input(dy,w)> = <w, grad_weight(x,dy)>', () => {
    for (const [k, c] of CASES.entries()) {
      const seed = freshSeed();
      const x = rand(c.x, seed);
      const w = rand(c.w, seed + 1);
      const dy = rand(dyShape(c), seed + 2);
      const y = convRef(x, w, c);
      const { dx, dw } = refGrads(c, x, w, dy);
      const lhs = dot(y, dy);
      const scale = Math.sqrt(dot(y, y) * dot(dy, dy)) + 1e-300;
      expect(Math.abs(dot(x, dx) - lhs) / scale, `case ${k} seed ${seed}: grad_input`).toBeLessThan(1e-12);
      expect(Math.abs(dot(w, dw) - lhs) / scale, `case ${k} seed ${seed}: grad_weight`).toBeLessThan(1e-12);
    }
  });

  it('match finite differences of the forward convolution', () => {
    for (const [k, c] of CASES.entries()) {
      const seed = freshSeed();
      const x = rand(c.x, seed);
      const w = rand(c.w, seed + 1);
      const dy = rand(dyShape(c), seed + 2);
      const { dx, dw } = refGrads(c, x, w, dy);
      const f = (xx: number[], ww: number[]): number => dot(convRef(xx, ww, c), dy);
      const eps = 1e-3; // f is linear in x and in w: central differences are exact up to rounding
      const picks = rand(8, seed + 3, 0, 1);
      for (const u of picks) {
        const i = Math.floor(u * x.length);
        const num =
          (f(
            x.map((v, j) => (j === i ? v + eps : v)),
            w,
          ) -
            f(
              x.map((v, j) => (j === i ? v - eps : v)),
              w,
            )) /
          (2 * eps);
        expect(Math.abs(num - (dx[i] as number)), `case ${k} seed ${seed}: dx[${i}]`).toBeLessThan(1e-9);
        const j = Math.floor(u * w.length);
        const numW =
          (f(
            x,
            w.map((v, q) => (q === j ? v + eps : v)),
          ) -
            f(
              x,
              w.map((v, q) => (q === j ? v - eps : v)),
            )) /
          (2 * eps);
        expect(Math.abs(numW - (dw[j] as number)), `case ${k} seed ${seed}: dw[${j}]`).toBeLessThan(1e-9);
      }
    }
  });

  it.runIf(hasOp('conv2d'))('are what autodiff of conv2d produces (finite-difference check)', () => {
    for (const c of CASES.slice(0, 4)) {
      const seed = freshSeed();
      const build = (g: GraphBuilder) => {
        const x = g.input('x', c.x);
        const w = g.input('w', c.w);
        return { out: x.conv2d(w, convAttrs(c)), wrt: [x, w] };
      };
      const feeds = { x: rand(c.x, seed), w: rand(c.w, seed + 1) };
      checkGradients(build, feeds, { seed });
    }
  });
});

describe('conv2d gradients: split-K', () => {
  it('splits the weight gradient of a long K (two kernels) and not of a short one', () => {
    const kernels = (c: Case): string[] => {
      const g = new GraphBuilder();
      const dw = g.apply('conv2d_grad_weight', [g.input('x', c.x), g.input('dy', dyShape(c))], {
        ...convAttrs(c),
        weightShape: [...c.w],
      });
      return compile(g, { outputs: { dw }, limits: WEBGPU_DEFAULT_LIMITS }).kernels.map((k) => k.name);
    };
    const long = kernels({ x: [2, 16, 40, 40], w: [32, 16, 3, 3], padding: 1 });
    expect(long).toHaveLength(2);
    expect(long[1]).toMatch(/_sum$/);
    expect(kernels({ x: [2, 5, 7, 13], w: [6, 5, 3, 3], padding: 1 })).toHaveLength(1);
  });
});

const GPU_CASES: readonly Case[] = [
  ...CASES,
  // several M tiles, 16×16 register blocks, split-K for the weight gradient (K = 2·40·40)
  { x: [2, 16, 40, 40], w: [32, 16, 3, 3], padding: 1 },
  // thin channel counts with groups and a stride: partial tiles everywhere
  { x: [1, 12, 15, 9], w: [9, 4, 3, 2], padding: [1, 0], stride: [2, 1], groups: 3 },
];

describe('conv2d gradients: GPU kernels vs float64 references', () => {
  for (const [k, c] of GPU_CASES.entries()) {
    const label = `x ${JSON.stringify(c.x)} w ${JSON.stringify(c.w)} ${JSON.stringify(convAttrs(c))}`;
    it(`grad_input ${k}: ${label}`, async () => {
      await checkGpuVsCpu((g) =>
        g.apply('conv2d_grad_input', [g.input('dy', dyShape(c)), g.input('w', c.w)], {
          ...convAttrs(c),
          inputShape: [...c.x],
        }),
      );
    });
    it(`grad_weight ${k}: ${label}`, async () => {
      await checkGpuVsCpu((g) =>
        g.apply('conv2d_grad_weight', [g.input('x', c.x), g.input('dy', dyShape(c))], {
          ...convAttrs(c),
          weightShape: [...c.w],
        }),
      );
    });
  }
});
