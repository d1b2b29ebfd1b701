/** Movement ops: shape rules, CPU references, gradients (finite differences) and kernels. */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import type { Attrs } from '../compiler/ir.js';
import type { BufRef, Kernel } from '../compiler/kernel/ast.js';
import { kernelBuffers } from '../compiler/kernel/build.js';
import { renderWgsl } from '../compiler/kernel/wgsl.js';
import { limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import { getOp, type LowerArgs, type RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { numel, type TensorType } from '../compiler/types.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';
import {
  checkGpuVsCpu,
  freshSeed,
  gradCheckRandom,
  interpretOne,
  rand,
  randInt,
  randomFeeds,
  relError,
} from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

const iota = (n: number): number[] => [...Array(n).keys()];

/** Python's slice on a 1-D list (positive step), the oracle for the slice semantics. */
function pySlice(xs: number[], start: number | null, end: number | null, step: number): number[] {
  const n = xs.length;
  const norm = (v: number): number => (v < 0 ? Math.max(0, v + n) : Math.min(v, n));
  const s = start === null ? 0 : norm(start);
  const e = end === null ? n : norm(end);
  const out: number[] = [];
  for (let i = s; i < e; i += step) out.push(xs[i] as number);
  return out;
}

describe('reshape and stop_gradient', () => {
  it('infers -1 and rejects bad shapes', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 4]);
    expect(x.reshape([-1, 4]).shape).toEqual([6, 4]);
    expect(x.reshape([24]).shape).toEqual([24]);
    expect(x.reshape([2, 1, -1]).shape).toEqual([2, 1, 12]);
    expect(() => x.reshape([5, 5])).toThrow(
      /^reshape: cannot reshape \[2,3,4\] \(24 elements\) to \[5,5\] \(25 elements\); inputs f32\[2,3,4\]/,
    );
    expect(() => x.reshape([-1, -1])).toThrow(/reshape: shape \[-1,-1\] has more than one -1/);
    expect(() => x.reshape([-1, 5])).toThrow(/reshape: cannot reshape \[2,3,4\] .* not a multiple of 5/);
    expect(() => x.reshape([0, 24])).toThrow(/reshape: .*bad dimension 0/);
  });

  it('keeps the data and dtype', () => {
    const r = interpretOne((g) => g.input('x', [3, 4], 'i32').reshape([2, 6]), { x: iota(12) });
    expect([...r.data]).toEqual(iota(12));
    expect(r.dtype).toBe('i32');
  });

  it('gradient (finite differences)', () => {
    gradCheckRandom((g) => {
      const x = g.input('x', [3, 4]);
      return { out: x.reshape([2, 6]).mul(x.reshape([-1, 6])), wrt: [x] };
    });
  });

  it('stop_gradient passes values and blocks gradients', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [5]);
    const y = x.stopGradient().mul(x); // d/dx = stop(x)
    const seed = g.constant([1, 1, 1, 1, 1], [5]);
    const [dx] = grad(y, [x], seed);
    const xs = rand(5, freshSeed());
    const [yv, dxv] = interpret(g.graph, { x: xs }, [y.id, (dx as Tensor).id]) as [RefTensor, RefTensor];
    expect([...yv.data]).toEqual(xs.map((v) => v * v));
    expect([...dxv.data]).toEqual(xs);
  });
});

