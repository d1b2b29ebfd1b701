/**
 * Bad feeds to a compiled program's Session.run (and to the CPU interpreter): the wrong kind of array,
 * count, shape or dtype range, missing and extra names, and out-of-range values for index inputs (which
 * the GPU kernels would clamp). Each case compiles a tiny program; the feed is rejected on the host
 * before anything is uploaded.
 */
import { compile, GraphBuilder, interpret, Session, type Tensor } from '../../index.js';
import type { Feed, ShapedFeed } from '../../runtime/session.js';
import type { CorpusCase } from './types.js';

type Expect = CorpusCase['expect'];
const wg = (msg: RegExp): Expect => ({ error: 'WgflowError', message: msg });
const as = <T>(v: unknown): T => v as T;

type Build = (g: GraphBuilder) => Record<string, Tensor>;

/** x f32[4], k i32[4], u u32[2] → y = x·2, kk = k + 1, uu = u + 1 (every dtype has an input). */
const threeDtypes: Build = (g) => ({
  y: g.input('x', [4]).mul(2),
  kk: g.input('k', [4], 'i32').add(1),
  uu: g.input('u', [2], 'u32').add(1),
});
/** x f32[5] gathered at i32 indices i[3] along axis 0. */
const gather: Build = (g) => ({ y: g.input('x', [5]).gather(g.input('i', [3], 'i32')) });
/** The indices come through a reshape: j i32[1,3] → [3]. */
const gatherView: Build = (g) => ({ y: g.input('x', [5]).gather(g.input('j', [1, 3], 'i32').reshape([3])) });
/** Cross-entropy over 3 classes, labels l i32[2] (ignoreIndex -100). */
const crossEntropy: Build = (g) => ({
  loss: g.apply('softmax_cross_entropy', [g.input('logits', [2, 3]), g.input('l', [2], 'i32')], { ignoreIndex: -100 }),
});

const GOOD: Record<string, Feed> = {
  x: Float32Array.of(1, -2, 3.5, 4),
  k: Int32Array.of(3, -1, 7, 2),
  u: Uint32Array.of(5, 9),
};

async function runWith(build: Build, feeds: unknown): Promise<unknown> {
  const g = new GraphBuilder();
  const { spec } = compile(g, { outputs: build(g) });
  const s = await Session.create(spec);
  try {
    return await s.run(feeds as Record<string, Feed | ShapedFeed>);
  } finally {
    s.destroy();
  }
}

const feed = (id: string, what: string, expect: Expect, build: Build, feeds: () => unknown): CorpusCase => ({
  id: `feeds/${id}`,
  area: 'feeds',
  kind: 'library',
  what,
  expect,
  timeoutMs: 60_000,
  run: () => runWith(build, feeds()),
});

const with3 = (over: Record<string, unknown>) => () => ({ ...GOOD, ...over });

/** Runs a program and requires particular values (the valid cases must compute, not only not throw). */
async function expectOut(build: Build, feeds: unknown, name: string, want: readonly number[]): Promise<void> {
  const out = (await runWith(build, feeds)) as Record<string, { data: ArrayLike<number> }>;
  const got = Array.from(out[name]?.data ?? []);
  if (got.length !== want.length || got.some((v, i) => v !== want[i]))
    throw new Error(`${name}: got [${got.join(', ')}], want [${want.join(', ')}]`);
}

