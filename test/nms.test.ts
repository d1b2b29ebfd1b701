/**
 * nms / batchedNms: shape rules, the float32 reference, exact GPU keep lists (FASTER_RCNN_SPEC.md §6,
 * §9 cases), the eager torchvision-style API, and a batched property test.
 *
 * Exactness: the GPU computes IoU in float32. The oracle below therefore also computes it in float32
 * arithmetic (Math.fround after every operation, in the kernel's order: areas, intersection, union =
 * (area_a + area_b) - inter, iou = inter / union), and compares with the float64 threshold the way
 * torchvision does. A float64 IoU would decide differently for pairs within rounding of the threshold.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { batchedNms as eagerBatchedNms, nms as eagerNms } from '../ops/detection-eager.js';
import { clearEagerCache } from '../ops/eager.js';
import { batchedNmsPacked, cpuNms, f32Threshold, type NmsOptions, nms, nmsPacked } from '../ops/nms.js';
import { getDevice } from '../runtime/device.js';
import type { ProgramSpec } from '../runtime/program.js';
import { Session } from '../runtime/session.js';
import { checkGpuVsCpu, freshSeed, rand, randInt } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

// ---------------------------------------------------------------- the oracle

const fr = Math.fround;

/** IoU of boxes a and c (flat float32 [n,4]) in float32 arithmetic (kernel order). */
function iou32(b: Float32Array, a: number, c: number, plusOne: boolean): number {
  const one = plusOne ? 1 : 0;
  const area = (k: number) =>
    fr(
      fr(fr((b[4 * k + 2] as number) - (b[4 * k] as number)) + one) *
        fr(fr((b[4 * k + 3] as number) - (b[4 * k + 1] as number)) + one),
    );
  const w = fr(
    fr(Math.min(b[4 * a + 2] as number, b[4 * c + 2] as number) - Math.max(b[4 * a] as number, b[4 * c] as number)) +
      one,
  );
  const h = fr(
    fr(
      Math.min(b[4 * a + 3] as number, b[4 * c + 3] as number) -
        Math.max(b[4 * a + 1] as number, b[4 * c + 1] as number),
    ) + one,
  );
  const inter = fr(Math.max(w, 0) * Math.max(h, 0));
  return fr(inter / fr(fr(area(a) + area(c)) - inter));
}

/** Stable descending order of float32 scores; NaN first (largest), -0 == +0. */
function scoreOrder(s: Float32Array): number[] {
  const rank = (v: number) => (Number.isNaN(v) ? Number.POSITIVE_INFINITY : v);
  return Array.from(s, (_, i) => i).sort((a, b) => {
    const na = Number.isNaN(s[a] as number);
    const nb = Number.isNaN(s[b] as number);
    if (na || nb) return na === nb ? 0 : na ? -1 : 1;
    return rank(s[b] as number) - rank(s[a] as number);
  });
}

/** Greedy NMS, written independently of cpuNms: a candidate survives when no KEPT box suppresses it. */
function oracle(boxes: ArrayLike<number>, scores: ArrayLike<number>, o: NmsOptions): number[] {
  const b = Float32Array.from(boxes);
  const s = Float32Array.from(scores);
  const keep: number[] = [];
  const cap = o.maxOutput ?? s.length;
  for (const i of scoreOrder(s)) {
    if (keep.length >= cap) break;
    const hit = keep.some((k) => {
      const v = iou32(b, k, i, o.plusOne ?? false);
      return o.inclusive ? v >= o.iouThreshold : v > o.iouThreshold;
    });
    if (!hit) keep.push(i);
  }
  return keep;
}

/** torchvision's per-class loop (_batched_nms_vanilla) with the oracle; result by descending score. */
function perClass(boxes: number[], scores: number[], classes: number[], o: NmsOptions): number[] {
  const keep: number[] = [];
  for (const c of new Set(classes)) {
    const idx = classes.flatMap((v, i) => (v === c ? [i] : []));
    const k = oracle(
      idx.flatMap((i) => boxes.slice(4 * i, 4 * i + 4)),
      idx.map((i) => scores[i] as number),
      o,
    );
    keep.push(...k.map((j) => idx[j] as number));
  }
  const order = scoreOrder(Float32Array.from(scores));
  const pos = new Map(order.map((i, k) => [i, k]));
  return keep.sort((a, b) => (pos.get(a) as number) - (pos.get(b) as number));
}

// ---------------------------------------------------------------- data

/** torchvision's test boxes: rand(N,4)*scale with x2,y2 += x1,y1. */
function tvBoxes(n: number, seed: number, scale = 100): number[] {
  const r = rand(n * 4, seed, 0, scale);
  for (let k = 0; k < n; k++) {
    r[4 * k + 2] = (r[4 * k + 2] as number) + (r[4 * k] as number);
    r[4 * k + 3] = (r[4 * k + 3] as number) + (r[4 * k + 1] as number);
  }
  return r;
}

/** torchvision's _create_tensors_with_iou: the last box has IoU = t + 1e-5 with box 0. */
function boxesWithIou(n: number, t: number, seed: number): { boxes: number[]; scores: number[] } {
  const boxes = Array.from(Float32Array.from(tvBoxes(n, seed)));
  const [x0, y0, x1, y1] = boxes.slice(0, 4) as [number, number, number, number];
  const tt = t + 1e-5;
  boxes.splice(4 * (n - 1), 4, x0, y0, fr(x1 + ((x1 - x0) * (1 - tt)) / tt), y1);
  return { boxes, scores: rand(n, seed + 1, 0, 1) };
}

/** Integer-grid boxes (many exact IoU values, duplicates and zero-area boxes). */
function gridBoxes(n: number, seed: number, size = 8): number[] {
  const c = randInt(n * 4, seed, 0, size);
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const [a, b, w, h] = c.slice(4 * k, 4 * k + 4) as [number, number, number, number];
    out.push(a, b, a + Math.floor(w / 2), b + Math.floor(h / 2));
  }
  return out;
}

