/**
 * Test harness for ops with run-time sizes: one program compiled with size symbols runs every size of
 * a list with no pipeline created after its first run, and each run equals both the float64
 * interpreter (within a tolerance) and a program compiled for that exact static shape (≤ 1e-5
 * relative; integer outputs identical).
 */
import { expect } from 'vitest';
import { compile } from '../compiler/compile.js';
import type { Dim } from '../compiler/dims.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import type { GraphBuilder, Tensor } from '../compiler/tensor.js';
import { GraphBuilder as Builder } from '../compiler/tensor.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, pipelineCount, Session } from '../runtime/session.js';
import { freshSeed, randomFeeds, relError } from './helpers.js';

export interface RunTimeSizeCase {
  /** Size symbols by name, with their upper bounds (or { max, min } where the lower bound is not 1). */
  readonly symbols: Readonly<Record<string, number | { readonly max: number; readonly min: number }>>;
  /** Builds the graph: `dims` are the symbols (the polymorphic program) or numbers (a static one). */
  build(g: GraphBuilder, dims: Readonly<Record<string, Dim>>): Record<string, Tensor>;
  /** The sizes to run, each a value per symbol. */
  readonly sizes: readonly Readonly<Record<string, number>>[];
  /** Largest relative error against the float64 interpreter, per output (default for all: `tol`). */
  readonly tol: number;
  readonly tolOf?: Readonly<Record<string, number>>;
  /** Feeds for one size (default: uniform [-1, 1) for every input and param, from the seed). */
  feeds?(g: GraphBuilder, seed: number): Record<string, number[]>;
}

/** The static shape of input `name` of a graph (for {@link RunTimeSizeCase.feeds}). */
export function inputShape(g: GraphBuilder, name: string): number[] {
  const n = g.graph.nodes.find((m) => m.op === 'input' && m.name === name);
  if (!n) throw new Error(`inputShape: no input '${name}'`);
  return [...n.type.shape];
}

/** Runs a {@link RunTimeSizeCase}; returns the seed used (fresh per call unless given). */
export async function checkRunTimeSizes(c: RunTimeSizeCase, seed = freshSeed()): Promise<number> {
  const dev = await getDevice();
  const limits = limitsFrom(dev.limits);
  const g = new Builder();
  const syms: Record<string, Dim> = {};
  for (const [name, r] of Object.entries(c.symbols)) syms[name] = g.dim(name, typeof r === 'number' ? { max: r } : r);
  const outs = c.build(g, syms);
  const { spec } = compile(g, { outputs: outs, limits });
  expect(spec.symbols?.length ?? 0, 'the program has run-time sizes').toBeGreaterThan(0);

  const statics = c.sizes.map((size) => {
    const gs = new Builder();
    return { size, gs, outs: c.build(gs, size) };
  });
  // parameters have static shapes: one set of values for every size
  const first = statics[0];
  if (!first) throw new Error('checkRunTimeSizes: no sizes');
  const paramNames = first.gs.graph.nodes.filter((n) => n.op === 'param').map((n) => n.name as string);
  const feedsAt = statics.map((s, k) => (c.feeds ?? randomFeeds)(s.gs, seed + 1000 * k));
  const initial: Record<string, number[]> = {};
  for (const p of paramNames) initial[p] = feedsAt[0]?.[p] as number[];

  const session = await Session.create(spec, { initial });
  const results: Record<string, HostTensor>[] = [];
  const shapedFeeds: Record<string, { data: number[]; shape: number[] }>[] = [];
  let afterFirst = -1;
  for (const [k, s] of statics.entries()) {
    const feeds: Record<string, { data: number[]; shape: number[] }> = {};
    for (const n of s.gs.graph.nodes) {
      if (n.op !== 'input') continue;
      feeds[n.name as string] = { data: feedsAt[k]?.[n.name as string] as number[], shape: [...n.type.shape] };
    }
    shapedFeeds.push(feeds);
    results.push(await session.run(feeds));
    if (k === 0) afterFirst = pipelineCount();
  }
  expect(pipelineCount(), 'pipelines created after the first run').toBe(afterFirst);
  session.destroy();

  for (const [k, s] of statics.entries()) {
    const at = `${JSON.stringify(s.size)} (seed ${seed})`;
    const feeds = { ...(feedsAt[k] as Record<string, number[]>), ...initial };
    const names = Object.keys(s.outs);
    const ref = interpret(
      s.gs.graph,
      feeds,
      names.map((n) => (s.outs[n] as Tensor).id),
    );
    // the interpreter on the polymorphic graph (its ops' CPU rules at run-time sizes) agrees too
    const poly = interpret(
      g.graph,
      { ...shapedFeeds[k], ...initial },
      names.map((n) => (outs[n] as Tensor).id),
    );
    names.forEach((name, i) => {
      expect(poly[i]?.shape, `${name}: polymorphic interpreter shape at ${at}`).toEqual(ref[i]?.shape);
      expect(
        relError(poly[i]?.data as Float64Array, ref[i]?.data as Float64Array),
        `${name}: polymorphic interpreter at ${at}`,
      ).toBeLessThan(1e-12);
    });
    const stat = await Session.create(compile(s.gs, { outputs: s.outs, limits }).spec, { initial });
    const inputFeeds = Object.fromEntries(
      s.gs.graph.nodes.filter((n) => n.op === 'input').map((n) => [n.name as string, feeds[n.name as string] ?? []]),
    );
    const so = await stat.run(inputFeeds);
    stat.destroy();
    names.forEach((name, i) => {
      const got = results[k]?.[name];
      const want = so[name];
      const r = ref[i];
      expect(got?.shape, `${name} shape at ${at}`).toEqual(want?.shape);
      expect(got?.shape, `${name} shape at ${at}`).toEqual(r?.shape);
      const g32 = got?.data as ArrayLike<number>;
      if (s.outs[name]?.dtype === 'f32') {
        expect(relError(g32, r?.data as Float64Array), `${name} vs interpreter at ${at}`).toBeLessThan(
          c.tolOf?.[name] ?? c.tol,
        );
        expect(relError(g32, want?.data as ArrayLike<number>), `${name} vs static program at ${at}`).toBeLessThan(1e-5);
      } else {
        expect(Array.from(g32), `${name} vs static program at ${at}`).toEqual(Array.from(want?.data ?? []));
      }
    });
  }
  return seed;
}
