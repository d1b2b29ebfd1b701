/**
 * `--resume` gives the same results as an uninterrupted run (FrcnnTrainer on a tiny generated shapes
 * dataset, frcnn-small at 64×80, 6 iterations):
 *   A: 6 iterations in one trainer;
 *   B: 3 iterations, checkpoint, destroy; C: a new trainer (compiled again) resumes from B's checkpoint
 *      and runs iterations 3..5.
 * Every persistent tensor (parameters and momentum) after C is bitwise equal to A's, and the loss terms
 * of iterations 3..5 are equal. The check is not vacuous: training changes the parameters between
 * iteration 3 and 6, and C's session starts from freshly initialized (different) values.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../ops/index.js';
import type { DetectionDataset } from '../data/types.js';
import { loadVoc } from '../data/voc.js';
import { readSafetensors } from '../runtime/safetensors.js';
import type { Session } from '../runtime/session.js';
import type { FrcnnRunConfig } from '../train/frcnn-config.js';
import { FrcnnTrainer } from '../train/frcnn-trainer.js';
import { makeTinyShapes, tinyConfig } from './tiny-frcnn.js';

const ITERS = 6;
const CUT = 3;
const root = mkdtempSync(join(tmpdir(), 'wgflow-resume-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dataset: DetectionDataset;
let config: FrcnnRunConfig;

beforeAll(async () => {
  await makeTinyShapes(join(root, 'data'), { train: 8, test: 0 });
  dataset = await loadVoc(join(root, 'data'), { split: 'train', difficult: 'drop', imageExt: '.png' });
  config = tinyConfig(dataset.classes.slice(1), ITERS);
});

/** Every persistent tensor's bytes, by name. */
async function snapshot(session: Session): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const p of session.spec.persistent) {
    const t = await session.read(p.name);
    out.set(p.name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return out;
}

type Losses = Record<number, Readonly<Record<string, number>>>;

describe('resume (FrcnnTrainer)', () => {
  it('continues bitwise identically to an uninterrupted run', async () => {
    // A: uninterrupted
    const lossesA: Losses = {};
    const a = await FrcnnTrainer.create(config, dataset);
    let finalA: Map<string, Buffer>;
    let roles: Map<string, string>;
    try {
      await a.run({ onIteration: (r) => (lossesA[r.iteration] = r.losses) });
      expect(a.iteration).toBe(ITERS);
      finalA = await snapshot(a.session);
      roles = new Map(a.session.spec.persistent.map((p) => [p.name, p.role]));
    } finally {
      a.destroy();
    }

    // B: interrupted after CUT iterations (checkpoint written by run())
    const ckpt = join(root, 'checkpoint.safetensors');
    const b = await FrcnnTrainer.create(config, dataset);
    try {
      await b.run({ until: CUT, checkpoint: { path: ckpt, every: CUT } });
      expect(b.iteration).toBe(CUT);
    } finally {
      b.destroy();
    }
    const saved = await readSafetensors(ckpt);
    expect(saved.metadata.iteration).toBe(String(CUT));

    // C: a new trainer resumes and finishes
    const lossesC: Losses = {};
    const c = await FrcnnTrainer.create(config, dataset);
    let finalC: Map<string, Buffer>;
    try {
      const fresh = await snapshot(c.session);
      // the fresh session differs from the checkpoint, so equality below must come from resume()
      const differsFromCheckpoint = [...fresh].filter(([name, bytes]) => {
        const t = saved.tensors.get(name);
        return t !== undefined && !Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(bytes);
      });
      expect(differsFromCheckpoint.length).toBeGreaterThan(0);
      expect(await c.resume(ckpt)).toBe(CUT);
      expect(c.iteration).toBe(CUT);
      await c.run({ onIteration: (r) => (lossesC[r.iteration] = r.losses) });
      expect(c.iteration).toBe(ITERS);
      finalC = await snapshot(c.session);
    } finally {
      c.destroy();
    }

    expect(Object.keys(lossesC).map(Number)).toEqual([3, 4, 5]);
    for (let it = CUT; it < ITERS; it++) {
      const la = lossesA[it] as Record<string, number>;
      expect(Object.keys(la).length).toBeGreaterThan(0);
      // exact equality (toBe is Object.is: no tolerance)
      for (const [k, v] of Object.entries(la)) expect(lossesC[it]?.[k], `iteration ${it} ${k}`).toBe(v);
    }

    expect([...finalC.keys()]).toEqual([...finalA.keys()]);
    const params = [...roles].filter(([, r]) => r === 'param').map(([n]) => n);
    const momentum = [...roles].filter(([, r]) => r === 'state').map(([n]) => n);
    expect(params.length).toBeGreaterThan(10);
    expect(momentum.length).toBeGreaterThan(10);
    const unequal = [...finalA].filter(([name, bytes]) => !bytes.equals(finalC.get(name) as Buffer)).map(([n]) => n);
    expect(unequal).toEqual([]);

    // not vacuous: iterations 3..5 changed the trained parameters and the momentum
    const changed = (names: string[]) =>
      names.filter((n) => {
        const t = saved.tensors.get(n);
        return t && !Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(finalA.get(n) as Buffer);
      }).length;
    expect(changed(params)).toBeGreaterThan(params.length / 2);
    expect(changed(momentum)).toBeGreaterThan(momentum.length / 2);
  });
});
