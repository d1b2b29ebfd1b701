/** conv2d: shape rule, float64 reference against an independent oracle, gradients, GPU implicit GEMM. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import type { Dim } from '../compiler/dims.js';
import { interpret } from '../compiler/interpreter.js';
import { WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { type Conv2dOptions, GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { conv2dOutSize } from '../ops/conv-geometry.js';
import { checkGpuVsCpu, checkGradients, freshSeed, rand } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

type P2 = [number, number];
interface Case {
  readonly name: string;
  readonly x: [number, number, number, number];
  /** [O, C/groups, KH, KW] */
  readonly w: [number, number, number, number];
  readonly stride: P2;
  readonly padding: P2;
  readonly dilation: P2;
  readonly groups: number;
}

const opts = (c: Case): Conv2dOptions => ({
  stride: c.stride,
  padding: c.padding,
  dilation: c.dilation,
  groups: c.groups,
});

/**
 * Independent oracle: zero-pads x explicitly, then for every output pixel walks the dilated window
 * of the padded image (no bounds tests inside the window).
 */
function oracle(x: readonly number[], w: readonly number[], c: Case): number[] {
  const [N, C, H, W] = c.x;
  const [O, I, KH, KW] = c.w;
  const [sh, sw] = c.stride;
  const [ph, pw] = c.padding;
  const [dh, dw] = c.dilation;
  const HP = H + 2 * ph;
  const WP = W + 2 * pw;
  const padded = new Array<number>(N * C * HP * WP).fill(0);
  for (let nc = 0; nc < N * C; nc++)
    for (let h = 0; h < H; h++)
      for (let j = 0; j < W; j++) padded[(nc * HP + h + ph) * WP + j + pw] = x[(nc * H + h) * W + j] as number;
  const OH = Math.floor((HP - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((WP - dw * (KW - 1) - 1) / sw) + 1;
  const opg = O / c.groups;
  const out: number[] = [];
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / opg);
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          let s = 0;
          for (let ci = 0; ci < I; ci++)
            for (let a = 0; a < KH; a++)
              for (let b = 0; b < KW; b++) {
                const xv = padded[((n * C + g * I + ci) * HP + i * sh + a * dh) * WP + j * sw + b * dw] as number;
                s += xv * (w[((o * I + ci) * KH + a) * KW + b] as number);
              }
          out.push(s);
        }
    }
  return out;
}

const cases: Case[] = [
  {
    name: '3→5 channels, 7×13, 3×3, padding 1',
    x: [2, 3, 7, 13],
    w: [5, 3, 3, 3],
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 1,
  },
  {
    name: 'stride 2, 6 channels',
    x: [1, 6, 9, 8],
    w: [4, 6, 3, 3],
    stride: [2, 2],
    padding: [0, 0],
    dilation: [1, 1],
    groups: 1,
  },
  {
    name: 'dilation 2, padding 2',
    x: [1, 3, 8, 9],
    w: [3, 3, 3, 3],
    stride: [1, 1],
    padding: [2, 2],
    dilation: [2, 2],
    groups: 1,
  },
  {
    name: 'groups 2 (6→4 channels)',
    x: [2, 6, 5, 7],
    w: [4, 3, 3, 2],
    stride: [1, 1],
    padding: [1, 0],
    dilation: [1, 1],
    groups: 2,
  },
  {
    name: 'depthwise (groups = channels = 3)',
    x: [1, 3, 6, 6],
    w: [6, 1, 3, 3],
    stride: [1, 2],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 3,
  },
  {
    name: '1×1 kernel',
    x: [2, 5, 4, 3],
    w: [6, 5, 1, 1],
    stride: [1, 1],
    padding: [0, 0],
    dilation: [1, 1],
    groups: 1,
  },
  {
    name: 'asymmetric everything',
    x: [1, 2, 11, 10],
    w: [3, 2, 2, 3],
    stride: [2, 3],
    padding: [1, 2],
    dilation: [2, 1],
    groups: 1,
  },
];

