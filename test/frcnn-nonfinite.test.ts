/**
 * A diverging run (absurd learning rate) stops with NonFiniteLossError naming the iteration and the
 * loss term, and the checkpoint written before it is intact: it loads, and holds the last good
 * iteration with finite weights.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../ops/index.js';
import { loadVoc } from '../data/voc.js';
import { NonFiniteLossError } from '../models/frcnn/schedule.js';
import { ExplodedStateError, NonFiniteStateError } from '../runtime/checkpoint.js';
import { readSafetensors } from '../runtime/safetensors.js';
import type { FrcnnRunConfig } from '../train/frcnn-config.js';
import { FrcnnTrainer } from '../train/frcnn-trainer.js';
import { makeTinyShapes, tinyConfig } from './tiny-frcnn.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-nan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('non-finite loss', () => {
  it('stops with the iteration and the term; the last checkpoint stays good', async () => {
    const classes = await makeTinyShapes(join(dir, 'data'), { train: 4, test: 1 });
    const ds = await loadVoc(join(dir, 'data'), { split: 'train', imageExt: '.png', difficult: 'drop' });
    const config: FrcnnRunConfig = {
      ...tinyConfig(classes, 40),
      // sane for 3 iterations, then a learning rate no network survives (×1e14 at iteration 3)
      lr: { base: 0.01, steps: [3], gamma: 1e14 },
    };
    const trainer = await FrcnnTrainer.create(config, ds);
    const ckpt = join(dir, 'ckpt.safetensors');
    let err: unknown;
    const seen: number[] = [];
    try {
      await trainer.run({ checkpoint: { path: ckpt, every: 1 }, onIteration: (r) => seen.push(r.iteration) });
    } catch (e) {
      err = e;
    } finally {
      trainer.destroy();
    }
    // Either the loss of iteration 4 is non-finite, or the update of iteration 3 already made a weight
    // non-finite or exploded (max |w| over 1000× the previous checkpoint's; then the loss may still have
    // been finite) and the checkpoint after it is refused.
    if (err instanceof NonFiniteLossError) {
      expect(err.message).toMatch(new RegExp(`'${err.term}' is (NaN|-?Infinity) at iteration ${err.iteration}`));
      expect(['rpn_cls_loss', 'rpn_bbox_loss', 'cls_loss', 'bbox_loss', 'loss']).toContain(err.term);
      expect(err.iteration).toBeGreaterThanOrEqual(4);
      expect(err.message).toContain(ckpt);
    } else if (err instanceof ExplodedStateError) {
      expect(err.message).toMatch(
        /NOT written: parameter ".+" reaches \|w\| = \S+ after iteration \d+, over the bound/,
      );
      expect(err.maxAbs).toBeGreaterThan(err.bound);
    } else {
      expect(err).toBeInstanceOf(NonFiniteStateError);
      expect((err as Error).message).toMatch(/NOT written: tensor ".+" holds (NaN|-?Infinity) .* after iteration \d+/);
    }
    expect(seen.slice(0, 4)).toEqual([0, 1, 2, 3]);
    // the checkpoint of the last good iteration is complete, loads, and has finite weights
    const { tensors, metadata } = await readSafetensors(ckpt);
    const saved = Number(metadata.iteration);
    if (err instanceof NonFiniteLossError) expect(saved).toBe(err.iteration);
    else {
      expect(saved).toBeGreaterThanOrEqual(3);
      expect((err as Error).message).toContain(`after iteration ${saved + 1}`);
    }
    for (const [name, t] of tensors)
      expect(
        Array.from(t.data).every((v) => Number.isFinite(v)),
        name,
      ).toBe(true);
    expect(readdirSync(dir).filter((f) => f.startsWith('ckpt') && f !== 'ckpt.safetensors')).toEqual([]);
    console.log(`diverged: ${(err as Error).message}`);
  }, 900_000);
});
