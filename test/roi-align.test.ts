/**
 * roi_align, roi_align_grad_features and roi_align_grad_rois: shape rules, torchvision's naive reference
 * (spec §9), finite-difference gradients w.r.t. features AND box coordinates, GPU kernels vs the CPU
 * reference, and fast-check properties batched into single GPU runs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { interpret } from '../compiler/interpreter.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { roiAlign as roiAlignEager } from '../ops/detection-eager.js';
import { type RoiAlignOptions, roiAlign } from '../ops/roi-align.js';
import type { HostTensor } from '../runtime/session.js';
import {
  checkGpuVsCpu,
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
type Shape4 = readonly [number, number, number, number];

/** torchvision test_ops.py bilinear_interpolate with snap_border=True. */
function bilinear(plane: (y: number, x: number) => number, H: number, W: number, y0: number, x0: number): number {
  let y = y0;
  let x = x0;
  if (y > -1 && y <= 0) y = 0;
  else if (y >= H - 1 && y < H) y = H - 1;
  if (x > -1 && x <= 0) x = 0;
  else if (x >= W - 1 && x < W) x = W - 1;
  const yl = Math.floor(y);
  const xl = Math.floor(x);
  const wyh = y - yl;
  const wxh = x - xl;
  let val = 0;
  for (const [wx, xp] of [
    [1 - wxh, xl],
    [wxh, xl + 1],
  ] as const) {
    for (const [wy, yp] of [
      [1 - wyh, yl],
      [wyh, yl + 1],
    ] as const) {
      if (yp >= 0 && yp < H && xp >= 0 && xp < W) val += wx * wy * plane(yp, xp);
    }
  }
  return val;
}

/** torchvision test_ops.py RoIAlign reference (expected_fn), float64. */
function naiveRoiAlign(
  x: readonly number[],
  shape: Shape4,
  rois: readonly (readonly number[])[],
  PH: number,
  PW: number,
  scale: number,
  samplingRatio: number,
  aligned: boolean,
): number[] {
  const [, C, H, W] = shape;
  const off = aligned ? 0.5 : 0;
  const out: number[] = [];
  for (const roi of rois) {
    const b = Math.trunc(roi[0] as number);
    const [j0, i0, j1, i1] = [roi[1], roi[2], roi[3], roi[4]].map((v) => (v as number) * scale - off) as [
      number,
      number,
      number,
      number,
    ];
    const binH = (i1 - i0) / PH;
    const binW = (j1 - j0) / PW;
    for (let c = 0; c < C; c++) {
      const plane = (yy: number, xx: number): number => x[((b * C + c) * H + yy) * W + xx] as number;
      for (let i = 0; i < PH; i++) {
        const gh = samplingRatio > 0 ? samplingRatio : Math.ceil(binH);
        for (let j = 0; j < PW; j++) {
          const gw = samplingRatio > 0 ? samplingRatio : Math.ceil(binW);
          let val = 0;
          for (let iy = 0; iy < gh; iy++) {
            const y = i0 + i * binH + ((iy + 0.5) * binH) / gh;
            for (let ix = 0; ix < gw; ix++) {
              const xx = j0 + j * binW + ((ix + 0.5) * binW) / gw;
              val += bilinear(plane, H, W, y, xx);
            }
          }
          out.push(val / (gh * gw));
        }
      }
    }
  }
  return out;
}

/**
 * Sample coordinates of a RoI along both axes (float64, torchvision's formulas): used to keep random test
 * boxes away from the points where RoIAlign is not differentiable (samples on integer pixel coordinates,
 * on the −1 / size cut-offs) and from adaptive-grid jumps.
 */
function samplesOf(
  roi: readonly number[],
  o: Required<RoiAlignOptions> & { outputSize: readonly [number, number] },
): { ys: number[]; xs: number[]; grids: number[] } {
  const off = o.aligned ? 0.5 : 0;
  const s = o.spatialScale;
  const [PH, PW] = o.outputSize;
  const axis = (a: number, b: number, P: number): { v: number[]; g: number } => {
    const start = a * s - off;
    const roi = o.aligned ? b * s - off - start : Math.max(b * s - off - start, 1);
    const g = o.samplingRatio > 0 ? o.samplingRatio : Math.ceil(roi / P);
    const v: number[] = [];
    for (let p = 0; p < P; p++)
      for (let it = 0; it < g; it++) v.push(start + p * (roi / P) + ((it + 0.5) * (roi / P)) / g);
    return { v, g: roi / P };
  };
  const y = axis(roi[2] as number, roi[4] as number, PH);
  const x = axis(roi[1] as number, roi[3] as number, PW);
  return { ys: y.v, xs: x.v, grids: [y.g, x.g] };
}

