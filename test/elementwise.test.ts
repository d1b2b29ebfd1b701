import { afterAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../compiler/tensor.js';
import { closeDevice } from '../runtime/device.js';
import { checkGpuVsCpu, checkGradients, freshSeed, rand, randInt } from './helpers.js';

afterAll(closeDevice);

const SHAPES: readonly (readonly [readonly number[], readonly number[]])[] = [
  [
    [7, 13],
    [7, 13],
  ],
  [
    [3, 5, 6],
    [5, 1],
  ], // broadcast
  [[1, 1031], [1]], // odd length, scalar-like
];

const unary = [
  'neg',
  'abs',
  'exp',
  'log',
  'sqrt',
  'relu',
  'sigmoid',
  'tanh',
  'relu6',
  'hardsigmoid',
  'hardswish',
] as const;
/** Piecewise ops and their kinks (finite differences step across none of them). */
const kinks: Partial<Record<(typeof unary)[number], readonly number[]>> = {
  abs: [0],
  relu: [0],
  relu6: [0, 6],
  hardsigmoid: [-3, 3],
  hardswish: [-3, 3],
};
const binary = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const;
const compare = ['lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const;
/** log, sqrt and pow need positive inputs. */
const positive = new Set(['log', 'sqrt', 'pow']);

function applyUnary(x: Tensor, op: (typeof unary)[number]): Tensor {
  return x.builder.apply(op, [x]);
}
function applyBinary(a: Tensor, b: Tensor, op: string): Tensor {
  return a.builder.apply(op, [a, b]);
}

describe('elementwise ops: GPU vs CPU interpreter', () => {
  for (const op of unary) {
    it(`${op} at 3 shapes`, async () => {
      for (const [shape] of SHAPES) {
        const seed = freshSeed();
        const x = rand(shape, seed, positive.has(op) ? 0.1 : -3, 3).map((v) => (kinks[op] ? 2.5 * v + 1 : v));
        await checkGpuVsCpu((g) => applyUnary(g.input('x', shape), op), { feeds: { x }, seed });
      }
    });
  }
  for (const op of binary) {
    it(`${op} with broadcasting at 3 shapes`, async () => {
      for (const [sa, sb] of SHAPES) {
        const seed = freshSeed();
        const lo = positive.has(op) ? 0.1 : -2;
        const a = rand(sa, seed, lo, 2);
        // div: keep the divisor away from 0
        const b =
          op === 'div'
            ? rand(sb, seed + 1, 0.5, 2).map((v, i) => (i % 2 ? -v : v))
            : rand(sb, seed + 1, op === 'pow' ? -2 : lo, 2);
        await checkGpuVsCpu((g) => applyBinary(g.input('a', sa), g.input('b', sb), op), { feeds: { a, b }, seed });
      }
    });
  }
  it('pow with constant exponents, negative bases and integer exponents', async () => {
    const x = rand([7, 13], freshSeed(), -2, 2);
    await checkGpuVsCpu(
      (g) => {
        const v = g.input('x', [7, 13]);
        return { sq: v.pow(2), cube: v.pow(3), inv: v.pow(-1), half: v.abs().pow(0.5), gen: v.pow(v.mul(0).add(2)) };
      },
      { feeds: { x } },
    );
  });
  for (const op of compare) {
    it(`${op} gives exact u32 0/1 (with ties)`, async () => {
      for (const [sa, sb] of SHAPES) {
        const seed = freshSeed();
        const a = randInt(sa, seed, -2, 3);
        const b = randInt(sb, seed + 1, -2, 3);
        const { gpu } = await checkGpuVsCpu((g) => applyBinary(g.input('a', sa), g.input('b', sb), op), {
          feeds: { a, b },
          seed,
        });
        expect(gpu.out?.dtype).toBe('u32');
      }
    });
  }
  it('where, cast and integer arithmetic', async () => {
    for (const [sa, sb] of SHAPES) {
      const seed = freshSeed();
      await checkGpuVsCpu(
        (g) => {
          const a = g.input('a', sa);
          const b = g.input('b', sb);
          const i = g.input('i', sa, 'i32');
          const j = g.input('j', sb, 'i32');
          return {
            w: g.where(a.gt(b), a, b.mul(2)),
            c: a.mul(10).cast('i32'),
            f: i.cast('f32').mul(0.5),
            int: i.mul(j).add(i).sub(j.mul(3)),
            idiv: i.mul(7).div(j.add(3)),
            u: i.cast('u32'),
          };
        },
        {
          feeds: {
            a: rand(sa, seed, -3, 3),
            b: rand(sb, seed + 1, -3, 3),
            i: randInt(sa, seed + 2, -50, 50),
            j: randInt(sb, seed + 3, 0, 9),
          },
          seed,
        },
      );
    }
  });
});

describe('elementwise ops: finite-difference gradients (float64)', () => {
  for (const op of unary.filter((o) => !kinks[o])) {
    it(op, () => {
      const seed = freshSeed();
      checkGradients(
        (g) => {
          const x = g.input('x', [3, 5]);
          return { out: applyUnary(x, op), wrt: [x] };
        },
        { x: rand([3, 5], seed, positive.has(op) ? 0.2 : -2, 2) },
      );
    });
  }
  for (const op of unary.filter((o) => kinks[o])) {
    it(`${op} on every piece, away from its kinks`, () => {
      const seed = freshSeed();
      // spread over [-5, 8], each value at least 0.05 from a kink
      const x = rand([4, 6], seed, -5, 8).map((v) => {
        const k = (kinks[op] as readonly number[]).find((c) => Math.abs(v - c) < 0.05);
        return k === undefined ? v : k + (v < k ? -0.05 : 0.05);
      });
      checkGradients(
        (g) => {
          const t = g.input('x', [4, 6]);
          return { out: applyUnary(t, op), wrt: [t] };
        },
        { x },
      );
    });
  }
  for (const op of binary) {
    it(`${op} (broadcast gradients are summed)`, () => {
      const seed = freshSeed();
      const a = rand([3, 4, 5], seed, op === 'pow' ? 0.3 : -2, 2);
      // distinct values for maximum/minimum (no ties), divisor away from 0
      const b =
        op === 'div'
          ? rand([4, 1], seed + 1, 0.5, 2)
          : rand([4, 1], seed + 1, op === 'pow' ? -1.5 : -2, 2).map((v) => v + 1e-3);
      checkGradients(
        (g) => {
          const ta = g.input('a', [3, 4, 5]);
          const tb = g.input('b', [4, 1]);
          return { out: applyBinary(ta, tb, op), wrt: [ta, tb] };
        },
        { a, b },
      );
    });
  }
  it('maximum splits the gradient on ties (PyTorch)', () => {
    checkGradients(
      (g) => {
        const a = g.input('a', [4]);
        const b = g.input('b', [4]);
        return { out: a.maximum(b).add(a.minimum(b).mul(3)), wrt: [a, b] };
      },
      { a: [1, 2, 3, 4], b: [0.5, 2.5, 1, 5] },
    );
  });
  it('where routes gradients to the chosen branch; cast passes f32 gradients', () => {
    const seed = freshSeed();
    checkGradients(
      (g) => {
        const a = g.input('a', [5, 3]);
        const b = g.input('b', [3]);
        const c = g.input('c', [5, 1]);
        return { out: g.where(c.gt(0), a.mul(b), b.exp()).cast('f32'), wrt: [a, b, c] };
      },
      { a: rand([5, 3], seed), b: rand([3], seed + 1), c: rand([5, 1], seed + 2) },
    );
  });
});
