/**
 * `train()`: trains a Faster R-CNN on a dataset folder with the same defaults as `wgflow train` (the CLI
 * is a thin wrapper over it): the model's recipe, crop pre-training for frcnn-small, a checkpoint every
 * 500 iterations and at the end (written atomically, never over with non-finite weights), resume, the
 * three training modes, and a loss curve. Everything runs on the GPU.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WgflowError } from '../compiler/errors.js';
import { openDataset } from '../data/open.js';
import type { DetectionDataset } from '../data/types.js';
import { saveCheckpoint } from '../runtime/checkpoint.js';
import type { Session } from '../runtime/session.js';
import { type RunFailure, writeAfterRun } from './after-run.js';
import { trainAlternating } from './alternating.js';
import { readCheckpointConfig } from './checkpoint-config.js';
import type { FrcnnRunConfig } from './frcnn-config.js';
import { FrcnnDetector } from './frcnn-detector.js';
import { FrcnnTrainer, type IterationReport } from './frcnn-trainer.js';
import { pretrainOnCrops } from './pretrain.js';
import { defaultPretrainSteps, type RunConfigOptions, runConfigFor } from './run-config.js';

/** What {@link train} does when an option is left out (the CLI's defaults). */
export const TRAIN_DEFAULTS = {
  model: 'frcnn-small',
  split: 'train',
  out: './runs/train',
  checkpointEvery: 500,
  mode: 'approximate-joint',
} as const;

/** Options of {@link train}; every one has the default of the same `wgflow train` option. */
export interface TrainOptions extends RunConfigOptions {
  /**
   * A PASCAL VOC folder (Annotations/, JPEGImages/, ImageSets/Main/), the image folder of `coco`, or a
   * dataset already loaded (data/: `loadVoc`, `loadCoco`), whose VOC 'difficult' objects should have
   * been dropped (`difficult: 'drop'`) as PFR trains.
   */
  readonly dataset: string | DetectionDataset;
  /** VOC image set (default 'train'). */
  readonly split?: string;
  /** COCO instances JSON; its images are under `dataset`. */
  readonly coco?: string;
  /** Skip bad images or objects with a warning instead of stopping (default false). */
  readonly skipBad?: boolean;
  /** Crop-classification pre-training steps (default 400 for frcnn-small, 0 for ZF/VGG16; none on resume). */
  readonly pretrainSteps?: number;
  /** Continue from this checkpoint with its configuration (the same results as an uninterrupted run). */
  readonly resume?: string;
  /** Output folder for checkpoint.safetensors and loss.png (default './runs/train'). */
  readonly out?: string;
  /** Iterations between checkpoints (default 500; also written at the end). */
  readonly checkpointEvery?: number;
  /** Write loss.png (default true). */
  readonly lossCurve?: boolean;
  /** Informational lines (compiling, resumed, checkpoints, steps), e.g. `console.error`. Default: none. */
  readonly log?: (line: string) => void;
  /** After each pre-training step (0-based) of `steps`. */
  readonly onPretrainStep?: (step: number, steps: number, loss: number, accuracy: number) => void;
  /** After each training iteration; `stage` is 1..4 in alternating training, else undefined. */
  readonly onIteration?: (report: IterationReport, iterations: number, stage?: number) => void;
}

export interface TrainResult {
  /** The final checkpoint (loadDetector, `wgflow detect`, `wgflow compile --checkpoint` read it). */
  readonly checkpoint: string;
  /** loss.png, or null when none was written. */
  readonly lossCurve: string | null;
  /** The run's configuration (also stored in the checkpoint). */
  readonly config: FrcnnRunConfig;
  /** Mean loss terms of every 20 iterations (not in alternating training). */
  readonly losses: { readonly steps: readonly number[]; readonly series: Readonly<Record<string, readonly number[]>> };
}

/** The pre-training batch: 16 crops of 48×48 (the demo's). */
const PRETRAIN_BATCH = 16;
const PRETRAIN_SIZE = 48;
/** Iterations averaged into one loss-curve point. */
const CURVE_EVERY = 20;

async function datasetOf(o: TrainOptions): Promise<DetectionDataset> {
  if (typeof o.dataset !== 'string') return o.dataset;
  return openDataset({
    dataset: o.dataset,
    split: o.split ?? TRAIN_DEFAULTS.split,
    ...(o.coco !== undefined ? { coco: o.coco } : {}),
    ...(o.skipBad ? { skipBad: true } : {}),
    forTraining: true,
  });
}

async function resumedConfig(path: string, iters: number | undefined): Promise<FrcnnRunConfig> {
  const config = await readCheckpointConfig(path, '--resume');
  if (iters !== undefined && iters !== config.iterations)
    throw new WgflowError(
      `--resume: the checkpoint's run has ${config.iterations} iterations; --iters ${iters} would change its lr schedule`,
    );
  return config;
}

