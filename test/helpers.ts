/**
 * Test harness: seeded random data, GPU-vs-CPU comparison through the whole compiler, and
 * float64 finite-difference gradient checks on the CPU interpreter.
 */
import { expect } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, init, type Tensor } from '../compiler/tensor.js';
import { numel, type Shape } from '../compiler/types.js';
import { getDevice } from '../runtime/device.js';
import { uniformStream } from '../runtime/init.js';
import type { ProgramSpec } from '../runtime/program.js';
import { type HostTensor, Session } from '../runtime/session.js';
import '../ops/index.js';

/** Deterministic uniform numbers in [low, high) (mulberry32). */
export function rand(shape: Shape | number, seed: number, low = -1, high = 1): number[] {
  const n = typeof shape === 'number' ? shape : numel(shape);
  const u = uniformStream(seed >>> 0 || 1);
  return Array.from({ length: n }, () => low + (high - low) * u());
}

/** Random integers in [low, high). */
export function randInt(shape: Shape | number, seed: number, low: number, high: number): number[] {
  return rand(shape, seed, 0, 1).map((u) => low + Math.floor(u * (high - low)));
}

/** A fresh seed per call, so every run of the suite sees new inputs (printed on failure). */
export function freshSeed(): number {
  return (Math.random() * 2 ** 31) >>> 0;
}

/** Fills every input/param/state of a graph with uniform [-1, 1) values, float32-exact (integers: [0, 5)). */
export function randomFeeds(g: GraphBuilder, seed: number): Record<string, number[]> {
  const feeds: Record<string, number[]> = {};
  let k = 0;
  for (const n of g.graph.nodes) {
    if (n.op !== 'input' && n.op !== 'param' && n.op !== 'state') continue;
    const s = seed + 7919 * k++;
    // f32 values exactly (rounded here): the interpreter then sees the inputs the GPU gets, so a
    // difference of two close inputs does not count their rounding as the kernel's error
    feeds[n.name as string] =
      n.type.dtype === 'f32' ? rand(n.type.shape, s).map(Math.fround) : randInt(n.type.shape, s, 0, 5);
  }
  return feeds;
}

/** max |a - b| / max |b| (normwise relative error; exact integer comparison is done elsewhere). */
export function relError(gpu: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i] as number;
    const d = Math.abs((gpu[i] as number) - r);
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    num = Math.max(num, d);
    den = Math.max(den, Math.abs(r));
  }
  return den === 0 ? num : num / den;
}

export interface GradCheckOptions {
  /** Central-difference step (float64). */
  eps?: number;
  rtol?: number;
  atol?: number;
  /** Elements checked per tensor (random positions). */
  samples?: number;
  seed?: number;
}

/**
 * Finite-difference gradient check in float64 on the CPU interpreter. `build` declares a graph and
 * returns the output to check and the tensors to differentiate against (inputs or params). The loss
 * is sum(out * R) with fixed random R, so no gradient cancels by symmetry.
 */
export function checkGradients(
  build: (g: GraphBuilder) => { out: Tensor; wrt: Tensor[] },
  feeds: Record<string, number[]>,
  opts: GradCheckOptions = {},
): void {
  const eps = opts.eps ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-7;
  const samples = opts.samples ?? 24;
  const seed = opts.seed ?? 1234;
  const g = new GraphBuilder();
  const { out, wrt } = build(g);
  const r = g.constant(rand(out.shape, seed + 1, 0.5, 1.5), out.shape, 'f32');
  const loss = out.mul(r).sum();
  const grads = grad(loss, wrt);
  const values = interpret(g.graph, feeds, [loss.id, ...grads.map((t) => t.id)]);
  const lossAt = (f: Record<string, number[]>): number =>
    (interpret(g.graph, f, [loss.id])[0] as RefTensor).data[0] as number;
  wrt.forEach((w, k) => {
    const name = w.node.name;
    if (name === undefined) throw new Error('checkGradients: wrt must be inputs or params');
    const analytic = (values[k + 1] as RefTensor).data;
    const base = feeds[name] as number[];
    const picks = rand(samples, seed + 17 * k, 0, 1).map((u) => Math.floor(u * base.length));
    for (const i of new Set(picks)) {
      const plus = { ...feeds, [name]: base.map((v, j) => (j === i ? v + eps : v)) };
      const minus = { ...feeds, [name]: base.map((v, j) => (j === i ? v - eps : v)) };
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * eps);
      const a = analytic[i] as number;
      const tol = atol + rtol * Math.max(Math.abs(a), Math.abs(numeric));
      if (!(Math.abs(a - numeric) <= tol)) {
        throw new Error(`gradient of "${name}"[${i}]: autodiff ${a}, finite difference ${numeric} (tolerance ${tol})`);
      }
    }
  });
  expect(values.length).toBe(wrt.length + 1);
}

