/**
 * roi_pool and roi_pool_grad: shape rules, torchvision's naive reference (spec §9), the float32 bin
 * arithmetic, both rounding modes, finite-difference gradients, GPU kernels vs the CPU reference, and
 * fast-check properties batched into single GPU runs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { interpret } from '../compiler/interpreter.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { roiPool as roiPoolEager } from '../ops/detection-eager.js';
import { cRound, roundHalfEven } from '../ops/kit/rounding.js';
import { type RoiPoolOptions, roiPool } from '../ops/roi-pool.js';
import type { HostTensor } from '../runtime/session.js';
import {
  checkGpuVsCpu,
  checkGradients,
  checkGradientsSeeded,
  expectCloseRel,
  freshSeed,
  gpuCpuRunner,
  interpretOne,
  rand,
  relError,
} from './helpers.js';
import { checkRunTimeSizes, inputShape } from './run-time-sizes.js';

const f32 = (xs: readonly number[]): number[] => xs.map(Math.fround);

/** Distinct f32 values in random order (no ties: the argmax is unambiguous on CPU and GPU). */
function distinct(n: number, seed: number): number[] {
  const key = rand(n, seed, 0, 1);
  const perm = [...Array(n).keys()].sort((a, b) => (key[a] as number) - (key[b] as number));
  return perm.map((p) => (p - n / 2) / 256);
}

/**
 * torchvision test_ops.py RoIPool reference: integer-rounded roi, crop x[b, :, y1:y2+1, x1:x2+1], bins
 * [floor(k·bin), ceil((k+1)·bin)) of the crop in float64, empty bin stays 0. Only for RoIs inside the image.
 */
function naiveRoiPool(
  x: readonly number[],
  shape: readonly [number, number, number, number],
  rois: readonly (readonly number[])[],
  PH: number,
  PW: number,
  scale: number,
  round: (v: number) => number = cRound,
): number[] {
  const [, C, H, W] = shape;
  const out: number[] = [];
  for (const roi of rois) {
    const b = Math.trunc(roi[0] as number);
    const [j0, i0, j1, i1] = [roi[1], roi[2], roi[3], roi[4]].map((v) => round((v as number) * scale)) as [
      number,
      number,
      number,
      number,
    ];
    const rh = Math.min(i1 + 1, H) - Math.max(i0, 0);
    const rw = Math.min(j1 + 1, W) - Math.max(j0, 0);
    const binH = rh / PH;
    const binW = rw / PW;
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < PH; i++) {
        for (let j = 0; j < PW; j++) {
          let best = Number.NEGATIVE_INFINITY;
          for (let h = Math.floor(i * binH); h < Math.min(Math.ceil((i + 1) * binH), rh); h++) {
            for (let w = Math.floor(j * binW); w < Math.min(Math.ceil((j + 1) * binW), rw); w++) {
              best = Math.max(best, x[((b * C + c) * H + i0 + h) * W + j0 + w] as number);
            }
          }
          out.push(best === Number.NEGATIVE_INFINITY ? 0 : best);
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- shape rules

describe('roi_pool shape rules', () => {
  it('infers [K,C,PH,PW] and rejects bad inputs with clear messages', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 10, 12]);
    const rois = g.input('rois', [7, 5]);
    expect(roiPool(x, rois, { outputSize: [3, 4] }).shape).toEqual([7, 3, 3, 4]);
    expect(roiPool(x, rois, { outputSize: 7, spatialScale: 1 / 16 }).shape).toEqual([7, 3, 7, 7]);
    expect(() => roiPool(x, g.input('r4', [7, 4]), { outputSize: 2 })).toThrow(
      /roi_pool: rois must be \[K,5\] rows \(batch index, x1, y1, x2, y2\), got \[7,4\]/,
    );
    expect(() => roiPool(x, g.input('r3', [3]), { outputSize: 2 })).toThrow(/rois must be \[K,5\]/);
    expect(() => roiPool(g.input('x3', [3, 10, 12]), rois, { outputSize: 2 })).toThrow(
      /features must be rank 4 \(NCHW\), got \[3,10,12\]/,
    );
    expect(() => roiPool(x, g.input('ri', [7, 5], 'i32'), { outputSize: 2 })).toThrow(/rois must be f32/);
    expect(() => roiPool(x, rois, { outputSize: 0 })).toThrow(/pooledH must be an integer in \[1, 256\], got 0/);
    expect(() => roiPool(x, rois, { outputSize: 2, spatialScale: -1 })).toThrow(
      /spatialScale must be a positive finite number/,
    );
    expect(() =>
      roiPool(x, rois, { outputSize: 2, roundingMode: 'up' as RoiPoolOptions['roundingMode'] & string }),
    ).toThrow(/roundingMode must be 'c' or 'half_even'/);
    expect(() =>
      g.apply('roi_pool_grad', [x, rois, g.input('dy', [7, 3, 2, 3])], { pooledH: 2, pooledW: 2, spatialScale: 1 }),
    ).toThrow(/dy f32\[7,3,2,3\] should be f32\[7,3,2,2\]/);
  });
});

