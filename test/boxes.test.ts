/**
 * Box ops (spec §2, §3, §9): IoU, area, encode/decode, convert, clip, small-box mask. Exact spec
 * values, GPU vs float64 CPU interpreter, composite-vs-kernel consistency, finite-difference
 * gradients, the eager API and fast-check properties batched into single GPU runs.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { interpret } from '../compiler/interpreter.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import {
  BBOX_XFORM_CLIP,
  type BoxFormat,
  boxArea,
  boxAreaComposite,
  boxConvert,
  boxConvertComposite,
  boxDecodeComposite,
  boxEncodeComposite,
  boxIou,
  boxIouComposite,
  clipBoxes,
  decodeBoxes,
  encodeBoxes,
  smallBoxMask,
} from '../ops/boxes.js';
import * as E from '../ops/detection-eager.js';
import { clearEagerCache } from '../ops/eager.js';
import { type Box, iouF64 } from '../ops/kit/iou.js';
import { closeDevice } from '../runtime/device.js';
import { f16round } from './half.js';
import { checkGpuVsCpu, checkGradientsSeeded, freshSeed, rand } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

afterAll(async () => {
  await clearEagerCache();
  await closeDevice();
});

// ---------------------------------------------------------------- data

const INT_BOXES = [
  [0, 0, 100, 100],
  [0, 0, 50, 50],
  [200, 200, 300, 300],
  [0, 0, 25, 25],
];
const INT_BOXES2 = INT_BOXES.slice(0, 3);
const FLOAT_BOXES = [
  [285.3538, 185.5758, 1193.511, 851.4551],
  [285.1472, 188.7374, 1192.4984, 851.0669],
  [279.244, 197.9812, 1189.4746, 849.2019],
];

/** n random boxes (f32-representable): corner in [lo, lo+span), size in [minSize, maxSize). */
function randBoxes(n: number, seed: number, span = 100, minSize = 1, maxSize = 50, lo = 0): number[] {
  const u = rand(n * 4, seed, 0, 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x1 = Math.fround(lo + span * (u[4 * i] as number));
    const y1 = Math.fround(lo + span * (u[4 * i + 1] as number));
    const w = minSize + (maxSize - minSize) * (u[4 * i + 2] as number);
    const h = minSize + (maxSize - minSize) * (u[4 * i + 3] as number);
    out.push(x1, y1, Math.fround(x1 + w), Math.fround(y1 + h));
  }
  return out;
}

/** Row i of a flat [N,4] list. */
const box4 = (xs: readonly number[], i: number): Box => [
  xs[4 * i] as number,
  xs[4 * i + 1] as number,
  xs[4 * i + 2] as number,
  xs[4 * i + 3] as number,
];

const f32s = (xs: readonly number[]): number[] => xs.map(Math.fround);

/** Evaluates `build` on the CPU interpreter. */
function cpu(build: (g: GraphBuilder) => Tensor, feeds: Record<string, readonly number[]>): RefTensor {
  const g = new GraphBuilder();
  const y = build(g);
  return interpret(g.graph, feeds, [y.id])[0] as RefTensor;
}

const host = (rows: readonly (readonly number[])[]) => ({
  data: Float32Array.from(rows.flat()),
  shape: [rows.length, 4],
});
const hostFlat = (xs: readonly number[], cols = 4) => ({
  data: Float32Array.from(xs),
  shape: [xs.length / cols, cols],
});

function expectClose(got: ArrayLike<number>, want: readonly number[], atol: number): void {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => {
    const d = Math.abs((got[i] as number) - w);
    if (!(d <= atol)) throw new Error(`element ${i}: got ${got[i]}, want ${w} (atol ${atol})`);
  });
}

/** Finite-difference check with the seed in the failure message. */
function gradCheck(
  build: (g: GraphBuilder) => { out: Tensor; wrt: Tensor[] },
  feeds: Record<string, number[]>,
  seed: number,
): void {
  // Box losses reach ~1e4 (coordinates × exp), so float64 cancellation at the default ε = 1e-6 is ~1e-6:
  // a larger step keeps both that noise and the truncation error (~ε²·f''') near 1e-7.
  checkGradientsSeeded(build, feeds, { seed, samples: 32, eps: 3e-5, atol: 5e-7 });
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
};

// ---------------------------------------------------------------- box_iou