export type GradBuild = (g: GraphBuilder) => { out: Tensor; wrt: Tensor[] };

/** checkGradients with the seed of the feeds prefixed to any failure, so a failing run can be replayed. */
export function checkGradientsSeeded(
  build: GradBuild,
  feeds: Record<string, number[]>,
  opts: GradCheckOptions & { seed: number },
): void {
  try {
    checkGradients(build, feeds, opts);
  } catch (e) {
    throw new Error(`seed ${opts.seed}: ${(e as Error).message}`);
  }
}

/**
 * Finite-difference check of `build` on random feeds from a fresh seed (or opts.seed), with the seed
 * in the failure message; `fixed` overrides some feeds (e.g. integer labels or indices).
 */
export function gradCheckRandom(
  build: GradBuild,
  fixed: Record<string, number[]> = {},
  opts: GradCheckOptions = {},
): void {
  const seed = opts.seed ?? freshSeed();
  const g = new GraphBuilder();
  build(g);
  checkGradientsSeeded(build, { ...randomFeeds(g, seed), ...fixed }, { ...opts, seed });
}

/** Evaluates the outputs `build` declares on the CPU interpreter (float64 references). */
export function interpretAll(
  build: (g: GraphBuilder) => readonly Tensor[],
  feeds: Record<string, readonly number[]>,
): RefTensor[] {
  const g = new GraphBuilder();
  const ys = build(g);
  return interpret(
    g.graph,
    feeds,
    ys.map((y) => y.id),
  );
}

/** Evaluates the one output `build` declares on the CPU interpreter. */
export function interpretOne(build: (g: GraphBuilder) => Tensor, feeds: Record<string, readonly number[]>): RefTensor {
  return interpretAll((g) => [build(g)], feeds)[0] as RefTensor;
}

export interface GpuCheckOptions {
  /** Values for inputs/params/state; missing ones are random (seeded by `seed`). */
  feeds?: Record<string, number[]>;
  seed?: number;
  /** Normwise relative tolerance for f32 outputs (integer outputs must match exactly). */
  rtol?: number;
  fusion?: boolean;
}

export interface GpuCheckResult {
  readonly errors: Record<string, number>;
  readonly spec: ProgramSpec;
  readonly gpu: Record<string, HostTensor>;
}

/**
 * Compiles the graph `build` declares, runs it on the GPU and compares every output with the CPU
 * interpreter (float64 references). Fails the test with the output name, error and seed.
 */
export async function checkGpuVsCpu(
  build: (g: GraphBuilder) => Tensor | Record<string, Tensor>,
  opts: GpuCheckOptions = {},
): Promise<GpuCheckResult> {
  const seed = opts.seed ?? freshSeed();
  const rtol = opts.rtol ?? 1e-4;
  const g = new GraphBuilder();
  const built = build(g);
  const outputs: Record<string, Tensor> =
    'builder' in built && built instanceof Object && 'node' in built
      ? { out: built as Tensor }
      : (built as Record<string, Tensor>);
  const feeds = { ...randomFeeds(g, seed), ...(opts.feeds ?? {}) };
  const dev = await getDevice();
  const { spec } = compile(g, {
    outputs,
    limits: limitsFrom(dev.limits),
    ...(opts.fusion !== undefined ? { fusion: opts.fusion } : {}),
  });
  const session = await Session.create(spec, { gpu: dev, initial: feeds });
  const inputFeeds: Record<string, number[]> = {};
  for (const i of spec.inputs) inputFeeds[i.name] = feeds[i.name] as number[];
  const gpu = await session.run(inputFeeds);
  session.destroy();
  const names = Object.keys(outputs);
  const ref = interpret(
    g.graph,
    feeds,
    names.map((n) => (outputs[n] as Tensor).id),
  );
  const errors: Record<string, number> = {};
  names.forEach((name, k) => {
    const r = ref[k] as RefTensor;
    const got = (gpu[name] as HostTensor).data;
    if (r.dtype !== 'f32') {
      const mismatch = r.data.findIndex((v, i) => v !== got[i]);
      errors[name] = mismatch < 0 ? 0 : 1;
      if (mismatch >= 0)
        throw new Error(
          `output "${name}" (seed ${seed}): element ${mismatch} is ${got[mismatch]} on the GPU, ${r.data[mismatch]} on the CPU`,
        );
    } else {
      const e = relError(got, r.data);
      errors[name] = e;
      if (!(e <= rtol)) throw new Error(`output "${name}" (seed ${seed}): relative error ${e} > ${rtol}`);
    }
  });
  return { errors, spec, gpu };
}

/** Elementwise |got − want| ≤ tol·max(1, |want|), failing with `what[k]` and both values. */
export function expectCloseRel(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what = ''): void {
  expect(got.length).toBe(want.length);
  for (let k = 0; k < want.length; k++) {
    const a = got[k] as number;
    const b = want[k] as number;
    if (!(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)))) throw new Error(`${what}[${k}]: ${a} vs ${b}`);
  }
}