// ---------------------------------------------------------------- fixed cases (spec §9)

const SPEC_ROIS = [
  [0, 0, 0, 9, 9],
  [0, 0, 5, 4, 9],
  [0, 5, 5, 9, 9],
  [1, 0, 0, 9, 9],
];

describe('roi_pool forward (spec §9 cases)', () => {
  const shape = [2, 50, 10, 10] as const;

  it('matches the naive reference: x rand(2,50,10,10), 5×5, scale 1 (CPU and GPU)', async () => {
    const seed = freshSeed();
    const x = f32(rand(shape, seed, 0, 1));
    const want = naiveRoiPool(x, shape, SPEC_ROIS, 5, 5, 1);
    const build = (g: GraphBuilder) => roiPool(g.input('x', shape), g.input('rois', [4, 5]), { outputSize: 5 });
    const feeds = { x, rois: SPEC_ROIS.flat() };
    expectCloseRel(interpretOne(build, feeds).data, want, 1e-12, `seed ${seed} cpu`);
    const { gpu } = await checkGpuVsCpu(build, { feeds, rtol: 1e-5 });
    expectCloseRel((gpu.out as HostTensor).data, want, 1e-6, `seed ${seed} gpu`);
  });

  it('non-contiguous input (x permuted H↔W by a transpose) gives the same result', async () => {
    const seed = freshSeed();
    const x = f32(rand(shape, seed, 0, 1));
    // xt holds x with H and W swapped; transposing it back is the non-contiguous view torchvision tests
    const xt: number[] = new Array(x.length);
    for (let nc = 0; nc < 100; nc++)
      for (let h = 0; h < 10; h++)
        for (let w = 0; w < 10; w++) xt[nc * 100 + w * 10 + h] = x[nc * 100 + h * 10 + w] as number;
    const want = naiveRoiPool(x, shape, SPEC_ROIS, 5, 5, 1);
    const { gpu } = await checkGpuVsCpu(
      (g) =>
        roiPool(g.input('xt', [2, 50, 10, 10]).transpose([0, 1, 3, 2]), g.input('rois', [4, 5]), { outputSize: 5 }),
      { feeds: { xt, rois: SPEC_ROIS.flat() }, rtol: 1e-5 },
    );
    expectCloseRel((gpu.out as HostTensor).data, want, 1e-6, `seed ${seed}`);
  });

  it('empty bins are 0 and malformed boxes pool one pixel', () => {
    // 2 rows pooled into 5 bins: floor/ceil bins of width 0.4 leave no bin empty; a box past the image
    // bottom gives bins clamped to [H, H) → empty → 0.
    const x = [...Array(16).keys()].map((v) => v + 1); // 1×1×4×4
    const rois = [
      [0, 1, 1, 1, 1], // single pixel (1,1) = 6
      [0, 3, 3, 1, 1], // x2 < x1: roi width max(−1, 1) = 1 → pixel (3,3) = 16
      [0, 0, 5, 3, 9], // entirely below the image → all bins empty → 0
    ];
    const y = interpretOne((g) => roiPool(g.input('x', [1, 1, 4, 4]), g.input('rois', [3, 5]), { outputSize: 2 }), {
      x,
      rois: rois.flat(),
    });
    expect([...y.data]).toEqual([6, 6, 6, 6, 16, 16, 16, 16, 0, 0, 0, 0]);
  });

  it("reproduces torchvision's float32 bin edges: 57 px in 7 bins puts pixel 57 in the last bin", async () => {
    // fl(57/7)·7 = 57.0000038 → ceil 58: the last bin is [48, 58), one column past the box [0, 56]
    const H = 2;
    const W = 64;
    const x = [...Array(H * W).keys()].map((k) => (k % W === 57 ? 100 : (k % W) / 64));
    const build = (g: GraphBuilder) =>
      roiPool(g.input('x', [1, 1, H, W]), g.input('rois', [1, 5]), { outputSize: [1, 7] });
    const feeds = { x, rois: [0, 0, 0, 56, 1] };
    const y = interpretOne(build, feeds);
    expect(y.data[6]).toBe(100);
    expect(y.data[5]).toBe(48 / 64); // bin 5 is [40, 49)
    const { gpu } = await checkGpuVsCpu(build, { feeds, rtol: 0 });
    expect((gpu.out as HostTensor).data[6]).toBe(100);
  });

  it('bin edges follow float32 arithmetic for every RoI width 1..300 (7 and 63 bins; GPU long division)', async () => {
    const W = 320;
    const K = 300;
    // channel 0 increases along w (the bin max reveals its end), channel 1 decreases (reveals its start)
    const x = [...[...Array(W).keys()], ...[...Array(W).keys()].map((w) => -w)];
    const rois = [...Array(K).keys()].flatMap((k) => [0, 0, 0, k, 0]); // widths 1..300
    for (const P of [7, 63]) {
      const fb = (k: number, roi: number): number => Math.fround(k * Math.fround(roi / P));
      const want: number[] = [];
      let quirks = 0;
      for (let k = 0; k < K; k++) {
        for (let c = 0; c < 2; c++) {
          const roi = k + 1;
          for (let j = 0; j < P; j++) {
            const ws = Math.floor(fb(j, roi));
            const we = Math.min(Math.ceil(fb(j + 1, roi)), W);
            if (ws !== Math.floor((j * roi) / P) || we !== Math.ceil(((j + 1) * roi) / P)) quirks++;
            want.push(we <= ws ? 0 : c === 0 ? we - 1 : -ws);
          }
        }
      }
      expect(quirks).toBeGreaterThan(0); // the float32 edges differ from exact rationals somewhere
      const build = (g: GraphBuilder) =>
        roiPool(g.input('x', [1, 2, 1, W]), g.input('rois', [K, 5]), { outputSize: [1, P] });
      const feeds = { x, rois };
      expect([...interpretOne(build, feeds).data]).toEqual(want);
      const { gpu } = await checkGpuVsCpu(build, { feeds, rtol: 0 });
      expect([...(gpu.out as HostTensor).data]).toEqual(want);
    }
  });

  it('rounding modes: C round (half away from zero, default) vs half-to-even', async () => {
    expect([2.5, 3.5, -2.5, -0.5, 0.49999997].map(cRound)).toEqual([3, 4, -3, -1, 0]);
    expect([2.5, 3.5, -2.5, -0.5, 1.5000001].map(roundHalfEven)).toEqual([2, 4, -2, -0, 2]);
    const H = 6;
    const W = 8;
    const x = f32(distinct(2 * H * W, 11));
    const rois = [
      [0, 2.5, 0.5, 5.5, 4.5],
      [1, 1.5, 1.5, 6.5, 3.5],
      [0, 0.25, 0.75, 6.75, 5.25],
    ];
    for (const mode of ['c', 'half_even'] as const) {
      const round = mode === 'c' ? cRound : roundHalfEven;
      const build = (g: GraphBuilder) =>
        roiPool(g.input('x', [2, 1, H, W]), g.input('rois', [3, 5]), { outputSize: [2, 3], roundingMode: mode });
      const feeds = { x, rois: rois.flat() };
      const want = naiveRoiPool(x, [2, 1, H, W], rois, 2, 3, 1, round);
      expectCloseRel(interpretOne(build, feeds).data, want, 0, mode);
      await checkGpuVsCpu(build, { feeds, rtol: 0 });
    }
    // the two modes really differ on these boxes
    const a = naiveRoiPool(x, [2, 1, H, W], rois, 2, 3, 1, cRound);
    const b = naiveRoiPool(x, [2, 1, H, W], rois, 2, 3, 1, roundHalfEven);
    expect(a).not.toEqual(b);
  });
});