/** True when every sample is ≥ margin away from integers, and roi/P from integers (adaptive grids) and from 1·P-clamps. */
function wellInside(
  roi: readonly number[],
  o: Required<RoiAlignOptions> & { outputSize: readonly [number, number] },
  margin: number,
): boolean {
  const { ys, xs, grids } = samplesOf(roi, o);
  const far = (v: number): boolean => Math.abs(v - Math.round(v)) >= margin;
  const s = o.spatialScale;
  const rawOk =
    o.aligned ||
    (Math.abs(((roi[3] as number) - (roi[1] as number)) * s - 1) >= margin &&
      Math.abs(((roi[4] as number) - (roi[2] as number)) * s - 1) >= margin);
  return ys.every(far) && xs.every(far) && grids.every(far) && rawOk;
}

const full = (o: RoiAlignOptions): Required<RoiAlignOptions> & { outputSize: readonly [number, number] } => ({
  outputSize: typeof o.outputSize === 'number' ? [o.outputSize, o.outputSize] : o.outputSize,
  spatialScale: o.spatialScale ?? 1,
  samplingRatio: o.samplingRatio ?? -1,
  aligned: o.aligned ?? false,
});

/** Random boxes (rows of 5; batch index n + 0.5 so finite differences never change the image) kept away from kinks. */
function randomRois(
  K: number,
  N: number,
  H: number,
  W: number,
  o: RoiAlignOptions,
  seed: number,
  margin = 1e-3,
): number[][] {
  const fo = full(o);
  const s = fo.spatialScale;
  const out: number[][] = [];
  let t = seed;
  while (out.length < K) {
    const [a, b, c, d, e] = rand(5, t++, 0, 1) as [number, number, number, number, number];
    // image coordinates spanning a bit more than the feature map (partly outside boxes included)
    const x1 = (a * (W + 2) - 2) / s;
    const y1 = (b * (H + 2) - 2) / s;
    const roi = f32([Math.floor(e * N) + 0.5, x1, y1, x1 + (c * (W + 1)) / s, y1 + (d * (H + 1)) / s]);
    if (wellInside(roi, fo, margin)) out.push(roi);
  }
  return out;
}

/** Forward, and both gradients of sum(y·dy), as graph outputs. */
function withGrads(shape: Shape4, K: number, o: RoiAlignOptions) {
  return (g: GraphBuilder): Record<string, Tensor> => {
    const [ph, pw] = full(o).outputSize;
    const x = g.input('x', shape);
    const rois = g.input('rois', [K, 5]);
    const dy = g.input('dy', [K, shape[1], ph, pw]);
    const y = roiAlign(x, rois, o);
    const [dx, dr] = grad(y.mul(dy).sum(), [x, rois]);
    return { y, dx: dx as Tensor, drois: dr as Tensor };
  };
}

// ---------------------------------------------------------------- shape rules

describe('roi_align shape rules', () => {
  it('infers [K,C,PH,PW] and rejects bad inputs with clear messages', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 10, 12]);
    const rois = g.input('rois', [7, 5]);
    expect(roiAlign(x, rois, { outputSize: [3, 4] }).shape).toEqual([7, 3, 3, 4]);
    expect(roiAlign(x, rois, { outputSize: 7, spatialScale: 1 / 16, samplingRatio: 2, aligned: true }).shape).toEqual([
      7, 3, 7, 7,
    ]);
    expect(() => roiAlign(x, g.input('r4', [7, 4]), { outputSize: 2 })).toThrow(
      /roi_align: rois must be \[K,5\] rows .*got \[7,4\]/,
    );
    expect(() => roiAlign(x, g.input('r3', [2, 3]), { outputSize: 2 })).toThrow(/rois must be \[K,5\]/);
    expect(() => roiAlign(x, rois, { outputSize: [2, 300] })).toThrow(
      /pooledW must be an integer in \[1, 256\], got 300/,
    );
    expect(() => roiAlign(x, rois, { outputSize: 2, samplingRatio: 1.5 })).toThrow(/samplingRatio must be an integer/);
    expect(() =>
      g.apply('roi_align', [x, rois], { pooledH: 2, pooledW: 2, spatialScale: 1, samplingRatio: 0, aligned: 1 }),
    ).toThrow(/aligned must be a boolean/);
    expect(() =>
      g.apply('roi_align_grad_rois', [x, rois, g.input('dy', [7, 2, 2, 2])], {
        pooledH: 2,
        pooledW: 2,
        spatialScale: 1,
        samplingRatio: 0,
        aligned: false,
      }),
    ).toThrow(/dy f32\[7,2,2,2\] should be f32\[7,3,2,2\]/);
  });
});