export interface GpuCpuRunner {
  /** Runs the compiled program on `feeds` and evaluates the same outputs on the CPU interpreter. */
  run(feeds: Record<string, number[]>): Promise<{ gpu: Record<string, HostTensor>; cpu: Record<string, RefTensor> }>;
  destroy(): void;
}

/** A compiled graph plus its CPU reference, reused across runs (one GPU program per configuration). */
export async function gpuCpuRunner(build: (g: GraphBuilder) => Record<string, Tensor>): Promise<GpuCpuRunner> {
  const g = new GraphBuilder();
  const outs = build(g);
  const dev = await getDevice();
  const { spec } = compile(g, { outputs: outs, limits: limitsFrom(dev.limits) });
  const session = await Session.create(spec, { gpu: dev });
  const names = Object.keys(outs);
  return {
    async run(feeds) {
      const inFeeds: Record<string, number[]> = {};
      for (const t of spec.inputs) inFeeds[t.name] = feeds[t.name] as number[];
      const gpu = await session.run(inFeeds);
      const ref = interpret(
        g.graph,
        feeds,
        names.map((n) => (outs[n] as Tensor).id),
      );
      const cpu: Record<string, RefTensor> = {};
      names.forEach((n, k) => {
        cpu[n] = ref[k] as RefTensor;
      });
      return { gpu, cpu };
    },
    destroy: () => session.destroy(),
  };
}

/**
 * Fan-in scaled uniform values for every param of a graph (activations O(1)); biases small uniform;
 * Faster R-CNN's classifier / regressor layers (names starting rpn.cls_score, cls_score, rpn.bbox_pred,
 * bbox_pred) get gains 1 and 0.3.
 */
export function fanInParamFeeds(g: GraphBuilder, seed: number): Record<string, number[]> {
  const feeds: Record<string, number[]> = {};
  let k = 0;
  for (const n of g.graph.nodes) {
    if (n.op !== 'param') continue;
    const name = n.name as string;
    const shape = n.type.shape;
    feeds[name] = fanInValues(name, shape, seed + 7919 * k++, { bias: 0.05, cls: 1, bbox: 0.3 });
  }
  return feeds;
}

/**
 * Values of one parameter: biases (rank 1) uniform in ±`bias`, weights uniform with variance gain² /
 * fan-in (gain √2, `cls` for the classifier layers rpn.cls_score / cls_score, `bbox` for the regressors
 * rpn.bbox_pred / bbox_pred).
 */
export function fanInValues(
  name: string,
  shape: readonly number[],
  seed: number,
  gains: { readonly bias: number; readonly cls: number; readonly bbox: number },
): number[] {
  if (shape.length === 1) return rand(shape, seed, -gains.bias, gains.bias);
  const fanIn = numel(shape) / (shape[0] as number);
  let gain = Math.SQRT2;
  if (name.startsWith('rpn.cls_score') || name.startsWith('cls_score')) gain = gains.cls;
  if (name.startsWith('rpn.bbox_pred') || name.startsWith('bbox_pred')) gain = gains.bbox;
  const a = (Math.sqrt(3) * gain) / Math.sqrt(fanIn);
  return rand(shape, seed, -a, a);
}

/**
 * This adapter's limits with tiny buffers: bindings of 16 KiB and buffers of 20 KiB, so that a tensor of a
 * few KB is split into windows and chunks (at most 16 storage buffers per stage: each window is a binding).
 */
export async function tinyBufferLimits(): Promise<ReturnType<typeof limitsFrom>> {
  const dev = await getDevice();
  return limitsFrom({
    ...dev.limits,
    maxStorageBufferBindingSize: 16384,
    maxBufferSize: 20480,
    maxStorageBuffersPerShaderStage: Math.min(16, dev.limits.maxStorageBuffersPerShaderStage ?? 8),
  });
}

/** Seeded non-zero weights for every parameter of a program (uniform, Glorot-like scale; biases ±0.1). */
export function seededWeights(spec: ProgramSpec, seed: number): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  spec.persistent.forEach((p, k) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const a = p.shape.length === 1 ? 0.1 : Math.sqrt(6 / (n / (p.shape[0] as number)));
    weights.set(p.name, Float32Array.from(rand(n, seed + 7919 * (k + 1), -a, a)));
  });
  return weights;
}

/** y = tanh(x · w) over 9011 floats (36 KB: three chunks under {@link tinyBufferLimits}). */
export function threeChunkGraph(g: GraphBuilder): { n: number; x: Tensor; w: Tensor; y: Tensor } {
  const n = 9011;
  const x = g.input('x', [n]);
  const w = g.param('w', [n], init.normal(0.5));
  return { n, x, w, y: x.mul(w).tanh() };
}