describe('conv2d shape rule', () => {
  it('gives PyTorch output sizes', () => {
    expect(conv2dOutSize(7, 3, 1, 1, 1)).toBe(7);
    expect(conv2dOutSize(9, 3, 2, 0, 1)).toBe(4);
    expect(conv2dOutSize(8, 3, 1, 2, 2)).toBe(8);
    const g = new GraphBuilder();
    for (const c of cases) {
      const y = g.input(`x${c.name}`, c.x).conv2d(g.input(`w${c.name}`, c.w), opts(c));
      const OH = conv2dOutSize(c.x[2], c.w[2], c.stride[0], c.padding[0], c.dilation[0]);
      const OW = conv2dOutSize(c.x[3], c.w[3], c.stride[1], c.padding[1], c.dilation[1]);
      expect(y.shape).toEqual([c.x[0], c.w[0], OH, OW]);
    }
  });

  it('rejects bad shapes and attributes with clear messages', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [1, 6, 8, 8]);
    expect(() => x.conv2d(g.input('w1', [4, 5, 3, 3]))).toThrow(
      /channel mismatch.*\[4,5,3,3\].*5 input channels.*C\/groups = 6\/1 = 6/,
    );
    expect(() => x.conv2d(g.input('w2', [4, 3, 3, 3]), { groups: 4 })).toThrow(
      /input channels 6.*not divisible by groups=4/,
    );
    expect(() => x.conv2d(g.input('w3', [5, 3, 3, 3]), { groups: 2 })).toThrow(
      /output channels 5.*not divisible by groups=2/,
    );
    expect(() => x.conv2d(g.input('w4', [4, 6, 9, 3]))).toThrow(/output size 0x6 ≤ 0/);
    expect(() => x.conv2d(g.input('w5', [4, 6, 3, 3]), { dilation: 5 })).toThrow(/does not fit input 8x8/);
    expect(() => g.input('x3', [6, 8, 8]).conv2d(g.input('w6', [4, 6, 3, 3]))).toThrow(/NCHW \(rank 4\)/);
    expect(() => x.conv2d(g.input('w7', [4, 6, 3, 3]), { stride: 0 })).toThrow(/stride must be a pair of integers ≥ 1/);
    expect(() => x.conv2d(g.input('w8', [4, 6, 3, 3]), { groups: 0 })).toThrow(/groups must be a positive integer/);
  });
});

describe('conv2d CPU reference', () => {
  for (const c of cases) {
    it(`matches an explicit-padding oracle: ${c.name}`, () => {
      const seed = freshSeed();
      const g = new GraphBuilder();
      const y = g.input('x', c.x).conv2d(g.input('w', c.w), opts(c));
      const x = rand(c.x, seed);
      const w = rand(c.w, seed + 1);
      const got = (interpret(g.graph, { x, w }, [y.id])[0] as RefTensor).data;
      const want = oracle(x, w, c);
      expect(got.length).toBe(want.length);
      want.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 12));
    });
  }
});

describe('conv2d gradients (finite differences)', () => {
  for (const c of cases) {
    it(c.name, () => {
      const seed = freshSeed();
      checkGradients(
        (g) => {
          const x = g.input('x', c.x);
          const w = g.input('w', c.w);
          return { out: x.conv2d(w, opts(c)), wrt: [x, w] };
        },
        { x: rand(c.x, seed), w: rand(c.w, seed + 1) },
        { seed },
      );
    });
  }
});

describe('conv2d on the GPU', () => {
  for (const c of cases) {
    it(c.name, async () => {
      await checkGpuVsCpu((g) => g.input('x', c.x).conv2d(g.param('w', c.w), opts(c)));
    });
  }

  it('a larger layer: 16→24 channels, 3×3, 28×28, batch 2 (M, N, K off the tile)', async () => {
    await checkGpuVsCpu((g) => g.input('x', [2, 16, 28, 28]).conv2d(g.param('w', [24, 16, 3, 3]), { padding: 1 }));
  });

  it('fuses conv + bias + ReLU into one dispatch', async () => {
    const { spec } = await checkGpuVsCpu((g) => {
      const y = g.input('x', [2, 3, 7, 13]).conv2d(g.param('w', [5, 3, 3, 3]), { padding: 1 });
      return y.add(g.param('b', [5, 1, 1])).relu();
    });
    expect(spec.stats.dispatches).toBe(1);
  });

  it('computes input and weight gradients on the GPU', async () => {
    await checkGpuVsCpu((g) => {
      const x = g.param('x', [2, 4, 7, 9]);
      const w = g.param('w', [6, 2, 3, 3]);
      const y = x.conv2d(w, { padding: 1, stride: 2, groups: 2 }).relu();
      const [dx, dw] = grad(y.mul(y).sum(), [x, w]) as [Tensor, Tensor];
      return { dx, dw };
    });
  });
});

