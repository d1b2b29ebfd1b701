/** Losses: softmax cross-entropy (with ignored rows) and smooth L1. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { smoothL1, smoothL1Loss, softmaxCrossEntropy } from '../ops/losses.js';
import { getDevice } from '../runtime/device.js';
import { Session } from '../runtime/session.js';
import { checkGpuVsCpu, freshSeed, gradCheckRandom, interpretAll, rand, randInt } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

/** Float64 oracle: per-row cross-entropy, 0 for ignored rows. */
function ceOracle(logits: number[], labels: number[], c: number, ignore: number): number[] {
  return labels.map((lab, n) => {
    if (lab === ignore) return 0;
    const row = logits.slice(n * c, n * c + c);
    const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
    return lse - (row[lab] as number);
  });
}

describe('softmax_cross_entropy: shape rules', () => {
  it('checks logits, labels and attributes', () => {
    const g = new GraphBuilder();
    const logits = g.input('x', [4, 3]);
    const labels = g.input('y', [4], 'i32');
    expect(softmaxCrossEntropy(logits, labels, { reduction: 'none' }).type).toEqual({ shape: [4], dtype: 'f32' });
    expect(softmaxCrossEntropy(logits, labels).shape).toEqual([]);
    expect(softmaxCrossEntropy(logits, labels, { reduction: 'sum' }).shape).toEqual([]);
    expect(() => softmaxCrossEntropy(logits, g.input('z', [5], 'i32'))).toThrow(
      /^softmax_cross_entropy: labels must be i32\[4\] to match logits f32\[4,3\], got i32\[5\]/,
    );
    expect(() => softmaxCrossEntropy(logits, g.input('u', [4]))).toThrow(
      /labels must be i32 \(class indices\), got f32\[4\]/,
    );
    expect(() => softmaxCrossEntropy(g.input('v', [4, 3, 2]), labels)).toThrow(
      /logits must be f32\[N,C\], got f32\[4,3,2\]/,
    );
    expect(() => softmaxCrossEntropy(logits, labels, { ignoreIndex: 0.5 })).toThrow(
      /ignoreIndex must be an i32 integer/,
    );
  });
});

describe('softmax_cross_entropy: CPU reference', () => {
  it('matches the definition, with ignored rows and every reduction', () => {
    const [n, c] = [6, 5];
    const x = rand([n, c], 3, -4, 4);
    const y = [0, 4, -1, 2, -1, 1];
    const [none, sum, mean] = interpretAll(
      (g) => {
        const logits = g.input('x', [n, c]);
        const labels = g.input('y', [n], 'i32');
        return (['none', 'sum', 'mean'] as const).map((reduction) =>
          softmaxCrossEntropy(logits, labels, { reduction }),
        );
      },
      { x, y },
    ) as [RefTensor, RefTensor, RefTensor];
    const want = ceOracle(x, y, c, -1);
    none.data.forEach((v, i) => expect(v).toBeCloseTo(want[i] as number, 12));
    const total = want.reduce((a, b) => a + b, 0);
    expect(sum.data[0]).toBeCloseTo(total, 12);
    expect(mean.data[0]).toBeCloseTo(total / 4, 12);
  });

  it("'mean' of all-ignored rows is 0, not NaN", () => {
    const [m] = interpretAll(
      (g) => [softmaxCrossEntropy(g.input('x', [2, 3]), g.input('y', [2], 'i32'), { ignoreIndex: 7 })],
      {
        x: rand(6, 1),
        y: [7, 7],
      },
    );
    expect(m?.data[0]).toBe(0);
  });

  it('throws naming the op and the row for a label out of range', () => {
    const run = (y: number[]) =>
      interpretAll((g) => [softmaxCrossEntropy(g.input('x', [3, 4]), g.input('y', [3], 'i32'))], { x: rand(12, 2), y });
    expect(() => run([0, 4, 1])).toThrow(
      /^softmax_cross_entropy: label 4 of row 1 is outside \[0, 4\) and is not the ignoreIndex -1/,
    );
    expect(() => run([0, 1, -2])).toThrow(/label -2 of row 2/);
  });
});