describe('box_iou', () => {
  it('shape rule', () => {
    const g = new GraphBuilder();
    expect(boxIou(g.input('a', [3, 4]), g.input('b', [5, 4])).shape).toEqual([3, 5]);
    expect(() => boxIou(g.input('c', [3, 5]), g.input('d', [5, 4]))).toThrow(
      /^box_iou: boxes1 must be f32 \[N,4\] boxes \(x1,y1,x2,y2\), got f32\[3,5\]/,
    );
    expect(() => boxIou(g.input('e', [3, 4], 'i32'), g.input('f', [5, 4]))).toThrow(
      /boxes1 must be f32 \[N,4\].*got i32\[3,4\]/,
    );
  });

  it('spec §9 values: INT_BOXES vs INT_BOXES2 and FLOAT_BOXES self-IoU (CPU and GPU)', async () => {
    const intWant = [1, 0.25, 0, 0.25, 1, 0, 0, 0, 1, 0.0625, 0.25, 0];
    const floatWant = [1, 0.9933, 0.9673, 0.9933, 1, 0.9737, 0.9673, 0.9737, 1];
    const r = cpu((g) => boxIou(g.input('a', [4, 4]), g.input('b', [3, 4])), {
      a: INT_BOXES.flat(),
      b: INT_BOXES2.flat(),
    });
    expectClose(r.data, intWant, 1e-12);
    const gi = await E.boxIou(host(INT_BOXES), host(INT_BOXES2));
    expect(gi.shape).toEqual([4, 3]);
    expectClose(gi.data, intWant, 1e-6);
    const rf = cpu((g) => boxIou(g.input('a', [3, 4]), g.input('b', [3, 4])), {
      a: FLOAT_BOXES.flat(),
      b: FLOAT_BOXES.flat(),
    });
    expectClose(rf.data, floatWant, 1e-3);
    expectClose((await E.boxIou(host(FLOAT_BOXES), host(FLOAT_BOXES))).data, floatWant, 1e-3);
  });

  it('batched result equals the pairwise loop (GPU)', async () => {
    const seed = freshSeed();
    const a = randBoxes(5, seed, 1, 0.01, 1);
    const b = randBoxes(7, seed + 1, 1, 0.01, 1);
    const got = (await E.boxIou(hostFlat(a), hostFlat(b))).data;
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 7; j++) {
        const pair = await E.boxIou(hostFlat(a.slice(4 * i, 4 * i + 4)), hostFlat(b.slice(4 * j, 4 * j + 4)));
        expect(pair.data[0], `seed ${seed} (${i},${j})`).toBe(got[i * 7 + j]);
      }
    }
  });

  it('zero-area boxes: NaN for 0/0 as torchvision, 0 in the PFR convention', async () => {
    // torchvision's box_iou is inter / union; two zero-area boxes give 0/0 = NaN.
    const a = [
      [0, 0, 0, 0],
      [5, 5, 5, 9],
      [0, 0, 10, 10],
    ];
    const b = [
      [0, 0, 0, 0],
      [1, 1, 1, 1],
      [0, 0, 10, 10],
    ];
    const want = [Number.NaN, Number.NaN, 0, Number.NaN, Number.NaN, 0, 0, 0, 1];
    const r = cpu((g) => boxIou(g.input('a', [3, 4]), g.input('b', [3, 4])), { a: a.flat(), b: b.flat() });
    const gpu = await E.boxIou(host(a), host(b));
    for (const data of [r.data, gpu.data]) {
      want.forEach((w, i) => {
        if (Number.isNaN(w)) expect(data[i], `element ${i}`).toBeNaN();
        else expect(data[i], `element ${i}`).toBe(w);
      });
    }
    // PFR bbox_overlaps (+1): a degenerate [0,0,0,0] is a 1×1 pixel; non-overlapping pairs are 0.
    const p = await E.boxIou(host(a), host(b), { plusOne: true });
    expectClose(p.data, [1, 0, 1 / 121, 0, 0, 5 / 121, 1 / 121, 1 / 121, 1], 1e-7);
  });

  it('plusOne: PFR inclusive widths', () => {
    // [0,0,9,9] and [5,5,14,14]: 10×10 each, overlap 5×5 → 25 / 175
    const r = cpu((g) => boxIou(g.input('a', [1, 4]), g.input('b', [1, 4]), { plusOne: true }), {
      a: [0, 0, 9, 9],
      b: [5, 5, 14, 14],
    });
    expect(r.data[0]).toBeCloseTo(25 / 175, 14);
    expect(iouF64([0, 0, 9, 9], [10, 0, 19, 9], true)).toBe(0);
    expect(iouF64([0, 0, 9, 9], [9, 0, 18, 9], true)).toBeCloseTo(10 / 190, 14);
  });

  for (const plusOne of [false, true]) {
    it(`GPU vs CPU at 3 sizes (plusOne ${plusOne})`, async () => {
      for (const [n, m] of [
        [1, 1],
        [7, 13],
        [129, 33],
      ] as const) {
        const seed = freshSeed();
        await checkGpuVsCpu((g) => boxIou(g.input('a', [n, 4]), g.input('b', [m, 4]), { plusOne }), {
          feeds: { a: randBoxes(n, seed), b: randBoxes(m, seed + 1) },
          seed,
          rtol: 1e-5,
        });
      }
    });

    it(`composite equals the kernel's reference, and gradients (plusOne ${plusOne})`, () => {
      const seed = freshSeed();
      const feeds = { a: randBoxes(6, seed, 40, 5, 40), b: randBoxes(5, seed + 1, 40, 5, 40) };
      const op = cpu((g) => boxIou(g.input('a', [6, 4]), g.input('b', [5, 4]), { plusOne }), feeds);
      const comp = cpu((g) => boxIouComposite(g.input('a', [6, 4]), g.input('b', [5, 4]), plusOne), feeds);
      expect(maxAbsDiff(op.data, comp.data)).toBeLessThan(1e-14);
      expect(op.data.some((v) => v > 0)).toBe(true);
      gradCheck(
        (g) => {
          const a = g.input('a', [6, 4]);
          const b = g.input('b', [5, 4]);
          return { out: boxIou(a, b, { plusOne }), wrt: [a, b] };
        },
        feeds,
        seed,
      );
      // the same tensor on both sides: each use contributes once
      gradCheck(
        (g) => {
          const a = g.input('a', [6, 4]);
          return { out: boxIou(a, a, { plusOne }).mul(boxIou(a, a, { plusOne })), wrt: [a] };
        },
        feeds,
        seed,
      );
    });
  }
});