/**
 * Trains a Faster R-CNN (see {@link TrainOptions} for the defaults) and writes its checkpoint.
 *
 * @example
 * ```ts
 * import { train } from 'wgflow';
 * const { checkpoint } = await train({ dataset: 'data/shapes', iters: 2000, out: 'runs/shapes' });
 * ```
 */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const log = o.log ?? (() => {});
  const out = o.out ?? TRAIN_DEFAULTS.out;
  const every = o.checkpointEvery ?? TRAIN_DEFAULTS.checkpointEvery;
  if (!(Number.isInteger(every) && every >= 1))
    throw new WgflowError(`checkpointEvery must be a positive integer, got ${every}`);
  if (o.resume && o.mode === 'alternating')
    throw new WgflowError('--resume is not supported with --mode alternating (its 4 steps run in one go)');
  const ds = await datasetOf(o);
  const config = o.resume
    ? await resumedConfig(o.resume, o.iters)
    : runConfigFor({ ...o, model: o.model ?? TRAIN_DEFAULTS.model }, ds.classes.slice(1));
  await mkdir(out, { recursive: true });
  log(`compiling ${config.model} training step (canvas ${config.canvas.join('×')}) …`);
  const pretrainSteps = o.resume ? 0 : (o.pretrainSteps ?? defaultPretrainSteps(config.model));
  let pre: Awaited<ReturnType<typeof pretrainOnCrops>> | undefined;
  if (pretrainSteps > 0)
    pre = await pretrainOnCrops(config, ds, {
      steps: pretrainSteps,
      batch: PRETRAIN_BATCH,
      size: PRETRAIN_SIZE,
      ...(o.onPretrainStep
        ? { onStep: (i: number, l: number, acc: number) => o.onPretrainStep?.(i, pretrainSteps, l, acc) }
        : {}),
    });
  const ckpt = join(out, 'checkpoint.safetensors');
  if (o.mode !== 'alternating') return trainJointTo(ckpt, config, ds, o, pre?.session, every);
  try {
    await trainAlternatingTo(ckpt, config, ds, o, pre?.session);
  } finally {
    pre?.session.destroy();
  }
  return { checkpoint: ckpt, lossCurve: null, config, losses: { steps: [], series: {} } };
}

/** Approximate-joint or joint training, with checkpoints, resume and the loss curve; destroys `init`. */
async function trainJointTo(
  ckpt: string,
  config: FrcnnRunConfig,
  ds: DetectionDataset,
  o: TrainOptions,
  init: Session | undefined,
  every: number,
): Promise<TrainResult> {
  const log = o.log ?? (() => {});
  let trainer: FrcnnTrainer;
  try {
    // the pre-trained weights (all but the momentum) are the start; their session is freed then
    trainer = await FrcnnTrainer.create(config, ds);
    if (init) await trainer.copyFrom(init, (n) => !n.endsWith('.momentum'));
  } finally {
    init?.destroy();
  }
  if (o.resume) log(`resumed from ${o.resume} at iteration ${await trainer.resume(o.resume)}`);
  const series: Record<string, number[]> = {};
  const steps: number[] = [];
  const acc: Record<string, number> = {};
  let n = 0;
  let lossCurve: string | null = null;
  // the first error is the one reported: a failed loss-curve write after a failed run is only logged
  let failure: RunFailure;
  try {
    await trainer.run({
      checkpoint: { path: ckpt, every },
      onIteration: (r) => {
        for (const [k, v] of Object.entries(r.losses)) acc[k] = (acc[k] ?? 0) + v;
        n++;
        const done = r.iteration + 1;
        if (done % CURVE_EVERY === 0 || done === config.iterations) {
          for (const k of Object.keys(acc)) {
            const list = series[k] ?? [];
            list.push((acc[k] as number) / n);
            series[k] = list;
            acc[k] = 0;
          }
          steps.push(done);
          n = 0;
        }
        o.onIteration?.(r, config.iterations);
      },
      onCheckpoint: (p, it) => {
        if (it % (every * 10) === 0 || it === config.iterations) log(`checkpoint ${p} (iteration ${it})`);
      },
    });
  } catch (e) {
    failure = { error: e };
  }
  try {
    if (steps.length > 0 && (o.lossCurve ?? true)) {
      const path = join(o.out ?? TRAIN_DEFAULTS.out, 'loss.png');
      lossCurve = await writeAfterRun(
        failure,
        'loss curve',
        path,
        async () => {
          // loaded here only: the pictures need @napi-rs/canvas, which nothing else of train() does
          const { plotLossCurve } = await import('../viz/loss-curve.js');
          await writeFile(
            path,
            await plotLossCurve(
              Object.entries(series).map(([name, values]) => ({ name, values, steps })),
              { title: `${config.model}: training loss (mean of ${CURVE_EVERY} iterations)`, logY: true },
            ),
          );
        },
        log,
      );
    }
  } finally {
    trainer.destroy();
  }
  if (failure) throw failure.error;
  log(`done: ${ckpt}${lossCurve ? `, ${lossCurve}` : ''}`);
  return { checkpoint: ckpt, lossCurve, config, losses: { steps, series } };
}

/** 4-step alternating training; writes one checkpoint with the combined detector (no resume). */
async function trainAlternatingTo(
  ckpt: string,
  config: FrcnnRunConfig,
  ds: DetectionDataset,
  o: TrainOptions,
  init: Session | undefined,
): Promise<void> {
  const log = o.log ?? (() => {});
  const { final, rpn } = await trainAlternating(config, ds, {
    ...(init ? { initFrom: init } : {}),
    onStage: (k, what) => log(`step ${k}/4: ${what}`),
    run: (k) => ({ onIteration: (r) => o.onIteration?.(r, config.iterations, k) }),
  });
  const det = await FrcnnDetector.create(config);
  try {
    await det.copyWeightsFrom(final.session, rpn.session);
    await saveCheckpoint(
      det.session,
      ckpt,
      { iteration: 4 * config.iterations, config: { ...config, mode: 'approximate-joint' } },
      { requireFinite: true },
    );
    log(`done: ${ckpt} (the combined detector of the 4 steps: backbone of steps 2–4, RPN of step 3, head of step 4)`);
  } finally {
    det.destroy();
    final.destroy();
    rpn.destroy();
  }
}
