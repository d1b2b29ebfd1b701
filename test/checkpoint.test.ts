import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { sgd } from '../compiler/optim.js';
import { GraphBuilder, init } from '../compiler/tensor.js';
import { atomicTempPath } from '../runtime/atomic-file.js';
import { CHECKPOINT_FORMAT, loadCheckpoint, saveCheckpoint } from '../runtime/checkpoint.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import { decodeSafetensors, encodeSafetensors, type TensorToWrite } from '../runtime/safetensors.js';
import { Session } from '../runtime/session.js';
import { rand } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-ckpt-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await closeDevice();
});

async function tinyProgram() {
  const g = new GraphBuilder();
  const x = g.input('x', [4, 3]);
  const w = g.param('w', [3, 2], init.normal(0.5));
  const b = g.param('b', [2], init.zeros());
  const loss = x.matmul(w).add(b).sub(1).pow(2).mean();
  const step = sgd(loss, { momentum: 0.9 });
  const dev = await getDevice();
  const { spec } = compile(g, { outputs: { loss }, updates: step.updates, limits: limitsFrom(dev.limits) });
  return { spec, dev };
}

async function readAll(s: Session): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const p of s.spec.persistent) out[p.name] = [...(await s.read(p.name)).data];
  return out;
}

describe('checkpoints', () => {
  it('save → load into a fresh Session of the same program gives identical params and optimizer state', async () => {
    const { spec, dev } = await tinyProgram();
    expect(spec.persistent.map((p) => p.role)).toContain('state'); // momentum buffers are saved too
    const xv = rand([4, 3], 7);
    const a = await Session.create(spec, { gpu: dev });
    for (let i = 0; i < 3; i++) await a.run({ x: xv, lr: [0.05] });
    const path = join(dir, 'tiny.safetensors');
    const config = { lr: 0.05, momentum: 0.9, layers: [3, 2] };
    await saveCheckpoint(a, path, { iteration: 3, rngState: { seed: 7, draws: 12 }, config });
    const saved = await readAll(a);

    const file = decodeSafetensors(readFileSync(path), path);
    expect([...file.tensors.keys()]).toEqual(spec.persistent.map((p) => p.name));
    expect(file.metadata.format).toBe(CHECKPOINT_FORMAT);
    expect(file.metadata.format_version).toBe('1');
    expect(file.metadata.iteration).toBe('3');

    const b = await Session.create(spec, { gpu: dev, initial: { w: new Float32Array(6).fill(9) } });
    const meta = await loadCheckpoint(b, path);
    expect(meta.iteration).toBe(3);
    expect(meta.formatVersion).toBe(1);
    expect(meta.program).toBe(spec.name);
    expect(meta.rngState).toEqual({ seed: 7, draws: 12 });
    expect(meta.config).toEqual(config);
    expect(await readAll(b)).toEqual(saved);
    // and training continues identically from there
    const la = (await a.run({ x: xv, lr: [0.05] })).loss?.data[0];
    const lb = (await b.run({ x: xv, lr: [0.05] })).loss?.data[0];
    expect(lb).toBe(la);
    expect(await readAll(b)).toEqual(await readAll(a));
    a.destroy();
    b.destroy();
  });

  it('loading errors name the tensor and the file; a failed load changes nothing', async () => {
    const { spec, dev } = await tinyProgram();
    const s = await Session.create(spec, { gpu: dev });
    const before = await readAll(s);
    const good = join(dir, 'good.safetensors');
    await saveCheckpoint(s, good, { iteration: 0 });
    const { tensors, metadata } = decodeSafetensors(readFileSync(good), good);
    const variant = (name: string, edit: (m: Map<string, TensorToWrite>) => void, meta = metadata) => {
      const m = new Map<string, TensorToWrite>(tensors);
      edit(m);
      const path = join(dir, name);
      writeFileSync(path, encodeSafetensors(m, meta));
      return path;
    };
    const missing = variant('missing.safetensors', (m) => m.delete('b'));
    await expect(loadCheckpoint(s, missing)).rejects.toThrow(`checkpoint ${missing}: missing tensor "b"`);
    const shape = variant('shape.safetensors', (m) =>
      m.set('w', { data: new Float32Array(6), shape: [2, 3], dtype: 'f32' }),
    );
    await expect(loadCheckpoint(s, shape)).rejects.toThrow(
      `checkpoint ${shape}: tensor "w" has shape [2,3], program "${spec.name}" expects [3,2]`,
    );
    const dtype = variant('dtype.safetensors', (m) =>
      m.set('b', { data: new Int32Array(2), shape: [2], dtype: 'i32' }),
    );
    await expect(loadCheckpoint(s, dtype)).rejects.toThrow(
      `checkpoint ${dtype}: tensor "b" has dtype I32 (i32), program "${spec.name}" expects f32`,
    );
    const extra = variant('extra.safetensors', (m) =>
      m.set('stray', { data: new Float32Array(1), shape: [], dtype: 'f32' }),
    );
    await expect(loadCheckpoint(s, extra)).rejects.toThrow(`checkpoint ${extra}: tensor "stray" not in program`);
    const plain = variant('plain.safetensors', () => undefined, {});
    await expect(loadCheckpoint(s, plain)).rejects.toThrow(
      `checkpoint ${plain}: not a wgflow checkpoint (metadata "format" is missing)`,
    );
    const future = variant('future.safetensors', () => undefined, { ...metadata, format_version: '2' });
    await expect(loadCheckpoint(s, future)).rejects.toThrow(/format_version "2" is not supported/);
    expect(await readAll(s)).toEqual(before);
    s.destroy();
  });

  it('a save interrupted before the rename leaves the previous checkpoint intact', async () => {
    const { spec, dev } = await tinyProgram();
    const s = await Session.create(spec, { gpu: dev });
    const path = join(dir, 'resume.safetensors');
    await saveCheckpoint(s, path, { iteration: 10 });
    const first = await readAll(s);
    const firstBytes = readFileSync(path);
    for (let i = 0; i < 2; i++) await s.run({ x: rand([4, 3], 3), lr: [0.1] });
    // 1) a crash after the temp file was written, before rename (the hook throws at that point)
    await expect(
      saveCheckpoint(
        s,
        path,
        { iteration: 12 },
        {
          beforeRename: () => {
            throw new Error('killed before rename');
          },
        },
      ),
    ).rejects.toThrow('killed before rename');
    // 2) a crashed process's leftover: a partial temp file next to the checkpoint
    writeFileSync(atomicTempPath(path), firstBytes.subarray(0, 40));
    expect(readFileSync(path).equals(firstBytes)).toBe(true);
    const fresh = await Session.create(spec, { gpu: dev });
    expect((await loadCheckpoint(fresh, path)).iteration).toBe(10);
    expect(await readAll(fresh)).toEqual(first);
    // a completed save then replaces it
    await saveCheckpoint(s, path, { iteration: 12 });
    expect((await loadCheckpoint(fresh, path)).iteration).toBe(12);
    expect(await readAll(fresh)).toEqual(await readAll(s));
    expect(readdirSync(dir).filter((f) => f.startsWith('.resume.safetensors.tmp-'))).toHaveLength(1); // only the fake
    s.destroy();
    fresh.destroy();
  });
});