// ---------------------------------------------------------------- gradients

describe('roi_pool gradients (finite differences, float64)', () => {
  const rois = [
    [0, 0, 0, 4, 4],
    [0, 0, 2, 3, 4],
    [0, 2, 2, 4, 4],
  ];
  it('spec §9 gradcheck: x rand(1,8,5,5), rois [[0,0,0,4,4],[0,0,2,3,4],[0,2,2,4,4]], pool 2×2 (10 seeds)', () => {
    for (let k = 0; k < 10; k++) {
      const seed = freshSeed();
      checkGradientsSeeded(
        (g) => {
          const x = g.input('x', [1, 8, 5, 5]);
          return { out: roiPool(x, g.constant(rois.flat(), [3, 5]), { outputSize: 2 }), wrt: [x] };
        },
        { x: rand([1, 8, 5, 5], seed, 0, 1) },
        { samples: 40, seed },
      );
    }
  });

  it('multi-image, scaled, partly outside, overlapping RoIs', () => {
    const seed = freshSeed();
    const rois = [
      [1, -8, 4, 30, 22],
      [0, 6, 6, 26, 30],
      [1, 10, -4, 14, 40],
      [0, 0, 0, 40, 40],
    ];
    checkGradients(
      (g) => {
        const x = g.input('x', [2, 3, 7, 9]);
        return {
          out: roiPool(x, g.constant(rois.flat(), [4, 5]), { outputSize: [3, 2], spatialScale: 0.25 }),
          wrt: [x],
        };
      },
      { x: distinct(2 * 3 * 7 * 9, seed) },
      { samples: 60, seed },
    );
  });

  it('no gradient flows to the RoI coordinates (piecewise constant)', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [1, 2, 5, 5]);
    const r = g.input('rois', [2, 5]);
    const [gx, gr] = grad(roiPool(x, r, { outputSize: 2 }).sum(), [x, r]);
    const v = interpret(g.graph, { x: rand(50, 3), rois: [0, 0, 0, 3, 3, 0, 1, 1, 4, 2] }, [
      (gr as Tensor).id,
      (gx as Tensor).id,
    ]);
    expect([...(v[0] as RefTensor).data].every((e) => e === 0)).toBe(true);
    // each of the 2·2·2·2 outputs sends its 1 to one pixel
    expect((v[1] as RefTensor).data.reduce((a, b) => a + b, 0)).toBe(16);
  });
});