export const cases: CorpusCase[] = [
  // ---- valid feeds (must work and compute the right values)
  {
    id: 'feeds/valid-typed',
    area: 'feeds',
    kind: 'library',
    what: 'feeds of the right typed arrays',
    expect: { ok: true },
    timeoutMs: 60_000,
    run: () => expectOut(threeDtypes, GOOD, 'kk', [4, 0, 8, 3]),
  },
  {
    id: 'feeds/valid-plain-arrays',
    area: 'feeds',
    kind: 'library',
    what: 'plain arrays of numbers (converted)',
    expect: { ok: true },
    timeoutMs: 60_000,
    run: () => expectOut(threeDtypes, { x: [1, 2, 3, 4], k: [1, 2, 3, 4], u: [0, 4294967295] }, 'uu', [1, 0]),
  },
  {
    id: 'feeds/valid-gather-last-index',
    area: 'feeds',
    kind: 'library',
    what: 'gather indices at the edges of the range (0 and n - 1)',
    expect: { ok: true },
    timeoutMs: 60_000,
    run: () => expectOut(gather, { x: [10, 11, 12, 13, 14], i: Int32Array.of(4, 0, 2) }, 'y', [14, 10, 12]),
  },
  {
    id: 'feeds/valid-ce-ignore-index',
    area: 'feeds',
    kind: 'library',
    what: 'a cross-entropy label equal to the ignoreIndex (-100) is allowed',
    expect: { ok: true },
    timeoutMs: 60_000,
    run: () => expectOut(crossEntropy, { logits: [1, 2, 3, 0.5, -1, 2], l: Int32Array.of(-100, -100) }, 'loss', [0, 0]),
  },
  // ---- kinds
  feed(
    'bigint64',
    'a BigInt64Array fed to an i32 input',
    wg(/input "k".*BigInt64Array cannot be fed.*Int32Array/),
    threeDtypes,
    with3({ k: BigInt64Array.of(1n, 2n, 3n, 4n) }),
  ),
  feed(
    'biguint64-f32',
    'a BigUint64Array fed to an f32 input',
    wg(/input "x".*BigUint64Array cannot be fed.*Float32Array/),
    threeDtypes,
    with3({ x: BigUint64Array.of(1n, 2n, 3n, 4n) }),
  ),
  feed(
    'string',
    "a string '1234' fed as a tensor",
    wg(/input "x".*expected a typed array or an array of numbers, got "1234"/),
    threeDtypes,
    with3({ x: '1234' }),
  ),
  feed('number', 'a bare number fed as a tensor', wg(/input "x".*got 3$/), threeDtypes, with3({ x: 3 })),
  feed('null', 'null fed as a tensor', wg(/input "x".*got null/), threeDtypes, with3({ x: null })),
  feed(
    'object',
    'an object { length: 4 } (array-like, not an array)',
    wg(/input "x".*got an object/),
    threeDtypes,
    with3({ x: { length: 4 } }),
  ),
  feed(
    'dataview',
    'a DataView fed as a tensor',
    wg(/input "x".*got a DataView/),
    threeDtypes,
    with3({ x: new DataView(new ArrayBuffer(16)) }),
  ),
  feed(
    'array-of-strings',
    "['1', '2', '3', '4'] fed to f32",
    wg(/input "x".*value 0 is "1", not a number/),
    threeDtypes,
    with3({ x: ['1', '2', '3', '4'] }),
  ),
  feed(
    'array-with-null',
    '[1, null, 3, 4] fed to f32',
    wg(/value 1 is null, not a number/),
    threeDtypes,
    with3({ x: [1, null, 3, 4] }),
  ),
  feed(
    'nested-array',
    'a nested [[1], [2], [3], [4]] fed to f32[4]',
    wg(/value 0 is an array, not a number/),
    threeDtypes,
    with3({
      x: [[1], [2], [3], [4]],
    }),
  ),
  feed(
    'shaped-no-shape',
    '{ data } without a shape',
    wg(/input "x".*\{ data, shape \} feed needs shape/),
    threeDtypes,
    with3({ x: { data: Float32Array.of(1, 2, 3, 4) } }),
  ),
  feed('feeds-null', 'run(null)', wg(/feeds must be an object.*got null/), threeDtypes, () => null),
  feed(
    'feeds-array',
    'run([x, k, u]) (a list, not named)',
    wg(/feeds must be an object.*got an array/),
    threeDtypes,
    () => [GOOD.x, GOOD.k, GOOD.u],
  ),
  // ---- counts and shapes
  feed(
    'too-few',
    '3 values for f32[4]',
    wg(/input "x" f32\[4\]: expected 4 values, got 3/),
    threeDtypes,
    with3({ x: [1, 2, 3] }),
  ),
  feed(
    'too-many',
    '5 values for f32[4]',
    wg(/expected 4 values, got 5/),
    threeDtypes,
    with3({ x: Float32Array.of(1, 2, 3, 4, 5) }),
  ),
  feed('empty', 'an empty array for f32[4]', wg(/expected 4 values, got 0/), threeDtypes, with3({ x: [] })),
  feed(
    'shaped-wrong-shape',
    '{ data, shape: [2, 2] } for f32[4]',
    wg(/input "x" f32\[4\]: fed with shape \[2,2\], which is not the input's shape/),
    threeDtypes,
    with3({ x: { data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] } }),
  ),
  feed(
    'shaped-nan-shape',
    '{ data, shape: [NaN] } for f32[4]',
    wg(/fed with shape \[NaN\]/),
    threeDtypes,
    with3({ x: { data: Float32Array.of(1, 2, 3, 4), shape: [Number.NaN] } }),
  ),
  // ---- names
  feed('missing', 'the i32 input k is not fed', wg(/missing input "k" i32\[4\]/), threeDtypes, () => ({
    x: GOOD.x,
    u: GOOD.u,
  })),
  feed('extra', 'an extra feed "z"', wg(/no input named "z" \(has: x, k, u\)/), threeDtypes, with3({ z: [1] })),
  feed('misspelt', 'a feed named "X" instead of "x"', wg(/no input named "X"/), threeDtypes, () => ({
    X: GOOD.x,
    k: GOOD.k,
    u: GOOD.u,
  })),
  // ---- dtype ranges (Int32Array.from would truncate and wrap silently)
  feed(
    'i32-fraction',
    '[1.5, …] fed to i32',
    wg(/input "k" i32\[4\]: value 0 is 1\.5, not a i32/),
    threeDtypes,
    with3({ k: [1.5, 2, 3, 4] }),
  ),
  feed(
    'i32-nan',
    'a Float32Array with NaN fed to i32',
    wg(/value 2 is NaN, not a i32/),
    threeDtypes,
    with3({ k: Float32Array.of(1, 2, Number.NaN, 4) }),
  ),
  feed(
    'i32-infinity',
    '[Infinity, …] fed to i32',
    wg(/value 0 is Infinity, not a i32/),
    threeDtypes,
    with3({ k: [Number.POSITIVE_INFINITY, 2, 3, 4] }),
  ),
  feed(
    'i32-overflow',
    '2^31 fed to i32',
    wg(/value 3 is 2147483648, not a i32/),
    threeDtypes,
    with3({ k: [1, 2, 3, 2 ** 31] }),
  ),
  feed(
    'i32-from-uint32',
    'a Uint32Array holding 4294967295 fed to i32',
    wg(/value 0 is 4294967295, not a i32/),
    threeDtypes,
    with3({ k: Uint32Array.of(4294967295, 1, 2, 3) }),
  ),
  feed(
    'u32-negative',
    '-1 fed to u32 (would wrap to 4294967295)',
    wg(/input "u" u32\[2\]: value 0 is -1, not a u32/),
    threeDtypes,
    with3({ u: [-1, 2] }),
  ),
  feed(
    'u32-from-int32',
    'an Int32Array holding -5 fed to u32',
    wg(/value 1 is -5, not a u32/),
    threeDtypes,
    with3({ u: Int32Array.of(1, -5) }),
  ),
  // ---- index inputs: checked on the host (the gather kernel clamps)
  feed(
    'gather-out-of-range',
    'gather index 7 into an axis of size 5',
    wg(/input "i" i32\[3\]: value 1 is 7, out of range: indices of gather along axis 0 of size 5.*0 ≤ value ≤ 4/),
    gather,
    () => ({ x: [10, 11, 12, 13, 14], i: Int32Array.of(0, 7, 1) }),
  ),
  feed(
    'gather-negative',
    'gather index -1 (no Python-style wrap)',
    wg(/value 0 is -1, out of range: indices of gather/),
    gather,
    () => ({ x: [10, 11, 12, 13, 14], i: [-1, 0, 1] }),
  ),
  feed('gather-at-size', 'gather index n (one past the end)', wg(/value 2 is 5, out of range/), gather, () => ({
    x: [10, 11, 12, 13, 14],
    i: [0, 1, 5],
  })),
  feed(
    'gather-through-reshape',
    'gather indices fed through a reshape, one out of range',
    wg(/input "j" i32\[1,3\]: value 2 is 99, out of range: indices of gather/),
    gatherView,
    () => ({ x: [10, 11, 12, 13, 14], j: [0, 1, 99] }),
  ),
  feed(
    'ce-label-out-of-range',
    'a cross-entropy label 3 of 3 classes',
    wg(/input "l" i32\[2\]: value 1 is 3, out of range: class labels of softmax_cross_entropy over 3 classes.*or -100/),
    crossEntropy,
    () => ({ logits: [1, 2, 3, 0.5, -1, 2], l: [0, 3] }),
  ),
  feed(
    'ce-label-negative',
    'a cross-entropy label -1 (not the ignoreIndex -100)',
    wg(/value 0 is -1, out of range: class labels/),
    crossEntropy,
    () => ({ logits: [1, 2, 3, 0.5, -1, 2], l: [-1, 0] }),
  ),
  // ---- the CPU interpreter takes the same kinds of feeds
  {
    id: 'feeds/interpret-string',
    area: 'feeds',
    kind: 'library',
    what: 'interpret() with a string fed as a tensor',
    expect: wg(/interpret: input "x": expected a typed array or an array of numbers, got a string/),
    run: () => {
      const g = new GraphBuilder();
      const y = g.input('x', [4]).mul(2);
      return interpret(g.graph, { x: as('1234') }, [y.id]);
    },
  },
  {
    id: 'feeds/interpret-bigint',
    area: 'feeds',
    kind: 'library',
    what: 'interpret() with a BigInt64Array',
    expect: wg(/interpret: input "x": a BigInt64Array cannot be fed/),
    run: () => {
      const g = new GraphBuilder();
      const y = g.input('x', [2]).mul(2);
      return interpret(g.graph, { x: as(BigInt64Array.of(1n, 2n)) }, [y.id]);
    },
  },
  {
    id: 'feeds/interpret-gather-out-of-range',
    area: 'feeds',
    kind: 'library',
    what: 'interpret() with a gather index out of range (the CPU reference rejects it)',
    expect: wg(/gather: index 9 is out of range for axis 0 of size 5/),
    run: () => {
      const g = new GraphBuilder();
      const y = g.input('x', [5]).gather(g.input('i', [2], 'i32'));
      return interpret(g.graph, { x: [1, 2, 3, 4, 5], i: [0, 9] }, [y.id]);
    },
  },
];