// ---------------------------------------------------------------- fixed cases (spec §9)

const SPEC_ROIS = [
  [0, 0, 0, 9, 9],
  [0, 0, 5, 4, 9],
  [0, 5, 5, 9, 9],
  [1, 0, 0, 9, 9],
];

describe('roi_align forward (spec §9 cases)', () => {
  const shape: Shape4 = [2, 50, 10, 10];
  for (const aligned of [false, true]) {
    it(`matches the naive reference: x rand(2,50,10,10), 5×5, scale 1, sampling −1, aligned=${aligned} (CPU and GPU)`, async () => {
      const seed = freshSeed();
      const x = f32(rand(shape, seed, 0, 1));
      const want = naiveRoiAlign(x, shape, SPEC_ROIS, 5, 5, 1, -1, aligned);
      const build = (g: GraphBuilder) =>
        roiAlign(g.input('x', shape), g.input('rois', [4, 5]), { outputSize: 5, samplingRatio: -1, aligned });
      const feeds = { x, rois: SPEC_ROIS.flat() };
      expectCloseRel(interpretOne(build, feeds).data, want, 1e-12, `seed ${seed} cpu`);
      const { gpu } = await checkGpuVsCpu(build, { feeds, rtol: 1e-5 });
      expect(relError((gpu.out as HostTensor).data, want), `seed ${seed}`).toBeLessThanOrEqual(1e-5);
    });
  }

  it('non-contiguous input (x permuted H↔W by a transpose) gives the same result', async () => {
    const seed = freshSeed();
    const x = f32(rand(shape, seed, 0, 1));
    const xt: number[] = new Array(x.length);
    for (let nc = 0; nc < 100; nc++)
      for (let h = 0; h < 10; h++)
        for (let w = 0; w < 10; w++) xt[nc * 100 + w * 10 + h] = x[nc * 100 + h * 10 + w] as number;
    for (const aligned of [false, true]) {
      const want = naiveRoiAlign(x, shape, SPEC_ROIS, 5, 5, 1, -1, aligned);
      const { gpu } = await checkGpuVsCpu(
        (g) =>
          roiAlign(g.input('xt', shape).transpose([0, 1, 3, 2]), g.input('rois', [4, 5]), { outputSize: 5, aligned }),
        { feeds: { xt, rois: SPEC_ROIS.flat() }, rtol: 1e-5 },
      );
      expect(relError((gpu.out as HostTensor).data, want), `seed ${seed}`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('naive reference on random boxes inside the image, fixed and adaptive sampling, scaled', () => {
    const seed = freshSeed();
    const shape2: Shape4 = [2, 3, 9, 12];
    const x = rand(shape2, seed);
    for (const o of [
      { outputSize: [3, 4] as const, spatialScale: 0.5, samplingRatio: 2, aligned: false },
      { outputSize: [2, 3] as const, spatialScale: 0.5, samplingRatio: -1, aligned: true },
      { outputSize: [5, 2] as const, spatialScale: 0.25, samplingRatio: 3, aligned: true },
    ]) {
      // boxes inside the image and ≥ 1 pixel on the feature map (the naive reference has no max(·,1))
      const rois: number[][] = [];
      let t = seed;
      while (rois.length < 6) {
        const [a, b, c, d, e] = rand(5, t++, 0, 1) as [number, number, number, number, number];
        const x1 = (a * 6) / o.spatialScale;
        const y1 = (b * 4) / o.spatialScale;
        rois.push([Math.floor(e * 2), x1, y1, x1 + (1 + c * 4) / o.spatialScale, y1 + (1 + d * 3) / o.spatialScale]);
      }
      const y = interpretOne((g) => roiAlign(g.input('x', shape2), g.input('rois', [6, 5]), o), {
        x,
        rois: rois.flat(),
      });
      expectCloseRel(
        y.data,
        naiveRoiAlign(x, shape2, rois, o.outputSize[0], o.outputSize[1], o.spatialScale, o.samplingRatio, o.aligned),
        1e-12,
        `seed ${seed}`,
      );
    }
  });

  it('zero-size RoIs: aligned + adaptive gives 0; unaligned pools a 1×1 box; out-of-image samples give 0', () => {
    const x = [...Array(16).keys()].map((v) => v + 1); // 1×1×4×4, x[h][w] = 4h + w + 1
    const rois = [[0, 1.5, 1.5, 1.5, 1.5]];
    const run = (o: RoiAlignOptions, r: number[][] = rois) => [
      ...interpretOne((g) => roiAlign(g.input('x', [1, 1, 4, 4]), g.input('rois', [r.length, 5]), o), {
        x,
        rois: r.flat(),
      }).data,
    ];
    expect(run({ outputSize: 2, aligned: true })).toEqual([0, 0, 0, 0]);
    // aligned, fixed sampling: every sample sits at (1, 1) → x = 6
    expect(run({ outputSize: 2, aligned: true, samplingRatio: 2 })).toEqual([6, 6, 6, 6]);
    // unaligned: roi 1×1 from 1.5; bin 0.5, grid 1: samples at 1.75 and 2.25
    const v = (yy: number, xx: number) => bilinear((a, b) => 4 * a + b + 1, 4, 4, yy, xx);
    expectCloseRel(run({ outputSize: 2 }), [v(1.75, 1.75), v(1.75, 2.25), v(2.25, 1.75), v(2.25, 2.25)], 1e-12);
    // far outside: every sample has y < −1 → 0; a sample at −1 < y ≤ 0 snaps to row 0 (y = −0.75, x = 1)
    expect(run({ outputSize: 1, samplingRatio: 1 }, [[0, 0, -10, 3, -9]])).toEqual([0]);
    expect(run({ outputSize: 1, samplingRatio: 1 }, [[0, 0, -1.25, 2, -0.25]])).toEqual([2]);
    // y = −1 exactly is inside for the kernel (only y < −1 is out) and snaps to row 0, x = 4 = W is
    // inside and snaps to column 3 (torchvision's kernel; its Python test reference would give 0 here)
    expect(run({ outputSize: 1, samplingRatio: 1 }, [[0, 0, -1.5, 2, -0.5]])).toEqual([2]);
    expect(run({ outputSize: 1, samplingRatio: 1 }, [[0, 3.5, 0.5, 4.5, 1.5]])).toEqual([8]);
  });
});

// ---------------------------------------------------------------- gradients

function gradCheck(
  build: (g: GraphBuilder) => { out: Tensor; wrt: Tensor[] },
  feeds: Record<string, number[]>,
  seed: number,
  samples = 40,
): void {
  checkGradientsSeeded(build, feeds, { samples, seed, eps: 1e-6, rtol: 1e-5, atol: 1e-7 });
}

describe('roi_align gradients (finite differences, float64)', () => {
  const rois = [
    [0, 0, 0, 4, 4],
    [0, 0, 2, 3, 4],
    [0, 2, 2, 4, 4],
  ];
  for (const aligned of [false, true]) {
    it(`spec §9 gradcheck w.r.t. features: x rand(1,8,5,5), pool 2×2, sampling 1, aligned=${aligned} (10 seeds)`, () => {
      for (let k = 0; k < 10; k++) {
        const seed = freshSeed();
        gradCheck(
          (g) => {
            const x = g.input('x', [1, 8, 5, 5]);
            return {
              out: roiAlign(x, g.constant(rois.flat(), [3, 5]), { outputSize: 2, samplingRatio: 1, aligned }),
              wrt: [x],
            };
          },
          { x: rand([1, 8, 5, 5], seed, 0, 1) },
          seed,
        );
      }
    });
  }

  const configs: RoiAlignOptions[] = [
    { outputSize: 2, samplingRatio: 1, aligned: false },
    { outputSize: [3, 2], samplingRatio: -1, aligned: true, spatialScale: 0.5 },
    { outputSize: [2, 3], samplingRatio: 2, aligned: false, spatialScale: 0.25 },
    { outputSize: 3, samplingRatio: -1, aligned: false, spatialScale: 1 / 3 },
  ];
  it('w.r.t. features AND box coordinates: 48 random problems (fractional boxes away from kinks, partly outside, 2 images)', () => {
    for (let k = 0; k < 48; k++) {
      const seed = freshSeed();
      const o = configs[k % configs.length] as RoiAlignOptions;
      const shape: Shape4 = [2, 2, 5 + (k % 3), 6 + (k % 2)];
      const r = randomRois(3, 2, shape[2], shape[3], o, seed, 1e-3);
      gradCheck(
        (g) => {
          const x = g.input('x', shape);
          const rr = g.input('rois', [3, 5]);
          return { out: roiAlign(x, rr, o), wrt: [x, rr] };
        },
        { x: rand(shape, seed + 1), rois: r.flat() },
        seed,
        15,
      );
    }
  });

  it('the box gradient is exactly the finite difference of every coordinate (one RoI, all 5 entries)', () => {
    for (let k = 0; k < 16; k++) {
      const seed = freshSeed();
      const o = configs[k % configs.length] as RoiAlignOptions;
      const r = randomRois(1, 1, 6, 7, o, seed, 1e-3);
      // samples: 5 entries, 60 picks → every column is checked
      gradCheck(
        (g) => {
          const rr = g.input('rois', [1, 5]);
          return { out: roiAlign(g.constant(rand([1, 3, 6, 7], seed + 2), [1, 3, 6, 7]), rr, o), wrt: [rr] };
        },
        { rois: r.flat() },
        seed,
        60,
      );
    }
  });

  it('a clamped RoI (!aligned, size < 1) has no gradient through x2 / y2; the batch index column gets 0', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [1, 2, 6, 6]);
    const rr = g.input('rois', [1, 5]);
    const [dr] = grad(roiAlign(x, rr, { outputSize: 2, samplingRatio: 2 }).sum(), [rr]);
    const v = interpret(g.graph, { x: rand(72, 9), rois: [0.5, 1.3, 2.2, 1.7, 2.6] }, [
      (dr as Tensor).id,
    ])[0] as RefTensor;
    expect(Math.abs(v.data[0] as number)).toBe(0);
    expect(Math.abs(v.data[3] as number)).toBe(0);
    expect(Math.abs(v.data[4] as number)).toBe(0);
    expect(v.data[1]).not.toBe(0);
    expect(v.data[2]).not.toBe(0);
  });
});

// ---------------------------------------------------------------- GPU vs CPU

interface AlignCase {
  readonly name: string;
  readonly x: Shape4;
  readonly K: number;
  readonly o: RoiAlignOptions;
}

const gpuCases: AlignCase[] = [
  {
    name: 'odd sizes 7×13, 3 channels, pool 3×5, adaptive sampling, unaligned',
    x: [2, 3, 7, 13],
    K: 9,
    o: { outputSize: [3, 5] },
  },
  {
    name: 'aligned, fixed sampling 2, scale 1/4, 5 channels, pool 7×7, 3 images',
    x: [3, 5, 9, 11],
    K: 7,
    o: { outputSize: 7, samplingRatio: 2, aligned: true, spatialScale: 0.25 },
  },
  {
    name: 'aligned, adaptive, scale 0.5, 1×1 output, 1 channel',
    x: [1, 1, 5, 6],
    K: 11,
    o: { outputSize: 1, aligned: true, spatialScale: 0.5 },
  },
  {
    name: 'unaligned, sampling 3, scale 1/3, pool 2×3',
    x: [2, 4, 6, 10],
    K: 6,
    o: { outputSize: [2, 3], samplingRatio: 3, spatialScale: 1 / 3 },
  },
  {
    name: 'channel blocks in the gather: 37 channels (16 + 16 + 5), pool 2×2, sampling 2',
    x: [2, 37, 5, 7],
    K: 5,
    o: { outputSize: 2, samplingRatio: 2 },
  },
];

describe('roi_align GPU kernels vs the CPU reference (forward, d features, d boxes)', () => {
  for (const c of gpuCases) {
    it(c.name, async () => {
      const seed = freshSeed();
      const [N, C, H, W] = c.x;
      const [PH, PW] = full(c.o).outputSize;
      // boxes kept well away from sample-position kinks: there the f32 (GPU) and f64 (CPU) box gradients
      // could legitimately pick different one-sided derivatives
      const rois = randomRois(c.K, N, H, W, c.o, seed, 1e-3);
      rois.push([N + 1, 0, 0, 3, 3]); // batch index out of range: zero output and gradients
      const r = await gpuCpuRunner(withGrads(c.x, c.K + 1, c.o));
      const { gpu, cpu } = await r.run({
        x: f32(rand(c.x, seed + 1)),
        rois: rois.flat(),
        dy: f32(rand((c.K + 1) * C * PH * PW, seed + 2)),
      });
      r.destroy();
      for (const name of ['y', 'dx', 'drois']) {
        const e = relError((gpu[name] as HostTensor).data, (cpu[name] as RefTensor).data);
        expect(e, `seed ${seed} ${name}`).toBeLessThanOrEqual(1e-5);
        expect(
          (cpu[name] as RefTensor).data.some((v) => v !== 0),
          `${name} all zero`,
        ).toBe(true);
      }
      const last = [...(gpu.drois as HostTensor).data.slice(c.K * 5)];
      expect(last).toEqual([0, 0, 0, 0, 0]);
    });
  }

  it('integer boxes and degenerate cases (zero-size, reversed, fully outside, touching the border)', async () => {
    const rois = [
      [0, 0, 0, 9, 9],
      [0, 0, 5, 4, 9],
      [1, 3, 3, 3, 3], // zero size
      [1, 6, 2, 2, 7], // x2 < x1
      [0, -20, -20, -12, -12], // outside
      [1, 8.3, 8.3, 12.3, 12.3], // past the bottom-right edge
      [0, -1, -1, 10, 10],
    ];
    const shape: Shape4 = [2, 3, 10, 10];
    for (const o of [
      { outputSize: 5, aligned: false },
      { outputSize: 5, aligned: true },
      { outputSize: [2, 3] as const, aligned: true, samplingRatio: 2 },
      { outputSize: [4, 4] as const, aligned: false, samplingRatio: 1, spatialScale: 0.5 },
    ]) {
      const seed = freshSeed();
      const r = await gpuCpuRunner((g) => {
        const x = g.input('x', shape);
        const dy = g.input('dy', [7, 3, ...full(o).outputSize]);
        const y = roiAlign(x, g.input('rois', [7, 5]), o);
        const [dx] = grad(y.mul(dy).sum(), [x]);
        return { y, dx: dx as Tensor };
      });
      const [PH, PW] = full(o).outputSize;
      const { gpu, cpu } = await r.run({
        x: f32(rand(shape, seed)),
        rois: rois.flat(),
        dy: f32(rand(7 * 3 * PH * PW, seed + 1)),
      });
      r.destroy();
      expect(relError((gpu.y as HostTensor).data, (cpu.y as RefTensor).data), `seed ${seed}`).toBeLessThanOrEqual(1e-5);
      expect(relError((gpu.dx as HostTensor).data, (cpu.dx as RefTensor).data), `seed ${seed}`).toBeLessThanOrEqual(
        1e-5,
      );
    }
  });
});

describe('roi_align forward kernel: channel blocks of 32, fixed-grid taps vs per-channel samples', () => {
  // sampling 1-4: every sample's taps computed once per thread; 5 and adaptive: walked per channel
  const opts: RoiAlignOptions[] = [
    { outputSize: [3, 4], samplingRatio: 2 },
    { outputSize: 2, samplingRatio: 4, aligned: true, spatialScale: 0.5 },
    { outputSize: [2, 3], samplingRatio: 5, spatialScale: 0.5 },
    { outputSize: 3, aligned: true },
  ];
  for (const C of [1, 13, 64, 513]) {
    it(`${C} channel${C > 1 ? 's' : ''}: every channel within 1e-5 of the reference, RoIs outside the map give 0`, async () => {
      const shape: Shape4 = [2, C, 7, 9];
      for (const o of opts) {
        const seed = freshSeed();
        const [PH, PW] = full(o).outputSize;
        const s = full(o).spatialScale;
        // bins shorter / longer than the grid size along each axis (taps folded onto a window or not)
        const sized = [
          [1.5, 1.5],
          [1.5, 2.5],
          [2.5, 1.5],
          [2.7, 2.2],
        ].map(([bh, bw], q) => [
          q % 2,
          0.3 / s,
          0.6 / s,
          (0.3 + (bw as number) * PW) / s,
          (0.6 + (bh as number) * PH) / s,
        ]);
        const rois = [
          ...randomRois(5, 2, 7, 9, o, seed, 0),
          ...sized,
          [0, -30 / s, -30 / s, -20 / s, -20 / s], // wholly above-left of the map
          [1, 9 / s, 8 / s, 14 / s, 12 / s], // wholly below-right
          [1, -3 / s, 2 / s, 2 / s, 9 / s], // partly outside
          [5, 0, 0, 2 / s, 2 / s], // batch index out of range
        ];
        const K = rois.length;
        const r = await gpuCpuRunner((g) => ({ y: roiAlign(g.input('x', shape), g.input('rois', [K, 5]), o) }));
        const { gpu, cpu } = await r.run({ x: f32(rand(shape, seed + 1)), rois: rois.flat() });
        r.destroy();
        const got = (gpu.y as HostTensor).data;
        const want = (cpu.y as RefTensor).data;
        const bins = PH * PW;
        for (let c = 0; c < C; c++) {
          const pick = (a: ArrayLike<number>) =>
            Array.from({ length: K * bins }, (_, q) => a[(Math.floor(q / bins) * C + c) * bins + (q % bins)] as number);
          const e = relError(pick(got), pick(want));
          if (!(e <= 1e-5)) throw new Error(`seed ${seed} ${JSON.stringify(o)}: channel ${c} relative error ${e}`);
        }
        expect(want.some((v) => v !== 0)).toBe(true);
        // the RoIs outside the map and the one of a missing image pool zeros
        for (const k of [K - 4, K - 3, K - 1]) {
          expect(
            [...got.slice(k * C * bins, (k + 1) * C * bins)].every((v) => v === 0),
            `RoI ${k}`,
          ).toBe(true);
        }
      }
    });
  }
});

// ---------------------------------------------------------------- properties

describe('roi_align properties (fast-check; each run is one GPU call over 24 random RoIs)', () => {
  const K = 24;
  const RUNS = 60; // 60 × 24 = 1440 RoIs
  const shape: Shape4 = [2, 3, 8, 10];
  // dyadic coordinates, scales, bin counts and grids: every sample position is exact in f32 and f64 (or
  // far from any integer), so the GPU and the CPU take the same branch at every kink and cut-off.
  const coord = fc.integer({ min: -40, max: 110 }).map((v) => v / 8);
  const roi = fc
    .tuple(fc.integer({ min: 0, max: 1 }), coord, coord, coord, coord, fc.integer({ min: 0, max: 5 }))
    .map(([b, x1, y1, x2, y2, z]) => (z === 0 ? [b, x1, y1, x1, y1] : [b, x1, y1, x2, y2])); // some zero-size RoIs
  const configs: RoiAlignOptions[] = [
    { outputSize: [2, 4], samplingRatio: -1, aligned: false, spatialScale: 1 },
    { outputSize: 2, samplingRatio: 2, aligned: true, spatialScale: 0.5 },
    { outputSize: [4, 1], samplingRatio: -1, aligned: true, spatialScale: 0.5 },
    { outputSize: 1, samplingRatio: 1, aligned: false, spatialScale: 0.25 },
  ];

  it('forward, d features and d boxes within 1e-5 of the float64 reference', async () => {
    const runners = await Promise.all(configs.map((o) => gpuCpuRunner(withGrads(shape, K, o))));
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(roi, { minLength: K, maxLength: K }),
          fc.integer({ min: 0, max: configs.length - 1 }),
          fc.integer(),
          async (rois, ci, seed) => {
            const r = runners[ci] as (typeof runners)[number];
            const [PH, PW] = full(configs[ci] as RoiAlignOptions).outputSize;
            const { gpu, cpu } = await r.run({
              x: f32(rand(shape, seed)),
              rois: rois.flat(),
              dy: f32(rand(K * 3 * PH * PW, seed ^ 0x2545f491)),
            });
            for (const name of ['y', 'dx', 'drois']) {
              const e = relError((gpu[name] as HostTensor).data, (cpu[name] as RefTensor).data);
              if (!(e <= 1e-5)) throw new Error(`${name}: relative error ${e}`);
            }
            // the batch-index column of d boxes is 0
            for (let k = 0; k < K; k++) expect((gpu.drois as HostTensor).data[k * 5]).toBe(0);
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

describe('roi_align over run-time sizes (images, feature map, RoI count)', () => {
  it('one program for every size: forward (fixed grid 2, adaptive), d features and d boxes equal the static programs', async () => {
    const o2: RoiAlignOptions = { outputSize: [3, 2], spatialScale: 0.5, samplingRatio: 2 };
    const oa: RoiAlignOptions = { outputSize: 2, spatialScale: 0.5, samplingRatio: -1, aligned: true };
    const C = 5;
    await checkRunTimeSizes({
      symbols: { N: 2, H: { max: 23, min: 4 }, W: { max: 19, min: 4 }, K: { max: 9, min: 2 } },
      build: (g, { N, H, W, K }) => {
        const x = g.input('x', [N, C, H, W] as number[]);
        const rois = g.input('rois', [K as number, 5]);
        const dy = g.input('dy', [K as number, C, 3, 2]);
        const y = roiAlign(x, rois, o2);
        const ya = roiAlign(x, rois, oa);
        const [dx, dr] = grad(y.mul(dy).sum().add(ya.sum()), [x, rois]);
        return { y, ya, dx: dx as Tensor, drois: dr as Tensor };
      },
      sizes: [
        { N: 2, H: 23, W: 19, K: 9 },
        { N: 1, H: 4, W: 7, K: 2 },
        { N: 2, H: 11, W: 4, K: 5 },
        { N: 1, H: 17, W: 13, K: 9 },
      ],
      tol: 2e-5,
      feeds: (g, seed) => {
        const [N, , H, W] = inputShape(g, 'x') as [number, number, number, number];
        const [K] = inputShape(g, 'rois') as [number];
        // boxes in image coordinates (scale 0.5), away from the kinks of both option sets
        const rois = randomRois(K, N, H, W, o2, seed).map((r, k) =>
          k % 2 ? (randomRois(1, N, H, W, oa, seed + 97 * k)[0] as number[]) : r,
        );
        return {
          x: rand(N * C * H * W, seed + 1),
          rois: rois.flat(),
          dy: rand(K * C * 6, seed + 2),
        };
      },
    });
  });
});

describe('eager roiAlign', () => {
  it('matches the graph op, accepts per-image box lists, returns empty results for 0 RoIs', async () => {
    const shape: Shape4 = [2, 3, 6, 7];
    const x = f32(rand(shape, 4));
    const rois = [
      [0, 0.5, 0.25, 6, 5],
      [1, 1, 2, 4.5, 5],
      [1, 0, 0, 2, 2],
    ];
    const input = { data: Float32Array.from(x), shape };
    const o = { outputSize: 2, samplingRatio: 2, aligned: true };
    const got = await roiAlignEager(input, { data: Float32Array.from(rois.flat()), shape: [3, 5] }, o);
    const want = interpretOne((g) => roiAlign(g.input('x', shape), g.input('rois', [3, 5]), o), {
      x,
      rois: rois.flat(),
    });
    expect(got.shape).toEqual([3, 3, 2, 2]);
    expect(relError(got.data, want.data)).toBeLessThanOrEqual(1e-5);
    const lists = await roiAlignEager(
      input,
      [
        { data: Float32Array.from([0.5, 0.25, 6, 5]), shape: [1, 4] },
        { data: Float32Array.from([1, 2, 4.5, 5, 0, 0, 2, 2]), shape: [2, 4] },
      ],
      o,
    );
    expect([...lists.data]).toEqual([...got.data]);
    // plain nested arrays, as torchvision users pass tensors: [N][C][H][W] features, [K][5] RoIs or per-image [L][4]
    const nested = Array.from({ length: 2 }, (_, n) =>
      Array.from({ length: 3 }, (_, c) =>
        Array.from({ length: 6 }, (_, y) =>
          Array.from(x.slice(((n * 3 + c) * 6 + y) * 7, ((n * 3 + c) * 6 + y + 1) * 7)),
        ),
      ),
    );
    expect([...(await roiAlignEager(nested, rois, o)).data]).toEqual([...got.data]);
    const perImage = [[[0.5, 0.25, 6, 5]], rois.slice(1).map((r) => r.slice(1))];
    expect([...(await roiAlignEager(nested, perImage, o)).data]).toEqual([...got.data]);
    const empty = await roiAlignEager(input, [], { outputSize: [2, 3] });
    expect(empty.shape).toEqual([0, 3, 2, 3]);
    expect(empty.data.length).toBe(0);
    await expect(roiAlignEager(input, { data: new Float32Array(8), shape: [2, 4] }, o)).rejects.toThrow(/\[K,5\]/);
    await expect(roiAlignEager(input, [{ data: new Float32Array(5), shape: [1, 5] }], o)).rejects.toThrow(
      /boxes of image 0 must have shape \[L,4\]/,
    );
  });
});