describe('softmax_cross_entropy: gradients (finite differences)', () => {
  for (const reduction of ['none', 'sum', 'mean'] as const) {
    it(`reduction '${reduction}' with ignored rows`, () => {
      const [n, c] = [7, 5];
      const labels = randInt(n, freshSeed(), 0, c);
      labels[2] = -1;
      labels[5] = -1;
      gradCheckRandom(
        (g) => {
          const x = g.input('x', [n, c]);
          const y = g.input('y', [n], 'i32');
          return { out: softmaxCrossEntropy(x, y, { reduction }), wrt: [x] };
        },
        { y: labels },
      );
    });
  }

  it('ignored rows get exactly zero gradient', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [3, 4]);
    const y = g.input('y', [3], 'i32');
    const [dx] = grad(softmaxCrossEntropy(x, y, { ignoreIndex: 3 }), [x]);
    const r = interpret(g.graph, { x: rand(12, 9), y: [1, 3, 0] }, [(dx as Tensor).id])[0] as RefTensor;
    expect([...r.data.slice(4, 8)]).toEqual([0, 0, 0, 0]);
    // each non-ignored row's gradient sums to 0 (softmax - onehot), scaled by 1/2
    expect(r.data.slice(0, 4).reduce((a, b) => a + b, 0)).toBeCloseTo(0, 12);
    expect(r.data[1]).toBeLessThan(0);
  });
});

describe('smooth_l1', () => {
  it('matches the definition (beta > 0 and beta = 0) and rejects bad beta', () => {
    const xs = [-3, -0.5, -0.1, 0, 0.2, 0.99, 1.5];
    const [a, b] = interpretAll(
      (g) => {
        const x = g.input('x', [xs.length]);
        return [smoothL1(x, 1), smoothL1(x, 0)];
      },
      { x: xs },
    ) as [RefTensor, RefTensor];
    xs.forEach((v, i) => {
      const want = Math.abs(v) < 1 ? 0.5 * v * v : Math.abs(v) - 0.5;
      expect(a.data[i]).toBeCloseTo(want, 12);
      expect(b.data[i]).toBeCloseTo(Math.abs(v), 12);
    });
    const g = new GraphBuilder();
    expect(() => smoothL1(g.input('x', [2]), -1)).toThrow(/^smooth_l1: beta must be a finite number >= 0, got -1/);
    expect(() => smoothL1(g.input('i', [2], 'i32'), 1)).toThrow(/^smooth_l1: needs f32, got i32/);
  });

  for (const beta of [0.4, 1, 0]) {
    it(`gradient with beta ${beta} (finite differences, away from |x| = beta)`, () => {
      const seed = freshSeed();
      // values in [-1, 1) kept at least 0.01 away from ±beta and from 0
      const x = rand(40, seed).map((v) => (Math.abs(Math.abs(v) - beta) < 0.01 || Math.abs(v) < 0.01 ? v + 0.05 : v));
      gradCheckRandom(
        (g) => {
          const xi = g.input('x', [5, 8]);
          return { out: smoothL1(xi, beta), wrt: [xi] };
        },
        { x },
      );
    });
  }

  it('smoothL1Loss reductions', () => {
    const p = rand(10, 4, -2, 2);
    const t = rand(10, 5, -2, 2);
    const [none, sum, mean] = interpretAll(
      (g) => {
        const pi = g.input('p', [2, 5]);
        const ti = g.input('t', [2, 5]);
        return (['none', 'sum', 'mean'] as const).map((reduction) => smoothL1Loss(pi, ti, { beta: 0.5, reduction }));
      },
      { p, t },
    ) as [RefTensor, RefTensor, RefTensor];
    const want = p.map((v, i) => {
      const d = Math.abs(v - (t[i] as number));
      return d < 0.5 ? (0.5 * d * d) / 0.5 : d - 0.25;
    });
    none.data.forEach((v, i) => expect(v).toBeCloseTo(want[i] as number, 12));
    const s = want.reduce((x, y) => x + y, 0);
    expect(sum.data[0]).toBeCloseTo(s, 12);
    expect(mean.data[0]).toBeCloseTo(s / 10, 12);
  });

  it('smoothL1Loss gradient wrt pred and target (finite differences)', () => {
    gradCheckRandom((g) => {
      const p = g.input('p', [3, 4]);
      const t = g.input('t', [3, 4]);
      return { out: smoothL1Loss(p, t, { beta: 0.3 }), wrt: [p, t] };
    });
  });
});

describe('kernels render', () => {
  it('loss and gradient kernels compile to WGSL for short and long rows', () => {
    for (const [n, c] of [
      [7, 13],
      [3, 1000],
    ] as const) {
      const g = new GraphBuilder();
      const x = g.input('x', [n, c]);
      const y = g.input('y', [n], 'i32');
      const loss = softmaxCrossEntropy(x, y);
      const [dx] = grad(loss, [x]);
      const comp = compile(g, { outputs: { loss, dx: dx as Tensor, s: smoothL1(x, 0.5) } });
      expect(comp.spec.kernels.map((k) => k.wgsl).join('\n')).toContain('@compute');
    }
  });
});