// ---------------------------------------------------------------- box_area

describe('box_area', () => {
  it('spec §9 values, degenerate box included', async () => {
    const r = cpu((g) => boxArea(g.input('b', [2, 4])), { b: [0, 0, 100, 100, 0, 0, 0, 0] });
    expect([...r.data]).toEqual([10000, 0]);
    expect([
      ...(
        await E.boxArea(
          host([
            [0, 0, 100, 100],
            [0, 0, 0, 0],
          ]),
        )
      ).data,
    ]).toEqual([10000, 0]);
    // torchvision's f32 expectations, within one f32 ulp at 6e5 (0.0625)
    const fa = await E.boxArea(host(FLOAT_BOXES));
    expectClose(fa.data, [604723.0806, 600965.4666, 592761.0085], 0.07);
    // torchvision's f16 test boxes: the inputs rounded to f16, the area computed here in f32, atol 0.01
    const small = [
      [2.825, 1.8625, 3.9, 4.85],
      [2.825, 4.875, 19.2, 5.1],
      [2.925, 1.8, 8.9, 4.9],
    ].map((r) => r.map(f16round));
    expectClose((await E.boxArea(host(small))).data, [3.217, 3.7108, 18.5071], 0.01);
    expect([...(await E.boxArea(host([[0, 0, 9, 9]]), { plusOne: true })).data]).toEqual([100]);
  });

  it('GPU vs CPU at 3 sizes, composite and gradient', async () => {
    for (const n of [1, 7, 1031]) {
      const seed = freshSeed();
      for (const plusOne of [false, true]) {
        await checkGpuVsCpu((g) => boxArea(g.input('b', [n, 4]), { plusOne }), {
          feeds: { b: randBoxes(n, seed) },
          seed,
          rtol: 1e-5,
        });
      }
    }
    const seed = freshSeed();
    const feeds = { b: randBoxes(9, seed) };
    for (const plusOne of [false, true]) {
      const op = cpu((g) => boxArea(g.input('b', [9, 4]), { plusOne }), feeds);
      const comp = cpu((g) => boxAreaComposite(g.input('b', [9, 4]), plusOne), feeds);
      expect(maxAbsDiff(op.data, comp.data)).toBe(0);
      gradCheck(
        (g) => {
          const b = g.input('b', [9, 4]);
          return { out: boxArea(b, { plusOne }), wrt: [b] };
        },
        feeds,
        seed,
      );
    }
  });
});

// ---------------------------------------------------------------- encode / decode