describe('transpose', () => {
  it('values', () => {
    const r = interpretOne((g) => g.input('x', [2, 3]).transpose(), { x: iota(6) });
    expect(r.shape).toEqual([3, 2]);
    expect([...r.data]).toEqual([0, 3, 1, 4, 2, 5]);
    const r3 = interpretOne((g) => g.input('x', [2, 3, 4]).transpose([2, 0, 1]), { x: iota(24) });
    expect(r3.shape).toEqual([4, 2, 3]);
    // out[a][b][c] = x[b][c][a]
    expect(r3.data[1 * 6 + 1 * 3 + 2]).toBe(1 * 12 + 2 * 4 + 1);
  });

  it('rejects a bad perm', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 4]);
    expect(() => x.transpose([0, 1])).toThrow(
      /^transpose: perm \[0,1\] is not a permutation of the 3 axes 0\.\.2; inputs f32\[2,3,4\]/,
    );
    expect(() => x.transpose([0, 1, 1])).toThrow(/transpose: perm \[0,1,1\] is not a permutation/);
    expect(() => x.transpose([0, 1, 3])).toThrow(/transpose: perm/);
  });

  it('gradient (finite differences)', () => {
    gradCheckRandom((g) => {
      const x = g.input('x', [3, 4, 5]);
      return { out: x.transpose([2, 0, 1]), wrt: [x] };
    });
    gradCheckRandom((g) => {
      const x = g.input('x', [2, 3, 4, 5]);
      return { out: x.transpose([0, 2, 3, 1]).mul(x.transpose([0, 2, 3, 1])), wrt: [x] };
    });
  });
});

describe('slice', () => {
  it('follows Python semantics on random 1-D slices', () => {
    const n = 11;
    const xs = iota(n).map((i) => i * 10 + 1);
    const vals = randInt(600, freshSeed(), -15, 16);
    for (let t = 0; t < 200; t++) {
      const start = vals[3 * t] as number;
      const end = vals[3 * t + 1] as number;
      const step = 1 + (Math.abs(vals[3 * t + 2] as number) % 4);
      const want = pySlice(xs, start, end, step);
      const g = new GraphBuilder();
      const x = g.input('x', [n]);
      if (want.length === 0) {
        expect(() => x.slice([start], [end], [step])).toThrow(/slice: axis 0 of \[11\] sliced .* is empty/);
        continue;
      }
      const y = x.slice([start], [end], [step]);
      expect([...(interpret(g.graph, { x: xs }, [y.id])[0] as RefTensor).data]).toEqual(want);
    }
  });

  it('slices several axes; missing entries keep whole axes; nulls are defaults', () => {
    const r = interpretOne((g) => g.input('x', [4, 5, 3]).slice([1, -4], [100, -1], [2, 2]), { x: iota(60) });
    expect(r.shape).toEqual([2, 2, 3]);
    // rows 1,3; cols 1,3; all of axis 2
    const want: number[] = [];
    for (const a of [1, 3]) for (const b of [1, 3]) for (let c = 0; c < 3; c++) want.push(a * 15 + b * 3 + c);
    expect([...r.data]).toEqual(want);
    const g = new GraphBuilder();
    const x = g.input('x', [4, 5]);
    const y = g.apply('slice', [x], { starts: [null, 2], ends: [null, null], steps: null });
    expect(y.shape).toEqual([4, 3]);
  });

  it('rejects bad attributes', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 5]);
    expect(() => x.slice([0], [2], [0])).toThrow(
      /^slice: step 0 on axis 0 must be a positive integer; inputs f32\[4,5\]/,
    );
    expect(() => x.slice([0], [2], [-1])).toThrow(/slice: step -1/);
    expect(() => x.slice([0, 0, 0], [1, 1, 1])).toThrow(/slice: 3 starts\/ends for a rank-2 tensor \[4,5\]/);
    expect(() => x.slice([0, 0], [1])).toThrow(/slice: starts \[0,0\] and ends \[1\] have different lengths/);
    expect(() => x.slice([3], [1])).toThrow(/slice: axis 0 of \[4,5\] sliced \[3:1:1\] is empty/);
    expect(() => x.slice([0.5], [1])).toThrow(/slice: attribute starts must be a list of integers/);
    expect(() => x.slice([0, 0], [1, 1], [1])).toThrow(/slice: steps \[1\] must have one entry per start/);
  });

  it('gradient (finite differences), steps and negative indices', () => {
    gradCheckRandom((g) => {
      const x = g.input('x', [7, 9, 5]);
      return { out: x.slice([-6, 1], [7, -1], [2, 3]), wrt: [x] };
    });
    gradCheckRandom((g) => {
      const x = g.input('x', [6, 13]);
      const s = x.slice([1, -5], [-1, 100]);
      return { out: s.mul(s), wrt: [x] };
    });
  });

  it('slice_grad: values and its own gradient', () => {
    const r = interpretOne(
      (g) => g.apply('slice_grad', [g.input('d', [2])], { starts: [1], ends: [-1], steps: [3], inputShape: [6] }),
      { d: [5, 7] },
    );
    expect([...r.data]).toEqual([0, 5, 0, 0, 7, 0]);
    gradCheckRandom((g) => {
      const d = g.input('d', [3, 3, 5]);
      return {
        out: g.apply('slice_grad', [d], { starts: [-6, 1], ends: [7, -1], steps: [2, 3], inputShape: [7, 9, 5] }),
        wrt: [d],
      };
    });
    const g = new GraphBuilder();
    expect(() =>
      g.apply('slice_grad', [g.input('d', [2, 2])], { starts: [0], ends: [3], steps: null, inputShape: [4, 2] }),
    ).toThrow(/^slice_grad: dy has shape \[2,2\], but slicing \[4,2\] gives \[3,2\]/);
  });
});