// ---------------------------------------------------------------- GPU vs CPU

interface PoolCase {
  readonly name: string;
  readonly x: [number, number, number, number];
  readonly rois: number[][];
  readonly opts: RoiPoolOptions;
}

const gpuCases: PoolCase[] = [
  {
    name: 'odd sizes 7×13, 3 channels, pool 3×5, scale 1, partly outside + zero-size + x2<x1 + bad batch index',
    x: [2, 3, 7, 13],
    rois: [
      [0, 0, 0, 12, 6],
      [1, -3, -2, 5, 4],
      [1, 8.4, 2.6, 20, 11],
      [0, 4, 4, 4, 4],
      [0, 9, 5, 2, 1],
      [2, 0, 0, 5, 5], // batch index 2 ≥ N: zero output, no gradient
      [1.7, 1, 1, 6, 6], // truncated to image 1
    ],
    opts: { outputSize: [3, 5] },
  },
  {
    name: 'VGG-style scale 1/16, 7×7 bins larger than the RoI, 5 channels',
    x: [1, 5, 9, 11],
    rois: [
      [0, 0, 0, 160, 128],
      [0, 17, 31, 70, 90],
      [0, 100, 20, 180, 150],
      [0, -40, -40, 30, 10],
    ],
    opts: { outputSize: 7, spatialScale: 1 / 16 },
  },
  {
    name: 'half_even rounding, scale 0.5, 1×1 output, 3 images',
    x: [3, 2, 6, 5],
    rois: [
      [2, 1, 1, 7, 9],
      [0, 3, 3, 3, 3],
      [1, -1, 5, 9, 13],
    ],
    opts: { outputSize: 1, spatialScale: 0.5, roundingMode: 'half_even' },
  },
  {
    name: 'channel blocks in the gather: 37 channels (16 + 16 + 5), pool 2×3',
    x: [2, 37, 5, 6],
    rois: [
      [1, 0, 0, 5, 4],
      [0, 1.6, 0.4, 4.4, 3.6],
      [1, -2, 2, 3, 7],
    ],
    opts: { outputSize: [2, 3] },
  },
];