/**
 * x [N, 3, H, W] → y1 = relu(conv 3×3 pad 1 (+ bias)) → y2 (stride 2) and y3 (groups 2, dilation 2): the
 * run-time-size tests' stack.
 */
function threeConvs(g: GraphBuilder, d: Readonly<Record<string, Dim>>, bias: boolean) {
  const x = g.input('x', [d.N as number, 3, d.H as number, d.W as number]);
  const w1 = g.input('w1', [4, 3, 3, 3]);
  const b1 = bias ? g.input('b1', [1, 4, 1, 1]) : undefined;
  const w2 = g.input('w2', [5, 4, 3, 3]);
  const w3 = g.input('w3', [6, 2, 3, 3]);
  const c1 = x.conv2d(w1, { padding: 1 });
  const y1 = (b1 ? c1.add(b1) : c1).relu();
  const y2 = y1.conv2d(w2, { stride: 2, padding: 1 });
  const y3 = y1.conv2d(w3, { groups: 2, dilation: 2, padding: 2 });
  return { x, w1, w2, w3, y1, y2, y3 };
}

/** Sizes [N, H, W] as the harness's records. */
const nhw = (list: readonly (readonly [number, number, number])[]) => list.map(([N, H, W]) => ({ N, H, W }));

describe('conv2d: run-time sizes', () => {
  it('one program for every batch and image size: padded, strided, grouped and dilated, with a fused bias + relu', async () => {
    await checkRunTimeSizes({
      symbols: { N: 2, H: 19, W: 23 },
      build: (g, d) => {
        const { y1, y2, y3 } = threeConvs(g, d, true);
        return { y1, y2, y3 };
      },
      sizes: nhw([
        [2, 19, 23],
        [1, 1, 1],
        [2, 6, 17],
        [1, 19, 4],
      ]),
      tol: 1e-5,
    });
  });

  it('one training graph for every batch and image size: input and weight gradients (split-K included) over run-time N, H and W', async () => {
    await checkRunTimeSizes({
      symbols: { N: 3, H: 41, W: 37 },
      build: (g, d) => {
        const { x, w1, w2, w3, y2, y3 } = threeConvs(g, d, false);
        // a loss whose gradient is not constant: both layers' outputs squared
        const loss = y2.mul(y2).sum().add(y3.mul(y3).sum());
        const [dx, dw1, dw2, dw3] = grad(loss, [x, w1, w2, w3]) as [Tensor, Tensor, Tensor, Tensor];
        return { loss, dx, dw1, dw2, dw3 };
      },
      sizes: nhw([
        [3, 41, 37],
        [1, 1, 1],
        [2, 6, 17],
        [1, 40, 4],
        [3, 9, 36],
      ]),
      tol: 1e-5,
    });
  });

  it('the weight gradient of a long run-time K is split, and the input gradient reads x only for its shape', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [g.dim('N', { max: 4 }), 8, g.dim('H', { max: 64 }), g.dim('W', { max: 64 })]);
    const w = g.input('w', [8, 8, 3, 3]);
    const [dx, dw] = grad(x.conv2d(w, { padding: 1 }).sum(), [x, w]) as [Tensor, Tensor];
    expect(dx.node.op).toBe('conv2d_grad_input');
    expect(dx.node.inputs).toHaveLength(3);
    const { spec } = compile(g, { outputs: { dx, dw }, limits: WEBGPU_DEFAULT_LIMITS });
    expect(spec.kernels.some((k) => k.name.endsWith('_sum'))).toBe(true);
    const gi = spec.kernels.find((k) => k.name.includes('conv2d_grad_input'));
    // bound: dy, w and dx (not x)
    expect(gi?.bindings).toHaveLength(3);
  });
});
