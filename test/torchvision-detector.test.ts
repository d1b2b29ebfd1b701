/**
 * The user path for torchvision's models: `fasterrcnnResnet50Fpn({ weights })` / `loadDetector({ model,
 * weights })` from a seeded .pth (test/fixtures/torch/torchvision_frcnn.py), then `detect()` on decoded
 * 8-bit pixels of 4 image sizes (our transform on the host, one program on the GPU), against
 * torchvision's own detections for the same pixels: the same count per image, and over the 4 images ≥ 98 % of those scoring more than
 * 1e-3 above the 100th matched (label, IoU ≥ 0.98, |Δscore| ≤ 1e-3). The zip .pth, the legacy .pth and
 * safetensors give identical detections. The 91 class names are torchvision's COCO categories. Older
 * checkpoints' key names (FPN and RPN convs without `.0`) are renamed as torchvision renames them.
 * Sizes min 160 / max 256 (the options) keep it fast on lavapipe. Skipped, saying so, without
 * python3-torch.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeImage } from '../data/image.js';
import { loadDetector } from '../index.js';
import { closeDevice } from '../runtime/device.js';
import { readSafetensors, writeSafetensors } from '../runtime/safetensors.js';
import type { DetectionResult } from '../train/detector.js';
import { fasterrcnnResnet50Fpn, tvKeyOf } from '../train/torchvision-detector.js';
import { runCli } from './cli-process.js';
import { freshSeed } from './helpers.js';
import { hasTorch, NO_TORCH_MESSAGE, PYTHON } from './torch-fixtures.js';

const HAS_TORCH = hasTorch();
if (!HAS_TORCH) console.warn(`torchvision-detector.test.ts: ${NO_TORCH_MESSAGE}`);
const dir = mkdtempSync(join(tmpdir(), 'wgflow-tv-detector-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await closeDevice();
});
const seed = freshSeed();
const IMAGES = ['150x230', '230x150', '200x200', '97x311'];

interface Meta {
  images: { size: [number, number] }[];
  coco_categories: string[];
}

/** IoU of (x1, y1, x2, y2) boxes i of a and j of b (no +1). */
function iou(a: Float32Array, i: number, b: Float32Array, j: number): number {
  const v = (x: Float32Array, k: number) => x[k] as number;
  const w = Math.max(0, Math.min(v(a, 4 * i + 2), v(b, 4 * j + 2)) - Math.max(v(a, 4 * i), v(b, 4 * j)));
  const h = Math.max(0, Math.min(v(a, 4 * i + 3), v(b, 4 * j + 3)) - Math.max(v(a, 4 * i + 1), v(b, 4 * j + 1)));
  const area = (x: Float32Array, k: number) => (v(x, 4 * k + 2) - v(x, 4 * k)) * (v(x, 4 * k + 3) - v(x, 4 * k + 1));
  return (w * h) / (area(a, i) + area(b, j) - w * h);
}

interface Wanted {
  readonly boxes: Float32Array;
  readonly scores: Float32Array;
  readonly labels: Float32Array;
}

/**
 * torchvision's detections scoring more than 1e-3 above its 100th (where the cap cuts a band of scores),
 * and how many of them one of ours matches: same label, IoU ≥ 0.98, |Δscore| ≤ 1e-3. Logs the counts
 * and checks the detection count and that there is something to compare.
 */
function matchDetections(w: Wanted, got: DetectionResult, label: string): { considered: number; matched: number } {
  const n = w.scores.length;
  const m = got.scores.length;
  const cut = n === 100 ? (w.scores[n - 1] as number) + 1e-3 : -1;
  let considered = 0;
  let matched = 0;
  for (let i = 0; i < n; i++) {
    if ((w.scores[i] as number) <= cut) continue;
    considered++;
    for (let j = 0; j < m; j++)
      if (
        got.labels[j] === w.labels[i] &&
        Math.abs((got.scores[j] as number) - (w.scores[i] as number)) <= 1e-3 &&
        iou(w.boxes, i, got.boxes, j) >= 0.98
      ) {
        matched++;
        break;
      }
  }
  console.log(`${label}: torchvision ${n}, ours ${m}; ${matched} of the ${considered} above ${cut.toFixed(4)} matched`);
  expect(m, label).toBe(n);
  expect(considered, `${label}: detections to compare`).toBeGreaterThan(0);
  return { considered, matched };
}