describe('box coding', () => {
  it('shape rules', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [5, 4]);
    expect(decodeBoxes(g.input('d', [5, 12]), a).shape).toEqual([5, 12]);
    expect(() => decodeBoxes(g.input('d2', [5, 6]), a)).toThrow(
      /^box_decode: deltas must be f32 \[N,4K\].*got f32\[5,6\]/,
    );
    expect(() => decodeBoxes(g.input('d3', [4, 4]), a)).toThrow(
      /box_decode: anchors and deltas must have the same number of rows, got f32\[5,4\] and f32\[4,4\]/,
    );
    expect(() => encodeBoxes(g.input('g', [6, 4]), a)).toThrow(
      /box_encode: anchors and gt must have the same number of rows/,
    );
    expect(() => g.apply('box_decode', [a, a], { weights: [1, 0, 1, 1] })).toThrow(
      /weights must be 4 finite nonzero numbers/,
    );
    expect(() => g.apply('box_convert', [a], { from: 'xyxy', to: 'xwyh' })).toThrow(
      /box_convert: attribute to must be one of xyxy, xywh, cxcywh, got "xwyh"/,
    );
  });

  it('encode values (TV, with RoI-head weights, and PFR +1)', () => {
    const feeds = { a: [0, 0, 10, 10], g: [1, 2, 13, 12] };
    // aw = 10, acx = 5; gw = 12, gcx = 7; ah = 10, acy = 5; gh = 10, gcy = 7
    const tv = cpu((g) => encodeBoxes(g.input('g', [1, 4]), g.input('a', [1, 4])), feeds);
    expectClose(tv.data, [0.2, 0.2, Math.log(1.2), 0], 1e-15);
    const head = cpu(
      (g) => encodeBoxes(g.input('g', [1, 4]), g.input('a', [1, 4]), { weights: [10, 10, 5, 5] }),
      feeds,
    );
    expectClose(head.data, [2, 2, 5 * Math.log(1.2), 0], 1e-14);
    // PFR: aw = 11, acx = 5.5; gw = 13, gcx = 7.5; ah = 11, acy = 5.5; gh = 11, gcy = 7.5
    const pfr = cpu((g) => encodeBoxes(g.input('g', [1, 4]), g.input('a', [1, 4]), { plusOne: true }), feeds);
    expectClose(pfr.data, [2 / 11, 2 / 11, Math.log(13 / 11), 0], 1e-15);
  });

  it('decode: zero deltas, PFR quirk (+1 on x2, y2), clamp', () => {
    const a = [10, 20, 30, 60];
    const z = [0, 0, 0, 0];
    expectClose(cpu((g) => decodeBoxes(g.input('d', [1, 4]), g.input('a', [1, 4])), { a, d: z }).data, a, 1e-13);
    // PFR: zero deltas give [a1, a2 + 1]
    expectClose(
      cpu((g) => decodeBoxes(g.input('d', [1, 4]), g.input('a', [1, 4]), { plusOne: true, bboxXformClip: null }), {
        a,
        d: z,
      }).data,
      [10, 20, 31, 61],
      1e-13,
    );
    // dw = 10 is clamped to ln(1000/16): pw = 62.5 · aw; no clamp with bboxXformClip null
    const big = [0, 0, 10, 1];
    const c = cpu((g) => decodeBoxes(g.input('d', [1, 4]), g.input('a', [1, 4])), { a, d: big }).data;
    expect((c[2] as number) - (c[0] as number)).toBeCloseTo(62.5 * 20, 9);
    expect((c[3] as number) - (c[1] as number)).toBeCloseTo(Math.E * 40, 9);
    const nc = cpu((g) => decodeBoxes(g.input('d', [1, 4]), g.input('a', [1, 4]), { bboxXformClip: null }), {
      a,
      d: big,
    }).data;
    expect((nc[2] as number) - (nc[0] as number)).toBeCloseTo(Math.exp(10) * 20, 6);
    expect(BBOX_XFORM_CLIP).toBeCloseTo(4.135167, 6);
  });

  it('round trips: decode(encode(g)) = g (TV), = g + (0,0,1,1) (PFR)', () => {
    const seed = freshSeed();
    const n = 11;
    const feeds = { a: randBoxes(n, seed), g: randBoxes(n, seed + 1) };
    for (const [plusOne, weights] of [
      [false, [1, 1, 1, 1]],
      [false, [10, 10, 5, 5]],
      [true, [10, 10, 5, 5]],
    ] as const) {
      const r = cpu((g) => {
        const a = g.input('a', [n, 4]);
        return decodeBoxes(encodeBoxes(g.input('g', [n, 4]), a, { weights, plusOne }), a, {
          weights,
          plusOne,
          bboxXformClip: plusOne ? null : BBOX_XFORM_CLIP,
        });
      }, feeds);
      const want = feeds.g.map((v, i) => v + (plusOne && i % 4 >= 2 ? 1 : 0));
      expectClose(r.data, want, 1e-10);
    }
  });

  it('class-specific deltas [N,4K]: each class decodes like its own [N,4] block', () => {
    const seed = freshSeed();
    const n = 5;
    const k = 3;
    const a = randBoxes(n, seed);
    const d = rand(n * 4 * k, seed + 1, -0.5, 0.5);
    const all = cpu((g) => decodeBoxes(g.input('d', [n, 4 * k]), g.input('a', [n, 4]), { weights: [10, 10, 5, 5] }), {
      a,
      d,
    });
    for (let c = 0; c < k; c++) {
      const dc: number[] = [];
      for (let i = 0; i < n; i++) dc.push(...d.slice(i * 4 * k + 4 * c, i * 4 * k + 4 * c + 4));
      const one = cpu((g) => decodeBoxes(g.input('d', [n, 4]), g.input('a', [n, 4]), { weights: [10, 10, 5, 5] }), {
        a,
        d: dc,
      });
      for (let i = 0; i < n; i++) {
        expectClose(all.data.slice(i * 4 * k + 4 * c, i * 4 * k + 4 * c + 4), [...one.data.slice(i * 4, i * 4 + 4)], 0);
      }
    }
  });

  const decodeModes = [
    { name: 'TV RPN (clamp)', opts: {} },
    { name: 'TV RoI head', opts: { weights: [10, 10, 5, 5] as const } },
    { name: 'PFR (+1, no clamp)', opts: { plusOne: true, bboxXformClip: null } },
  ];

  it('GPU vs CPU at 3 sizes (encode; decode with K = 1 and 3)', async () => {
    for (const n of [1, 7, 301]) {
      for (const mode of decodeModes) {
        const seed = freshSeed();
        const a = randBoxes(n, seed);
        await checkGpuVsCpu((g) => encodeBoxes(g.input('g', [n, 4]), g.input('a', [n, 4]), mode.opts), {
          feeds: { a, g: randBoxes(n, seed + 1) },
          seed,
          rtol: 1e-5,
        });
        for (const k of [1, 3]) {
          // deltas up to ±6 so some dw/dh pass the clamp (4.135)
          const d = f32s(rand(n * 4 * k, seed + 2, -6, 6));
          await checkGpuVsCpu((g) => decodeBoxes(g.input('d', [n, 4 * k]), g.input('a', [n, 4]), mode.opts), {
            feeds: { a, d },
            seed,
            rtol: 1e-5,
          });
        }
      }
    }
  });

  it("composites equal the kernels' references", () => {
    const seed = freshSeed();
    const n = 8;
    const feeds = { a: randBoxes(n, seed), g: randBoxes(n, seed + 1), d: rand(n * 8, seed + 2, -6, 6) };
    for (const mode of decodeModes) {
      const w = mode.opts.weights ?? [1, 1, 1, 1];
      const clamp = mode.opts.bboxXformClip === undefined ? BBOX_XFORM_CLIP : mode.opts.bboxXformClip;
      const plusOne = mode.opts.plusOne ?? false;
      const e1 = cpu((g) => encodeBoxes(g.input('g', [n, 4]), g.input('a', [n, 4]), mode.opts), feeds);
      const e2 = cpu((g) => boxEncodeComposite(g.input('a', [n, 4]), g.input('g', [n, 4]), w, plusOne), feeds);
      expect(maxAbsDiff(e1.data, e2.data)).toBeLessThan(1e-13);
      const d1 = cpu((g) => decodeBoxes(g.input('d', [n, 8]), g.input('a', [n, 4]), mode.opts), feeds);
      const d2 = cpu((g) => boxDecodeComposite(g.input('a', [n, 4]), g.input('d', [n, 8]), w, clamp, plusOne), feeds);
      expect(maxAbsDiff(d1.data, d2.data)).toBeLessThan(1e-9);
    }
  });

  it('gradients (finite differences): decode w.r.t. deltas and anchors, encode w.r.t. both', () => {
    for (const mode of decodeModes) {
      for (const k of [1, 3]) {
        const seed = freshSeed();
        const n = 6;
        // |dw/ww| stays below the clamp here: the function is smooth at every sample
        const feeds = { a: randBoxes(n, seed, 50, 5, 40), d: rand(n * 4 * k, seed + 1, -2, 2) };
        gradCheck(
          (g) => {
            const a = g.input('a', [n, 4]);
            const d = g.input('d', [n, 4 * k]);
            return { out: decodeBoxes(d, a, mode.opts), wrt: [d, a] };
          },
          feeds,
          seed,
        );
      }
      const seed = freshSeed();
      gradCheck(
        (g) => {
          const a = g.input('a', [7, 4]);
          const gt = g.input('g', [7, 4]);
          return { out: encodeBoxes(gt, a, mode.opts), wrt: [a, gt] };
        },
        { a: randBoxes(7, seed, 50, 5, 40), g: randBoxes(7, seed + 1, 50, 5, 40) },
        seed,
      );
    }
  });

  it('the clamp makes the gradient of dw/dh 0 above it', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [2, 4]);
    const d = g.input('d', [2, 4]);
    // loss = Σ x2 + y2 (x1 + x2 does not depend on dw)
    const out = decodeBoxes(d, a).mul(g.constant([0, 0, 1, 1, 0, 0, 1, 1], [2, 4]));
    const [dd] = grad(out.sum(), [d]);
    const r = interpret(g.graph, { a: [0, 0, 10, 10, 5, 5, 25, 15], d: [0.1, 0.2, 5, 0.3, 0.1, 0.2, 0.3, 9] }, [
      (dd as Tensor).id,
    ])[0] as RefTensor;
    // row 0: dw = 5 > clamp → 0; row 1: dh = 9 > clamp → 0; the others are nonzero
    expect(r.data[2]).toBe(0);
    expect(r.data[7]).toBe(0);
    expect(r.data[3]).not.toBe(0);
    expect(r.data[6]).not.toBe(0);
  });
});

