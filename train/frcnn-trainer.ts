/**
 * Trains a Faster R-CNN on a detection dataset: one compiled training step (everything on the GPU)
 * fed one image per iteration; the step lr policy; a deterministic data order (a function of the
 * iteration, see models/frcnn/schedule.ts); periodic atomic checkpoints (params, momentum, iteration,
 * config); resume; and a stop with a clear error on a non-finite loss term (the last checkpoint is
 * never overwritten by a broken state).
 *
 * Resuming from the checkpoint of iteration k replays iterations k, k+1, … with the same images,
 * flips, sampling seeds and lr as the uninterrupted run, from the same parameters and momentum, so the
 * results are bitwise equal when the device is deterministic (lavapipe is; no float atomics anywhere).
 */
import { compile } from '../compiler/compile.js';
import { WgflowError } from '../compiler/errors.js';
import { type DeviceLimits, limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { decodeImage, type RgbImage } from '../data/image.js';
import type { DetectionDataset } from '../data/types.js';
import { checkFinite, learningRateAt, visitAt } from '../models/frcnn/schedule.js';
import { buildFrcnnTraining, type FrcnnTrainingMode } from '../models/frcnn/train.js';
import { checkpointWeightBound, loadCheckpoint, saveCheckpoint, sessionMaxAbsWeight } from '../runtime/checkpoint.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';
import { checkSampleSize, gtFeeds, maybeFlip, prepareImage } from './feed.js';
import { type FrcnnRunConfig, trainingOptions, validateConfig } from './frcnn-config.js';

export interface IterationReport {
  /** 0-based iteration just done. */
  readonly iteration: number;
  readonly lr: number;
  /** Loss terms of this iteration (rpn_cls_loss, rpn_bbox_loss, cls_loss, bbox_loss, loss). */
  readonly losses: Readonly<Record<string, number>>;
  /** fg_anchors, sampled_anchors, fg_rois, sampled_rois of this iteration (sampled counts). */
  readonly diagnostics: Readonly<Record<string, number>>;
  readonly ms: number;
}

/** Precomputed proposals per (image, flip) for 'fast-rcnn' stages (alternating training). */
export interface ProposalBank {
  /** R, the capacity of every entry. */
  readonly capacity: number;
  get(index: number, flip: boolean): { readonly boxes: Float32Array; readonly count: number };
}

export interface TrainerStageOptions {
  /** Cache decoded images in memory (default true). */
  readonly cacheImages?: boolean;
  /** Train another net than config.mode's (alternating training's stages). */
  readonly mode?: FrcnnTrainingMode;
  /** Keep the backbone fixed (alternating steps 3 and 4). */
  readonly freezeShared?: boolean;
  /** 'fast-rcnn' mode: where the proposals come from. */
  readonly proposals?: ProposalBank;
  /** Iterations of this stage and their lr schedule (default: the config's). */
  readonly iterations?: number;
  readonly lr?: FrcnnRunConfig['lr'];
  /** Program name suffix (e.g. 'stage1-rpn'). */
  readonly name?: string;
}

export interface TrainRunOptions {
  /** Stop after this iteration count (default config.iterations). */
  readonly until?: number;
  /** Checkpoint file (written atomically) and interval in iterations (also at the end). */
  readonly checkpoint?: { readonly path: string; readonly every: number };
  readonly onIteration?: (r: IterationReport) => void;
  /** Called when a checkpoint has been written. */
  readonly onCheckpoint?: (path: string, iteration: number) => void;
}

export class FrcnnTrainer {
  /** Iterations done (the next one to run). */
  iteration = 0;
  private lastCheckpoint: string | undefined;
  /** Largest |w| of the parameters at the last checkpoint (or at the start): bounds the next one. */
  private lastMaxAbs: number | undefined;
  private readonly images = new Map<number, RgbImage>();

  private constructor(
    readonly config: FrcnnRunConfig,
    readonly dataset: DetectionDataset,
    readonly session: Session,
    readonly lossNames: readonly string[],
    readonly diagnosticNames: readonly string[],
    readonly lrInput: string,
    readonly limits: DeviceLimits,
    private readonly cacheImages: boolean,
    readonly stage: TrainerStageOptions,
  ) {}

  get iterations(): number {
    return this.stage.iterations ?? this.config.iterations;
  }

  get schedule(): FrcnnRunConfig['lr'] {
    return this.stage.lr ?? this.config.lr;
  }

  /** Compiles the training step for the config (one program: the canvas is fixed). */
  static async create(
    config: FrcnnRunConfig,
    dataset: DetectionDataset,
    opts: TrainerStageOptions = {},
  ): Promise<FrcnnTrainer> {
    validateConfig(config);
    if (dataset.samples.length === 0) throw new WgflowError('train: the dataset has no images');
    const K = dataset.classes.length - 1;
    if (K !== config.classes.length)
      throw new WgflowError(`train: the dataset has ${K} classes, the config ${config.classes.length}`);
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const mode = opts.mode ?? config.mode;
    if (mode === 'fast-rcnn' && !opts.proposals)
      throw new WgflowError("train: a 'fast-rcnn' stage needs precomputed proposals");
    const m = buildFrcnnTraining(g, {
      ...trainingOptions(config, limits),
      mode,
      ...(opts.freezeShared ? { freezeShared: true } : {}),
      ...(opts.proposals ? { proposalCapacity: opts.proposals.capacity } : {}),
    });
    const prog = compile(g, {
      outputs: { ...m.outputs, ...m.diagnostics },
      updates: m.updates,
      limits,
      name: `${config.model}-train${opts.name ? `-${opts.name}` : ''}`,
      seed: config.seed,
    });
    const session = await Session.create(prog.spec, { gpu: dev });
    return new FrcnnTrainer(
      config,
      dataset,
      session,
      Object.keys(m.outputs),
      Object.keys(m.diagnostics),
      m.lrInput,
      limits,
      opts.cacheImages ?? true,
      opts,
    );
  }

  private async image(index: number): Promise<RgbImage> {
    const hit = this.images.get(index);
    if (hit) return hit;
    const s = this.dataset.samples[index];
    if (!s) throw new WgflowError(`train: no sample ${index}`);
    const img = await decodeImage(s.imagePath);
    checkSampleSize(s, img);
    if (this.cacheImages) this.images.set(index, img);
    return img;
  }

  /**
   * The feeds of iteration `it` (a pure function of it, the config and the dataset): the B =
   * imagesPerBatch images at positions it·B … it·B + B − 1 of the epoch order, stacked.
   */
  async feedsAt(it: number): Promise<Record<string, ArrayLike<number>>> {
    const c = this.config;
    const B = c.imagesPerBatch ?? 1;
    const bank = this.stage.proposals;
    const parts: Record<string, ArrayLike<number>>[] = [];
    for (let j = 0; j < B; j++) {
      const v = visitAt(it * B + j, this.dataset.samples.length, c.seed, c.flip);
      const sample = this.dataset.samples[v.index];
      if (!sample) throw new WgflowError(`train: no sample ${v.index}`);
      const prepared = prepareImage(maybeFlip(await this.image(v.index), v.flip), c);
      const gt = gtFeeds(sample, prepared.scale, c.maxGt, { flip: v.flip, convention: this.dataset.boxConvention });
      const props = bank ? bank.get(v.index, v.flip) : undefined;
      parts.push({
        ...(props ? { proposals: props.boxes, proposal_count: [props.count] } : {}),
        image: prepared.data,
        im_info: prepared.imInfo,
        gt_boxes: gt.gt_boxes,
        gt_labels: gt.gt_labels,
        gt_count: gt.gt_count,
      });
    }
    const all: Record<string, ArrayLike<number>> = {
      ...(B === 1 ? parts[0] : stackFeeds(parts)),
      seed: [(c.seed * 1_000_003 + it + 1) >>> 0],
      [this.lrInput]: [learningRateAt(this.schedule, it)],
    };
    // a stage's graph may not use every input (e.g. the RPN stage has no gt_labels)
    const wanted = new Set(this.session.spec.inputs.map((i) => i.name));
    return Object.fromEntries(Object.entries(all).filter(([k]) => wanted.has(k)));
  }

  /** Runs iterations from this.iteration up to `until`; checkpoints as asked. */
  async run(opts: TrainRunOptions = {}): Promise<void> {
    const until = opts.until ?? this.iterations;
    const ck = opts.checkpoint;
    if (ck && this.lastMaxAbs === undefined) this.lastMaxAbs = await sessionMaxAbsWeight(this.session);
    let next = this.feedsAt(this.iteration);
    while (this.iteration < until) {
      const it = this.iteration;
      const t0 = performance.now();
      const feeds = await next;
      const pending = this.session.run(feeds, { outputs: [...this.lossNames, ...this.diagnosticNames] });
      // decode the next image while the GPU works
      if (it + 1 < until) next = this.feedsAt(it + 1);
      const out = await pending;
      const losses: Record<string, number> = {};
      for (const n of this.lossNames) losses[n] = (out[n] as HostTensor).data[0] as number;
      checkFinite(it, losses, this.lastCheckpoint);
      const diagnostics: Record<string, number> = {};
      for (const n of this.diagnosticNames) diagnostics[n] = (out[n] as HostTensor).data[0] as number;
      this.iteration = it + 1;
      opts.onIteration?.({
        iteration: it,
        lr: learningRateAt(this.schedule, it),
        losses,
        diagnostics,
        ms: performance.now() - t0,
      });
      if (ck && (this.iteration % ck.every === 0 || this.iteration === until)) await this.save(ck.path, opts);
    }
  }

  /**
   * Writes the checkpoint, only when it passes the checks: finite weights and state, and parameters not
   * exploded (runtime/checkpoint.ts checkpointWeightBound: max |w| ≤ 1000 × the previous checkpoint's,
   * at least 1, and ≤ 1e6); otherwise the previous file stays and a WgflowError says so.
   */
  async save(path: string, opts: Pick<TrainRunOptions, 'onCheckpoint'> = {}): Promise<void> {
    const saved = await saveCheckpoint(
      this.session,
      path,
      {
        iteration: this.iteration,
        rngState: { seed: this.config.seed, nextIteration: this.iteration },
        config: this.config,
      },
      // a diverged update can leave NaN weights behind a finite loss: never overwrite a good file with them
      { requireFinite: true, maxAbsWeight: checkpointWeightBound(this.lastMaxAbs) },
    );
    this.lastMaxAbs = saved.maxAbsWeight;
    this.lastCheckpoint = `${path} (iteration ${this.iteration})`;
    opts.onCheckpoint?.(path, this.iteration);
  }

  /** Loads params, momentum and the iteration; the checkpoint's config must equal this one. */
  async resume(path: string): Promise<number> {
    const ck = await loadCheckpoint(this.session, path);
    if (JSON.stringify(ck.config) !== JSON.stringify(this.config))
      throw new WgflowError(
        `resume ${path}: the checkpoint was made with a different configuration; resume with the same settings (or start a new run)`,
      );
    this.iteration = ck.iteration;
    this.lastCheckpoint = `${path} (iteration ${ck.iteration})`;
    this.lastMaxAbs = await sessionMaxAbsWeight(this.session);
    return ck.iteration;
  }

  /** Copies every persistent tensor whose name the other session also has (weights between stages). */
  async copyFrom(src: Session, filter: (name: string) => boolean = () => true): Promise<string[]> {
    const have = new Set(src.spec.persistent.map((p) => p.name));
    const copied: string[] = [];
    for (const p of this.session.spec.persistent) {
      if (!have.has(p.name) || !filter(p.name)) continue;
      this.session.write(p.name, (await src.read(p.name)).data);
      copied.push(p.name);
    }
    return copied;
  }

  destroy(): void {
    this.session.destroy();
  }
}

/** Per-image feeds concatenated name by name (the images of one step, image-major). */
function stackFeeds(parts: readonly Record<string, ArrayLike<number>>[]): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const name of Object.keys(parts[0] ?? {})) {
    const each = parts.map((p) => p[name] as ArrayLike<number>);
    const data = new Float32Array(each.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of each) {
      data.set(a, at);
      at += a.length;
    }
    out[name] = data;
  }
  return out;
}