describe('roi_pool GPU kernels vs the CPU reference', () => {
  for (const c of gpuCases) {
    it(c.name, async () => {
      const seed = freshSeed();
      const K = c.rois.length;
      const [N, C, H, W] = c.x;
      const r = await gpuCpuRunner((g) => {
        const x = g.input('x', c.x);
        const rois = g.input('rois', [K, 5]);
        const dy = g.input('dy', [
          K,
          C,
          ...(typeof c.opts.outputSize === 'number' ? [c.opts.outputSize, c.opts.outputSize] : c.opts.outputSize),
        ]);
        const y = roiPool(x, rois, c.opts);
        const [dx] = grad(y.mul(dy).sum(), [x]);
        return { y, dx: dx as Tensor };
      });
      const PHW =
        typeof c.opts.outputSize === 'number' ? c.opts.outputSize ** 2 : c.opts.outputSize[0] * c.opts.outputSize[1];
      const feeds = {
        x: distinct(N * C * H * W, seed),
        rois: f32(c.rois.flat()),
        dy: f32(rand(K * C * PHW, seed + 1)),
      };
      const { gpu, cpu } = await r.run(feeds);
      r.destroy();
      // the forward is a selection: exact
      expect([...(gpu.y as HostTensor).data], `seed ${seed}`).toEqual([...(cpu.y as RefTensor).data]);
      expect(relError((gpu.dx as HostTensor).data, (cpu.dx as RefTensor).data), `seed ${seed}`).toBeLessThanOrEqual(
        1e-5,
      );
      expect((cpu.dx as RefTensor).data.some((v) => v !== 0)).toBe(true);
    });
  }

  it('ties: the first maximum in row-major order wins, on the GPU too', async () => {
    const x = [...Array(2 * 36).keys()].map((k) => Math.floor(k / 7) % 3); // many equal values
    const rois = [
      [0, 0, 0, 5, 5],
      [1, 1, 0, 4, 5],
    ];
    const build = (g: GraphBuilder) => {
      const xi = g.input('x', [2, 1, 6, 6]);
      const y = roiPool(xi, g.input('rois', [2, 5]), { outputSize: [2, 3] });
      const [dx] = grad(y.sum(), [xi]);
      return { y, dx: dx as Tensor };
    };
    const { gpu } = await checkGpuVsCpu(build, { feeds: { x, rois: rois.flat() }, rtol: 0 });
    expect([...(gpu.dx as HostTensor).data].reduce((a, b) => a + b, 0)).toBe(12);
  });
});

// ---------------------------------------------------------------- properties

describe('roi_pool properties (fast-check; each run is one GPU call over 32 random RoIs)', () => {
  const K = 32;
  const RUNS = 40; // 40 × 32 = 1280 RoIs
  const shape = [2, 3, 9, 11] as const;
  // quarter-pixel coordinates: ties at .5 after scaling exercise both rounding modes
  const coord = fc.integer({ min: -24, max: 56 }).map((v) => v / 4);
  const roi = fc
    .tuple(fc.integer({ min: -1, max: 2 }), coord, coord, coord, coord)
    .map(([b, a, c, d, e]) => [b, a, c, d, e]);
  const configs: RoiPoolOptions[] = [
    { outputSize: [3, 2], spatialScale: 1 },
    { outputSize: [2, 5], spatialScale: 0.5, roundingMode: 'half_even' },
    { outputSize: 4, spatialScale: 0.75 },
  ];

  it('forward exact and gradient within 1e-5 of the reference; outputs are pixels of the right image', async () => {
    const runners = await Promise.all(
      configs.map((o) =>
        gpuCpuRunner((g) => {
          const x = g.input('x', shape);
          const dy = g.input('dy', [
            K,
            3,
            ...(typeof o.outputSize === 'number' ? [o.outputSize, o.outputSize] : o.outputSize),
          ]);
          const y = roiPool(x, g.input('rois', [K, 5]), o);
          const [dx] = grad(y.mul(dy).sum(), [x]);
          return { y, dx: dx as Tensor };
        }),
      ),
    );
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(roi, { minLength: K, maxLength: K }),
          fc.integer({ min: 0, max: 2 }),
          fc.integer(),
          async (rois, ci, seed) => {
            const r = runners[ci] as (typeof runners)[number];
            const o = configs[ci] as RoiPoolOptions;
            const PHW = typeof o.outputSize === 'number' ? o.outputSize ** 2 : o.outputSize[0] * o.outputSize[1];
            const x = distinct(2 * 3 * 9 * 11, seed);
            const { gpu, cpu } = await r.run({ x, rois: rois.flat(), dy: f32(rand(K * 3 * PHW, seed ^ 0x5bd1e995)) });
            const y = (gpu.y as HostTensor).data;
            expect([...y]).toEqual([...(cpu.y as RefTensor).data]);
            expect(relError((gpu.dx as HostTensor).data, (cpu.dx as RefTensor).data)).toBeLessThanOrEqual(1e-5);
            // every output is 0 (empty bin / bad batch index) or a value of its RoI's image and channel
            for (let k = 0; k < K; k++) {
              const b = (rois[k] as number[])[0] as number;
              for (let c = 0; c < 3; c++) {
                const plane =
                  b >= 0 && b < 2 ? new Set(x.slice((b * 3 + c) * 99, (b * 3 + c + 1) * 99)) : new Set<number>();
                for (let j = 0; j < PHW; j++) {
                  const v = y[(k * 3 + c) * PHW + j] as number;
                  if (v !== 0 && !plane.has(v))
                    throw new Error(`RoI ${k} channel ${c}: ${v} is not a pixel of image ${b}`);
                }
              }
            }
          },
        ),
        { numRuns: RUNS },
      );
    } finally {
      for (const r of runners) r.destroy();
    }
  });
});

