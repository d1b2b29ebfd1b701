/**
 * arange (0, 1, …, n − 1 over a static or run-time length): alone, fused into broadcasting consumers,
 * as i32 / u32 / f32, over a run-time length (one program for every length, equal to the static
 * programs and to the independent oracle below), and its refusals.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../compiler/tensor.js';
import { arange } from '../ops/sizes.js';
import { checkGpuVsCpu, rand } from './helpers.js';
import { checkRunTimeSizes, inputShape } from './run-time-sizes.js';

describe('arange', () => {
  it('static lengths: alone and fused into broadcasting arithmetic, every dtype (GPU vs CPU, and the oracle)', async () => {
    const x = rand([7, 3], 11);
    const { gpu } = await checkGpuVsCpu(
      (g) => {
        const xi = g.input('x', [7, 3]);
        return {
          i: arange(g, 7),
          u: arange(g, 5, 'u32'),
          f: arange(g, 1),
          // rows offset by their index: x + 10·r
          y: xi.add(arange(g, 7, 'f32').mul(10).reshape([7, 1])),
          cols: arange(g, 3)
            .reshape([1, 3])
            .add(arange(g, 7).mul(100).reshape([7, 1])),
        };
      },
      // f32 sums against the float64 reference; the integer outputs are exact
      { feeds: { x }, rtol: 1e-7 },
    );
    expect(Array.from(gpu.i?.data ?? [])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(Array.from(gpu.u?.data ?? [])).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(gpu.f?.data ?? [])).toEqual([0]);
    expect(Array.from(gpu.y?.data ?? [])).toEqual(x.map((v, k) => Math.fround(v + 10 * Math.floor(k / 3))));
    expect(Array.from(gpu.cols?.data ?? [])).toEqual(
      Array.from({ length: 21 }, (_, k) => 100 * Math.floor(k / 3) + (k % 3)),
    );
  });

  it('over a run-time length: one program for every length equals the static programs', async () => {
    await checkRunTimeSizes({
      symbols: { N: { max: 300, min: 1 } },
      build: (g, { N }) => {
        const x = g.input('x', [N as number, 2]);
        const r = arange(g, N as number, 'f32');
        return { r: arange(g, N as number), y: x.add(r.reshape([N as number, 1])), s: r.sum() };
      },
      sizes: [{ N: 300 }, { N: 1 }, { N: 77 }, { N: 256 }],
      tol: 1e-7,
      feeds: (g, seed) => ({ x: rand(inputShape(g, 'x'), seed) }),
    });
  });

  it('refuses a bad length or dtype, naming the attribute', () => {
    const g = new GraphBuilder();
    expect(() => arange(g, 0)).toThrow(/arange: attribute length must be a positive integer or a run-time size, got 0/);
    expect(() => arange(g, 2.5)).toThrow(/attribute length/);
    expect(() => g.apply('arange', [], { length: 3, dtype: 'bool' })).toThrow(
      /dtype must be i32, u32, f32, got "bool"/,
    );
  });
});