const FLOAT_BOXES = [
  285.3538, 185.5758, 1193.511, 851.4551, 285.1472, 188.7374, 1192.4984, 851.0669, 279.244, 197.9812, 1189.4746,
  849.2019,
];
const FLOAT_SCORES = [0.637, 0.7569, 0.3966];

// ---------------------------------------------------------------- GPU runner

const sessions = new Map<string, Promise<Session>>();
afterAll(async () => {
  for (const s of sessions.values()) (await s).destroy();
  await clearEagerCache();
});

/** Which kernels the op compiles to: the greedy walk, and whether kept boxes or only indices are cached. */
type NmsPath = 'walk-boxes' | 'walk-indices' | 'bitmask';

function nmsPath(spec: ProgramSpec): NmsPath {
  const names = spec.kernels.map((k) => k.name);
  if (names.some((k) => k.endsWith('_nms_mask'))) return 'bitmask';
  const walk = spec.kernels.find((k) => k.name.endsWith('_nms_walk'));
  if (!walk) throw new Error(`no nms kernels among ${names.join(', ')}`);
  return /var<workgroup> kept_/.test(walk.wgsl) ? 'walk-indices' : 'walk-boxes';
}

const compiledPaths = new Map<string, NmsPath>();

/**
 * Runs nms on boxes [...lead, n, 4] on the GPU; returns the packed i32 output. `storage` plans for
 * less workgroup memory than the device has (to reach the kernels' other paths).
 */
async function gpuPacked(
  lead: number[],
  n: number,
  boxes: ArrayLike<number>,
  scores: ArrayLike<number>,
  o: NmsOptions,
  storage?: number,
): Promise<Int32Array> {
  const key = JSON.stringify([lead, n, o, storage]);
  let s = sessions.get(key);
  if (!s) {
    s = (async () => {
      const dev = await getDevice();
      const g = new GraphBuilder();
      const out = nmsPacked(g.input('boxes', [...lead, n, 4]), g.input('scores', [...lead, n]), o);
      const limits = limitsFrom({ ...dev.limits, ...(storage ? { maxComputeWorkgroupStorageSize: storage } : {}) });
      const { spec } = compile(g, { outputs: { out }, limits });
      compiledPaths.set(key, nmsPath(spec));
      return Session.create(spec, { gpu: dev });
    })();
    sessions.set(key, s);
  }
  const r = await (await s).run({ boxes, scores });
  return r.out?.data as Int32Array;
}

/** Kept lists per problem from a packed output; checks the count and the -1 padding. */
function unpackAll(packed: Int32Array, cap: number): number[][] {
  const out: number[][] = [];
  for (let p = 0; p < packed.length / (cap + 1); p++) {
    const row = Array.from(packed.subarray(p * (cap + 1), (p + 1) * (cap + 1)));
    const count = row[cap] as number;
    expect(count).toBeGreaterThanOrEqual(0);
    expect(count).toBeLessThanOrEqual(cap);
    expect(row.slice(count, cap).every((v) => v === -1)).toBe(true);
    out.push(row.slice(0, count));
  }
  return out;
}

/**
 * GPU keep list of one problem, checked against the oracle and the op's CPU reference; `path`, when
 * given, is the kernel path the op must have compiled to.
 */
async function checkOne(
  boxes: ArrayLike<number>,
  scores: ArrayLike<number>,
  o: NmsOptions,
  path?: { storage?: number; expect?: NmsPath },
): Promise<number[]> {
  const n = scores.length;
  const cap = o.maxOutput ?? n;
  const opts = { ...o, maxOutput: cap };
  const got = unpackAll(await gpuPacked([], n, boxes, scores, opts, path?.storage), cap)[0] as number[];
  if (path?.expect) expect(compiledPaths.get(JSON.stringify([[], n, opts, path.storage]))).toBe(path.expect);
  const want = oracle(boxes, scores, o);
  expect(cpuNms(boxes, scores, o)).toEqual(want);
  expect(got).toEqual(want);
  return got;
}

// ---------------------------------------------------------------- tests