describe('pad', () => {
  it('values, asymmetric, with a fill value and integer dtype', () => {
    const r = interpretOne(
      (g) =>
        g.input('x', [2, 2]).pad(
          [
            [1, 0],
            [0, 2],
          ],
          -1.5,
        ),
      { x: [1, 2, 3, 4] },
    );
    expect(r.shape).toEqual([3, 4]);
    expect([...r.data]).toEqual([-1.5, -1.5, -1.5, -1.5, 1, 2, -1.5, -1.5, 3, 4, -1.5, -1.5]);
    const ri = interpretOne((g) => g.input('x', [3], 'i32').pad([[2, 1]], 7), { x: [1, 2, 3] });
    expect([...ri.data]).toEqual([7, 7, 1, 2, 3, 7]);
    // fewer pads than axes: the trailing axes are not padded
    const g = new GraphBuilder();
    expect(g.input('x', [2, 3, 4]).pad([[1, 1]]).shape).toEqual([4, 3, 4]);
  });

  it('rejects bad attributes', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3]);
    expect(() => x.pad([[1, -1]])).toThrow(
      /^pad: pads \[\[1,-1\]\] must be a list of \[before, after\] pairs of non-negative integers; inputs f32\[2,3\]/,
    );
    expect(() =>
      x.pad([
        [0, 0],
        [0, 0],
        [1, 1],
      ]),
    ).toThrow(/pad: 3 pads for a rank-2 tensor \[2,3\]/);
    expect(() => g.input('i', [2], 'i32').pad([[1, 1]], 0.5)).toThrow(
      /pad: pad value 0.5 does not fit dtype i32; inputs i32\[2\]/,
    );
  });

  it('gradient (finite differences), asymmetric', () => {
    gradCheckRandom((g) => {
      const x = g.input('x', [4, 5, 3]);
      return {
        out: x.pad(
          [
            [1, 2],
            [0, 3],
            [2, 0],
          ],
          0.25,
        ),
        wrt: [x],
      };
    });
  });
});

