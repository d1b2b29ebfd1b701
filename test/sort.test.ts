/** argsort (stable bitonic sort), sortValues and topk: order semantics, exact GPU indices, gradients, property test. */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { type DeviceLimits, limitsFrom } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import type { DType } from '../compiler/types.js';
import { argsort, argsortGeometry, cpuArgsortRow, sortValues, topk } from '../ops/sort.js';
import { getDevice } from '../runtime/device.js';
import { Session } from '../runtime/session.js';
import { checkGpuVsCpu, checkGradients, freshSeed, gradCheckRandom, rand, randInt } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

/**
 * Independent oracle: JS's stable sort on the values themselves. Ascending: numbers ascending with
 * -0 == +0 and NaN after +Infinity; descending: the reverse order of keys, equal keys by ascending index.
 */
function oracle(values: readonly number[], descending: boolean): number[] {
  const rank = (v: number): number => (Number.isNaN(v) ? Number.POSITIVE_INFINITY : v);
  const cmp = (a: number, b: number): number => {
    const va = values[a] as number;
    const vb = values[b] as number;
    const na = Number.isNaN(va);
    const nb = Number.isNaN(vb);
    if (na || nb) return na === nb ? 0 : na ? 1 : -1; // NaN greatest
    return rank(va) < rank(vb) ? -1 : rank(va) > rank(vb) ? 1 : 0;
  };
  return values.map((_, i) => i).sort((a, b) => (descending ? cmp(b, a) : cmp(a, b))); // Array.prototype.sort is stable
}

/** Values with many ties: integers in [-k, k) as f32. */
const tied = (n: number, seed: number, k = 4): number[] => randInt(n, seed, -k, k);

/** Compiles and runs argsort of x [..., n] with given limits; returns the i32 indices. */
async function gpuArgsort(
  shape: number[],
  data: ArrayLike<number>,
  descending: boolean,
  dtype: DType = 'f32',
  limits?: Partial<DeviceLimits>,
) {
  const dev = await getDevice();
  const g = new GraphBuilder();
  const x = g.input('x', shape, dtype);
  const out = argsort(x, descending);
  const { spec } = compile(g, { outputs: { out }, limits: { ...limitsFrom(dev.limits), ...(limits ?? {}) } });
  const s = await Session.create(spec, { gpu: dev });
  const r = await s.run({ x: data });
  s.destroy();
  return { indices: Array.from((r.out as { data: Int32Array }).data), dispatches: spec.stats.dispatches };
}

function expectRowsSorted(got: readonly number[], data: readonly number[], n: number, descending: boolean): void {
  const rows = data.length / n;
  for (let r = 0; r < rows; r++) {
    const want = oracle(data.slice(r * n, (r + 1) * n), descending);
    expect(got.slice(r * n, (r + 1) * n), `row ${r}`).toEqual(want);
  }
}

describe('argsort: order and CPU reference', () => {
  it('infers i32 indices of the same shape and rejects scalars', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [3, 5]);
    const i = argsort(x, true);
    expect(i.shape).toEqual([3, 5]);
    expect(i.dtype).toBe('i32');
    expect(() => argsort(g.constant(1), false)).toThrow(/argsort: needs a tensor of rank >= 1/);
    expect(() => g.apply('argsort', [x], {})).toThrow(/attribute descending must be a boolean/);
  });

  it('special values: -0 == +0, NaN above +Infinity, stable in both directions', () => {
    const v = [Number.NaN, 1, -0, Number.NEGATIVE_INFINITY, 0, Number.POSITIVE_INFINITY, -1, Number.NaN, 1, -3.3e38];
    expect(cpuArgsortRow(Float32Array.from(v), 'f32', false)).toEqual([3, 9, 6, 2, 4, 1, 8, 5, 0, 7]);
    expect(cpuArgsortRow(Float32Array.from(v), 'f32', true)).toEqual([0, 7, 5, 1, 8, 2, 4, 6, 9, 3]);
    expect(cpuArgsortRow(Float32Array.from(v), 'f32', false)).toEqual(oracle(v, false));
    expect(cpuArgsortRow(Float32Array.from(v), 'f32', true)).toEqual(oracle(v, true));
    // i32 and u32 keys, extremes included
    const iv = [5, -2147483648, 2147483647, 0, -1, 5, -1];
    expect(cpuArgsortRow(iv, 'i32', false)).toEqual(oracle(iv, false));
    expect(cpuArgsortRow(iv, 'i32', true)).toEqual(oracle(iv, true));
    const uv = [5, 4294967295, 0, 2147483648, 5];
    expect(cpuArgsortRow(uv, 'u32', false)).toEqual(oracle(uv, false));
  });

  it('the interpreter sorts every row', () => {
    const data = tied(4 * 9, freshSeed());
    const g = new GraphBuilder();
    const y = argsort(g.input('x', [4, 9]), true);
    const r = interpret(g.graph, { x: data }, [y.id])[0] as RefTensor;
    expectRowsSorted(Array.from(r.data), data, 9, true);
  });
});