describe('nms: shape rules and threshold', () => {
  it('infers the packed output and rejects bad inputs', () => {
    const g = new GraphBuilder();
    const b = g.input('b', [10, 4]);
    const s = g.input('s', [10]);
    const r = nms(b, s, { iouThreshold: 0.5, maxOutput: 7 });
    expect(r.indices.shape).toEqual([7]);
    expect(r.count.shape).toEqual([1]);
    expect(r.indices.dtype).toBe('i32');
    expect(nms(g.input('bb', [2, 3, 10, 4]), g.input('ss', [2, 3, 10]), { iouThreshold: 0.5 }).indices.shape).toEqual([
      2, 3, 10,
    ]);
    expect(() => nms(g.input('b5', [10, 5]), s, { iouThreshold: 0.5 })).toThrow(
      /nms: boxes must have shape \[\.\.\., N, 4\], got \[10,5\]/,
    );
    expect(() => nms(g.input('b1', [40]), s, { iouThreshold: 0.5 })).toThrow(/nms: boxes must have shape/);
    expect(() => nms(b, g.input('s2', [10, 1]), { iouThreshold: 0.5 })).toThrow(
      /nms: scores \[10,1\] must have shape \[10\]/,
    );
    expect(() => nms(b, g.input('s9', [9]), { iouThreshold: 0.5 })).toThrow(/nms: scores \[9\] must have shape \[10\]/);
    expect(() => nms(b, s, { iouThreshold: 0.5, maxOutput: 0 })).toThrow(/maxOutput must be a positive integer/);
    expect(() => nms(b, s, { iouThreshold: Number.NaN })).toThrow(/iouThreshold must be a number/);
    expect(() => nms(g.input('bi', [10, 4], 'i32'), s, { iouThreshold: 0.5 })).toThrow(/boxes and scores must be f32/);
  });

  it('many boxes with a small capacity need no IoU mask (greedy walk); a mask over the binding limit is a clear error', () => {
    const g = new GraphBuilder();
    const r = nms(g.input('b', [33000, 4]), g.input('s', [33000]), { iouThreshold: 0.5, maxOutput: 10 });
    expect(nmsPath(compile(g, { outputs: { i: r.indices } }).spec)).toBe('walk-boxes');
    // a capacity whose kept list does not fit workgroup memory falls back to the N² bitmask
    const g2 = new GraphBuilder();
    const r2 = nms(g2.input('b', [33000, 4]), g2.input('s', [33000]), { iouThreshold: 0.5 });
    expect(() => compile(g2, { outputs: { i: r2.indices } })).toThrow(
      /nms: the IoU mask of 1 × 33000 boxes \(maxOutput 33000: .*\) needs 136224000 bytes/,
    );
  });

  it('the float32 threshold gives the float64 comparison exactly', () => {
    expect(f32Threshold(0.5, false)).toBe(0.5);
    expect(f32Threshold(0.7, false)).toBe(fr(0.7)); // fround(0.7) < 0.7
    expect(f32Threshold(0.7, true)).toBeGreaterThan(0.7);
    expect(f32Threshold(0.2, false)).toBeLessThan(0.2);
    for (const t of [0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1 / 3, 0.2 + 1e-9]) {
      const around = [-3, -2, -1, 0, 1, 2, 3].map((k) => fr(t) + k * 2 ** -26);
      for (const v of around.map(fr)) {
        expect(v > f32Threshold(t, false)).toBe(v > t);
        expect(v >= f32Threshold(t, true)).toBe(v >= t);
      }
    }
  });
});

describe('nms: CPU reference', () => {
  it('FLOAT_BOXES at 0.2 keep [1] (spec §9)', () => {
    expect(cpuNms(FLOAT_BOXES, FLOAT_SCORES, { iouThreshold: 0.2 })).toEqual([1]);
  });

  it('IoU exactly at the threshold: strict keeps, inclusive suppresses; +1 convention', () => {
    // [0,0,4,1] and [0,0,2,1]: inter 2, union 4 → IoU 0.5 exactly
    const boxes = [0, 0, 4, 1, 0, 0, 2, 1];
    expect(cpuNms(boxes, [0.9, 0.8], { iouThreshold: 0.5 })).toEqual([0, 1]);
    expect(cpuNms(boxes, [0.9, 0.8], { iouThreshold: 0.5, inclusive: true })).toEqual([0]);
    // with +1: areas 5·2 = 10 and 3·2 = 6, inter 3·2 = 6 → IoU 0.6
    expect(cpuNms(boxes, [0.9, 0.8], { iouThreshold: 0.59, plusOne: true })).toEqual([0]);
    // float32(0.6) = 0.60000002 > 0.6: the float32 IoU against the float64 threshold suppresses (as torchvision)
    expect(cpuNms(boxes, [0.9, 0.8], { iouThreshold: 0.6, plusOne: true })).toEqual([0]);
    expect(cpuNms(boxes, [0.9, 0.8], { iouThreshold: 0.6000001, plusOne: true })).toEqual([0, 1]);
    // two identical zero-area boxes: 0/0 = NaN never suppresses; with +1 they have area 1 and IoU 1
    const dots = [3, 3, 3, 3, 3, 3, 3, 3];
    expect(cpuNms(dots, [0.5, 0.6], { iouThreshold: 0.5 })).toEqual([1, 0]);
    expect(cpuNms(dots, [0.5, 0.6], { iouThreshold: 0.5, plusOne: true })).toEqual([1]);
  });

  it('agrees with the independent oracle on random problems', () => {
    for (let k = 0; k < 20; k++) {
      const seed = freshSeed();
      const n = 1 + ((k * 7) % 60);
      const boxes = k % 2 ? gridBoxes(n, seed) : tvBoxes(n, seed, 20);
      const scores = randInt(n, seed + 1, 0, 5);
      for (const o of [
        { iouThreshold: 0.5 },
        { iouThreshold: 0.3, plusOne: true, inclusive: true },
        { iouThreshold: 0.5, maxOutput: 3 },
      ]) {
        expect(cpuNms(boxes, scores, o), `seed ${seed}`).toEqual(oracle(boxes, scores, o));
      }
    }
  });

  it('nms passes no gradient', () => {
    const g = new GraphBuilder();
    const b = g.input('b', [3, 4]);
    const s = g.input('s', [3]);
    const r = nms(b, s, { iouThreshold: 0.5 });
    const v = interpret(g.graph, { b: [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3], s: [0.1, 0.2, 0.3] }, [
      r.indices.id,
      r.count.id,
    ]) as [RefTensor, RefTensor];
    expect(Array.from(v[0].data)).toEqual([2, 1, -1]);
    expect(Array.from(v[1].data)).toEqual([2]);
  });
});