describe('concat', () => {
  it('values along each axis', () => {
    const r = interpretOne((g) => g.concat([g.input('a', [2, 1]), g.input('b', [2, 2]), g.input('c', [2, 1])], -1), {
      a: [1, 2],
      b: [3, 4, 5, 6],
      c: [7, 8],
    });
    expect(r.shape).toEqual([2, 4]);
    expect([...r.data]).toEqual([1, 3, 4, 7, 2, 5, 6, 8]);
    const r0 = interpretOne((g) => g.concat([g.input('a', [1, 2]), g.input('b', [2, 2])], 0), {
      a: [1, 2],
      b: [3, 4, 5, 6],
    });
    expect([...r0.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rejects mismatched inputs', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [2, 3]);
    expect(() => g.concat([a, g.input('b', [3, 3])], 1)).toThrow(
      /^concat: input 1 has shape \[3,3\], which differs from input 0's \[2,3\] outside axis 1; inputs f32\[2,3\], f32\[3,3\]/,
    );
    expect(() => g.concat([a, g.input('c', [2, 3], 'i32')], 0)).toThrow(
      /concat: input 1 has dtype i32, input 0 has f32/,
    );
    expect(() => g.concat([a, a], 2)).toThrow(/concat: axis 2 is out of range for rank 2/);
    expect(() => g.concat([a, g.input('d', [2])], 0)).toThrow(/concat: input 1 has shape \[2\]/);
    expect(() => g.concat([], 0)).toThrow(/concat: needs at least one input/);
  });

  it('gradient (finite differences), 3 inputs', () => {
    gradCheckRandom((g) => {
      const a = g.input('a', [2, 3, 4]);
      const b = g.input('b', [2, 1, 4]);
      const c = g.input('c', [2, 5, 4]);
      const y = g.concat([a, b, c], 1);
      return { out: y.mul(y), wrt: [a, b, c] };
    });
    gradCheckRandom((g) => {
      const a = g.input('a', [3, 2]);
      const b = g.input('b', [3, 3]);
      return { out: g.concat([a, b, a], -1), wrt: [a, b] };
    });
  });
});

describe('gather', () => {
  it('values, output shape and repeated indices', () => {
    const r = interpretOne((g) => g.input('x', [2, 3, 2]).gather(g.input('i', [2, 2], 'i32'), 1), {
      x: iota(12),
      i: [2, 0, 2, 2],
    });
    expect(r.shape).toEqual([2, 2, 2, 2]);
    expect([...r.data]).toEqual([4, 5, 0, 1, 4, 5, 4, 5, 10, 11, 6, 7, 10, 11, 10, 11]);
  });

  it('rejects bad inputs and out-of-range indices', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 3]);
    expect(() => x.gather(g.input('f', [2]), 0)).toThrow(
      /^gather: indices must be i32, got f32\[2\]; inputs f32\[4,3\], f32\[2\]/,
    );
    expect(() => x.gather(g.input('i', [2], 'i32'), 2)).toThrow(/gather: axis 2 is out of range for rank 2/);
    expect(() =>
      interpretOne((h) => h.input('x', [4, 3]).gather(h.input('i', [2], 'i32'), 0), { x: iota(12), i: [1, 4] }),
    ).toThrow(
      /^gather: index 4 is out of range for axis 0 of size 4 \(x \[4,3\]\) \(declared at test\/movement\.test\.ts:\d+/,
    );
    expect(() =>
      interpretOne((h) => h.input('x', [4, 3]).gather(h.input('i', [2], 'i32'), -1), { x: iota(12), i: [-1, 0] }),
    ).toThrow(/gather: index -1 is out of range for axis -1 of size 3/);
  });

  it('gradient (finite differences), repeated indices', () => {
    gradCheckRandom(
      (g) => {
        const x = g.input('x', [3, 5, 2]);
        return { out: x.gather(g.input('i', [2, 3], 'i32'), 1), wrt: [x] };
      },
      { i: [2, 0, 2, 4, 2, 1] },
    );
    gradCheckRandom(
      (g) => {
        const x = g.input('x', [6, 3]);
        const y = x.gather(g.input('i', [7], 'i32'), 0);
        return { out: y.mul(y), wrt: [x] };
      },
      { i: [5, 5, 0, 3, 5, 0, 1] },
    );
  });

  it('gather_grad: values and its own gradient', () => {
    const r = interpretOne(
      (g) => g.apply('gather_grad', [g.input('d', [4]), g.input('i', [4], 'i32')], { axis: 0, inputShape: [3] }),
      {
        d: [1, 2, 4, 8],
        i: [2, 0, 2, 2],
      },
    );
    expect([...r.data]).toEqual([2, 0, 13]);
    gradCheckRandom(
      (g) => {
        const d = g.input('d', [3, 2, 3, 2]);
        return {
          out: g.apply('gather_grad', [d, g.input('i', [2, 3], 'i32')], { axis: 1, inputShape: [3, 5, 2] }),
          wrt: [d],
        };
      },
      { i: [2, 0, 2, 4, 2, 1] },
    );
    const g = new GraphBuilder();
    expect(() =>
      g.apply('gather_grad', [g.input('d', [3]), g.input('i', [4], 'i32')], { axis: 0, inputShape: [5] }),
    ).toThrow(/^gather_grad: dy has shape \[3\], but gathering \[5\] along axis 0 gives \[4\]/);
  });
});