describe.skipIf(!HAS_TORCH)(`torchvision detectors from .pth files (seed ${seed})`, () => {
  let meta: Meta;
  let pixels: { data: Uint8Array; width: number; height: number }[] = [];
  let want: { boxes: Float32Array; scores: Float32Array; labels: Float32Array }[] = [];
  beforeAll(async () => {
    const args = ['--model', 'fasterrcnn_resnet50_fpn', '--seed', String(seed), '--images', IMAGES.join(',')];
    const r = spawnSync(
      PYTHON,
      ['test/fixtures/torch/torchvision_frcnn.py', dir, ...args, '--min-size', '160', '--max-size', '256'],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`torchvision_frcnn.py failed (seed ${seed}): ${r.stderr}`);
    meta = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as Meta;
    const { tensors } = await readSafetensors(join(dir, 'out.safetensors'));
    const get = (k: string) => {
      const t = tensors.get(k);
      if (!t) throw new Error(`the fixture has no ${k}`);
      return t.data as Float32Array;
    };
    pixels = meta.images.map(({ size: [H, W] }, k) => {
      const chw = get(`image.${k}`);
      const rgb = new Uint8Array(3 * H * W);
      for (let p = 0; p < H * W; p++)
        for (let c = 0; c < 3; c++) rgb[3 * p + c] = Math.round((chw[c * H * W + p] as number) * 255);
      return { data: rgb, width: W, height: H };
    });
    want = meta.images.map((_, k) => ({
      boxes: get(`boxes.${k}`),
      scores: get(`scores.${k}`),
      labels: get(`labels.${k}`),
    }));
  }, 180_000);

  it('detections from a zip .pth match torchvision’s for 4 image sizes; COCO class names', async () => {
    const det = await fasterrcnnResnet50Fpn({ weights: join(dir, 'model.zip.pth'), minSize: 160, maxSize: 256 });
    try {
      expect(det.classes).toEqual(meta.coco_categories);
      expect(det.boxConvention).toBe('continuous');
      const results = await det.detect(pixels);
      // ≥ 98 % over the 4 images (one image's near-ties alone do not decide it)
      let considered = 0;
      let matched = 0;
      results.forEach((got, k) => {
        const r = matchDetections(want[k] as Wanted, got, `image ${IMAGES[k]}`);
        considered += r.considered;
        matched += r.matched;
      });
      expect(matched / considered).toBeGreaterThanOrEqual(0.98);
    } finally {
      det.destroy();
    }
  }, 600_000);

  it('the zip .pth, the legacy .pth and safetensors give identical detections (loadDetector)', async () => {
    const runs: DetectionResult[][] = [];
    for (const file of ['model.zip.pth', 'model.legacy.pth', 'model.safetensors']) {
      const det = await loadDetector({
        model: 'fasterrcnn_resnet50_fpn',
        weights: join(dir, file),
        minSize: 160,
        maxSize: 256,
      });
      try {
        runs.push(await det.detect(pixels.slice(0, 2)));
      } finally {
        det.destroy();
      }
    }
    for (const r of runs.slice(1))
      r.forEach((res, k) => {
        expect(Array.from(res.boxes), `image ${k}`).toEqual(Array.from(runs[0]?.[k]?.boxes ?? []));
        expect(Array.from(res.scores)).toEqual(Array.from(runs[0]?.[k]?.scores ?? []));
        expect(Array.from(res.labels)).toEqual(Array.from(runs[0]?.[k]?.labels ?? []));
      });
  }, 600_000);

  it('wgflow detect --model … --weights … writes torchvision-style detections.json and pictures', async () => {
    const k = 0;
    const png = join(dir, 'image0.png');
    writeFileSync(png, await encodeImage(pixels[k] as (typeof pixels)[number], 'png'));
    const out = join(dir, 'detect-out');
    const weights = join(dir, 'model.zip.pth');
    const args = ['detect', png, '--model', 'fasterrcnn_resnet50_fpn', '--weights', weights];
    const r = await runCli([...args, '--min-size', '160', '--max-size', '256', '--out', out, '--score', '0.2']);
    expect(r.code, r.stderr).toBe(0);
    const entries = JSON.parse(readFileSync(join(out, 'detections.json'), 'utf8')) as {
      file_name: string;
      image_id: number;
      category_id: number;
      bbox: [number, number, number, number];
      score: number;
    }[];
    const w = want[k] as (typeof want)[number];
    expect(entries).toHaveLength(w.scores.length);
    expect(entries.every((e) => e.file_name === 'image0.png' && e.image_id === 1)).toBe(true);
    // the same detections as torchvision's, with COCO's (x, y, w, h) and torchvision's label ids
    const top = entries[0] as (typeof entries)[number];
    const [x1, y1, x2, y2] = Array.from(w.boxes.subarray(0, 4));
    expect(top.category_id).toBe(w.labels[0]);
    expect(Math.abs(top.score - (w.scores[0] as number))).toBeLessThanOrEqual(1e-3);
    expect(top.bbox[0]).toBeCloseTo(x1 as number, 1);
    expect(top.bbox[2]).toBeCloseTo((x2 as number) - (x1 as number), 1);
    expect(top.bbox[3]).toBeCloseTo((y2 as number) - (y1 as number), 1);
    expect(readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(1);
    // refusals name the problem before any GPU work
    const bad = await runCli(['detect', png, '--model', 'fasterrcnn_resnet50_fpn', '--out', join(dir, 'x')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--model fasterrcnn_resnet50_fpn needs --weights FILE/);
    const unknown = await runCli(['detect', png, '--model', 'yolo', '--weights', weights, '--out', join(dir, 'y')]);
    expect(unknown.stderr).toMatch(/--model must be one of fasterrcnn_resnet50_fpn, /);
  }, 600_000);

  it('weights that are not a torchvision Faster R-CNN, or miss tensors, are refused naming the file and keys', async () => {
    const notTv = join(dir, 'not-tv.safetensors');
    await writeSafetensors(notTv, { 'fc.weight': { data: new Float32Array(6), shape: [2, 3], dtype: 'f32' } });
    await expect(fasterrcnnResnet50Fpn({ weights: notTv })).rejects.toThrow(
      /not-tv\.safetensors: no roi_heads\.box_predictor\.cls_score\.weight \[classes, 1024\]/,
    );
    const partial = join(dir, 'partial.safetensors');
    await writeSafetensors(partial, {
      'roi_heads.box_predictor.cls_score.weight': { data: new Float32Array(5 * 1024), shape: [5, 1024], dtype: 'f32' },
      'backbone.body.conv1.weight': { data: new Float32Array(64 * 3 * 9), shape: [64, 3, 3, 3], dtype: 'f32' },
    });
    // one error for everything: the missing tensors and the shape mismatch (conv1 is 7×7)
    await expect(fasterrcnnResnet50Fpn({ weights: partial })).rejects.toThrow(
      /partial\.safetensors[\s\S]*backbone\.body\.bn1\.weight[\s\S]*backbone\.body\.conv1\.weight/,
    );
  });

  it('older checkpoints’ FPN and RPN key names are renamed as torchvision renames them', () => {
    expect(tvKeyOf('backbone.fpn.inner_blocks.2.weight')).toBe('backbone.fpn.inner_blocks.2.0.weight');
    expect(tvKeyOf('backbone.fpn.layer_blocks.0.bias')).toBe('backbone.fpn.layer_blocks.0.0.bias');
    expect(tvKeyOf('rpn.head.conv.weight')).toBe('rpn.head.conv.0.0.weight');
    expect(tvKeyOf('backbone.fpn.inner_blocks.2.0.weight')).toBe('backbone.fpn.inner_blocks.2.0.weight');
    expect(tvKeyOf('backbone.body.layer1.0.conv1.weight')).toBe('backbone.body.layer1.0.conv1.weight');
  });
});

describe.skipIf(!HAS_TORCH)(`fasterrcnn_resnet50_fpn_v2 from a .pth (seed ${seed})`, () => {
  const v2dir = join(dir, 'v2');
  const SIZES = ['150x230', '97x311'];
  it('detections match torchvision’s (BatchNorm FPN, 2-conv RPN head, conv + FC box head)', async () => {
    const args = ['--model', 'fasterrcnn_resnet50_fpn_v2', '--seed', String(seed), '--images', SIZES.join(',')];
    const r = spawnSync(
      PYTHON,
      ['test/fixtures/torch/torchvision_frcnn.py', v2dir, ...args, '--min-size', '160', '--max-size', '256'],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`torchvision_frcnn.py failed (seed ${seed}): ${r.stderr}`);
    const meta = JSON.parse(readFileSync(join(v2dir, 'out.json'), 'utf8')) as Meta;
    const { tensors } = await readSafetensors(join(v2dir, 'out.safetensors'));
    const get = (k: string) => {
      const t = tensors.get(k);
      if (!t) throw new Error(`the fixture has no ${k}`);
      return t.data as Float32Array;
    };
    const det = await loadDetector({
      model: 'fasterrcnn_resnet50_fpn_v2',
      weights: join(v2dir, 'model.zip.pth'),
      minSize: 160,
      maxSize: 256,
    });
    try {
      let considered = 0;
      let matched = 0;
      for (const [k, { size }] of meta.images.entries()) {
        const [H, W] = size;
        const chw = get(`image.${k}`);
        const rgb = new Uint8Array(3 * H * W);
        for (let p = 0; p < H * W; p++)
          for (let c = 0; c < 3; c++) rgb[3 * p + c] = Math.round((chw[c * H * W + p] as number) * 255);
        const [got] = (await det.detect({ data: rgb, width: W, height: H })) as [DetectionResult];
        const w = { boxes: get(`boxes.${k}`), scores: get(`scores.${k}`), labels: get(`labels.${k}`) };
        const r = matchDetections(w, got, `v2 image ${SIZES[k]}`);
        considered += r.considered;
        matched += r.matched;
      }
      expect(matched / considered).toBeGreaterThanOrEqual(0.98);
    } finally {
      det.destroy();
    }
  }, 900_000);
});