describe('nms on the GPU (exact keep lists)', () => {
  it('one box', async () => {
    expect(await checkOne([1, 2, 3, 4], [0.5], { iouThreshold: 0.5 })).toEqual([0]);
  });

  it('FLOAT_BOXES at 0.2 (spec §9)', async () => {
    expect(await checkOne(FLOAT_BOXES, FLOAT_SCORES, { iouThreshold: 0.2 })).toEqual([1]);
  });

  it('ties in scores keep the lower index first', async () => {
    const seed = freshSeed();
    const boxes = tvBoxes(200, seed);
    const scores = randInt(200, seed + 1, 0, 3).map((v) => v / 4);
    await checkOne(boxes, scores, { iouThreshold: 0.5 });
    // all scores equal: the result is the greedy pass in index order
    await checkOne(boxes, new Array(200).fill(0.5), { iouThreshold: 0.3 });
  });

  it('duplicate boxes are suppressed by the best-scored copy', async () => {
    const seed = freshSeed();
    const base = tvBoxes(40, seed);
    const boxes = [...base, ...base, ...base];
    const scores = randInt(120, seed + 1, 0, 10);
    const keep = await checkOne(boxes, scores, { iouThreshold: 0.7 });
    expect(new Set(keep.map((i) => i % 40)).size).toBe(keep.length);
  });

  it('zero-area boxes never suppress each other (0/0 = NaN) but do with +1', async () => {
    const seed = freshSeed();
    const dots = Array.from({ length: 30 }, (_, k) => [k % 3, k % 3, k % 3, k % 3]).flat();
    const lines = Array.from({ length: 20 }, (_, k) => [0, k % 2, 10, k % 2]).flat(); // zero height
    const boxes = [...dots, ...lines, ...tvBoxes(30, seed, 5)];
    const scores = rand(80, seed + 1, 0, 1);
    const keep = await checkOne(boxes, scores, { iouThreshold: 0.5 });
    for (let k = 0; k < 50; k++) expect(keep).toContain(k);
    await checkOne(boxes, scores, { iouThreshold: 0.5, plusOne: true });
  });

  it('all suppressed and none suppressed', async () => {
    const same = new Array(100).fill([5, 5, 50, 60]).flat();
    const scores = rand(100, freshSeed(), 0, 1);
    const best = scores.indexOf(Math.max(...scores));
    expect(await checkOne(same, scores, { iouThreshold: 0.5 })).toEqual([best]);
    const disjoint = Array.from({ length: 100 }, (_, k) => [
      (k % 10) * 10,
      Math.floor(k / 10) * 10,
      (k % 10) * 10 + 9,
      Math.floor(k / 10) * 10 + 9,
    ]).flat();
    const keep = await checkOne(disjoint, scores, { iouThreshold: 0.01 });
    expect(keep.length).toBe(100);
  });

  it('threshold extremes: 0, 1, negative', async () => {
    const seed = freshSeed();
    const boxes = gridBoxes(60, seed);
    const scores = rand(60, seed + 1, 0, 1);
    await checkOne(boxes, scores, { iouThreshold: 0 });
    await checkOne(boxes, scores, { iouThreshold: 1 });
    await checkOne(boxes, scores, { iouThreshold: 1, inclusive: true });
    await checkOne(boxes, scores, { iouThreshold: -0.1 });
  });

  it('NaN scores count as the largest', async () => {
    const seed = freshSeed();
    const boxes = tvBoxes(50, seed, 30);
    const scores = rand(50, seed + 1, 0, 1).map((v, k) => (k % 7 === 3 ? Number.NaN : v));
    const keep = await checkOne(boxes, scores, { iouThreshold: 0.4 });
    expect(keep[0]).toBe(3);
  });

  it('1000 random boxes with a last box at IoU t + 1e-5 with box 0, t ∈ {0.2, 0.5, 0.8} (spec §9)', async () => {
    for (const t of [0.2, 0.5, 0.8]) {
      const seed = freshSeed();
      const { boxes, scores } = boxesWithIou(1000, t, seed);
      const b = Float32Array.from(boxes);
      expect(iou32(b, 0, 999, false)).toBeGreaterThan(t);
      const keep = await checkOne(boxes, scores, { iouThreshold: t });
      expect(keep.includes(0) && keep.includes(999), `seed ${seed}: boxes 0 and 999 both kept`).toBe(false);
    }
  });

  it('5000 boxes (> 4096: several sort blocks, 157 mask words per box)', async () => {
    const seed = freshSeed();
    await checkOne(tvBoxes(5000, seed, 1000), rand(5000, seed + 1, 0, 1), { iouThreshold: 0.5 });
  });

  it('maxOutput caps the result; capacity beyond the kept count is -1', async () => {
    const seed = freshSeed();
    const boxes = tvBoxes(300, seed, 200);
    const scores = rand(300, seed + 1, 0, 1);
    const all = oracle(boxes, scores, { iouThreshold: 0.5 });
    expect(all.length).toBeGreaterThan(10);
    expect(await checkOne(boxes, scores, { iouThreshold: 0.5, maxOutput: 10 })).toEqual(all.slice(0, 10));
    const wide = unpackAll(await gpuPacked([], 300, boxes, scores, { iouThreshold: 0.5, maxOutput: 400 }), 400)[0];
    expect(wide).toEqual(all);
  });

  it('py-faster-rcnn variants (+1 pixels, inclusive IoU ≥ t) on integer boxes with exact-threshold pairs', async () => {
    const seed = freshSeed();
    // IoU exactly 0.6 in real arithmetic rounds to float32 0.60000002 > 0.6: suppressed (a float64 IoU would keep it)
    expect(await checkOne([0, 0, 4, 1, 0, 0, 2, 1], [0.9, 0.8], { iouThreshold: 0.6, plusOne: true })).toEqual([0]);
    expect(await checkOne([0, 0, 4, 1, 0, 0, 2, 1], [0.9, 0.8], { iouThreshold: 0.5 })).toEqual([0, 1]);
    expect(await checkOne([0, 0, 4, 1, 0, 0, 2, 1], [0.9, 0.8], { iouThreshold: 0.5, inclusive: true })).toEqual([0]);
    const boxes = gridBoxes(300, seed, 10);
    const scores = randInt(300, seed + 1, 0, 20);
    for (const t of [0.5, 1 / 3, 0.25]) {
      const strict = await checkOne(boxes, scores, { iouThreshold: t, plusOne: true });
      const incl = await checkOne(boxes, scores, { iouThreshold: t, plusOne: true, inclusive: true });
      expect(incl.length).toBeLessThanOrEqual(strict.length);
      await checkOne(boxes, scores, { iouThreshold: t, inclusive: true });
    }
  });

  it('regression: the +1 is not reassociated by the shader compiler ((x2 - x1) + 1 exactly as the reference)', async () => {
    // found by the property test: with a literal 1.0, Mesa computed (x2 - x1) + 1 as 5.00000095 here
    const boxes = [11, 0, 17, 4, 11.999678611755371, 0, 15.999678611755371, 2.5, 0, 0, 0, 0];
    expect(await checkOne(boxes, [0, 0, Number.NaN], { iouThreshold: 0.5, plusOne: true })).toEqual([2, 0, 1]);
    const tiny = [2.980232594040899e-8, 0.000001966953504961566, 2.980232594040899e-8, 1.0000020265579224];
    const boxes2 = [...tiny, 0, 0.00002437830153212417, 0, 0.00002437830153212417, 0, 0, 0, 0];
    expect(await checkOne(boxes2, [Number.NaN, 0, 0], { iouThreshold: 0.5, plusOne: true })).toEqual([0, 1]);
  });

  it('leading dimensions are independent problems; the graph matches the CPU interpreter', async () => {
    const seed = freshSeed();
    const lead = [3, 2];
    const n = 45;
    const boxes = gridBoxes(6 * n, seed, 12);
    const scores = randInt(6 * n, seed + 1, 0, 6);
    const o = { iouThreshold: 0.4, maxOutput: 30 };
    const got = unpackAll(await gpuPacked(lead, n, boxes, scores, o), 30);
    got.forEach((keep, p) => {
      expect(keep).toEqual(oracle(boxes.slice(p * n * 4, (p + 1) * n * 4), scores.slice(p * n, (p + 1) * n), o));
    });
    await checkGpuVsCpu(
      (g) => {
        const r = nms(g.input('b', [...lead, n, 4]), g.input('s', [...lead, n]), o);
        return { indices: r.indices, count: r.count };
      },
      { feeds: { b: boxes, s: scores }, seed },
    );
  });
});

