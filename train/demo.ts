/**
 * The main job: generates the synthetic shapes dataset (if absent), trains the small Faster R-CNN end
 * to end on the GPU (lavapipe here), evaluates it on the held-out split (VOC and COCO metrics), and
 * writes detection pictures and the loss curve.
 *
 *   npm run demo   (= wgflow demo [--iters N] [--lr 0.02] [--images 1200] [--data DIR] [--out DIR]
 *                    [--mode approximate-joint|joint] [--pooling roi_pool|roi_align] [--log-every 100])
 *
 * Output under --out (default ./demo-out): checkpoint.safetensors (every 500 iterations and at the
 * end), detections/*.png (the first 8 test images with boxes, class names and scores), loss.png,
 * results.json (metrics, timings, config).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import '../ops/index.js';
import { resizeBilinear } from '../data/image.js';
import { generateShapesDataset, SHAPE_CLASSES } from '../data/shapes.js';
import { loadVoc } from '../data/voc.js';
import { formatVocTable } from '../eval/format.js';
import { evaluate } from './evaluate.js';
import { type FrcnnRunConfig, smallShapesConfig } from './frcnn-config.js';
import { FrcnnDetector } from './frcnn-detector.js';
import { FrcnnTrainer } from './frcnn-trainer.js';
import { pretrainOnCrops } from './pretrain.js';
import { SMALL_PRETRAIN_STEPS } from './run-config.js';

/** Iterations of the demo's training (measured: see README). */
export const DEMO_ITERATIONS = 3000;
/** Crop-classification pre-training steps (16 crops of 48×48 each). */
export const DEMO_PRETRAIN_STEPS = SMALL_PRETRAIN_STEPS;

import { drawDetections } from '../viz/draw-detections.js';
import { plotLossCurve } from '../viz/loss-curve.js';

export interface DemoOptions {
  readonly iterations?: number;
  readonly images?: number;
  readonly data?: string;
  readonly out?: string;
  readonly logEvery?: number;
  readonly maxObjects?: number;
  readonly lr?: number;
  readonly mode?: FrcnnRunConfig['mode'];
  readonly pooling?: FrcnnRunConfig['pooling'];
  /** Classification pre-training steps on object crops before detection training (0: none). */
  readonly pretrainSteps?: number;
  /** Held-out fraction of the generated images (default 0.2). */
  readonly testFraction?: number;
}

export interface DemoResult {
  readonly vocMap: number;
  readonly voc07Map: number;
  readonly cocoAp: number;
  readonly trainSeconds: number;
  readonly totalSeconds: number;
}