// ---------------------------------------------------------------- box_convert

describe('box_convert', () => {
  const xyxy = [
    [0, 0, 100, 100],
    [0, 0, 0, 0],
    [10, 15, 30, 35],
    [23, 35, 93, 95],
  ];
  const xywh = [
    [0, 0, 100, 100],
    [0, 0, 0, 0],
    [10, 15, 20, 20],
    [23, 35, 70, 60],
  ];
  const cxcywh = [
    [50, 50, 100, 100],
    [0, 0, 0, 0],
    [20, 25, 20, 20],
    [58, 65, 70, 60],
  ];
  const byFmt: Record<BoxFormat, number[][]> = { xyxy, xywh, cxcywh };
  const fmts: BoxFormat[] = ['xyxy', 'xywh', 'cxcywh'];

  it('spec §9 / torchvision values for every pair of formats (CPU and GPU), zero box included', async () => {
    for (const from of fmts) {
      for (const to of fmts) {
        const r = cpu((g) => boxConvert(g.input('b', [4, 4]), from, to), { b: byFmt[from].flat() });
        expect([...r.data], `${from}→${to}`).toEqual(byFmt[to].flat());
        const gpu = await E.boxConvert(host(byFmt[from]), from, to);
        expect([...gpu.data], `${from}→${to} (GPU)`).toEqual(byFmt[to].flat());
      }
    }
    // same format: identity (torchvision clones)
    expect([...(await E.boxConvert(host(xywh), 'xyxy', 'xyxy')).data]).toEqual(xywh.flat());
  });

  it('GPU vs CPU at 3 sizes, composite and gradient', async () => {
    for (const n of [1, 7, 515]) {
      const seed = freshSeed();
      const b = f32s(rand(n * 4, seed, -50, 50));
      await checkGpuVsCpu(
        (g) => {
          const x = g.input('b', [n, 4]);
          const out: Record<string, Tensor> = {};
          for (const from of fmts) for (const to of fmts) out[`${from}_${to}`] = boxConvert(x, from, to);
          return out;
        },
        { feeds: { b }, seed, rtol: 1e-5 },
      );
    }
    const seed = freshSeed();
    const feeds = { b: rand(24, seed, -50, 50) };
    for (const from of fmts) {
      for (const to of fmts) {
        const op = cpu((g) => boxConvert(g.input('b', [6, 4]), from, to), feeds);
        const comp = cpu((g) => boxConvertComposite(g.input('b', [6, 4]), from, to), feeds);
        expect(maxAbsDiff(op.data, comp.data)).toBe(0);
        gradCheck(
          (g) => {
            const b = g.input('b', [6, 4]);
            return { out: boxConvert(b, from, to), wrt: [b] };
          },
          feeds,
          seed,
        );
      }
    }
  });
});

