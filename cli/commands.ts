/** The train / detect / eval commands of the CLI (cli/wgflow.ts parses the arguments). */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { WgflowError } from '../compiler/errors.js';
import { resizeBilinear } from '../data/image.js';
import { BACKGROUND } from '../data/types.js';
import { formatCocoTable, formatVocTable } from '../eval/format.js';
import { saveCheckpoint } from '../runtime/checkpoint.js';
import { readSafetensors } from '../runtime/safetensors.js';
import type { Session } from '../runtime/session.js';
import { trainAlternating } from '../train/alternating.js';
import { DEMO_PRETRAIN_STEPS } from '../train/demo.js';
import { type FrcnnRunConfig, smallShapesConfig, vgg16VocConfig } from '../train/frcnn-config.js';
import { FrcnnDetector } from '../train/frcnn-detector.js';
import { FrcnnTrainer } from '../train/frcnn-trainer.js';
import { pretrainOnCrops } from '../train/pretrain.js';
import { drawDetections } from '../viz/draw-detections.js';
import { plotLossCurve } from '../viz/loss-curve.js';
import { openDataset } from './dataset.js';
import { Progress } from './progress.js';

export interface TrainArgs {
  readonly dataset: string;
  readonly model: string;
  readonly split: string;
  readonly coco?: string;
  readonly iters?: number;
  readonly lr?: number;
  readonly resume?: string;
  readonly out: string;
  readonly checkpointEvery: number;
  readonly canvas?: string;
  readonly mode?: string;
  readonly pooling?: string;
  readonly skipBad?: boolean;
  /** Crop-classification pre-training steps before detection training (default 400 for frcnn-small, else 0). */
  readonly pretrainSteps?: number;
}

function parseCanvas(s: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new WgflowError(`--canvas must be HxW (e.g. 128x160), got '${s}'`);
  return [Number(m[1]), Number(m[2])];
}

/** The options configFor reads (train's, and compile's for a model name). */
export type ConfigArgs = Pick<TrainArgs, 'model' | 'iters' | 'lr' | 'canvas' | 'mode' | 'pooling'>;

/** The run configuration for a model name and the command's options. */
export function configFor(a: ConfigArgs, classes: readonly string[]): FrcnnRunConfig {
  let c: FrcnnRunConfig;
  if (a.model === 'frcnn-small') {
    c = smallShapesConfig(classes, a.iters ?? 4000);
    if (a.canvas) {
      const [H, W] = parseCanvas(a.canvas);
      c = { ...c, canvas: [H, W], resize: { shortSide: Math.min(H, W), maxSize: Math.max(H, W) } };
    }
  } else if (a.model === 'frcnn-vgg16' || a.model === 'frcnn-zf') {
    c = { ...vgg16VocConfig(classes), model: a.model };
    if (a.iters !== undefined)
      c = { ...c, iterations: a.iters, lr: { ...c.lr, steps: [Math.round(a.iters * (5 / 7))] } };
    if (a.canvas) c = { ...c, canvas: parseCanvas(a.canvas) };
  } else throw new WgflowError(`unknown model '${a.model}' (known: frcnn-small, frcnn-zf, frcnn-vgg16)`);
  if (a.lr !== undefined) c = { ...c, lr: { ...c.lr, base: a.lr } };
  if (a.mode) {
    if (a.mode !== 'approximate-joint' && a.mode !== 'joint' && a.mode !== 'alternating')
      throw new WgflowError(`--mode must be approximate-joint, joint or alternating, got '${a.mode}'`);
    if (a.mode !== 'alternating') c = { ...c, mode: a.mode };
  }
  if (a.pooling) {
    if (a.pooling !== 'roi_pool' && a.pooling !== 'roi_align')
      throw new WgflowError(`--pooling must be roi_pool or roi_align, got '${a.pooling}'`);
    c = { ...c, pooling: a.pooling };
  }
  return c;
}