/** n disjoint boxes on a grid of 10-pixel cells (no pair overlaps). */
function disjointBoxes(n: number): number[] {
  const side = Math.ceil(Math.sqrt(n));
  return Array.from({ length: n }, (_, k) => {
    const x = (k % side) * 10;
    const y = Math.floor(k / side) * 10;
    return [x, y, x + 9, y + 9];
  }).flat();
}

describe('nms greedy walk: blocks, sorted runs and kernel paths', () => {
  it('sizes around the run (32) and block (64) lengths; capacities below and above the kept count', async () => {
    for (const [k, n] of [1, 31, 33, 64, 65, 257, 1000].entries()) {
      const seed = freshSeed();
      const boxes = tvBoxes(n, seed, 60);
      const scores = rand(n, seed + 1, 0, 1);
      // 16 KiB planned: the kept boxes (n of them) fit workgroup memory up to a few hundred
      await checkOne(
        boxes,
        scores,
        { iouThreshold: 0.5 },
        { storage: 16384, expect: n < 500 ? 'walk-boxes' : 'walk-indices' },
      );
      if (k % 2) await checkOne(boxes, scores, { iouThreshold: 0.3, maxOutput: 7, plusOne: true });
      else await checkOne(gridBoxes(n, seed, 6), scores, { iouThreshold: 0.25, inclusive: true, maxOutput: 40 });
    }
  });

  it('everything suppressed: every block of 3000 boxes is walked, one is kept', async () => {
    const seed = freshSeed();
    const scores = rand(3000, seed, 0, 1);
    const best = scores.indexOf(Math.max(...scores));
    const same = new Array(3000).fill([5, 5, 50, 60]).flat();
    expect(await checkOne(same, scores, { iouThreshold: 0.5, maxOutput: 100 })).toEqual([best]);
    // a negative threshold suppresses every pair with a defined IoU, disjoint ones included
    const spread = tvBoxes(3000, seed + 2, 500);
    expect(await checkOne(spread, scores, { iouThreshold: -0.1, maxOutput: 100 })).toEqual([best]);
  });

  it('nothing suppressed: 2000 disjoint boxes, capacity reached early (100) or never (2000)', async () => {
    const seed = freshSeed();
    const boxes = disjointBoxes(2000);
    const scores = rand(2000, seed, 0, 1);
    // the GPU sorts f32 scores: two float64 draws can round to the same f32 and then tie (lower index first)
    const f32 = scores.map((v) => Math.fround(v));
    const order = Array.from(f32.keys()).sort((a, b) => (f32[b] as number) - (f32[a] as number) || a - b);
    expect(await checkOne(boxes, scores, { iouThreshold: 0.1, maxOutput: 100 })).toEqual(order.slice(0, 100));
    const all = await checkOne(boxes, scores, { iouThreshold: 0.1 }, { storage: 16384, expect: 'walk-indices' });
    expect(all).toEqual(order);
  });

  it('ties across sorted runs keep the lower index first (3 distinct scores; all equal)', async () => {
    const seed = freshSeed();
    const boxes = tvBoxes(2000, seed, 300);
    await checkOne(boxes, randInt(2000, seed + 1, 0, 3), { iouThreshold: 0.5 });
    await checkOne(boxes, new Array(2000).fill(0.25), { iouThreshold: 0.3, maxOutput: 500 });
    // -0 and +0 are equal scores; NaN (largest) and ±Infinity across runs
    const special = [0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5];
    await checkOne(
      boxes,
      randInt(2000, seed + 2, 0, 6).map((k) => special[k] as number),
      { iouThreshold: 0.4 },
    );
  });

  it('kept indices instead of boxes, and the bitmask fallback, with 16 KiB of workgroup memory planned', async () => {
    const seed = freshSeed();
    const boxes = tvBoxes(1500, seed, 400);
    const scores = rand(1500, seed + 1, 0, 1);
    await checkOne(boxes, scores, { iouThreshold: 0.5 }, { storage: 16384, expect: 'walk-indices' });
    await checkOne(boxes, scores, { iouThreshold: 0.5, plusOne: true, inclusive: true }, { storage: 16384 });
    const big = tvBoxes(4000, seed + 2, 1500);
    const bigScores = randInt(4000, seed + 3, 0, 50);
    await checkOne(big, bigScores, { iouThreshold: 0.5 }, { storage: 16384, expect: 'bitmask' });
    await checkOne(big, bigScores, { iouThreshold: 0.5, maxOutput: 600 }, { storage: 16384, expect: 'walk-boxes' });
  });

  it('more problems than a grid dimension holds (66000 × 3 boxes: folded workgroup grids)', async () => {
    const seed = freshSeed();
    const P = 66000;
    const boxes = gridBoxes(3 * P, seed, 4);
    const scores = randInt(3 * P, seed + 1, 0, 3);
    const o = { iouThreshold: 0.3, maxOutput: 2 };
    const got = unpackAll(await gpuPacked([P], 3, boxes, scores, o), 2);
    for (const p of [0, 1, 65534, 65535, 65536, P - 1]) {
      expect(got[p], `problem ${p}`).toEqual(
        oracle(boxes.slice(12 * p, 12 * p + 12), scores.slice(3 * p, 3 * p + 3), o),
      );
    }
    const wrong = got.findIndex((keep, p) => {
      const want = oracle(boxes.slice(12 * p, 12 * p + 12), scores.slice(3 * p, 3 * p + 3), o);
      return keep.length !== want.length || keep.some((v, j) => v !== want[j]);
    });
    expect(wrong).toBe(-1);
  });

  it('7 independent problems of 300 boxes (one workgroup each), capacity 50', async () => {
    const seed = freshSeed();
    const n = 300;
    const boxes = tvBoxes(7 * n, seed, 80);
    const scores = randInt(7 * n, seed + 1, 0, 20);
    const o = { iouThreshold: 0.45, maxOutput: 50 };
    const got = unpackAll(await gpuPacked([7], n, boxes, scores, o), 50);
    got.forEach((keep, p) => {
      expect(keep).toEqual(oracle(boxes.slice(p * n * 4, (p + 1) * n * 4), scores.slice(p * n, (p + 1) * n), o));
    });
  });
});

