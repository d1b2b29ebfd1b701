/** Benchmark plumbing: time a compiled program (median and min over timed runs after warm-up) and print tables. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Update } from '../compiler/compile.js';
import { compile, type GraphBuilder, getDevice, limitsFrom, Session, type Tensor } from '../index.js';

export interface BenchRow {
  readonly suite: string;
  readonly workload: string;
  readonly medianMs: number;
  readonly minMs: number;
  readonly runs: number;
  readonly gflop: number;
  readonly gflops: number;
  readonly dispatches: number;
  /** What the row measures beyond its time, e.g. "12.3 images/s" or a ratio to another row. */
  readonly note?: string;
}

export interface TimeOptions {
  readonly warmup?: number;
  readonly runs?: number;
  /**
   * The shapes to feed, by input name, for a program with run-time sizes (fed as { data, shape }); the
   * other inputs get their declared (largest) shapes.
   */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
  /** Values for some inputs (with `shapes`, in those shapes); the others get seeded uniform data. */
  readonly feeds?: Readonly<Record<string, readonly number[]>>;
  /** Values for parameters (the others are initialized from their specs). */
  readonly initial?: Readonly<Record<string, readonly number[]>>;
}

/** Seeded uniform [-1, 1) values. */
export function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

/**
 * Compiles `build`'s outputs and times whole runs (inputs uploaded, every dispatch, wait for the GPU;
 * no readback). Inputs get seeded random values.
 */
/** A graph with parameter updates (a training step): timed like any other, the updates run every time. */
export interface TrainingProgram {
  readonly outs: Record<string, Tensor>;
  readonly updates: readonly Update[];
}

const isTraining = (b: Record<string, Tensor> | TrainingProgram): b is TrainingProgram =>
  Array.isArray((b as TrainingProgram).updates) && typeof (b as TrainingProgram).outs === 'object';

export async function timeGraph(
  suite: string,
  workload: string,
  gflop: number,
  build: (g: GraphBuilder) => Record<string, Tensor> | TrainingProgram,
  g: GraphBuilder,
  opts: TimeOptions = {},
): Promise<BenchRow> {
  const dev = await getDevice();
  const built = build(g);
  const program = isTraining(built) ? built : { outs: built, updates: [] };
  const { spec } = compile(g, {
    outputs: program.outs,
    updates: program.updates,
    limits: limitsFrom(dev.limits),
    name: workload,
  });
  const session = await Session.create(spec, { gpu: dev, ...(opts.initial ? { initial: opts.initial } : {}) });
  const feeds: Record<string, ArrayLike<number> | { data: ArrayLike<number>; shape: number[] }> = {};
  spec.inputs.forEach((t, k) => {
    const shape = opts.shapes?.[t.name];
    const data =
      opts.feeds?.[t.name] ??
      seeded(
        (shape ?? t.shape).reduce((a, b) => a * b, 1),
        17 + k,
      );
    feeds[t.name] = shape ? { data, shape: [...shape] } : data;
  });
  const warmup = opts.warmup ?? 2;
  const runs = opts.runs ?? 5;
  for (let i = 0; i < warmup; i++) await session.run(feeds, { outputs: [] });
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await session.run(feeds, { outputs: [] });
    times.push(performance.now() - t0);
  }
  session.destroy();
  times.sort((a, b) => a - b);
  const medianMs = times[Math.floor(times.length / 2)] as number;
  return {
    suite,
    workload,
    medianMs,
    minMs: times[0] as number,
    runs,
    gflop,
    gflops: gflop / (medianMs / 1000),
    dispatches: spec.stats.dispatches,
  };
}

export function markdownTable(adapter: string, rows: readonly BenchRow[]): string {
  const lines = [
    `adapter: ${adapter}`,
    '',
    '| suite | workload | median ms | min ms | runs | GFLOP | GFLOP/s | dispatches | note |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.suite} | ${r.workload} | ${r.medianMs.toFixed(1)} | ${r.minMs.toFixed(1)} | ${r.runs} | ${r.gflop.toFixed(3)} | ${r.gflop > 0 ? r.gflops.toFixed(2) : '–'} | ${r.dispatches} | ${r.note ?? ''} |`,
    ),
  ];
  return lines.join('\n');
}

export function writeResults(path: string, adapter: string, rows: readonly BenchRow[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.json`, `${JSON.stringify({ adapter, date: new Date().toISOString(), rows }, null, 2)}\n`);
  writeFileSync(`${path}.md`, `${markdownTable(adapter, rows)}\n`);
}
