/**
 * 4-step alternating training (train/alternating.ts) on a tiny generated shapes set, 3 iterations per
 * step: every step trains its own parameter set, steps 3 and 4 leave the shared convs exactly as step 2
 * made them, step 3 fine-tunes step 1's RPN layers, step 4 fine-tunes step 2's head, and the combined
 * weights run in the inference program.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../ops/index.js';
import { decodeImage } from '../data/image.js';
import { loadVoc } from '../data/voc.js';
import { trainAlternating } from '../train/alternating.js';
import type { FrcnnRunConfig } from '../train/frcnn-config.js';
import { FrcnnDetector } from '../train/frcnn-detector.js';
import type { FrcnnTrainer } from '../train/frcnn-trainer.js';
import { makeTinyShapes, tinyConfig } from './tiny-frcnn.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-alt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('4-step alternating training', () => {
  it('trains RPN, Fast R-CNN, RPN (shared fixed), Fast R-CNN (shared fixed), and the result detects', async () => {
    const classes = await makeTinyShapes(dir, { train: 6, test: 1 });
    const ds = await loadVoc(dir, { split: 'train', imageExt: '.png', difficult: 'drop' });
    expect(ds.classes.slice(1)).toEqual(classes);
    const config: FrcnnRunConfig = { ...tinyConfig(classes, 3), lr: { base: 0.01, steps: [2] } };
    const snap = new Map<number, Map<string, Float32Array>>();
    const params = new Map<number, string[]>();
    const losses = new Map<number, string[]>();
    const stages: string[] = [];
    const { final, rpn } = await trainAlternating(config, ds, {
      iterations: [3, 3, 3, 3],
      proposals: 24,
      onStage: (k, what) => stages.push(`${k}: ${what}`),
      run: (k) => ({
        onIteration: (r) => {
          if (r.iteration === 0) losses.set(k, Object.keys(r.losses));
        },
      }),
      afterStage: async (k, t: FrcnnTrainer) => {
        const m = new Map<string, Float32Array>();
        for (const p of t.session.spec.persistent)
          if (!p.name.endsWith('.momentum')) m.set(p.name, Float32Array.from((await t.session.read(p.name)).data));
        snap.set(k, m);
        params.set(
          k,
          t.session.spec.persistent
            .filter((p) => p.name.endsWith('.momentum'))
            .map((p) => p.name.replace(/\.momentum$/, '')),
        );
      },
    });
    expect(stages.map((s) => s[0])).toEqual(['1', '1', '2', '3', '3', '4']);
    expect(losses.get(1)?.sort()).toEqual(['loss', 'rpn_bbox_loss', 'rpn_cls_loss']);
    expect(losses.get(2)?.sort()).toEqual(['bbox_loss', 'cls_loss', 'loss']);
    const trained = (k: number) => params.get(k) ?? [];
    expect(trained(1).some((n) => n.startsWith('features.'))).toBe(true);
    expect(trained(2).some((n) => n.startsWith('features.'))).toBe(true);
    expect(trained(3).every((n) => n.startsWith('rpn.'))).toBe(true);
    expect(trained(4).every((n) => /^(fc6|fc7|cls_score|bbox_pred)\./.test(n))).toBe(true);
    const s1 = snap.get(1) as Map<string, Float32Array>;
    const s2 = snap.get(2) as Map<string, Float32Array>;
    const s3 = snap.get(3) as Map<string, Float32Array>;
    const s4 = snap.get(4) as Map<string, Float32Array>;
    const same = (a?: Float32Array, b?: Float32Array) =>
      a !== undefined && b !== undefined && a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
    for (const [name, v] of s3)
      if (name.startsWith('features.')) {
        expect(same(v, s2.get(name)), `step 3 keeps ${name} of step 2`).toBe(true);
        expect(same(s4.get(name), v), `step 4 keeps ${name}`).toBe(true);
        expect(same(v, s1.get(name)), `step 2's backbone is its own, not step 1's (${name})`).toBe(false);
      }
    // fine-tuned, not re-initialised: close to the previous step's values but changed
    const rel = (a: Float32Array, b: Float32Array) => {
      let d = 0;
      let n = 0;
      a.forEach((v, i) => {
        d += (v - (b[i] as number)) ** 2;
        n += v * v;
      });
      return Math.sqrt(d / n);
    };
    const w3 = s3.get('rpn.conv.weight') as Float32Array;
    const w1 = s1.get('rpn.conv.weight') as Float32Array;
    expect(rel(w3, w1)).toBeGreaterThan(0);
    expect(rel(w3, w1)).toBeLessThan(0.5);
    const h4 = s4.get('fc6.weight') as Float32Array;
    const h2 = s2.get('fc6.weight') as Float32Array;
    expect(rel(h4, h2)).toBeGreaterThan(0);
    expect(rel(h4, h2)).toBeLessThan(0.5);

    const det = await FrcnnDetector.create(config);
    await det.copyWeightsFrom(final.session, rpn.session);
    const img = await decodeImage((ds.samples[0] as (typeof ds.samples)[number]).imagePath);
    const dets = await det.detectRgb(img);
    expect(Array.isArray(dets)).toBe(true);
    for (const d of dets) {
      expect(d.label).toBeGreaterThanOrEqual(1);
      expect(d.box[2]).toBeGreaterThanOrEqual(d.box[0]);
    }
    det.destroy();
    final.destroy();
    rpn.destroy();
  }, 900_000);
});