describe('nms over a run-time box count', () => {
  /** Boxes [..., n, 4] with x1, y1 in [0, 60) and sides in [1, 25): many overlaps; scores with ties. */
  const boxFeeds = (g: GraphBuilder, seed: number): Record<string, number[]> => {
    const n = (g.graph.nodes.find((d) => d.name === 'scores')?.type.shape.at(-1) ?? 0) as number;
    const p = (g.graph.nodes.find((d) => d.name === 'scores')?.type.shape[0] ?? 1) as number;
    const xy = rand(p * n * 2, seed, 0, 60);
    const wh = rand(p * n * 2, seed + 1, 1, 25);
    const boxes: number[] = [];
    for (let i = 0; i < p * n; i++) {
      const [x, y, w, h] = [xy[2 * i], xy[2 * i + 1], wh[2 * i], wh[2 * i + 1]] as [number, number, number, number];
      boxes.push(x, y, x + w, y + h);
    }
    return { boxes, scores: randInt(p * n, seed + 2, 0, 40).map((v) => v / 40) };
  };

  it('one program for every box count (2 problems): keep lists and counts identical to the static programs', async () => {
    await checkRunTimeSizes({
      symbols: { N: 700 },
      build: (g, { N }) => {
        const boxes = g.input('boxes', [2, N as number, 4]);
        const scores = g.input('scores', [2, N as number]);
        const r = nms(boxes, scores, { iouThreshold: 0.5, maxOutput: 50 });
        return { indices: r.indices, count: r.count };
      },
      sizes: [{ N: 700 }, { N: 1 }, { N: 65 }, { N: 333 }],
      tol: 0,
      feeds: boxFeeds,
    });
  });

  it('one program for every problem count and box count: keep lists identical to the static programs', async () => {
    await checkRunTimeSizes({
      symbols: { P: 4, N: { max: 300, min: 2 } },
      build: (g, { P, N }) => {
        const boxes = g.input('boxes', [P as number, N as number, 4]);
        const scores = g.input('scores', [P as number, N as number]);
        const r = nms(boxes, scores, { iouThreshold: 0.5, maxOutput: 40 });
        const cls = nms(boxes, scores, { iouThreshold: 0.3, maxOutput: 20, plusOne: true });
        return { indices: r.indices, count: r.count, plusOne: cls.indices };
      },
      sizes: [
        { P: 4, N: 300 },
        { P: 1, N: 2 },
        { P: 3, N: 157 },
        { P: 2, N: 64 },
      ],
      tol: 0,
      feeds: boxFeeds,
    });
  });

  it('refuses a run-time box count where only the bitmask kernel would fit, naming the reason', () => {
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 5000 });
    const r = nms(g.input('boxes', [N, 4]), g.input('scores', [N]), { iouThreshold: 0.5 });
    expect(() => compile(g, { outputs: { i: r.indices }, limits: limitsFrom({}) })).toThrow(
      /nms: over run-time sizes \(problems 1, boxes N\) only the greedy kernel runs, and maxOutput 5000 does not fit/,
    );
  });
});

