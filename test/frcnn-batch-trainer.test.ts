/**
 * Training steps of several images (config imagesPerBatch, CLI --batch): step `it` of a batch-B run
 * takes the images at positions it·B … it·B + B − 1 of the epoch order (the feeds of a batch-1 run's
 * iterations, stacked), trains on all of them (the sampled anchors of both images count), and the
 * setting is validated.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../ops/index.js';
import { loadVoc } from '../data/voc.js';
import { type FrcnnRunConfig, validateConfig } from '../train/frcnn-config.js';
import { FrcnnTrainer } from '../train/frcnn-trainer.js';
import { runConfigFor } from '../train/run-config.js';
import { makeTinyShapes, tinyConfig } from './tiny-frcnn.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-batch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('training steps of several images', () => {
  it('step it of batch 2 stacks the images it·2 and it·2 + 1 of the order (epoch wrap included) and trains on both', async () => {
    const classes = await makeTinyShapes(join(dir, 'data'), { train: 5, test: 1 });
    const ds = await loadVoc(join(dir, 'data'), { split: 'train', imageExt: '.png', difficult: 'drop' });
    const one: FrcnnRunConfig = tinyConfig(classes, 3);
    const two: FrcnnRunConfig = { ...one, imagesPerBatch: 2 };
    const t1 = await FrcnnTrainer.create(one, ds);
    const t2 = await FrcnnTrainer.create(two, ds);
    try {
      // step 2 of batch 2 takes positions 4 (the last image of epoch 0) and 5 (the first of epoch 1, flipped)
      for (const it of [0, 2]) {
        const got = await t2.feedsAt(it);
        const a = await t1.feedsAt(2 * it);
        const b = await t1.feedsAt(2 * it + 1);
        for (const name of ['image', 'im_info', 'gt_boxes', 'gt_labels', 'gt_count'])
          expect(Array.from(got[name] ?? []), `${name} of step ${it}`).toEqual([
            ...Array.from(a[name] ?? []),
            ...Array.from(b[name] ?? []),
          ]);
        // one sampling seed per step: the batch-1 run's seed of the same iteration
        expect(Array.from(got.seed ?? []), 'the seed of the step').toEqual(
          Array.from((await t1.feedsAt(it)).seed ?? []),
        );
      }
      const sampled: number[] = [];
      await t2.run({
        onIteration: (r) => {
          for (const v of Object.values(r.losses)) expect(Number.isFinite(v)).toBe(true);
          sampled.push(r.diagnostics.sampled_anchors as number);
        },
      });
      expect(sampled).toHaveLength(3);
      // each image samples up to anchorBatch anchors: a step of two images samples more than one can
      for (const n of sampled) expect(n).toBeGreaterThan(one.anchorBatch);
      for (const n of sampled) expect(n).toBeLessThanOrEqual(2 * one.anchorBatch);
    } finally {
      t1.destroy();
      t2.destroy();
    }
  });

  it('the setting: --batch gives imagesPerBatch (1 leaves the recipe as it was); outside [1, 8] is refused', () => {
    expect(runConfigFor({ batch: 4 }, ['a']).imagesPerBatch).toBe(4);
    expect('imagesPerBatch' in runConfigFor({ batch: 1 }, ['a'])).toBe(false);
    const c = runConfigFor({}, ['a']);
    expect(() => validateConfig({ ...c, imagesPerBatch: 9 })).toThrow(
      /imagesPerBatch must be an integer in \[1, 8\], got 9/,
    );
    expect(() => validateConfig({ ...c, imagesPerBatch: 1.5 })).toThrow(/imagesPerBatch/);
    expect(() => validateConfig({ ...c, imagesPerBatch: 8 })).not.toThrow();
  });
});
