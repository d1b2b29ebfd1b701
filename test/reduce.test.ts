/** Reductions (sum, max, argmax): shape rules, CPU references, gradients and kernels. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import type { DType, Shape } from '../compiler/types.js';
import { checkGpuVsCpu, freshSeed, gradCheckRandom, interpretOne, rand, randInt } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

/** Naive reduction oracle over explicit multi-indices. */
function naive(data: number[], shape: Shape, axes: number[], op: 'sum' | 'max'): number[] {
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outN = outShape.reduce((a, b) => a * b, 1);
  const out = new Array<number>(outN).fill(op === 'sum' ? 0 : Number.NEGATIVE_INFINITY);
  const n = data.length;
  for (let flat = 0; flat < n; flat++) {
    let rest = flat;
    const coord: number[] = new Array(shape.length).fill(0);
    for (let d = shape.length - 1; d >= 0; d--) {
      coord[d] = rest % (shape[d] as number);
      rest = Math.floor(rest / (shape[d] as number));
    }
    let o = 0;
    for (let d = 0; d < shape.length; d++)
      o = o * (outShape[d] as number) + (axes.includes(d) ? 0 : (coord[d] as number));
    const v = data[flat] as number;
    out[o] = op === 'sum' ? (out[o] as number) + v : Math.max(out[o] as number, v);
  }
  return out;
}

describe('sum and max: shape rules', () => {
  it('infers shapes with and without keepDims', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 4]);
    expect(x.sum().shape).toEqual([]);
    expect(x.sum(undefined, true).shape).toEqual([1, 1, 1]);
    expect(x.sum(1).shape).toEqual([2, 4]);
    expect(x.sum([0, 2], true).shape).toEqual([1, 3, 1]);
    expect(x.max(-1).shape).toEqual([2, 3]);
    expect(x.max([-1, 0]).shape).toEqual([3]);
    expect(x.sum([]).shape).toEqual([2, 3, 4]);
    expect(g.input('i', [5, 2], 'i32').sum(0).dtype).toBe('i32');
    expect(g.input('u', [5, 2], 'u32').max(1).dtype).toBe('u32');
  });

  it('rejects bad axes with clear messages', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3]);
    expect(() => x.sum(2)).toThrow(/^sum: axis 2 is out of range for rank 2 \(shape \[2,3\]/);
    expect(() => x.max(-3)).toThrow(/^max: axis -1 is out of range for rank 2/);
    expect(() => x.sum([1, -1])).toThrow(/^sum: axis 1 is repeated in axes \[1,1\]/);
    expect(() => g.apply('sum', [x], { axes: [1, 0], keepDims: false })).toThrow(
      /axes \[1,0\] must be sorted ascending/,
    );
    expect(() => g.apply('sum', [x], { axes: [0.5], keepDims: false })).toThrow(/axis 0.5 is out of range/);
    expect(() => g.apply('sum', [x], { axes: [0] })).toThrow(/keepDims must be a boolean/);
  });
});

describe('sum and max: CPU reference', () => {
  const shape = [3, 4, 5];
  const data = rand(shape, 11);
  const cases: number[][] = [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2], []];
  for (const axes of cases) {
    it(`over axes [${axes.join(',')}]`, () => {
      for (const op of ['sum', 'max'] as const) {
        const r = interpretOne((g) => (op === 'sum' ? g.input('x', shape).sum(axes) : g.input('x', shape).max(axes)), {
          x: data,
        });
        const want = naive(data, shape, axes, op);
        expect(r.data.length).toBe(want.length);
        r.data.forEach((v, i) => expect(v).toBeCloseTo(want[i] as number, 12));
      }
    });
  }

  it('integer sums wrap like 32-bit arithmetic', () => {
    const dt: DType = 'i32';
    const r = interpretOne((g) => g.input('x', [3], dt).sum(), { x: [2147483647, 1, 5] });
    expect([...r.data]).toEqual([-2147483643]);
    const u = interpretOne((g) => g.input('x', [2], 'u32').sum(), { x: [4294967295, 3] });
    expect([...u.data]).toEqual([2]);
  });

  it('max handles -inf and propagates NaN', () => {
    const r = interpretOne((g) => g.input('x', [2, 2]).max(1), {
      x: [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, 1, Number.NaN],
    });
    expect(r.data[0]).toBe(Number.NEGATIVE_INFINITY);
    expect(Number.isNaN(r.data[1])).toBe(true);
  });
});

