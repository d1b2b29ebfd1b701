/**
 * The demo's recipe on a shorter schedule must really detect: generate a shapes set (300 train / 60 test
 * images, 128×160, 1–4 objects of 6 classes), pre-train on crops, train frcnn-small end to end on the GPU,
 * evaluate on the held-out images: VOC mAP@0.5 ≥ 0.5 (area under the curve, difficult objects ignored).
 * The full demo (`npm run demo`) trains longer; its measured mAP is in the README.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDemo } from '../train/demo.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Faster R-CNN demo, short schedule', () => {
  it('reaches VOC mAP@0.5 ≥ 0.5 on held-out shapes images', async () => {
    const r = await runDemo({
      images: 360,
      iterations: 800,
      pretrainSteps: 300,
      data: join(dir, 'shapes'),
      out: join(dir, 'out'),
      logEvery: 200,
      testFraction: 60 / 360,
    });
    console.log(
      `short demo: VOC mAP@0.5 ${(100 * r.vocMap).toFixed(1)} % (11-point ${(100 * r.voc07Map).toFixed(1)} %), COCO AP ${(100 * r.cocoAp).toFixed(1)} %, ` +
        `training ${r.trainSeconds.toFixed(0)} s, total ${r.totalSeconds.toFixed(0)} s`,
    );
    expect(r.vocMap).toBeGreaterThanOrEqual(0.5);
  }, 900_000);
});