// ---------------------------------------------------------------- kernels (rendered; GPU runs below)

/** Lowers one op application directly, with logical buffers in0.. and out. */
function lowerOp(op: string, inTypes: TensorType[], attrs: Attrs, maxBuffers = 8): Kernel[] {
  const def = getOp(op);
  const out = def.infer(inTypes, attrs);
  const buf = (name: string, t: TensorType): BufRef => ({ name, t: t.dtype });
  const args: LowerArgs = {
    node: { id: 0, op, inputs: [], attrs, type: out, site: '' },
    attrs,
    inputs: inTypes.map((t, i) => ({ buf: buf(`in${i}`, t), type: t })),
    output: { buf: buf('out', out), type: out },
    limits: limitsFrom({ ...WEBGPU_DEFAULT_LIMITS, maxStorageBuffersPerShaderStage: maxBuffers }),
    target: 'webgpu',
    tuning: {},
    name: `k0_${op}`,
    hasEpilogue: false,
    epilogue: (v) => v,
    scratch: () => {
      throw new Error('no scratch expected');
    },
  };
  return (def.lower as NonNullable<typeof def.lower>)(args);
}

const f = (...shape: number[]): TensorType => ({ shape, dtype: 'f32' });
const i = (...shape: number[]): TensorType => ({ shape, dtype: 'i32' });

describe('kernels render', () => {
  const cases: [string, TensorType[], Attrs][] = [
    ['transpose', [f(7, 13)], { perm: [1, 0] }],
    ['transpose', [f(2, 3, 5, 7)], { perm: [0, 2, 3, 1] }],
    ['slice', [f(7, 9, 5)], { starts: [-6, 1], ends: [7, -1], steps: [2, 3] }],
    ['slice_grad', [f(3, 3, 5)], { starts: [-6, 1], ends: [7, -1], steps: [2, 3], inputShape: [7, 9, 5] }],
    [
      'pad',
      [f(4, 5)],
      {
        pads: [
          [1, 2],
          [0, 3],
        ],
        value: -0.5,
      },
    ],
    ['pad', [i(13)], { pads: [[3, 0]], value: -2 }],
    ['concat', [f(7, 1), f(7, 13), f(7, 2)], { axis: 1 }],
    ['gather', [f(3, 5, 2), i(2, 3)], { axis: 1 }],
    ['gather_grad', [f(3, 2, 3, 2), i(2, 3)], { axis: 1, inputShape: [3, 5, 2] }],
  ];
  for (const [op, ins, attrs] of cases) {
    it(`${op} ${ins.map((t) => `[${t.shape}]`).join(' ')}`, () => {
      const ks = lowerOp(op, ins, attrs);
      expect(ks.length).toBe(1);
      const k = ks[0] as Kernel;
      const wgsl = renderWgsl(k);
      expect(wgsl).toContain('@compute @workgroup_size(256, 1, 1)');
      expect(wgsl).toContain('(wid.x + wid.y * nwg.x)');
      expect(
        kernelBuffers(k)
          .filter((b) => b.write)
          .map((b) => b.buf.name),
      ).toEqual(['out']);
      const n = numel(getOp(op).infer(ins, attrs).shape);
      expect(k.grid).toEqual({ linear: Math.ceil(n / 256) });
    });
  }

  it('concat splits past the storage-buffer limit', () => {
    const ins = iota(20).map((k) => f(3, 1 + (k % 3), 2));
    for (const maxBuffers of [8, 4, 2]) {
      const ks = lowerOp('concat', ins, { axis: 1 }, maxBuffers);
      expect(ks.length).toBe(Math.ceil(20 / (maxBuffers - 1)));
      for (const k of ks) expect(kernelBuffers(k).length).toBeLessThanOrEqual(maxBuffers);
      const reads = ks.flatMap((k) =>
        kernelBuffers(k)
          .filter((b) => !b.write)
          .map((b) => b.buf.name),
      );
      expect(reads).toEqual(iota(20).map((k) => `in${k}`));
    }
  });
});

