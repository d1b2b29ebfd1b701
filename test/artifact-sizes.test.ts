/**
 * An artifact keeps everything of the ProgramSpec the runtime executes (format version 2): run-time
 * size symbols, kernel grids and size slots, binding windows of tensors over the binding limit, chunk
 * buffers of tensors over maxBufferSize, index inputs' value ranges and the kernels' model stages. The
 * spec loaded from the artifact equals the compiled one, and both run to the same bits — at several run-time
 * sizes for the polymorphic program, and through split bindings and chunks for the large one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeArtifact } from '../compiler/artifact.js';
import { compile } from '../compiler/compile.js';
import { GraphBuilder, init } from '../compiler/tensor.js';
import { loadArtifact } from '../runtime/artifact.js';
import { closeDevice } from '../runtime/device.js';
import type { ProgramSpec } from '../runtime/program.js';
import { type Feed, type HostTensor, Session, type ShapedFeed } from '../runtime/session.js';
import { freshSeed, rand, randInt, threeChunkGraph, tinyBufferLimits } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'wgflow-artifact-sizes-'));
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await closeDevice();
});

/** The spec without what the artifact stores elsewhere or rebuilds (initial values go to the weights file). */
const comparable = (spec: ProgramSpec) => JSON.parse(JSON.stringify(spec)) as unknown;

async function roundTrip(spec: ProgramSpec, name: string, feeds: readonly Record<string, Feed | ShapedFeed>[]) {
  const dir = join(root, name);
  await writeArtifact(dir, { spec, name, typed: false });
  const loaded = await loadArtifact(dir);
  expect(comparable(loaded.session.spec)).toEqual(comparable(spec));
  const direct = await Session.create(spec);
  for (const f of feeds) {
    const a = await direct.run(f);
    const b = await loaded.session.run(f);
    for (const k of Object.keys(a)) {
      expect(b[k]?.shape, k).toEqual(a[k]?.shape);
      expect(Array.from((b[k] as HostTensor).data), k).toEqual(Array.from((a[k] as HostTensor).data));
    }
  }
  direct.destroy();
  loaded.session.destroy();
  return loaded.manifest;
}

describe('artifacts keep run-time sizes, split bindings, chunks, value ranges and stages', () => {
  it('a polymorphic program (N, M run-time sizes, index input, two stages) at three sizes', async () => {
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 5 });
    const M = g.dim('M', { max: 40 });
    const x = g.input('x', [N, 3, M]);
    const idx = g.input('idx', [4], 'i32');
    const table = g.param('table', [6, 3], init.normal(1));
    const h = g.stage('features', () => x.mul(1.5).tanh().softmax(2));
    const y = g.stage('head', () => h.sum(2).add(table.gather(idx, 0).sum(0)));
    const { spec } = compile(g, { outputs: { y, h } });
    expect(spec.symbols?.map((s) => s.name)).toEqual(['N', 'M']);
    expect(spec.kernels.some((k) => k.grid)).toBe(true);
    expect(new Set(spec.kernels.map((k) => k.stage))).toEqual(new Set(['features', 'head']));
    const seed = freshSeed();
    const feeds = [
      [1, 7],
      [3, 40],
      [5, 13],
    ].map(([n, m], i) => ({
      x: { data: rand((n as number) * 3 * (m as number), seed + i), shape: [n as number, 3, m as number] },
      idx: randInt(4, seed + 10 + i, 0, 6),
    }));
    const m = await roundTrip(spec, 'poly', feeds);
    expect(m.version).toBe(2);
    expect(m.inputs.find((t) => t.name === 'idx')?.valueRange).toMatchObject({ min: 0, max: 5 });
    // the index range travels with the artifact: the loaded session refuses an out-of-range index
    const loaded = await loadArtifact(join(root, 'poly'));
    await expect(
      loaded.session.run({ x: { data: rand(3 * 7, seed), shape: [1, 3, 7] }, idx: [0, 1, 6, 2] }),
    ).rejects.toThrow(/idx/);
    loaded.session.destroy();
  });

  it('tensors over the binding limit and over maxBufferSize (windows and chunks)', async () => {
    const limits = await tinyBufferLimits();
    const g = new GraphBuilder();
    const { n, y } = threeChunkGraph(g);
    const { spec } = compile(g, { outputs: { y, s: y.mul(y).sum() }, limits });
    expect(spec.persistent.find((p) => p.name === 'w')?.chunks).toHaveLength(3);
    expect(spec.kernels.some((k) => k.windows)).toBe(true);
    await roundTrip(spec, 'split', [{ x: rand(n, freshSeed()) }]);
  });
});