// ---------------------------------------------------------------- clip and small boxes

describe('clip_boxes and small_box_mask', () => {
  const boxes = [
    [-5, -3, 120, 40],
    [10, 70, 20, 90],
    [3, 4, 5, 6],
  ];

  it('clip values: TV [0,W]×[0,H], PFR [0,W−1]×[0,H−1], size as a tensor', async () => {
    const tv = await E.clipBoxes(host(boxes), [60, 100]);
    expect([...tv.data]).toEqual([0, 0, 100, 40, 10, 60, 20, 60, 3, 4, 5, 6]);
    const pfr = await E.clipBoxes(host(boxes), [60, 100], { plusOne: true });
    expect([...pfr.data]).toEqual([0, 0, 99, 40, 10, 59, 20, 59, 3, 4, 5, 6]);
    for (const plusOne of [false, true]) {
      const r = cpu((g) => clipBoxes(g.input('b', [3, 4]), g.input('s', [2]), { plusOne }), {
        b: boxes.flat(),
        s: [60, 100],
      });
      expect([...r.data]).toEqual([...(plusOne ? pfr : tv).data]);
    }
  });

  it('clip: GPU vs CPU at 3 sizes, gradient', async () => {
    for (const n of [1, 7, 1031]) {
      const seed = freshSeed();
      const b = randBoxes(n, seed, 140, 1, 60, -20);
      await checkGpuVsCpu(
        (g) => {
          const x = g.input('b', [n, 4]);
          return {
            tv: clipBoxes(x, [90, 110]),
            pfr: clipBoxes(x, [90, 110], { plusOne: true }),
            t: clipBoxes(x, g.input('s', [2])),
          };
        },
        { feeds: { b, s: [77, 93] }, seed, rtol: 1e-5 },
      );
    }
    const seed = freshSeed();
    // coordinates at k + 0.5 never sit on a bound (0, 60, 100), where maximum/minimum split the gradient
    const b = rand(40, seed, -20, 130).map((v) => Math.floor(v) + 0.5);
    gradCheck(
      (g) => {
        const x = g.input('b', [10, 4]);
        return { out: clipBoxes(x, [60, 100]), wrt: [x] };
      },
      { b },
      seed,
    );
  });

  it('small_box_mask / removeSmallBoxes: w ≥ m and h ≥ m (TV), inclusive widths (PFR)', async () => {
    const b = [
      [0, 0, 10, 10],
      [0, 0, 9.5, 20],
      [0, 0, 20, 9],
      [5, 5, 5, 5],
      [0, 0, 10, 9],
    ];
    const m = cpu((g) => smallBoxMask(g.input('b', [5, 4]), 10), { b: b.flat() });
    expect(m.dtype).toBe('u32');
    expect([...m.data]).toEqual([1, 0, 0, 0, 0]);
    expect([...(await E.removeSmallBoxes(host(b), 10))]).toEqual([0]);
    // PFR: w = x2 − x1 + 1
    expect([...(await E.removeSmallBoxes(host(b), 10, { plusOne: true }))]).toEqual([0, 1, 2, 4]);
    expect([...(await E.removeSmallBoxes(host(b), 1e-3))]).toEqual([0, 1, 2, 4]);
    for (const n of [1, 7, 1031]) {
      const seed = freshSeed();
      for (const plusOne of [false, true]) {
        await checkGpuVsCpu((g) => smallBoxMask(g.input('b', [n, 4]), 20, { plusOne }), {
          feeds: { b: randBoxes(n, seed, 100, 0, 40) },
          seed,
        });
      }
    }
  });
});

// ---------------------------------------------------------------- eager API edge cases