// ---------------------------------------------------------------- GPU vs CPU

describe('GPU vs CPU', () => {
  const gpuCase = (
    what: string,
    build: (g: GraphBuilder) => Tensor | Record<string, Tensor>,
    feeds?: Record<string, number[]>,
  ) =>
    it(what, async () => {
      const r = await checkGpuVsCpu(build, feeds ? { feeds } : {});
      for (const e of Object.values(r.errors)) expect(e).toBeLessThanOrEqual(1e-4);
    });

  gpuCase('transpose [7,13]', (g) => g.input('x', [7, 13]).transpose());
  gpuCase('transpose rank 1 [13]', (g) => g.input('x', [13]).transpose([0]));
  gpuCase('transpose [3,5,7] perm [2,0,1]', (g) => g.input('x', [3, 5, 7]).transpose([2, 0, 1]));
  gpuCase('transpose [2,3,5,7] perm [0,3,1,2]', (g) => g.input('x', [2, 3, 5, 7]).transpose([0, 3, 1, 2]));
  gpuCase('transpose i32 [3,4,5]', (g) => g.input('x', [3, 4, 5], 'i32').transpose([1, 2, 0]));
  gpuCase('transpose [300,301] (many workgroups)', (g) => g.input('x', [300, 301]).transpose());

  gpuCase('slice [7,13] steps and negative indices', (g) => g.input('x', [7, 13]).slice([1, -5], [-1, 100], [2, 3]));
  gpuCase('slice rank 1 [29]', (g) => g.input('x', [29]).slice([-20], [25], [4]));
  gpuCase('slice rank 4 [3,5,7,9]', (g) => g.input('x', [3, 5, 7, 9]).slice([0, 1, -4], [3, 5, 7], [2, 1, 3]));
  gpuCase('slice i32 [6,5]', (g) => g.input('x', [6, 5], 'i32').slice([2], [5]));

  gpuCase('pad [7,13] asymmetric', (g) =>
    g.input('x', [7, 13]).pad(
      [
        [1, 2],
        [0, 3],
      ],
      0.5,
    ),
  );
  gpuCase('pad i32 rank 1 [13]', (g) => g.input('x', [13], 'i32').pad([[3, 0]], -2));
  gpuCase('pad rank 4 [2,3,5,7]', (g) =>
    g.input('x', [2, 3, 5, 7]).pad([
      [0, 1],
      [2, 0],
      [1, 1],
    ]),
  );

  gpuCase('concat 3 inputs [7,1] [7,13] [7,2]', (g) =>
    g.concat([g.input('a', [7, 1]), g.input('b', [7, 13]), g.input('c', [7, 2])], 1),
  );
  gpuCase('concat rank 1', (g) => g.concat([g.input('a', [5]), g.input('b', [8])], 0));
  gpuCase('concat rank 4 i32 axis -2', (g) =>
    g.concat(
      [g.input('a', [2, 3, 4, 5], 'i32'), g.input('b', [2, 3, 1, 5], 'i32'), g.input('c', [2, 3, 7, 5], 'i32')],
      -2,
    ),
  );
  it('concat of 20 inputs (more than the device binding limit) splits', async () => {
    const r = await checkGpuVsCpu((g) =>
      g.concat(
        iota(20).map((k) => g.input(`x${k}`, [3, 1 + (k % 4), 5])),
        1,
      ),
    );
    expect(r.errors.out).toBeLessThanOrEqual(1e-6);
    expect(r.spec.kernels.length).toBeGreaterThan(1);
  });

  gpuCase('gather [7,13] rows', (g) => g.input('x', [7, 13]).gather(g.input('i', [9], 'i32'), 0), {
    i: randInt(9, freshSeed(), 0, 7),
  });
  gpuCase('gather rank 1 [13]', (g) => g.input('x', [13]).gather(g.input('i', [5, 2], 'i32')), {
    i: randInt(10, freshSeed(), 0, 13),
  });
  gpuCase('gather [3,5,7] axis 1, 2-D indices', (g) => g.input('x', [3, 5, 7]).gather(g.input('i', [2, 3], 'i32'), 1), {
    i: [4, 0, 4, 4, 1, 3],
  });
  gpuCase('gather [2,3,5,7] axis -1', (g) => g.input('x', [2, 3, 5, 7]).gather(g.input('i', [4], 'i32'), -1), {
    i: [6, 0, 6, 2],
  });

  /** Gradients on the GPU: dy is a fed input (the autodiff seed), so no reduction is involved. */
  const gpuGrad = (
    what: string,
    shape: number[],
    f: (x: Tensor, g: GraphBuilder) => Tensor,
    feeds?: Record<string, number[]>,
  ) =>
    gpuCase(
      `gradient: ${what}`,
      (g) => {
        const x = g.input('x', shape);
        const y = f(x, g);
        const dy = g.input('dy', y.shape);
        const [dx] = grad(y, [x], dy);
        return { dx: dx as Tensor };
      },
      feeds,
    );

  gpuGrad('transpose', [3, 5, 7], (x) => x.transpose([2, 0, 1]));
  gpuGrad('slice (slice_grad) [7,13]', [7, 13], (x) => x.slice([1, -5], [-1, 100], [2, 3]));
  gpuGrad('slice (slice_grad) rank 4', [3, 5, 7, 9], (x) => x.slice([0, 1, -4], [3, 5, 7], [2, 1, 3]));
  gpuGrad('pad', [7, 13], (x) =>
    x.pad(
      [
        [1, 2],
        [0, 3],
      ],
      0.5,
    ),
  );
  gpuGrad('concat of 3 uses of x', [7, 5], (x, g) => g.concat([x, x.mul(2), x], 1));
  gpuGrad('gather (gather_grad) repeated indices', [7, 13], (x, g) => x.gather(g.input('i', [9], 'i32'), 0), {
    i: [3, 3, 0, 6, 3, 1, 0, 6, 6],
  });
  gpuGrad('gather (gather_grad) axis 1', [3, 5, 7], (x, g) => x.gather(g.input('i', [2, 3], 'i32'), 1), {
    i: [4, 0, 4, 4, 1, 3],
  });

  gpuCase('chains with views and elementwise consumers', (g) => {
    const x = g.input('x', [6, 7]);
    const t = x.reshape([7, 6]).transpose().mul(2).add(1);
    const s = t.slice([1], [-1]).reshape([-1]).exp();
    return { t, s, r: x.add(1).reshape([42]), sg: x.stopGradient().mul(x) };
  });

  it('concat splits into several kernels under a small binding limit', async () => {
    const dev = await getDevice();
    const seed = freshSeed();
    for (const maxBuffers of [4, 2]) {
      const g = new GraphBuilder();
      const xs = iota(9).map((k) => g.input(`x${k}`, [3, 1 + (k % 3), 5]));
      const y = g.concat(xs, 1);
      const { spec } = compile(g, {
        outputs: { y },
        limits: limitsFrom({ ...dev.limits, maxStorageBuffersPerShaderStage: maxBuffers }),
      });
      expect(spec.kernels.length).toBe(Math.ceil(9 / (maxBuffers - 1)));
      expect(spec.stats.maxBindingsPerKernel).toBeLessThanOrEqual(maxBuffers);
      const feeds = randomFeeds(g, seed);
      const session = await Session.create(spec, { gpu: dev });
      const out = await session.run(feeds);
      session.destroy();
      const ref = interpret(g.graph, feeds, [y.id])[0] as RefTensor;
      expect(relError((out.y as HostTensor).data, ref.data), `seed ${seed}`).toBeLessThanOrEqual(1e-6);
    }
  });

  it('gather clamps out-of-range indices computed on the GPU, and rejects them when fed from the host', async () => {
    const g = new GraphBuilder();
    // indices computed on the device (a cast of a fed f32 tensor): the kernel clamps them
    const y = g.input('x', [4]).gather(g.input('f', [3]).cast('i32'));
    const dev = await getDevice();
    const { spec } = compile(g, { outputs: { y }, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev });
    const out = await session.run({ x: [1, 2, 3, 4], f: [-3, 2, 9] });
    session.destroy();
    expect([...(out.y as HostTensor).data]).toEqual([1, 3, 4]);
    // the same indices fed as an i32 input are checked on the host
    const h = new GraphBuilder();
    const z = h.input('x', [4]).gather(h.input('i', [3], 'i32'));
    const fed = await Session.create(compile(h, { outputs: { z }, limits: limitsFrom(dev.limits) }).spec, { gpu: dev });
    await expect(fed.run({ x: [1, 2, 3, 4], i: [-3, 2, 9] })).rejects.toThrow(
      /input "i" i32\[3\]: value 0 is -3, out of range: indices of gather along axis 0 of size 4/,
    );
    fed.destroy();
  });
});