describe('batchedNms (coordinate-offset trick)', () => {
  it('equals the per-class loop: 1000 boxes, 4 classes, t 0.9, seeds 0-9 (spec §9)', async () => {
    const dev = await getDevice();
    const g = new GraphBuilder();
    const o = { iouThreshold: 0.9 };
    const out = batchedNmsPacked(g.input('b', [1000, 4]), g.input('s', [1000]), g.input('c', [1000], 'i32'), o);
    const session = await Session.create(compile(g, { outputs: { out }, limits: limitsFrom(dev.limits) }).spec, {
      gpu: dev,
    });
    try {
      for (let seed = 0; seed < 10; seed++) {
        // torchvision: cat(rand(N,2), rand(N,2) + 10): heavily overlapping boxes, IoUs around 0.9
        const lo = rand(2000, 100 + seed, 0, 1);
        const hi = rand(2000, 200 + seed, 10, 11);
        const boxes = Array.from(
          { length: 1000 },
          (_, k) => [lo[2 * k], lo[2 * k + 1], hi[2 * k], hi[2 * k + 1]] as number[],
        ).flat();
        const scores = rand(1000, 300 + seed, 0, 1);
        const classes = randInt(1000, 400 + seed, 0, 4);
        const r = await session.run({ b: boxes, s: scores, c: classes });
        const got = unpackAll(r.out?.data as Int32Array, 1000)[0];
        expect(got, `seed ${seed}`).toEqual(perClass(boxes, scores, classes, o));
      }
    } finally {
      session.destroy();
    }
  });

  it('on integer boxes the trick is exact: matches the per-class loop and the CPU interpreter', async () => {
    const seed = freshSeed();
    const n = 200;
    const boxes = gridBoxes(n, seed, 16);
    const scores = randInt(n, seed + 1, 0, 8);
    const classes = randInt(n, seed + 2, 0, 5);
    for (const o of [{ iouThreshold: 0.5 }, { iouThreshold: 0.25, plusOne: true, inclusive: true }]) {
      const r = await checkGpuVsCpu(
        (g) => ({ out: batchedNmsPacked(g.input('b', [n, 4]), g.input('s', [n]), g.input('c', [n], 'i32'), o) }),
        { feeds: { b: boxes, s: scores, c: classes }, seed },
      );
      expect(unpackAll(r.gpu.out?.data as Int32Array, n)[0]).toEqual(perClass(boxes, scores, classes, o));
    }
  });

  it('negative coordinates: the offset by the coordinate range matches the per-class loop (max + 1 would not)', async () => {
    const seed = freshSeed();
    const n = 240;
    const o = { iouThreshold: 0.3 };
    const scores = rand(n, seed + 1, 0, 1);
    const classes = randInt(n, seed + 2, 0, 4);
    // integer-grid boxes (exact IoUs, so the trick must match the loop exactly): all negative with the
    // largest coordinate −1 (torchvision's class · (max + 1) offsets are then all 0), then of both signs
    const grid = gridBoxes(n, seed, 16);
    const top = Math.max(...grid);
    for (const shift of [-1 - top, -12]) {
      const boxes = grid.map((v) => v + shift);
      const want = perClass(boxes, scores, classes, o);
      // torchvision's offset, class · (max + 1), lets classes overlap here: the inputs tell the two apart
      const maxPlus1 = Math.max(...boxes) + 1;
      const tvTrick = oracle(
        boxes.map((v, i) => v + (classes[Math.floor(i / 4)] as number) * maxPlus1),
        scores,
        o,
      );
      if (shift === -1 - top) expect(tvTrick, 'the max + 1 offset on all-negative boxes').not.toEqual(want);
      const r = await checkGpuVsCpu(
        (g) => ({ out: batchedNmsPacked(g.input('b', [n, 4]), g.input('s', [n]), g.input('c', [n], 'i32'), o) }),
        { feeds: { b: boxes, s: scores, c: classes }, seed },
      );
      expect(unpackAll(r.gpu.out?.data as Int32Array, n)[0], `shift ${shift}`).toEqual(want);
      // the eager API, with plain nested arrays as torchvision users pass tensors
      const rows = Array.from({ length: n }, (_, k) => boxes.slice(4 * k, 4 * k + 4));
      expect(Array.from(await eagerBatchedNms(rows, scores, classes, o.iouThreshold)), `eager, shift ${shift}`).toEqual(
        want,
      );
    }
  });

  it('rejects classes of the wrong dtype or shape', () => {
    const g = new GraphBuilder();
    const b = g.input('b', [5, 4]);
    const s = g.input('s', [5]);
    expect(() => batchedNmsPacked(b, s, g.input('c', [5]), { iouThreshold: 0.5 })).toThrow(
      /batchedNms: classes must be i32/,
    );
    expect(() => batchedNmsPacked(b, s, g.input('c2', [4], 'i32'), { iouThreshold: 0.5 })).toThrow(
      /batchedNms: classes must be i32 with the scores' shape \[5\]/,
    );
  });
});