describe('GPU vs CPU', () => {
  for (const [n, c] of [
    [7, 13],
    [64, 10],
    [3, 1000], // rows longer than the workgroup
    [1, 1],
  ] as const) {
    it(`softmax cross-entropy [${n},${c}] with ignored rows: loss and gradient`, async () => {
      const seed = freshSeed();
      const labels = randInt(n, seed, 0, c);
      if (n > 2) labels[1] = -100;
      await checkGpuVsCpu(
        (g) => {
          const x = g.input('x', [n, c]);
          const y = g.input('y', [n], 'i32');
          const none = softmaxCrossEntropy(x, y, { ignoreIndex: -100, reduction: 'none' });
          const mean = softmaxCrossEntropy(x, y, { ignoreIndex: -100 });
          const [dx] = grad(mean, [x]);
          return { none, mean, dx: dx as Tensor };
        },
        { seed, feeds: { x: rand([n, c], seed, -8, 8), y: labels } },
      );
    });
  }

  it('labels outside [0, C) give NaN on the GPU (the CPU reference throws)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 3]);
    // labels computed on the device (fed labels are range-checked on the host)
    const y = g.input('yf', [4]).cast('i32');
    const loss = softmaxCrossEntropy(x, y, { reduction: 'none' });
    const dx = g.apply('softmax_cross_entropy_grad', [x, y, g.constant([1, 1, 1, 1], [4])], { ignoreIndex: -1 });
    const dev = await getDevice();
    const { spec } = compile(g, { outputs: { loss, dx }, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev });
    const out = await session.run({ x: rand(12, 3), yf: [0, 3, -1, -5] });
    session.destroy();
    const l = out.loss?.data as Float32Array;
    const d = out.dx?.data as Float32Array;
    expect(Number.isFinite(l[0])).toBe(true);
    expect(Number.isNaN(l[1])).toBe(true);
    expect(l[2]).toBe(0);
    expect(Number.isNaN(l[3])).toBe(true);
    expect([...d.slice(3, 6)].every(Number.isNaN)).toBe(true);
    expect([...d.slice(6, 9)]).toEqual([0, 0, 0]);
  });

  it('smooth L1 (fused) and its gradient at several shapes', async () => {
    for (const shape of [[7, 13], [3, 5, 7], [1000]]) {
      await checkGpuVsCpu((g) => {
        const p = g.input('p', shape);
        const t = g.input('t', shape);
        const none = smoothL1Loss(p, t, { beta: 0.25, reduction: 'none' });
        const l1 = smoothL1(p, 0);
        const loss = smoothL1Loss(p, t, { beta: 0.5 });
        const [dp] = grad(loss, [p]);
        return { none, l1, loss, dp: dp as Tensor };
      });
    }
  });
});

describe('smooth_l1: run-time sizes', () => {
  it('one program for every size, both branches, with gradients', async () => {
    await checkRunTimeSizes({
      symbols: { N: 9, C: 13 },
      build: (g, { N, C }) => {
        const p = g.input('p', [N as number, C as number]);
        const t = g.input('t', [N as number, C as number]);
        const per = smoothL1(p.sub(t).mul(3), 1 / 9);
        const loss = smoothL1Loss(p, t, { beta: 1, reduction: 'sum' });
        const [dp] = grad(per.sum().add(loss), [p]) as [Tensor];
        return { per, loss, dp };
      },
      // the bounds, one element, one short of the bounds, then a few rows
      sizes: [9, 1, 4, 8].map((N, k) => ({ N, C: [13, 1, 12, 5][k] as number })),
      tol: 1e-5,
    });
  });
});

describe('softmax_cross_entropy: run-time sizes', () => {
  for (const [label, classes] of [
    ['one thread per row', 21],
    ['one workgroup per row', 300],
  ] as const) {
    it(`one program for every row count (${label}), ignored rows included, with gradients`, async () => {
      await checkRunTimeSizes({
        symbols: { N: 11 },
        build: (g, { N }) => {
          const logits = g.input('logits', [N as number, classes]);
          const labels = g.input('labels', [N as number], 'i32');
          const w = g.input('w', [N as number]);
          const per = softmaxCrossEntropy(logits, labels, { reduction: 'none' });
          const mean = softmaxCrossEntropy(logits, labels);
          const [dl] = grad(per.mul(w).sum().add(mean), [logits]) as [Tensor];
          return { per, mean, dl };
        },
        sizes: [11, 1, 10, 4].map((N) => ({ N })),
        tol: 1e-5,
        // labels in [-1, C): -1 is the ignoreIndex
        feeds: (g, seed) => {
          const n = g.graph.nodes.find((x) => x.name === 'labels')?.type.shape[0] as number;
          return {
            logits: rand(n * classes, seed, -3, 3),
            labels: randInt(n, seed + 1, -1, classes),
            w: rand(n, seed + 2),
          };
        },
      });
    });
  }
});