describe('eager API', () => {
  it('empty inputs give empty results without running the GPU', async () => {
    const empty = { data: new Float32Array(0), shape: [0, 4] };
    const one = host([[0, 0, 1, 1]]);
    expect((await E.boxIou(empty, one)).shape).toEqual([0, 1]);
    expect((await E.boxIou(one, empty)).shape).toEqual([1, 0]);
    expect((await E.boxArea(empty)).data.length).toBe(0);
    expect((await E.encodeBoxes(empty, empty)).shape).toEqual([0, 4]);
    expect((await E.decodeBoxes({ data: new Float32Array(0), shape: [0, 8] }, empty)).shape).toEqual([0, 8]);
    expect((await E.clipBoxes(empty, [10, 10])).shape).toEqual([0, 4]);
    expect((await E.removeSmallBoxes(empty, 1)).length).toBe(0);
    expect((await E.boxConvert(empty, 'xyxy', 'cxcywh')).shape).toEqual([0, 4]);
  });

  it('rejects bad shapes and formats', async () => {
    await expect(E.boxIou({ data: new Float32Array(5), shape: [1, 5] }, host([[0, 0, 1, 1]]))).rejects.toThrow(
      /boxIou: boxes1 must have shape \[N,4\], got \[1,5\]/,
    );
    await expect(E.boxConvert(host([[0, 0, 1, 1]]), 'xyxy', 'xwyh' as BoxFormat)).rejects.toThrow(
      /boxConvert: formats must be one of/,
    );
    await expect(
      E.encodeBoxes(
        host([
          [0, 0, 1, 1],
          [0, 0, 2, 2],
        ]),
        host([[0, 0, 1, 1]]),
      ),
    ).rejects.toThrow(/encodeBoxes: 2 reference boxes but 1 proposals/);
  });

  it('takes nested arrays, bare typed arrays (N×4 values as [N,4]) and { data, shape } alike', async () => {
    const rows = [
      [0, 0, 10, 10],
      [5, 5, 15, 15],
    ];
    const want = [...(await E.boxIou(host(rows), host(rows))).data];
    expect([...(await E.boxIou(rows, rows)).data]).toEqual(want);
    expect([...(await E.boxIou(Float32Array.from(rows.flat()), Int32Array.from(rows.flat()))).data]).toEqual(want);
    expect((await E.boxArea(rows)).shape).toEqual([2]);
    // a nested 1-D array has its own shape [4], not [1,4] (as a 1-D tensor in torchvision)
    await expect(E.boxArea([0, 0, 1, 1])).rejects.toThrow(/boxArea: boxes must have shape \[N,4\], got \[4\]/);
    await expect(E.boxArea([[0, 0, 1]] as unknown as number[][])).rejects.toThrow(/got \[1,3\]/);
    await expect(E.boxArea('boxes' as unknown as number[][])).rejects.toThrow(/expected a typed array, nested arrays/);
  });

  it('clipBoxes on per-class boxes [N,4K] clips every one of the K boxes (DSL and eager)', async () => {
    const seed = freshSeed();
    const n = 9;
    const k = 3;
    const b = rand(n * 4 * k, seed, -40, 140);
    const all = cpu((g) => clipBoxes(g.input('b', [n, 4 * k]), [90, 110]), { b }).data;
    const one = cpu((g) => clipBoxes(g.input('b', [n * k, 4]), [90, 110]), { b }).data;
    expect([...all]).toEqual([...one]);
    const eager = await E.clipBoxes(hostFlat(b, 4 * k), [90, 110]);
    expect(eager.shape).toEqual([n, 4 * k]);
    expectClose(eager.data, [...one], 1e-5);
    expect(() => clipBoxes(new GraphBuilder().input('x', [4, 6]), [9, 9])).toThrow(
      /clipBoxes: boxes must be \[N,4\] or \[N,4K\]/,
    );
  });

  it('accepts integer boxes (as torchvision does)', async () => {
    const r = await E.boxIou(
      { data: Int32Array.from(INT_BOXES.flat()), shape: [4, 4] },
      { data: Int32Array.from(INT_BOXES2.flat()), shape: [3, 4] },
    );
    expectClose(r.data, [1, 0.25, 0, 0.25, 1, 0, 0, 0, 1, 0.0625, 0.25, 0], 1e-6);
  });
});

// ---------------------------------------------------------------- properties (fast-check)