describe('sum and max: gradients', () => {
  const axesCases: [number[] | undefined, boolean][] = [
    [[0], false],
    [[1], true],
    [[2], false],
    [[0, 2], false],
    [[0, 2], true],
    [undefined, false],
    [undefined, true],
  ];
  for (const [axes, keep] of axesCases) {
    it(`sum over ${axes ? `[${axes.join(',')}]` : 'all'} keepDims=${keep} (finite differences)`, () => {
      gradCheckRandom((g) => {
        const x = g.input('x', [3, 4, 5]);
        return { out: x.sum(axes, keep).mul(x.sum(axes, keep)), wrt: [x] };
      });
    });
    it(`max over ${axes ? `[${axes.join(',')}]` : 'all'} keepDims=${keep} (finite differences, no ties)`, () => {
      gradCheckRandom((g) => {
        const x = g.input('x', [3, 4, 5]);
        return { out: x.max(axes, keep).mul(x.max(axes, keep).add(0.5)), wrt: [x] };
      });
    });
  }

  it('sum gradient broadcasts inf and NaN faithfully (no 0*inf)', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3]);
    const y = x.sum(1);
    const [dx] = grad(y.sum(), [x]);
    const r = interpret(g.graph, { x: [Number.POSITIVE_INFINITY, 1, 2, Number.NaN, 3, 4] }, [
      (dx as Tensor).id,
    ])[0] as RefTensor;
    expect([...r.data]).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('max gradient splits evenly among ties', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 4]);
    const y = x.max(1);
    const [dx] = grad(y.mul(g.constant([2, 3], [2])).sum(), [x]);
    const r = interpret(g.graph, { x: [1, 3, 3, 2, 5, 5, 5, -1] }, [(dx as Tensor).id])[0] as RefTensor;
    expect([...r.data]).toEqual([0, 1, 1, 0, 1, 1, 1, 0]);
  });
});

describe('argmax', () => {
  it('infers shapes and rejects bad axes', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 4]);
    expect(x.argmax(1).type).toEqual({ shape: [2, 4], dtype: 'i32' });
    expect(x.argmax(-1, true).type).toEqual({ shape: [2, 3, 1], dtype: 'i32' });
    expect(() => x.argmax(3)).toThrow(/^argmax: axis 3 is out of range for shape \[2,3,4\] \(rank 3\)/);
  });

  it('returns the first maximum along any axis', () => {
    // [2, 3, 2]
    const data = [1, 9, 4, 9, 4, 2, 7, 7, 7, 0, -1, 8];
    expect([...interpretOne((g) => g.input('x', [2, 3, 2]).argmax(1), { x: data }).data]).toEqual([1, 0, 0, 2]);
    expect([...interpretOne((g) => g.input('x', [2, 3, 2]).argmax(2), { x: data }).data]).toEqual([1, 1, 0, 0, 0, 1]);
    expect([...interpretOne((g) => g.input('x', [2, 3, 2]).argmax(0), { x: data }).data]).toEqual([1, 0, 1, 0, 0, 1]);
    expect([...interpretOne((g) => g.input('x', [4], 'i32').argmax(0), { x: [3, -2, 3, 1] }).data]).toEqual([0]);
  });

  it('has no gradient', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [3, 4]);
    const y = x.argmax(1).cast('f32').mul(x.sum(1));
    expect(() => grad(y.sum(), [x])).not.toThrow();
  });
});

