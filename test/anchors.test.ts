/**
 * Anchors (spec §1): host-side base anchors (PFR generate_anchors, TV AnchorGenerator) checked against
 * the spec's listed values; the shift_anchors and anchors_inside kernels against the CPU interpreter,
 * including the VGG16 600×1000 case (38×63 map → 21,546 anchors, 8,151 fully inside).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import {
  anchorGenerator,
  anchorsInside,
  generateAnchors,
  shiftAnchors,
  shiftAnchorsHost,
  tvBaseAnchors,
  tvStrides,
} from '../ops/anchors.js';
import { roundHalfEven } from '../ops/kit/rounding.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import { Session } from '../runtime/session.js';
import { checkGpuVsCpu, checkGradients, freshSeed, rand, randomFeeds } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

afterAll(closeDevice);

/** The 9 VGG16 anchors of spec §1 (ratio-major, scale-minor). */
const PFR_ANCHORS = [
  [-84, -40, 99, 55],
  [-176, -88, 191, 103],
  [-360, -184, 375, 199],
  [-56, -56, 71, 71],
  [-120, -120, 135, 135],
  [-248, -248, 263, 263],
  [-36, -80, 51, 95],
  [-80, -168, 95, 183],
  [-168, -344, 183, 359],
];

/** torchvision AnchorGenerator(((128,256,512),), ((0.5,1,2),)) of spec §1. */
const TV_ANCHORS = [
  [-91, -45, 91, 45],
  [-181, -91, 181, 91],
  [-362, -181, 362, 181],
  [-64, -64, 64, 64],
  [-128, -128, 128, 128],
  [-256, -256, 256, 256],
  [-45, -91, 45, 91],
  [-91, -181, 91, 181],
  [-181, -362, 181, 362],
];

describe('base anchors (host)', () => {
  it('roundHalfEven is numpy/torch rounding', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 11.5, 12.5, 2.4, -2.6, 3].map(roundHalfEven)).toEqual([
      0, 2, 2, -0, -2, -2, 12, 12, 2, -3, 3,
    ]);
  });

  it('PFR generate_anchors(16, [0.5,1,2], [8,16,32]): the 9 listed boxes exactly', () => {
    expect(generateAnchors()).toEqual(PFR_ANCHORS);
    // inclusive sizes w×h listed in the spec
    const sizes = generateAnchors().map(([x1, y1, x2, y2]) => [x2 - x1 + 1, y2 - y1 + 1]);
    expect(sizes).toEqual([
      [184, 96],
      [368, 192],
      [736, 384],
      [128, 128],
      [256, 256],
      [512, 512],
      [88, 176],
      [176, 352],
      [352, 704],
    ]);
    // every anchor is centred on (7.5, 7.5)
    for (const [x1, y1, x2, y2] of generateAnchors()) expect([(x1 + x2) / 2, (y1 + y2) / 2]).toEqual([7.5, 7.5]);
  });

  it('PFR COCO scales (4,8,16,32): k = 12, ratio enum (23,12),(16,16),(11,22)', () => {
    const a = generateAnchors(16, [0.5, 1, 2], [4, 8, 16, 32]);
    expect(a.length).toBe(12);
    // ratio 0.5 at scale 4: 92×48 around (7.5, 7.5); the scale-8 row is the spec's first anchor
    expect(a[0]).toEqual([7.5 - 45.5, 7.5 - 23.5, 7.5 + 45.5, 7.5 + 23.5]);
    expect(a[1]).toEqual(PFR_ANCHORS[0]);
    expect(a[4]).toEqual([7.5 - 31.5, 7.5 - 31.5, 7.5 + 31.5, 7.5 + 31.5]);
    expect(a[8]).toEqual([7.5 - 21.5, 7.5 - 43.5, 7.5 + 21.5, 7.5 + 43.5]);
  });

  it('TV AnchorGenerator: the listed values, FPN levels', () => {
    expect(tvBaseAnchors([128, 256, 512], [0.5, 1, 2])).toEqual(TV_ANCHORS);
    expect(anchorGenerator()).toEqual([TV_ANCHORS]);
    const fpn = anchorGenerator(
      [[32], [64], [128], [256], [512]],
      [
        [0.5, 1, 2],
        [0.5, 1, 2],
        [0.5, 1, 2],
        [0.5, 1, 2],
        [0.5, 1, 2],
      ],
    );
    expect(fpn.length).toBe(5);
    expect(fpn[0]).toEqual([
      [-23, -11, 23, 11],
      [-16, -16, 16, 16],
      [-11, -23, 11, 23],
    ]);
    expect(fpn.map((l) => l.length)).toEqual([3, 3, 3, 3, 3]);
    expect(() => anchorGenerator([[32], [64]], [[1]])).toThrow(/2 size tuples but 1 aspect-ratio tuples/);
    expect(tvStrides([800, 1216], [25, 38])).toEqual([32, 32]);
    expect(tvStrides([800, 1216], [200, 304])).toEqual([4, 4]);
  });
});

