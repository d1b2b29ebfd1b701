/** dropout: shape rules, the hash mask, statistics, gradient and kernel. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { pcgHash } from '../ops/dropout.js';
import { checkGpuVsCpu, checkGradientsSeeded, freshSeed, interpretOne, rand } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

describe('dropout', () => {
  it('checks its attributes', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4]);
    expect(x.dropout(0.5, 1).type).toEqual(x.type);
    expect(() => x.dropout(1.5, 1)).toThrow(/^dropout: p must lie in \[0, 1\], got 1.5/);
    expect(() => x.dropout(0.5, -1)).toThrow(/^dropout: seed must be an integer in \[0, 2\^32\), got -1/);
    expect(() => x.dropout(0.5, 0.5)).toThrow(/seed must be an integer/);
    expect(() => g.input('i', [2], 'i32').dropout(0.5, 1)).toThrow(/^dropout: needs f32, got i32/);
  });

  it('pcgHash matches known PCG-RXS-M-XS values (u32 emulation)', () => {
    // reference values computed with 32-bit unsigned C arithmetic
    expect(pcgHash(0)).toBe(129708002);
    expect(pcgHash(1)).toBe(2831084092);
    expect(pcgHash(0xffffffff)).toBe(3861530882);
    expect(pcgHash(123456789)).toBe(4272394698);
  });

  it('p = 0 is the identity; p = 1 drops everything', () => {
    const x = rand(50, 3);
    expect([...interpretOne((g) => g.input('x', [50]).dropout(0, 7), { x }).data]).toEqual(x);
    expect([...interpretOne((g) => g.input('x', [50]).dropout(1, 7), { x }).data].every((v) => v === 0)).toBe(true);
  });

  it('keeps about 1 - p of 100k elements, scaled by 1/(1-p); seeds give different masks', () => {
    const n = 100_000;
    const x = new Array<number>(n).fill(1);
    for (const p of [0.1, 0.5, 0.9]) {
      const seed = freshSeed();
      const y = interpretOne((g) => g.input('x', [n]).dropout(p, seed), { x }).data;
      let kept = 0;
      for (const v of y) {
        if (v !== 0) {
          kept++;
          expect(v).toBeCloseTo(1 / (1 - p), 12);
        }
      }
      const frac = kept / n;
      const sigma = Math.sqrt((p * (1 - p)) / n);
      // 6 sigma: a false failure has probability ~2e-9
      expect(Math.abs(frac - (1 - p)), `seed ${seed}, p ${p}, kept ${frac}`).toBeLessThan(6 * sigma);
      const y2 = interpretOne((g) => g.input('x', [n]).dropout(p, (seed + 1) >>> 0), { x }).data;
      let same = 0;
      for (let i = 0; i < n; i++) if ((y[i] !== 0) === (y2[i] !== 0)) same++;
      // independent masks agree on a fraction p² + (1-p)² of elements
      const agree = p * p + (1 - p) * (1 - p);
      expect(Math.abs(same / n - agree)).toBeLessThan(6 * Math.sqrt((agree * (1 - agree)) / n));
    }
  });

  it('gradient is dropout of dy with the same mask (finite differences)', () => {
    const seed = freshSeed();
    const build = (g: GraphBuilder) => {
      const x = g.input('x', [7, 13]);
      return { out: x.dropout(0.3, seed).mul(x), wrt: [x] };
    };
    const x = rand([7, 13], seed);
    checkGradientsSeeded(build, { x }, { seed });
    const g = new GraphBuilder();
    const xi = g.input('x', [7, 13]);
    const y = xi.dropout(0.3, seed);
    const [dx] = grad(y.sum(), [xi]);
    const [yv, dv] = interpret(g.graph, { x }, [y.id, (dx as Tensor).id]) as [RefTensor, RefTensor];
    for (let i = 0; i < x.length; i++) expect(dv.data[i]).toBe(yv.data[i] === 0 ? 0 : 1 / 0.7);
  });

  it('kernel renders', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [7, 13]);
    const c = compile(g, { outputs: { y: x.dropout(0.25, 99).mul(2) } });
    expect(c.spec.kernels.map((k) => k.wgsl).join('\n')).toContain('747796405u');
  });
});

describe('dropout: GPU vs CPU', () => {
  for (const [shape, p] of [
    [[7, 13], 0.3],
    [[100_000], 0.5],
    [[3, 5, 7], 0.9],
    [[2, 3], 0],
  ] as [number[], number][]) {
    it(`[${shape.join(',')}] p=${p}: the masks are identical, fused with other elementwise ops`, async () => {
      const seed = freshSeed();
      const dseed = Math.imul(seed, 2654435761) >>> 0;
      // x in [0.5, 1.5): never 0, so y == 0 exactly where the mask drops
      const x = rand(shape, seed, 0.5, 1.5);
      const r = await checkGpuVsCpu(
        (g) => {
          const xi = g.input('x', shape);
          const y = xi.dropout(p, dseed);
          const [dx] = grad(y.mul(y).sum(), [xi]);
          // also fused as the prologue of a reduction: the hash index must still be the element's flat index
          const lead = xi.dropout(p, (dseed ^ 2) >>> 0).sum(0);
          return {
            y,
            fused: xi
              .mul(2)
              .dropout(p, (dseed ^ 1) >>> 0)
              .add(1),
            lead,
            dx: dx as Tensor,
          };
        },
        { seed, feeds: { x } },
      );
      const g = new GraphBuilder();
      const y = g.input('x', shape).dropout(p, dseed);
      const ref = (interpret(g.graph, { x }, [y.id])[0] as RefTensor).data;
      const gpu = r.gpu.y?.data as Float32Array;
      let mismatches = 0;
      for (let i = 0; i < ref.length; i++) if ((ref[i] === 0) !== (gpu[i] === 0)) mismatches++;
      expect(mismatches, `seed ${seed}`).toBe(0);
    });
  }
});

describe('dropout with a per-step seed input', () => {
  it('GPU and CPU masks are identical for several step seeds; step 0 equals the static mask; steps differ', async () => {
    const x = rand([7, 13], freshSeed(), 0.5, 1.5);
    const masks: string[] = [];
    for (const step of [0, 1, 12345, 0xfffffffe]) {
      const { gpu } = await checkGpuVsCpu(
        (g) => {
          const t = g.input('x', [7, 13]);
          const s = g.input('step', [1], 'u32');
          return { y: t.dropout(0.5, 42, s).mul(2), ref: t.dropout(0.5, 42) };
        },
        { feeds: { x, step: [step] } },
      );
      const y = gpu.y?.data as Float32Array;
      masks.push(Array.from(y, (v) => (v === 0 ? '0' : '1')).join(''));
      if (step === 0) expect(Array.from(y)).toEqual(Array.from(gpu.ref?.data as Float32Array, (v) => v * 2));
    }
    expect(new Set(masks).size).toBe(4);
  });

  it('rejects a step seed that is not a one-element u32 tensor', () => {
    const g = new GraphBuilder();
    const t = g.input('x', [3, 4]);
    expect(() => t.dropout(0.5, 1, g.input('s', [2], 'u32'))).toThrow(/step seed must be a one-element u32/);
    expect(() => t.dropout(0.5, 1, g.input('f', [1]))).toThrow(/step seed must be a one-element u32/);
  });

  it('gradient uses the same mask (finite differences)', () => {
    checkGradientsSeeded(
      (g) => {
        const t = g.input('x', [5, 6]);
        return { out: t.dropout(0.3, 7, g.input('step', [], 'u32')).tanh(), wrt: [t] };
      },
      { x: rand([5, 6], freshSeed()), step: [99] },
      { seed: freshSeed() },
    );
  });
});

describe('dropout: run-time sizes', () => {
  it('one program for every size: the mask is the static shape’s (flat index over the actual dims), with gradients', async () => {
    await checkRunTimeSizes({
      symbols: { N: 5, L: 37 },
      build: (g, { N, L }) => {
        const x = g.input('x', [N as number, 3, L as number]);
        const w = g.input('w', [N as number, 3, L as number]);
        const y = x.dropout(0.3, 1234);
        const [dx] = grad(y.mul(w).sum(), [x]) as [Tensor];
        return { y, dx };
      },
      sizes: (
        [
          [5, 37],
          [1, 1],
          [2, 36],
          [4, 7],
        ] as const
      ).map(([N, L]) => ({ N, L })),
      tol: 1e-6,
    });
  });
});