describe('movement ops: run-time sizes', () => {
  it('transpose, slice, pad, concat and gather in one program for every size, with gradients', async () => {
    await checkRunTimeSizes({
      symbols: { N: 3, L: 19, M: 6 },
      build: (g, { N, L, M }) => {
        const x = g.input('x', [N as number, 4, L as number]);
        const y = g.input('y', [N as number, 4, 5]);
        const idx = g.input('idx', [M as number], 'i32');
        const t = x.transpose([2, 0, 1]); // [L, N, 4]
        const s = x.slice([0, 1], [1000, 3]); // the whole run-time axis N, a static cut of axis 1
        const p = x.pad([
          [1, 0],
          [0, 0],
          [2, 3],
        ]);
        const c = g.concat([y, x, y], 2); // [N, 4, L + 10]
        const ga = x.gather(idx, 1); // [N, M, L]
        const loss = t
          .mul(t)
          .sum()
          .add(s.exp().sum())
          .add(p.mul(p).mean())
          .add(c.tanh().sum())
          .add(ga.mul(ga).mul(ga).sum());
        const [dx, dy] = grad(loss, [x, y]) as [Tensor, Tensor];
        return { t, s, p, c, ga, dx, dy };
      },
      feeds: (g, seed) => {
        const f = randomFeeds(g, seed);
        const idx = g.graph.nodes.find((n) => n.name === 'idx');
        f.idx = randInt(idx?.type.shape ?? [], seed + 5, 0, 4);
        return f;
      },
      sizes: [
        { N: 1, L: 1, M: 1 },
        { N: 3, L: 19, M: 6 },
        { N: 2, L: 7, M: 3 },
        { N: 1, L: 18, M: 6 },
        { N: 3, L: 2, M: 5 },
        { N: 2, L: 11, M: 2 },
      ],
      tol: 1e-5,
    });
  });

  it('a run-time-size axis is sliced whole, within its smallest size, or refused with the rule', () => {
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 9, min: 3 });
    const x = g.input('x', [N, 4]);
    expect(x.slice([0], [1000]).dims).toEqual([N, 4]);
    expect(x.slice([1], [3]).shape).toEqual([2, 4]);
    expect(() => x.slice([0], [5])).toThrow(
      /axis 0 of \[N,4\] sliced \[0:5:1\]: a run-time-size axis is cut only within its smallest size 3/,
    );
    expect(() => x.slice([-2], [1000])).toThrow(/takes no negative start/);
  });
});