export async function trainCommand(a: TrainArgs): Promise<void> {
  const ds = await openDataset({ ...a, forTraining: true });
  let config = configFor(a, ds.classes.slice(1));
  if (a.resume && a.mode === 'alternating')
    throw new WgflowError('--resume is not supported with --mode alternating (its 4 steps run in one go)');
  if (a.resume) {
    // the run continues with the checkpoint's configuration (the same programs, data order and lr)
    const { metadata } = await readSafetensors(a.resume);
    if (!metadata.config) throw new WgflowError(`--resume ${a.resume}: the checkpoint has no training configuration`);
    config = JSON.parse(metadata.config) as FrcnnRunConfig;
    if (a.iters !== undefined && a.iters !== config.iterations)
      throw new WgflowError(
        `--resume: the checkpoint's run has ${config.iterations} iterations; --iters ${a.iters} would change its lr schedule`,
      );
  }
  await mkdir(a.out, { recursive: true });
  console.error(`compiling ${config.model} training step (canvas ${config.canvas.join('×')}) …`);
  const pretrainSteps = a.resume ? 0 : (a.pretrainSteps ?? (config.model === 'frcnn-small' ? DEMO_PRETRAIN_STEPS : 0));
  let pre: Awaited<ReturnType<typeof pretrainOnCrops>> | undefined;
  if (pretrainSteps > 0) {
    const pbar = new Progress('pretrain', pretrainSteps, 50);
    pre = await pretrainOnCrops(config, ds, {
      steps: pretrainSteps,
      batch: 16,
      size: 48,
      onStep: (i, l, acc) => pbar.update(i + 1, `loss ${l.toFixed(3)} crop accuracy ${acc.toFixed(2)}`),
    });
  }
  if (a.mode === 'alternating') {
    await alternatingCommand(config, ds, a, pre?.session);
    pre?.session.destroy();
    return;
  }
  const trainer = await FrcnnTrainer.create(config, ds);
  if (pre) {
    await trainer.copyFrom(pre.session, (n) => !n.endsWith('.momentum'));
    pre.session.destroy();
  }
  if (a.resume) console.error(`resumed from ${a.resume} at iteration ${await trainer.resume(a.resume)}`);
  const ckpt = join(a.out, 'checkpoint.safetensors');
  const bar = new Progress('train', config.iterations, 50);
  const curve: Record<string, number[]> = {};
  const steps: number[] = [];
  const acc: Record<string, number> = {};
  let n = 0;
  try {
    await trainer.run({
      checkpoint: { path: ckpt, every: a.checkpointEvery },
      onIteration: (r) => {
        for (const [k, v] of Object.entries(r.losses)) acc[k] = (acc[k] ?? 0) + v;
        n++;
        const done = r.iteration + 1;
        if (done % 20 === 0 || done === config.iterations) {
          for (const k of Object.keys(acc)) {
            const series = curve[k] ?? [];
            series.push((acc[k] as number) / n);
            curve[k] = series;
            acc[k] = 0;
          }
          steps.push(done);
          n = 0;
        }
        bar.update(
          done,
          `${Object.entries(r.losses)
            .map(([k, v]) => `${k.replace('_loss', '')} ${v.toFixed(3)}`)
            .join(' ')} lr ${r.lr.toPrecision(3)}`,
        );
      },
      onCheckpoint: (p, it) => {
        if (it % (a.checkpointEvery * 10) === 0 || it === config.iterations)
          console.error(`checkpoint ${p} (iteration ${it})`);
      },
    });
  } finally {
    if (steps.length > 0)
      await writeFile(
        join(a.out, 'loss.png'),
        await plotLossCurve(
          Object.entries(curve).map(([name, values]) => ({ name, values, steps })),
          { title: `${config.model}: training loss (mean of 20 iterations)`, logY: true },
        ),
      );
    trainer.destroy();
  }
  console.error(`done: ${ckpt}, ${join(a.out, 'loss.png')}`);
}