describe('kernels render', () => {
  it('argmax compiles to WGSL in both thread-per-row and workgroup-per-row modes', () => {
    for (const shape of [
      [7, 13],
      [3, 300],
      [2, 500, 3],
    ]) {
      const g = new GraphBuilder();
      const x = g.input('x', shape);
      const c = compile(g, { outputs: { a: x.argmax(1), b: x.argmax(0) } });
      const text = c.spec.kernels.map((k) => k.wgsl).join('\n');
      expect(text).toContain('@compute');
    }
  });
});

describe('GPU vs CPU', () => {
  it('sum and max over one axis, several axes and all axes (odd shapes)', async () => {
    await checkGpuVsCpu((g) => {
      const x = g.input('x', [7, 13]);
      return { s0: x.sum(0), s1: x.sum(1), sa: x.sum(), m0: x.max(0), m1: x.max(1, true), ma: x.max() };
    });
    await checkGpuVsCpu((g) => {
      const x = g.input('x', [3, 5, 7, 2]);
      return { s02: x.sum([0, 2]), s13: x.sum([1, 3], true), m023: x.max([0, 2, 3]), m12: x.max([1, 2], true) };
    });
    await checkGpuVsCpu((g) => {
      const x = g.input('x', [300, 5]);
      return { s0: x.sum(0), m0: x.max(0), s1: x.sum(1), m1: x.max(1) };
    });
  });

  it('integer sums and maxima are exact', async () => {
    await checkGpuVsCpu((g) => {
      const x = g.input('x', [9, 11], 'i32');
      const u = g.input('u', [9, 11], 'u32');
      return { s: x.sum(1), m: x.max(0), us: u.sum(), um: u.max(1) };
    });
  });

  it('a 100k-element full sum and max', async () => {
    const seed = freshSeed();
    // positive data so the reference sum is far from 0 (normwise error stays meaningful)
    await checkGpuVsCpu(
      (g) => {
        const x = g.input('x', [100_000]);
        return { s: x.sum(), m: x.max(), mean: x.mean() };
      },
      { seed, feeds: { x: rand(100_000, seed, 0, 1) } },
    );
  });

  it('sum and max gradients (fused broadcast back)', async () => {
    await checkGpuVsCpu((g) => {
      const x = g.input('x', [7, 13]);
      const w = g.input('w', [13]);
      const loss = x
        .sum(0)
        .mul(w)
        .sum()
        .add(x.max(1).mul(x.max(1)).sum());
      const [dx, dw] = grad(loss, [x, w]);
      return { dx: dx as Tensor, dw: dw as Tensor };
    });
  });

  it('argmax along every axis, short and long rows, ties resolve to the first index', async () => {
    for (const shape of [
      [7, 13],
      [3, 300],
      [2, 500, 3],
    ]) {
      const seed = freshSeed();
      await checkGpuVsCpu(
        (g) => {
          const x = g.input('x', shape);
          // i32 data in [0, 4): many ties, also across the threads of a workgroup
          const xi = g.input('xi', shape, 'i32');
          const out: Record<string, Tensor> = {};
          for (let a = 0; a < shape.length; a++) {
            out[`f${a}`] = x.argmax(a);
            out[`i${a}`] = xi.argmax(a, true);
          }
          return out;
        },
        { seed, feeds: { xi: randInt(shape, seed, 0, 4) } },
      );
    }
  });
});

describe('argmax: run-time sizes', () => {
  for (const [label, maxLen] of [
    ['one thread per row', 29],
    ['one workgroup per row', 300],
  ] as const) {
    it(`one program for every row count and length (${label}), over the last and a middle axis`, async () => {
      await checkRunTimeSizes({
        symbols: { N: 5, L: maxLen },
        build: (g, { N, L }) => {
          const x = g.input('x', [N as number, 3, L as number]);
          return { last: x.argmax(2), middle: x.argmax(1, true), first: x.argmax(0) };
        },
        sizes: [
          { N: 5, L: maxLen },
          { N: 1, L: 1 },
          { N: 2, L: maxLen - 1 },
          { N: 4, L: 6 },
        ],
        tol: 0,
      });
    });
  }
});