describe('shift_anchors', () => {
  it('shape rule and layout: index (y·W_f + x)·A + a, shift (x·sx, y·sy, x·sx, y·sy)', () => {
    const g = new GraphBuilder();
    const all = shiftAnchors(g, PFR_ANCHORS, { featureHeight: 2, featureWidth: 3, stride: [8, 16] });
    expect(all.shape).toEqual([2 * 3 * 9, 4]);
    const r = interpret(g.graph, {}, [all.id])[0] as RefTensor;
    // cell (y=1, x=2), anchor 4
    const row = (1 * 3 + 2) * 9 + 4;
    const b = PFR_ANCHORS[4] as number[];
    expect([...r.data.slice(row * 4, row * 4 + 4)]).toEqual([
      (b[0] as number) + 32,
      (b[1] as number) + 8,
      (b[2] as number) + 32,
      (b[3] as number) + 8,
    ]);
    expect([...r.data]).toEqual(shiftAnchorsHost(PFR_ANCHORS, 2, 3, [8, 16]).flat());
    expect(() => g.apply('shift_anchors', [g.input('x', [9, 3])], { height: 2, width: 3, stride: [16, 16] })).toThrow(
      /^shift_anchors: base anchors must be f32 \[N,4\] boxes/,
    );
    expect(() => g.apply('shift_anchors', [g.input('y', [9, 4])], { height: 0, width: 3, stride: [16, 16] })).toThrow(
      /shift_anchors: attribute height must be a positive integer, got 0/,
    );
  });

  it('GPU vs CPU at 3 sizes (odd maps, A = 1, 3, 9)', async () => {
    const cases = [
      { h: 1, w: 1, base: [[-8, -8, 8, 8]], stride: [16, 16] as const },
      { h: 13, w: 3, base: TV_ANCHORS.slice(0, 3), stride: [8, 16] as const },
      { h: 5, w: 7, base: PFR_ANCHORS, stride: [16, 16] as const },
    ];
    for (const c of cases) {
      const seed = freshSeed();
      await checkGpuVsCpu(
        (g) => ({
          constBase: shiftAnchors(g, c.base, { featureHeight: c.h, featureWidth: c.w, stride: c.stride }),
          // base anchors as a fed tensor with fractional values
          fedBase: shiftAnchors(g, g.input('b', [c.base.length, 4]), {
            featureHeight: c.h,
            featureWidth: c.w,
            stride: c.stride,
          }),
        }),
        { feeds: { b: rand(c.base.length * 4, seed, -100, 100).map(Math.fround) }, seed, rtol: 1e-5 },
      );
    }
  });

  it('gradient w.r.t. the base anchors (finite differences)', () => {
    const seed = freshSeed();
    checkGradients(
      (g) => {
        const b = g.input('b', [3, 4]);
        return { out: shiftAnchors(g, b, { featureHeight: 3, featureWidth: 5, stride: [4, 8] }), wrt: [b] };
      },
      { b: rand(12, seed, -10, 10) },
      { seed },
    );
  });
});

describe('shift_anchors over run-time feature sizes', () => {
  it('one program for every feature map size (from a conv of a run-time-sized image), gradient w.r.t. the base included', async () => {
    await checkRunTimeSizes({
      symbols: { H: 37, W: 29 },
      build: (g, { H, W }) => {
        const image = g.input('image', [1, 3, H as number, W as number]);
        const w = g.input('w', [2, 3, 3, 3]);
        const base = g.input('base', [9, 4]);
        // stride-2 feature map: H_f = ⌊(H − 1) / 2⌋ + 1, a size expression
        const feature = image.conv2d(w, { stride: 2, padding: 1 });
        const anchors = shiftAnchors(g, base, { feature, stride: [16, 8] });
        const [dbase] = grad(anchors.mul(anchors).sum(), [base]) as [Tensor];
        return { anchors, dbase };
      },
      sizes: [
        { H: 37, W: 29 },
        { H: 1, W: 1 },
        { H: 16, W: 5 },
        { H: 9, W: 28 },
      ],
      tol: 1e-6,
      feeds: (g, seed) => {
        const f = randomFeeds(g, seed);
        // integer-valued base anchors, as real ones are: the shifted rows are exact in float32
        return { ...f, base: rand([9, 4], seed, -64, 64).map(Math.round) };
      },
    });
  });

  it('refuses a feature map that is not [N, C, H, W], and a call with neither sizes nor a map', () => {
    const g = new GraphBuilder();
    const base = g.input('base', [3, 4]);
    expect(() => shiftAnchors(g, base, { feature: g.input('f', [4, 5]), stride: 8 })).toThrow(
      /shift_anchors: the feature map must be \[N, C, H, W\], got f32\[4,5\]/,
    );
    expect(() => shiftAnchors(g, base, { stride: 8 })).toThrow(
      /give featureHeight and featureWidth, or the feature map/,
    );
  });
});

