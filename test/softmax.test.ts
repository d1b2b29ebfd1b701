/** softmax and log_softmax: shape rules, CPU reference, gradients and kernels. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { checkGpuVsCpu, freshSeed, gradCheckRandom, interpretOne, rand } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

describe('softmax: shape rules', () => {
  it('keeps the shape, accepts negative axes, rejects bad ones', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 4]);
    expect(x.softmax().shape).toEqual([2, 3, 4]);
    expect(x.logSoftmax(-3).shape).toEqual([2, 3, 4]);
    expect(() => x.softmax(3)).toThrow(/^softmax: axis 3 is out of range for shape \[2,3,4\] \(rank 3\)/);
    expect(() => x.logSoftmax(-4)).toThrow(/^log_softmax: axis -4 is out of range/);
    expect(() => g.input('i', [3], 'i32').softmax()).toThrow(/^softmax: needs f32, got i32/);
  });
});

describe('softmax: CPU reference', () => {
  it('matches the definition along every axis and is stable for large inputs', () => {
    const shape = [2, 3, 4];
    const data = rand(shape, 5, -3, 3);
    for (const axis of [0, 1, 2, -1]) {
      const y = interpretOne((g) => g.input('x', shape).softmax(axis), { x: data }).data;
      const ly = interpretOne((g) => g.input('x', shape).logSoftmax(axis), { x: data }).data;
      const a = axis < 0 ? axis + 3 : axis;
      const st = [12, 4, 1];
      for (let flat = 0; flat < 24; flat++) {
        const c = [Math.floor(flat / 12), Math.floor(flat / 4) % 3, flat % 4];
        let s = 0;
        for (let j = 0; j < (shape[a] as number); j++) {
          const cc = [...c];
          cc[a] = j;
          s += Math.exp(data[cc[0]! * st[0]! + cc[1]! * st[1]! + cc[2]! * st[2]!] as number);
        }
        expect(y[flat]).toBeCloseTo(Math.exp(data[flat] as number) / s, 12);
        expect(ly[flat]).toBeCloseTo((data[flat] as number) - Math.log(s), 12);
      }
    }
    const big = interpretOne((g) => g.input('x', [3]).softmax(), { x: [1000, 1001, 1002] }).data;
    expect(big[2]).toBeCloseTo(1 / (1 + Math.exp(-1) + Math.exp(-2)), 12);
    const lbig = interpretOne((g) => g.input('x', [2]).logSoftmax(), { x: [-1000, 0] }).data;
    expect(lbig[0]).toBeCloseTo(-1000, 9);
  });
});

describe('softmax: gradients (finite differences)', () => {
  for (const axis of [0, 1, 2, -1]) {
    it(`softmax along axis ${axis}`, () => {
      gradCheckRandom((g) => {
        const x = g.input('x', [3, 4, 5]);
        return { out: x.softmax(axis), wrt: [x] };
      });
    });
    it(`log_softmax along axis ${axis}`, () => {
      gradCheckRandom((g) => {
        const x = g.input('x', [3, 4, 5]);
        return { out: x.logSoftmax(axis), wrt: [x] };
      });
    });
  }
});

describe('kernels render', () => {
  it('softmax / log_softmax compile to WGSL for short rows, long rows and inner axes', () => {
    for (const [shape, axis] of [
      [[7, 13], 1],
      [[7, 13], 0],
      [[3, 1000], -1],
      [[2, 700, 3], 1],
    ] as const) {
      const g = new GraphBuilder();
      const x = g.input('x', shape);
      const c = compile(g, { outputs: { a: x.softmax(axis), b: x.logSoftmax(axis) } });
      const text = c.spec.kernels.map((k) => k.wgsl).join('\n');
      expect(text).toContain('@compute');
    }
  });
});

describe('GPU vs CPU', () => {
  const cases: [number[], number][] = [
    [[7, 13], 1],
    [[7, 13], 0],
    [[5], 0],
    [[4, 1, 3], 1],
    [[3, 1000], -1], // rows longer than the workgroup
    [[2, 700, 3], 1], // long rows with an element stride
    [[300, 5], 0],
    [[3, 5, 7, 2], 2],
  ];
  for (const [shape, axis] of cases) {
    it(`softmax and log_softmax of [${shape.join(',')}] along axis ${axis}`, async () => {
      const seed = freshSeed();
      // logits up to ±30: the max subtraction matters
      await checkGpuVsCpu(
        (g) => {
          const x = g.input('x', shape);
          return { sm: x.softmax(axis), lsm: x.logSoftmax(axis) };
        },
        { seed, feeds: { x: rand(shape, seed, -30, 30) } },
      );
    });
  }

  it('large logits do not overflow', async () => {
    await checkGpuVsCpu(
      (g) => {
        const x = g.input('x', [2, 3]);
        return { sm: x.softmax(1), lsm: x.logSoftmax(1) };
      },
      { feeds: { x: [1000, 1001, 1002, -1000, 0, 80] } },
    );
  });

  for (const [shape, axis] of [
    [[7, 13], 1],
    [[3, 300], 1],
    [[4, 6, 5], 0],
  ] as [number[], number][]) {
    it(`gradients of [${shape.join(',')}] along axis ${axis}`, async () => {
      await checkGpuVsCpu((g) => {
        const x = g.input('x', shape);
        const w = g.input('w', shape);
        const loss = x.softmax(axis).mul(w).sum().add(x.logSoftmax(axis).mul(w).sum());
        const [dx] = grad(loss, [x]);
        return { dx: dx as Tensor };
      });
    });
  }
});

describe('softmax: run-time sizes', () => {
  for (const [label, maxLen] of [
    ['one thread per row', 40],
    ['one workgroup per row', 300],
  ] as const) {
    it(`one program for every row count and length (${label}), with gradients`, async () => {
      await checkRunTimeSizes({
        symbols: { N: 6, L: maxLen },
        build: (g, { N, L }) => {
          const x = g.input('x', [N as number, 3, L as number]);
          const w = g.input('w', [N as number, 3, L as number]);
          const y = x.softmax(2);
          const z = x.logSoftmax(1);
          const [dx] = grad(y.mul(w).sum().add(z.mul(w).sum()), [x]) as [Tensor];
          return { y, z, dx };
        },
        sizes: [
          { N: 1, L: 1 },
          { N: 6, L: maxLen },
          { N: 2, L: 3 },
          { N: 5, L: maxLen - 1 },
          { N: 3, L: 17 },
          { N: 4, L: 2 },
        ],
        tol: 1e-5,
      });
    });
  }
});