// ---------------------------------------------------------------- eager API

describe('roi_pool over run-time sizes (images, feature map, RoI count)', () => {
  it('one program for every size: forward and d features equal the static programs', async () => {
    const C = 6;
    const opts: RoiPoolOptions = { outputSize: [3, 2], spatialScale: 0.5 };
    await checkRunTimeSizes({
      symbols: { N: 2, H: { max: 21, min: 3 }, W: { max: 17, min: 3 }, K: { max: 8, min: 2 } },
      build: (g, { N, H, W, K }) => {
        const x = g.input('x', [N, C, H, W] as number[]);
        const rois = g.input('rois', [K as number, 5]);
        const dy = g.input('dy', [K as number, C, 3, 2]);
        const y = roiPool(x, rois, opts);
        const [dx] = grad(y.mul(dy).sum(), [x]);
        return { y, dx: dx as Tensor };
      },
      sizes: [
        { N: 2, H: 21, W: 17, K: 8 },
        { N: 1, H: 3, W: 5, K: 2 },
        { N: 2, H: 9, W: 3, K: 6 },
        { N: 1, H: 14, W: 11, K: 8 },
      ],
      tol: 1e-6,
      feeds: (g, seed) => {
        const [N, , H, W] = inputShape(g, 'x') as [number, number, number, number];
        const [K] = inputShape(g, 'rois') as [number];
        // image coordinates (scale 0.5) reaching a little past the map on every side
        const r = rand(K * 5, seed, 0, 1);
        const rois: number[] = [];
        for (let k = 0; k < K; k++) {
          const [a, b, c, d, e] = r.slice(5 * k, 5 * k + 5) as [number, number, number, number, number];
          const x1 = (a * (W + 2) - 2) * 2;
          const y1 = (b * (H + 2) - 2) * 2;
          rois.push(Math.floor(e * N), x1, y1, x1 + c * (W + 1) * 2, y1 + d * (H + 1) * 2);
        }
        return { x: distinct(N * C * H * W, seed + 1), rois: f32(rois), dy: f32(rand(K * C * 6, seed + 2)) };
      },
    });
  });
});

describe('eager roiPool', () => {
  it('matches the graph op, accepts per-image box lists, returns empty results for 0 RoIs', async () => {
    const shape = [2, 3, 6, 7];
    const x = distinct(2 * 3 * 42, 5);
    const rois = [
      [0, 0, 0, 6, 5],
      [1, 1, 2, 4, 5],
      [1, 0, 0, 2, 2],
    ];
    const input = { data: Float32Array.from(x), shape };
    const got = await roiPoolEager(input, { data: Float32Array.from(rois.flat()), shape: [3, 5] }, { outputSize: 2 });
    const want = interpretOne((g) => roiPool(g.input('x', shape), g.input('rois', [3, 5]), { outputSize: 2 }), {
      x,
      rois: rois.flat(),
    });
    expect(got.shape).toEqual([3, 3, 2, 2]);
    expect([...got.data]).toEqual([...want.data]);
    const lists = await roiPoolEager(
      input,
      [
        { data: Float32Array.from([0, 0, 6, 5]), shape: [1, 4] },
        { data: Float32Array.from([1, 2, 4, 5, 0, 0, 2, 2]), shape: [2, 4] },
      ],
      { outputSize: 2 },
    );
    expect([...lists.data]).toEqual([...want.data]);
    const empty = await roiPoolEager(input, { data: new Float32Array(0), shape: [0, 5] }, { outputSize: [2, 3] });
    expect(empty.shape).toEqual([0, 3, 2, 3]);
    expect(empty.data.length).toBe(0);
    await expect(roiPoolEager(input, { data: new Float32Array(8), shape: [2, 4] }, { outputSize: 2 })).rejects.toThrow(
      /\[K,5\]/,
    );
  });
});