describe('anchors_inside', () => {
  it('PFR rule x1 ≥ −b, y1 ≥ −b, x2 < W + b, y2 < H + b', () => {
    const boxes = [
      [0, 0, 99, 59],
      [-1, 0, 50, 50],
      [0, 0, 100, 50],
      [0, 0, 50, 60],
      [10, 10, 20, 20],
    ];
    const run = (border: number) => {
      const g = new GraphBuilder();
      const m = anchorsInside(g.input('a', [5, 4]), [60, 100], border);
      return interpret(g.graph, { a: boxes.flat() }, [m.id])[0] as RefTensor;
    };
    const r = run(0);
    expect(r.dtype).toBe('u32');
    expect([...r.data]).toEqual([1, 0, 0, 0, 1]);
    expect([...run(1).data]).toEqual([1, 1, 1, 1, 1]);
  });

  it('GPU vs CPU at 3 sizes, with and without a border', async () => {
    for (const n of [1, 7, 1031]) {
      const seed = freshSeed();
      // integer coordinates hit the bounds exactly now and then
      const a = rand(n * 4, seed, -20, 120).map(Math.round);
      await checkGpuVsCpu(
        (g) => {
          const x = g.input('a', [n, 4]);
          return { b0: anchorsInside(x, [60, 100]), b5: anchorsInside(x, [60, 100], 5) };
        },
        { feeds: { a }, seed },
      );
    }
  });

  it('VGG16 600×1000: 38×63 map → 21,546 anchors, 8,151 fully inside (GPU)', async () => {
    const g = new GraphBuilder();
    const all = shiftAnchors(g, generateAnchors(), { featureHeight: 38, featureWidth: 63, stride: 16 });
    const inside = anchorsInside(all, [600, 1000]);
    expect(all.shape).toEqual([21546, 4]);
    const dev = await getDevice();
    const { spec } = compile(g, { outputs: { all, inside, count: inside.sum() }, limits: limitsFrom(dev.limits) });
    const s = await Session.create(spec, { gpu: dev });
    const out = await s.run({});
    s.destroy();
    const anchors = out.all?.data as Float32Array;
    expect([...anchors]).toEqual(shiftAnchorsHost(generateAnchors(), 38, 63, [16, 16]).flat());
    const mask = out.inside?.data as Uint32Array;
    expect(mask.reduce((p, v) => p + v, 0)).toBe(8151);
    expect(out.count?.data[0]).toBe(8151);
    const ref = interpret(g.graph, {}, [inside.id])[0] as RefTensor;
    expect([...mask]).toEqual([...ref.data]);
  });
});

describe('anchors: property test (fast-check)', () => {
  it('shift_anchors + anchors_inside on the GPU equal the host rules for 1000 random base-anchor sets', async () => {
    const { default: fc } = await import('fast-check');
    const H = 5;
    const W = 7;
    const stride: [number, number] = [12, 9];
    const image: [number, number] = [60, 63];
    const dev = await getDevice();
    const g = new GraphBuilder();
    const base = g.input('base', [3, 4]);
    const all = shiftAnchors(g, base, { featureHeight: H, featureWidth: W, stride });
    const inside = anchorsInside(all, image);
    const { spec } = compile(g, { outputs: { all, inside }, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev });
    // integer-valued quarter-pixel coordinates: exact in f32, so the comparison is exact
    const coord = fc.integer({ min: -160, max: 160 }).map((v) => v / 4);
    const box = fc
      .tuple(coord, coord, fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 200 }))
      .map(([x, y, w, h]) => [x, y, x + w / 4, y + h / 4]);
    await fc.assert(
      fc.asyncProperty(fc.array(box, { minLength: 3, maxLength: 3 }), async (rows) => {
        const out = await session.run({ base: rows.flat() });
        const host = shiftAnchorsHost(rows, H, W, stride);
        const gotAll = out.all?.data as Float32Array;
        const gotInside = out.inside?.data as Uint32Array;
        host.forEach((r, i) => {
          for (let c = 0; c < 4; c++) expect(gotAll[i * 4 + c]).toBe(r[c]);
          const ok = r[0] >= 0 && r[1] >= 0 && r[2] < image[1] && r[3] < image[0];
          expect(gotInside[i]).toBe(ok ? 1 : 0);
        });
      }),
      { numRuns: 1000 },
    );
    session.destroy();
  });
});