describe('eager API (torchvision semantics)', () => {
  const B = (data: number[], shape: number[]) => ({ data: Float32Array.from(data), shape });

  it('validates inputs like torchvision (spec §9)', async () => {
    await expect(eagerNms(B([0, 0, 1, 1], [4]), B([1], [1]), 0.5)).rejects.toThrow(
      /nms: boxes must be a 2-D tensor \[N,4\], got a 1-D tensor \[4\]/,
    );
    await expect(eagerNms(B(new Array(10).fill(1), [2, 5]), B([1, 2], [2]), 0.5)).rejects.toThrow(
      /nms: boxes must have 4 values per box .* \[2,5\]/,
    );
    await expect(eagerNms(B(new Array(8).fill(1), [2, 4]), B([1, 2], [2, 1]), 0.5)).rejects.toThrow(
      /nms: scores must be a 1-D tensor \[N\], got a 2-D tensor \[2,1\]/,
    );
    await expect(eagerNms(B(new Array(8).fill(1), [2, 4]), B([1, 2, 3], [3]), 0.5)).rejects.toThrow(
      /nms: boxes \[2,4\] and scores \[3\] must have the same number of boxes/,
    );
    await expect(
      eagerBatchedNms(B(new Array(8).fill(1), [2, 4]), B([1, 2], [2]), { data: Int32Array.from([0]), shape: [1] }, 0.5),
    ).rejects.toThrow(/batchedNms: idxs must be a 1-D tensor \[2\]/);
    await expect(
      eagerBatchedNms(
        B([0, 0, Number.POSITIVE_INFINITY, 1], [1, 4]),
        B([1], [1]),
        { data: Int32Array.from([0]), shape: [1] },
        0.5,
      ),
    ).rejects.toThrow(/batchedNms: boxes: row 0 has the non-finite value Infinity/);
    await expect(eagerBatchedNms([[0, 0, 1, 1]], [1], [0.5], 0.5)).rejects.toThrow(
      /batchedNms: idxs must hold integers, got 0.5/,
    );
    await expect(
      eagerNms(
        [
          [0, 0, 1],
          [0, 0, 1, 1],
        ],
        [1, 2],
        0.5,
      ),
    ).rejects.toThrow(/nms: boxes\[1\]: nested arrays must be rectangular \(shape \[2,3\]\); this one has 4 entries/);
  });

  it('0 boxes give an empty result without the GPU', async () => {
    expect(await eagerNms(B([], [0, 4]), B([], [0]), 0.5)).toEqual(new Int32Array(0));
    // an empty nested array is an empty list of boxes (an image without detections)
    expect(await eagerNms([], [], 0.5)).toEqual(new Int32Array(0));
    expect(await eagerBatchedNms([], [], [], 0.5)).toEqual(new Int32Array(0));
    expect(await eagerBatchedNms(B([], [0, 4]), B([], [0]), { data: new Int32Array(0), shape: [0] }, 0.5)).toEqual(
      new Int32Array(0),
    );
  });

  it('returns the count-trimmed keep list', async () => {
    expect(Array.from(await eagerNms(B(FLOAT_BOXES, [3, 4]), B(FLOAT_SCORES, [3]), 0.2))).toEqual([1]);
    const seed = freshSeed();
    const boxes = tvBoxes(100, seed);
    const scores = rand(100, seed + 1, 0, 1);
    expect(Array.from(await eagerNms(B(boxes, [100, 4]), B(scores, [100]), 0.5))).toEqual(
      oracle(boxes, scores, { iouThreshold: 0.5 }),
    );
    // integer boxes are accepted (converted to float32), PFR options pass through
    const grid = gridBoxes(100, seed);
    const got = await eagerNms({ data: Int32Array.from(grid), shape: [100, 4] }, B(scores, [100]), 0.5, {
      plusOne: true,
      maxOutput: 5,
    });
    expect(Array.from(got)).toEqual(oracle(grid, scores, { iouThreshold: 0.5, plusOne: true, maxOutput: 5 }));
    const classes = randInt(100, seed + 2, 0, 3);
    const bk = await eagerBatchedNms(
      B(grid, [100, 4]),
      B(scores, [100]),
      { data: Int32Array.from(classes), shape: [100] },
      0.5,
    );
    expect(Array.from(bk)).toEqual(perClass(grid, scores, classes, { iouThreshold: 0.5 }));
  });
});

describe('nms property test (fast-check, batched problems)', () => {
  const L = 24; // boxes per problem (shorter problems are padded)
  const CASES = 250; // problems per GPU run
  const coord = fc.oneof(fc.integer({ min: 0, max: 12 }), fc.float({ min: 0, max: 12, noNaN: true }));
  const box = fc.tuple(coord, coord, coord, coord).map(([a, b, w, h]) => [a, b, fr(a + w / 2), fr(b + h / 2)]);
  const score = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }) },
    { weight: 3, arbitrary: fc.float({ noNaN: true }) },
    { weight: 1, arbitrary: fc.constant(Number.NaN) },
  );
  const problem = fc.array(fc.tuple(box, score), { minLength: 1, maxLength: L });
  const config = fc.record({ t: fc.constantFrom(0.25, 0.5, 0.7), plusOne: fc.boolean(), inclusive: fc.boolean() });

  it(`matches the oracle on ${5 * CASES} random problems (5 GPU runs of ${CASES})`, async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(problem, { minLength: CASES, maxLength: CASES }), async (cfg, problems) => {
        const o = { iouThreshold: cfg.t, plusOne: cfg.plusOne, inclusive: cfg.inclusive };
        const boxes: number[] = [];
        const scores: number[] = [];
        for (const p of problems) {
          for (const [b, s] of p) {
            boxes.push(...b);
            scores.push(s);
          }
          // padding: lowest scores (after every real box), far away and disjoint from everything
          for (let k = p.length; k < L; k++) {
            boxes.push(1000 + 4 * k, 1000, 1001 + 4 * k, 1001);
            scores.push(Number.NEGATIVE_INFINITY);
          }
        }
        const got = unpackAll(await gpuPacked([CASES], L, boxes, scores, { ...o, maxOutput: L }), L);
        problems.forEach((p, k) => {
          const want = oracle(
            p.flatMap(([b]) => b),
            p.map(([, s]) => s),
            o,
          );
          const real = (got[k] as number[]).filter((i) => i < p.length);
          if (real.length !== want.length || real.some((v, j) => v !== want[j])) {
            throw new Error(
              `problem ${k} ${JSON.stringify(o)}: GPU ${real}, oracle ${want}; ${JSON.stringify(p.map(([b, s]) => [...b, String(s)]))}`,
            );
          }
          expect((got[k] as number[]).length - real.length).toBe(L - p.length);
        });
      }),
      { numRuns: 5 },
    );
  });
});