/** 4-step alternating training; writes one checkpoint with the combined detector (no resume). */
async function alternatingCommand(
  config: FrcnnRunConfig,
  ds: Awaited<ReturnType<typeof openDataset>>,
  a: TrainArgs,
  init: Session | undefined,
): Promise<void> {
  const { final, rpn } = await trainAlternating(config, ds, {
    ...(init ? { initFrom: init } : {}),
    onStage: (k, what) => console.error(`step ${k}/4: ${what}`),
    run: (k) => {
      const bar = new Progress(`step ${k}`, config.iterations, 50);
      return {
        onIteration: (r) =>
          bar.update(
            r.iteration + 1,
            Object.entries(r.losses)
              .map(([n, v]) => `${n.replace('_loss', '')} ${v.toFixed(3)}`)
              .join(' '),
          ),
      };
    },
  });
  const det = await FrcnnDetector.create(config);
  try {
    await det.copyWeightsFrom(final.session, rpn.session);
    const ckpt = join(a.out, 'checkpoint.safetensors');
    await saveCheckpoint(
      det.session,
      ckpt,
      { iteration: 4 * config.iterations, config: { ...config, mode: 'approximate-joint' } },
      { requireFinite: true },
    );
    console.error(
      `done: ${ckpt} (the combined detector of the 4 steps: backbone of steps 2–4, RPN of step 3, head of step 4)`,
    );
  } finally {
    det.destroy();
    final.destroy();
    rpn.destroy();
  }
}

async function detectorFor(checkpoint: string): Promise<FrcnnDetector> {
  const { metadata } = await readSafetensors(checkpoint);
  if (!metadata.config) throw new WgflowError(`${checkpoint}: not a wgflow training checkpoint (no configuration)`);
  const det = await FrcnnDetector.create(JSON.parse(metadata.config) as FrcnnRunConfig);
  await det.loadCheckpoint(checkpoint);
  return det;
}

export async function detectCommand(
  images: readonly string[],
  a: { checkpoint: string; out: string; score: number },
): Promise<void> {
  const det = await detectorFor(a.checkpoint);
  await mkdir(a.out, { recursive: true });
  const results: {
    image_id: number | string;
    file_name: string;
    category_id: number;
    bbox: number[];
    score: number;
  }[] = [];
  try {
    for (const [k, path] of images.entries()) {
      const { image, detections } = await det.detectFile(path);
      const stem = basename(path, extname(path));
      const id = /^\d+$/.test(stem) ? Number(stem) : k + 1;
      for (const d of detections)
        results.push({
          image_id: id,
          file_name: basename(path),
          category_id: d.label,
          bbox: [d.box[0], d.box[1], d.box[2] - d.box[0] + 1, d.box[3] - d.box[1] + 1],
          score: d.score,
        });
      const shown = detections.filter((d) => d.score >= a.score);
      // small images are drawn enlarged (integer factor) so the class names and scores stay readable
      const z = Math.max(1, Math.ceil(300 / Math.min(image.width, image.height)));
      const canvas = z === 1 ? image : resizeBilinear(image, image.height * z, image.width * z);
      const drawn = shown.map((d) => ({
        ...d,
        box: [d.box[0] * z, d.box[1] * z, (d.box[2] + 1) * z - 1, (d.box[3] + 1) * z - 1] as [
          number,
          number,
          number,
          number,
        ],
      }));
      await writeFile(
        join(a.out, `${stem}.png`),
        await drawDetections(canvas, drawn, [BACKGROUND, ...det.config.classes]),
      );
      console.error(
        `${path}: ${shown.length} detections ≥ ${a.score} (${detections.length} in all) → ${join(a.out, `${stem}.png`)}`,
      );
    }
  } finally {
    det.destroy();
  }
  await writeFile(join(a.out, 'detections.json'), `${JSON.stringify(results)}\n`);
  console.error(`COCO results: ${join(a.out, 'detections.json')}`);
}

export async function evalCommand(a: {
  dataset: string;
  checkpoint: string;
  split: string;
  coco?: string;
  skipBad?: boolean;
}): Promise<void> {
  const ds = await openDataset({ ...a, forTraining: false });
  const det = await detectorFor(a.checkpoint);
  const bar = new Progress('eval', ds.samples.length, 25);
  try {
    const ev = await det.evaluate(ds, (done) => bar.update(done));
    console.log(formatVocTable(ev.voc));
    console.log();
    console.log(formatVocTable(ev.voc07));
    console.log();
    console.log(formatCocoTable(ev.coco));
  } finally {
    det.destroy();
  }
}