describe('properties (fast-check; each run is one GPU call over a batch of 64 random boxes)', () => {
  const ROWS = 64;
  const RUNS = 20; // 20 runs × 64 boxes = 1280 cases per property
  const coord = fc.integer({ min: -1600, max: 1600 }).map((v) => v / 16);
  const size = fc.integer({ min: 16, max: 800 }).map((v) => v / 16); // 1 .. 50
  const box = fc.tuple(coord, coord, size, size).map(([x, y, w, h]) => [x, y, x + w, y + h]);
  // A fixed batch length: every run reuses one compiled program, and all 64 boxes are independent cases.
  const batch = fc.array(box, { minLength: ROWS, maxLength: ROWS });
  const flat = (bs: number[][]): number[] => bs.flat();

  it('encode/decode round trip (TV and PFR conventions)', async () => {
    await fc.assert(
      fc.asyncProperty(batch, batch, async (as, gs) => {
        const a = flat(as);
        const g = flat(gs);
        for (const plusOne of [false, true]) {
          const opts = { weights: [10, 10, 5, 5] as const, plusOne, bboxXformClip: plusOne ? null : BBOX_XFORM_CLIP };
          const d = await E.encodeBoxes(hostFlat(g), hostFlat(a), opts);
          const back = await E.decodeBoxes(d, hostFlat(a), opts);
          back.data.forEach((v, i) => {
            const want = (g[i] as number) + (plusOne && i % 4 >= 2 ? 1 : 0);
            const tol = 2e-4 + 2e-6 * Math.abs(want) + 2e-6 * Math.abs(a[i] as number);
            if (!(Math.abs(v - want) <= tol))
              throw new Error(`row ${i >> 2} coord ${i % 4}: ${v} vs ${want} (plusOne ${plusOne})`);
          });
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('IoU: symmetric, in [0, 1], self-IoU 1, matches the float64 formula', async () => {
    await fc.assert(
      fc.asyncProperty(batch, batch, async (as, bs) => {
        const a = flat(as);
        const b = flat(bs);
        const ab = (await E.boxIou(hostFlat(a), hostFlat(b))).data;
        const ba = (await E.boxIou(hostFlat(b), hostFlat(a))).data;
        const aa = (await E.boxIou(hostFlat(a), hostFlat(a))).data;
        for (let i = 0; i < ROWS; i++) {
          expect(Math.abs((aa[i * ROWS + i] as number) - 1)).toBeLessThan(1e-6);
          for (let j = 0; j < ROWS; j++) {
            const v = ab[i * ROWS + j] as number;
            expect(v).toBe(ba[j * ROWS + i]);
            expect(v >= 0 && v <= 1).toBe(true);
            const ref = iouF64(box4(a, i), box4(b, j), false);
            expect(Math.abs(v - ref)).toBeLessThan(1e-6);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('clip is idempotent and lands inside the image', async () => {
    const H = 37.5;
    const W = 61.25;
    await fc.assert(
      fc.asyncProperty(batch, fc.boolean(), async (bs, plusOne) => {
        const b = flat(bs);
        const once = await E.clipBoxes(hostFlat(b), [H, W], { plusOne });
        const twice = await E.clipBoxes(once, [H, W], { plusOne });
        expect([...twice.data]).toEqual([...once.data]);
        const off = plusOne ? 1 : 0;
        once.data.forEach((v, i) => {
          expect(v >= 0 && v <= (i % 2 === 0 ? W : H) - off).toBe(true);
          expect(v).toBe(Math.min(Math.max(b[i] as number, 0), (i % 2 === 0 ? W : H) - off));
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('removeSmallBoxes keeps exactly the boxes with w, h ≥ minSize', async () => {
    await fc.assert(
      fc.asyncProperty(batch, fc.constantFrom(5, 20), async (bs, minSize) => {
        const b = flat(bs);
        const keep = [...(await E.removeSmallBoxes(hostFlat(b), minSize))];
        const want: number[] = [];
        for (let i = 0; i < ROWS; i++) {
          if (
            (b[4 * i + 2] as number) - (b[4 * i] as number) >= minSize &&
            (b[4 * i + 3] as number) - (b[4 * i + 1] as number) >= minSize
          )
            want.push(i);
        }
        expect(keep).toEqual(want);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('box ops: run-time sizes', () => {
  it('one program for every N and M: iou, area, encode, decode (K = 3), convert, small-box mask, with gradients', async () => {
    await checkRunTimeSizes({
      symbols: { N: 7, M: 5 },
      build: (g, { N, M }) => {
        const a = g.input('a', [N as number, 4]);
        const b = g.input('b', [M as number, 4]);
        const gt = g.input('gt', [N as number, 4]);
        const d = g.input('d', [N as number, 12]);
        const iou = boxIou(a, b);
        const area = boxArea(a, { plusOne: true });
        const codes = encodeBoxes(gt, a, { weights: [10, 10, 5, 5] });
        const boxes = decodeBoxes(d, a, { weights: [10, 10, 5, 5] });
        const cxcywh = boxConvert(b, 'xyxy', 'cxcywh');
        const keep = smallBoxMask(a, 12);
        const total = iou.sum().add(area.mul(1e-3).sum()).add(codes.sum()).add(boxes.mul(1e-2).sum()).add(cxcywh.sum());
        const [da, db, dgt, dd] = grad(total, [a, b, gt, d]) as [Tensor, Tensor, Tensor, Tensor];
        return { iou, area, codes, boxes, cxcywh, keep, da, db, dgt, dd };
      },
      sizes: (
        [
          [7, 5],
          [1, 1],
          [3, 4],
          [6, 2],
        ] as const
      ).map(([N, M]) => ({ N, M })),
      tol: 1e-4,
      feeds: (g, seed) => {
        const feeds: Record<string, number[]> = {};
        for (const [k, n] of g.graph.nodes.filter((n) => n.op === 'input').entries()) {
          const [rows, cols] = n.type.shape as [number, number];
          feeds[n.name as string] =
            n.name === 'd' ? rand(rows * cols, seed + k, -1, 1) : randBoxes(rows, seed + 7919 * (k + 1), 60, 2, 30);
        }
        return feeds;
      },
    });
  });
});
