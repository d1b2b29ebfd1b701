/**
 * upsample_nearest2d and its gradient: the index rule (aten's nearest_idx in float32, the equal and
 * 2× cases exact) on odd sizes up and down; GPU against the float64 interpreter, forward and backward,
 * fused into a following add as the FPN's top-down path does; finite differences; one program over
 * run-time sizes equal to the static programs. torchvision's own results are checked in
 * test/torch-ops.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import type { Dim } from '../compiler/dims.js';
import type { Tensor } from '../compiler/tensor.js';
import { upsampleNearest } from '../index.js';
import { nearestSource } from '../ops/upsample.js';
import { closeDevice } from '../runtime/device.js';
import { checkGpuVsCpu, checkGradients, freshSeed, rand } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

afterAll(closeDevice);

/** [input H, W] → [output H, W]: 2× (FPN), equal, odd up, down, and mixed. */
const CASES: readonly [readonly [number, number], readonly [number, number]][] = [
  [
    [5, 7],
    [10, 14],
  ],
  [
    [4, 6],
    [4, 6],
  ],
  [
    [3, 5],
    [7, 13],
  ],
  [
    [9, 11],
    [4, 5],
  ],
  [
    [6, 5],
    [13, 10],
  ],
];

describe('upsample_nearest2d', () => {
  it('the index rule: identity, halving for 2×, float32 floor of o·(in/out) otherwise', () => {
    expect(Array.from({ length: 10 }, (_, o) => nearestSource(o, 5, 10))).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    expect(Array.from({ length: 7 }, (_, o) => nearestSource(o, 3, 7))).toEqual([0, 0, 0, 1, 1, 2, 2]);
    expect(Array.from({ length: 4 }, (_, o) => nearestSource(o, 9, 4))).toEqual([0, 2, 4, 6]);
    // float32, as aten: 2/82 rounds down, so 41 · (2/82) = 0.99999994 and row 41 reads row 0 (exactly 1 in reals)
    expect(nearestSource(41, 2, 82)).toBe(0);
    expect(nearestSource(42, 2, 82)).toBe(1);
  });

  for (const [[H, W], [OH, OW]] of CASES) {
    it(`GPU = interpreter, forward and backward, fused with an add: [2,3,${H},${W}] → ${OH}×${OW}`, async () => {
      const seed = freshSeed();
      await checkGpuVsCpu(
        (g) => {
          const x = g.input('x', [2, 3, H, W]);
          const lateral = g.input('lateral', [2, 3, OH, OW]);
          const y = upsampleNearest(x, [OH, OW]).add(lateral);
          const r = g.input('r', [2, 3, OH, OW]);
          const [dx] = grad(y.mul(r).sum(), [x]);
          return { y, dx: dx as Tensor };
        },
        { seed, rtol: 1e-5 },
      );
    });
  }

  it('finite differences (float64), up and down', () => {
    for (const [[H, W], [OH, OW]] of CASES.slice(2)) {
      checkGradients(
        (g) => {
          const x = g.input('x', [1, 2, H, W]);
          return { out: upsampleNearest(x, [OH, OW]), wrt: [x] };
        },
        { x: rand([1, 2, H, W], freshSeed()) },
      );
    }
  });

  it('one program for run-time input and output sizes equals the static programs', async () => {
    await checkRunTimeSizes({
      symbols: { N: 2, H: { min: 2, max: 9 }, W: { min: 2, max: 9 }, OH: { min: 2, max: 18 }, OW: { min: 2, max: 18 } },
      build: (g, d) => {
        const at = (k: string) => d[k] as Dim;
        const x = g.input('x', [at('N'), 3, at('H'), at('W')]);
        const lateral = g.input('lateral', [at('N'), 3, at('OH'), at('OW')]);
        const y = upsampleNearest(x, [at('OH'), at('OW')]).add(lateral);
        const [dx] = grad(y.mul(y).sum(), [x]);
        return { y, dx: dx as Tensor };
      },
      sizes: [
        { N: 1, H: 5, W: 7, OH: 10, OW: 14 },
        { N: 2, H: 3, W: 5, OH: 7, OW: 13 },
        { N: 2, H: 9, W: 9, OH: 4, OW: 18 },
        { N: 1, H: 4, W: 6, OH: 4, OW: 6 },
      ],
      tol: 1e-5,
    });
  });
});