/** The whole demo (see the file comment). */
export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const iters = o.iterations ?? DEMO_ITERATIONS;
  const count = o.images ?? 1200;
  const dataDir = o.data ?? './data-cache/shapes';
  const outDir = o.out ?? './demo-out';
  const logEvery = o.logEvery ?? 100;
  const maxObjects = o.maxObjects ?? 4;

  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1);
  const settings = JSON.stringify({ count, seed: 1, size: [128, 160], maxObjects, test: o.testFraction ?? 0.2 });
  const marker = join(dataDir, 'demo-dataset.json');
  if (existsSync(join(dataDir, 'labels.txt'))) {
    const made = existsSync(marker) ? readFileSync(marker, 'utf8').trim() : undefined;
    if (made !== settings)
      console.warn(
        `note: ${dataDir} was not generated with this demo's settings ${settings}` +
          `${made ? ` (it has ${made})` : ''}; using it as it is (pass --data DIR for a fresh set)`,
      );
  } else {
    console.log(`generating ${count} shapes images (128×160, 1–${maxObjects} objects) under ${dataDir}`);
    await generateShapesDataset(dataDir, {
      count,
      seed: 1,
      size: { width: 160, height: 128 },
      maxObjects,
      imageFormat: 'png',
      splits: { train: 1 - (o.testFraction ?? 0.2), test: o.testFraction ?? 0.2 },
      onProgress: (done, total) => {
        if (done % 200 === 0 || done === total) console.log(`  ${done}/${total} images (${secs()} s)`);
      },
    });
    await writeFile(marker, `${settings}\n`);
  }
  const train = await loadVoc(dataDir, { split: 'train', difficult: 'drop', imageExt: '.png' });
  const test = await loadVoc(dataDir, { split: 'test', imageExt: '.png' });
  const classes = train.classes.slice(1);
  console.log(
    `data: ${train.samples.length} train, ${test.samples.length} test images, classes ${classes.join(', ')} (${secs()} s)`,
  );
  if (classes.some((c) => !(SHAPE_CLASSES as readonly string[]).includes(c)))
    console.warn(`note: ${dataDir} has classes that the shapes generator does not make`);

  const base = smallShapesConfig(classes, iters);
  const config: FrcnnRunConfig = {
    ...base,
    lr: { ...base.lr, base: o.lr ?? base.lr.base },
    mode: o.mode ?? base.mode,
    pooling: o.pooling ?? base.pooling,
    maxGt: Math.max(maxObjects, 1),
  };
  await mkdir(join(outDir, 'detections'), { recursive: true });
  const pretrainSteps = o.pretrainSteps ?? DEMO_PRETRAIN_STEPS;
  let pre: Awaited<ReturnType<typeof pretrainOnCrops>> | undefined;
  if (pretrainSteps > 0) {
    let acc = 0;
    let loss = 0;
    let k = 0;
    pre = await pretrainOnCrops(config, train, {
      steps: pretrainSteps,
      batch: 16,
      size: 48,
      onStep: (i, l, a) => {
        acc += a;
        loss += l;
        k++;
        if ((i + 1) % 100 === 0 || i + 1 === pretrainSteps) {
          console.log(
            `pretrain ${i + 1}/${pretrainSteps}  loss ${(loss / k).toFixed(3)}  crop accuracy ${(acc / k).toFixed(3)}  (${secs()} s)`,
          );
          acc = 0;
          loss = 0;
          k = 0;
        }
      },
    });
    console.log(`pre-trained backbone + head on ${pre.crops} object/background crops in ${pre.seconds.toFixed(1)} s`);
  }
  const trainer = await FrcnnTrainer.create(config, train);
  if (pre) {
    await trainer.copyFrom(pre.session, (n) => !n.endsWith('.momentum'));
    pre.session.destroy();
  }
  console.log(
    `compiled the training step: ${trainer.session.spec.stats.dispatches} dispatches (${secs()} s; the first ` +
      'steps also compile shaders unless Mesa has them cached)',
  );
  const logged: Record<string, number[]> = {};
  const steps: number[] = [];
  const window: Record<string, number> = {};
  let inWindow = 0;
  const tTrain = performance.now();
  await trainer.run({
    checkpoint: { path: join(outDir, 'checkpoint.safetensors'), every: 500 },
    onIteration: (r) => {
      for (const [k, v] of Object.entries({ ...r.losses, ...r.diagnostics })) window[k] = (window[k] ?? 0) + v;
      inWindow++;
      const done = r.iteration + 1;
      if (done % logEvery === 0 || done === iters) {
        const avg = Object.fromEntries(Object.entries(window).map(([k, v]) => [k, v / inWindow]));
        for (const k of trainer.lossNames) {
          const series = logged[k] ?? [];
          series.push(avg[k] as number);
          logged[k] = series;
        }
        steps.push(done);
        const el = (performance.now() - tTrain) / 1000;
        const eta = (el / done) * (iters - done);
        console.log(
          `iter ${done}/${iters}  ${trainer.lossNames.map((k) => `${k} ${(avg[k] as number).toFixed(4)}`).join('  ')}  ` +
            `fg rois ${(avg.fg_rois ?? 0).toFixed(1)}  lr ${r.lr.toPrecision(3)}  ${((1000 * el) / done).toFixed(0)} ms/it  ETA ${eta.toFixed(0)} s`,
        );
        for (const k of Object.keys(window)) window[k] = 0;
        inWindow = 0;
      }
    },
  });
  const trainSec = (performance.now() - tTrain) / 1000;

  const detector = await FrcnnDetector.create(config);
  await detector.copyWeightsFrom(trainer.session);
  trainer.destroy();
  const tEval = performance.now();
  const ev = await evaluate(detector, test, {
    onImage: (done, total) => {
      if (done % 60 === 0 || done === total) console.log(`evaluating: ${done}/${total} test images (${secs()} s)`);
    },
  });
  const evalSec = (performance.now() - tEval) / 1000;
  console.log(formatVocTable(ev.voc));
  const coco = ev.coco.stats;
  console.log(
    `COCO AP@[.5:.95] ${(100 * (coco[0] as number)).toFixed(1)}  AP50 ${(100 * (coco[1] as number)).toFixed(1)}  AP75 ${(100 * (coco[2] as number)).toFixed(1)}`,
  );
  for (let k = 0; k < Math.min(8, test.samples.length); k++) {
    const s = test.samples[k]!;
    const { image, detections } = await detector.detectFile(s.imagePath);
    // drawn at 3× so the class names and scores are readable on 128×160 images
    const Z = 3;
    const big = resizeBilinear(image, image.height * Z, image.width * Z);
    const scaled = detections
      .filter((d) => d.score >= 0.5)
      .map((d) => ({
        ...d,
        box: [d.box[0] * Z, d.box[1] * Z, (d.box[2] + 1) * Z - 1, (d.box[3] + 1) * Z - 1] as [
          number,
          number,
          number,
          number,
        ],
      }));
    const png = await drawDetections(big, scaled, train.classes); // index 0 is the background
    await writeFile(join(outDir, 'detections', `${s.id}.png`), png);
  }
  await writeFile(
    join(outDir, 'loss.png'),
    await plotLossCurve(
      Object.entries(logged).map(([name, values]) => ({ name, values, steps })),
      { title: `frcnn-small on shapes: training loss (mean of ${logEvery} iterations)`, logY: true },
    ),
  );
  const summary = {
    vocMap: ev.voc.map,
    voc07Map: ev.voc07.map,
    cocoAp: coco[0],
    cocoAp50: coco[1],
    iterations: iters,
    trainSeconds: trainSec,
    msPerIteration: (1000 * trainSec) / iters,
    evalSecondsPerImage: evalSec / test.samples.length,
    totalSeconds: (performance.now() - t0) / 1000,
    config,
  };
  await writeFile(join(outDir, 'results.json'), `${JSON.stringify(summary, null, 2)}\n`);
  console.log(
    `frcnn-small: ${iters} iterations in ${trainSec.toFixed(1)} s (${summary.msPerIteration.toFixed(0)} ms/iter), ` +
      `VOC mAP@0.5 ${(100 * ev.voc.map).toFixed(1)} % (11-point ${(100 * ev.voc07.map).toFixed(1)} %) on ${test.samples.length} held-out images; ` +
      `total ${secs()} s. Pictures: ${join(outDir, 'detections')}/, ${join(outDir, 'loss.png')}`,
  );
  detector.destroy();
  return summary as DemoResult;
}