describe('argsort on the GPU (exact indices)', () => {
  const cases: [number[], boolean][] = [
    [[1], false],
    [[7], true],
    [[13], false],
    [[3, 255], true],
    [[2, 300], false], // > workgroup size
    [[1000], true],
    [[2, 3, 17], false], // batched rows, rank 3
    [[5000], true], // several blocks: global merge passes (P = 8192)
  ];
  for (const [shape, desc] of cases) {
    it(`${desc ? 'descending' : 'ascending'} ${JSON.stringify(shape)} with many ties`, async () => {
      const seed = freshSeed();
      const n = shape[shape.length - 1] as number;
      const count = shape.reduce((a, b) => a * b, 1);
      const data = tied(count, seed, Math.max(2, Math.floor(n / 8)));
      const r = await checkGpuVsCpu((g) => argsort(g.input('x', shape), desc), { feeds: { x: data }, seed });
      expectRowsSorted(Array.from(r.gpu.out?.data ?? []), data, n, desc);
    });
  }

  it('i32 keys (extremes and ties), both directions', async () => {
    const data = [...randInt(61, freshSeed(), -3, 3), -2147483648, 2147483647, 0];
    for (const desc of [false, true]) {
      const r = await gpuArgsort([data.length], data, desc, 'i32');
      expect(r.indices).toEqual(oracle(data, desc));
    }
  });

  it('special f32 values (NaN, ±Infinity, ±0) on the GPU', async () => {
    const specials = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 1, -1, 3.4e38, -1e-45];
    const data = randInt(300, freshSeed(), 0, specials.length).map((k) => specials[k] as number);
    for (const desc of [false, true]) {
      const r = await gpuArgsort([data.length], data, desc);
      expect(r.indices).toEqual(oracle(Array.from(Float32Array.from(data)), desc));
    }
  });

  it('small workgroup memory forces the global merge path on small rows', async () => {
    // 256 bytes of workgroup memory → blocks of 32 elements; rows of 200 → P = 256: 3 merge stages
    const limits = { maxComputeWorkgroupStorageSize: 256 };
    expect(argsortGeometry(200, { ...limitsFrom({}), ...limits })).toEqual({ P: 256, B: 32, T: 16 });
    const data = tied(3 * 200, freshSeed(), 6);
    for (const desc of [false, true]) {
      const r = await gpuArgsort([3, 200], data, desc, 'f32', limits);
      expect(r.dispatches).toBe(1 + 3 + (1 + 2 + 3)); // sort, 3 block merges, 6 global steps
      expectRowsSorted(r.indices, data, 200, desc);
    }
  });
});

describe('sortValues and topk', () => {
  it('values match the CPU reference (GPU, exact permutation of the inputs)', async () => {
    const seed = freshSeed();
    const data = tied(3 * 37, seed, 10).map((v, i) => v + (i % 3) * 0.25);
    await checkGpuVsCpu(
      (g) => {
        const x = g.input('x', [3, 37]);
        const t = topk(x, 5);
        return { asc: sortValues(x), desc: sortValues(x, true), tv: t.values, ti: t.indices };
      },
      { feeds: { x: data }, seed, rtol: 0 },
    );
  });

  it('topk: values descending, ties by lower index, k checked', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 6]);
    const t = topk(x, 3);
    expect(t.values.shape).toEqual([2, 3]);
    expect(t.indices.shape).toEqual([2, 3]);
    const data = [1, 3, 3, 2, 0, 3, 5, 5, 4, 6, 6, 6];
    const [v, i] = interpret(g.graph, { x: data }, [t.values.id, t.indices.id]) as [RefTensor, RefTensor];
    expect(Array.from(i.data)).toEqual([1, 2, 5, 3, 4, 5]);
    expect(Array.from(v.data)).toEqual([3, 3, 3, 6, 6, 6]);
    expect(() => topk(x, 7)).toThrow(/topk: k = 7 must be an integer in \[1, 6\]/);
    expect(() => topk(x, 0)).toThrow(/topk: k = 0/);
    expect(topk(x, 6).indices.shape).toEqual([2, 6]);
  });

  it('gradients flow to the values through gather (finite differences)', () => {
    gradCheckRandom((g) => {
      const x = g.input('x', [3, 7]);
      const s = sortValues(x, true);
      const t = topk(x, 4).values;
      return { out: g.concat([s.slice([0, 0], [3, 4]), t.mul(t)], 1), wrt: [x] };
    });
  });

  it('argsort itself passes no gradient (indices used as data are constants)', () => {
    const build = (g: GraphBuilder): { out: Tensor; wrt: Tensor[] } => {
      const x = g.input('x', [5]);
      return { out: sortValues(x).mul(argsort(x).cast('f32')), wrt: [x] };
    };
    checkGradients(build, { x: rand(5, freshSeed()) });
  });
});

describe('sorting over a run-time row length', () => {
  it('one program for every length: argsort of 3 rows both ways, sortValues, topk (ties and NaN included)', async () => {
    await checkRunTimeSizes({
      symbols: { N: { max: 300, min: 6 } },
      build: (g, { N }) => {
        const x = g.input('x', [3, N as number]);
        const y = g.input('y', [3, N as number]);
        const v = g.input('v', [1, N as number]);
        const { values, indices } = topk(v, 6);
        return {
          up: argsort(x),
          down: argsort(x, true),
          sorted: sortValues(y),
          top: values,
          topIdx: indices,
        };
      },
      sizes: [{ N: 300 }, { N: 6 }, { N: 257 }, { N: 31 }],
      // the indices are compared exactly; values are a permutation of the inputs, up to their f32 storage
      tol: 1e-12,
      tolOf: { top: 1e-7 },
      // few distinct values (ties) and a NaN in the keys, so that order and stability are tested
      // (the sorted values get ties only: a NaN has no relative error)
      feeds: (g, seed) => {
        const n = (g.graph.nodes.find((d) => d.name === 'x')?.type.shape[1] ?? 0) as number;
        const x = randInt([3, n], seed, -4, 4);
        x[n + 1] = Number.NaN;
        return { x, y: randInt([3, n], seed + 2, -4, 4), v: rand([1, n], seed + 1) };
      },
    });
  });

  it('topk refuses a k above the smallest length, naming it', () => {
    const g = new GraphBuilder();
    const v = g.input('v', [1, g.dim('N', { max: 300, min: 4 })]);
    expect(() => topk(v, 5)).toThrow(/topk: k = 5 must be an integer in \[1, 4, the smallest size of N\]/);
  });
});

describe('argsort property test (fast-check, batched GPU runs)', () => {
  const L = 64;
  const sessions = new Map<string, Promise<Session>>();
  const runner = async (rows: number, desc: boolean): Promise<Session> => {
    const key = `${rows}:${desc}`;
    let s = sessions.get(key);
    if (!s) {
      s = (async () => {
        const dev = await getDevice();
        const g = new GraphBuilder();
        const out = argsort(g.input('x', [rows, L]), desc);
        return Session.create(compile(g, { outputs: { out }, limits: limitsFrom(dev.limits) }).spec, { gpu: dev });
      })();
      sessions.set(key, s);
    }
    return s;
  };
  afterAll(async () => {
    for (const s of sessions.values()) (await s).destroy();
  });

  const value = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: -3, max: 3 }) },
    { weight: 3, arbitrary: fc.float() }, // includes NaN, ±Infinity, ±0, subnormals
    { weight: 1, arbitrary: fc.constantFrom(Number.NaN, 0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY) },
  );
  const caseArb = fc.array(value, { minLength: 1, maxLength: L });
  const CASES = 250;

  it(`matches a stable JS sort on ${4 * CASES} random rows (4 GPU runs of ${CASES} rows)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(caseArb, { minLength: CASES, maxLength: CASES }), fc.boolean(), async (cases, desc) => {
        // Pad each row to L with values that sort after every real element (ties resolve by index).
        const pad = desc ? Number.NEGATIVE_INFINITY : Number.NaN;
        const data: number[] = [];
        for (const c of cases) data.push(...c, ...new Array<number>(L - c.length).fill(pad));
        const s = await runner(CASES, desc);
        const out = Array.from((await s.run({ x: data })).out?.data ?? []);
        cases.forEach((c, r) => {
          const want = oracle(Array.from(Float32Array.from(c)), desc);
          const got = out.slice(r * L, r * L + c.length);
          if (got.some((v, k) => v !== want[k])) {
            throw new Error(
              `row ${r} (${desc ? 'desc' : 'asc'}) ${JSON.stringify(c.map(String))}: got ${got}, want ${want}`,
            );
          }
        });
      }),
      { numRuns: 4 },
    );
  });
});
