/**
 * 4-step alternating training (paper §3.2, spec §7):
 *   1. RPN (backbone + RPN) from the initial weights;
 *   2. Fast R-CNN (its own backbone + head), from the initial weights, on step-1 proposals;
 *   3. RPN initialised from the step-2 detector's backbone with the shared convs FIXED, fine-tuning
 *      the RPN layers (from step 1);
 *   4. Fast R-CNN with the shared convs fixed (step 2/3's), fine-tuning the head (from step 2) on
 *      step-3 proposals.
 * The result, one network: backbone (steps 2–4), RPN (step 3), head (step 4).
 * Proposals for steps 2 and 4 are computed once for every training image and its flip with the RPN of
 * step 1 / step 3 (PFR rpn_generate: test-time settings with 2000 kept), and fed as inputs; every stage
 * starts with fresh momentum (a new solver in PFR). Each stage is one compiled program, all on the GPU.
 */
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { decodeImage } from '../data/image.js';
import type { DetectionDataset } from '../data/types.js';
import { buildFrcnnTrunk } from '../models/frcnn/index.js';
import { PROPOSALS_TEST } from '../models/frcnn/rpn.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';
import { maybeFlip, prepareImage } from './feed.js';
import { type FrcnnRunConfig, modelOptions } from './frcnn-config.js';
import {
  FrcnnTrainer,
  type ProposalBank,
  type FrcnnTrainer as Trainer,
  type TrainRunOptions,
} from './frcnn-trainer.js';

export interface AlternatingOptions {
  /** Iterations of each step (default: config.iterations for each). */
  readonly iterations?: readonly [number, number, number, number];
  /** Proposals kept per image for the Fast R-CNN steps (PFR alt-opt: 2000). */
  readonly proposals?: number;
  readonly onStage?: (stage: number, what: string) => void;
  readonly run?: (stage: number) => Omit<TrainRunOptions, 'until'>;
  /** Initial weights of steps 1 and 2 (PFR: the ImageNet model; here e.g. crop pre-training). */
  readonly initFrom?: Session;
  /** Called when a step has trained (before its session may be destroyed). */
  readonly afterStage?: (stage: number, trainer: Trainer) => Promise<void> | void;
}

const notMomentum = (n: string) => !n.endsWith('.momentum');
const isRpn = (n: string) => n.startsWith('rpn.');
const isHead = (n: string) => /^(fc6|fc7|classifier\.|cls_score|bbox_pred)/.test(n);
const isBackbone = (n: string) => !isRpn(n) && !isHead(n);

/** Runs the RPN of `weights` on every training image and its flip. */
export async function generateProposals(
  config: FrcnnRunConfig,
  ds: DetectionDataset,
  weights: Session,
  keep: number,
): Promise<ProposalBank> {
  const dev = await getDevice();
  const limits = limitsFrom(dev.limits);
  const g = new GraphBuilder();
  const t = buildFrcnnTrunk(
    g,
    { ...modelOptions(config, limits), proposals: { ...config.proposalsTest, postNmsTopN: keep } },
    PROPOSALS_TEST,
  );
  const prog = compile(g, {
    outputs: { boxes: t.proposals.boxes, count: t.proposals.count },
    limits,
    name: `${config.model}-rpn-generate`,
  });
  const s = await Session.create(prog.spec, { gpu: dev });
  for (const p of prog.spec.persistent) s.write(p.name, (await weights.read(p.name)).data);
  const R = t.proposals.capacity;
  const store = new Map<string, { boxes: Float32Array; count: number }>();
  try {
    for (let i = 0; i < ds.samples.length; i++) {
      const img = await decodeImage((ds.samples[i] as DetectionDataset['samples'][number]).imagePath);
      for (const flip of config.flip ? [false, true] : [false]) {
        const p = prepareImage(maybeFlip(img, flip), config);
        const out = await s.run({ image: p.data, im_info: p.imInfo });
        store.set(`${i}:${flip}`, {
          boxes: Float32Array.from((out.boxes as HostTensor).data),
          count: (out.count as HostTensor).data[0] as number,
        });
      }
    }
  } finally {
    s.destroy();
  }
  return {
    capacity: R,
    get(index, flip) {
      const e = store.get(`${index}:${flip}`);
      if (!e) throw new Error(`no proposals for image ${index}${flip ? ' (flipped)' : ''}`);
      return e;
    },
  };
}

/** Runs the 4 steps; returns the final step-4 trainer (its session holds the whole detector's weights). */
export async function trainAlternating(
  config: FrcnnRunConfig,
  ds: DetectionDataset,
  opts: AlternatingOptions = {},
): Promise<{ final: Trainer; rpn: Trainer }> {
  const its = opts.iterations ?? [config.iterations, config.iterations, config.iterations, config.iterations];
  const keep = opts.proposals ?? 2000;
  const stage = (k: number) => ({
    iterations: its[k] as number,
    lr: { ...config.lr, steps: config.lr.steps.map((s) => Math.round((s / config.iterations) * (its[k] as number))) },
  });
  const say = opts.onStage ?? (() => {});

  say(1, 'RPN from the initial weights');
  const s1 = await FrcnnTrainer.create(config, ds, { mode: 'rpn', name: 'stage1-rpn', ...stage(0) });
  if (opts.initFrom) await s1.copyFrom(opts.initFrom, notMomentum);
  await s1.run(opts.run?.(1) ?? {});
  await opts.afterStage?.(1, s1);
  say(1, 'proposals of the step-1 RPN');
  const p1 = await generateProposals(config, ds, s1.session, keep);

  say(2, 'Fast R-CNN from the initial weights on step-1 proposals');
  const s2 = await FrcnnTrainer.create(config, ds, {
    mode: 'fast-rcnn',
    proposals: p1,
    name: 'stage2-fast-rcnn',
    ...stage(1),
  });
  if (opts.initFrom) await s2.copyFrom(opts.initFrom, notMomentum);
  await s2.run(opts.run?.(2) ?? {});
  await opts.afterStage?.(2, s2);

  say(3, 'RPN: backbone of step 2 fixed, RPN layers of step 1 fine-tuned');
  const s3 = await FrcnnTrainer.create(config, ds, {
    mode: 'rpn',
    freezeShared: true,
    name: 'stage3-rpn',
    ...stage(2),
  });
  await s3.copyFrom(s2.session, (n) => notMomentum(n) && isBackbone(n));
  await s3.copyFrom(s1.session, (n) => notMomentum(n) && isRpn(n));
  s1.destroy();
  await s3.run(opts.run?.(3) ?? {});
  await opts.afterStage?.(3, s3);
  say(3, 'proposals of the step-3 RPN');
  const p3 = await generateProposals(config, ds, s3.session, keep);

  say(4, 'Fast R-CNN: shared convs fixed, head of step 2 fine-tuned on step-3 proposals');
  const s4 = await FrcnnTrainer.create(config, ds, {
    mode: 'fast-rcnn',
    freezeShared: true,
    proposals: p3,
    name: 'stage4-fast-rcnn',
    ...stage(3),
  });
  await s4.copyFrom(s3.session, (n) => notMomentum(n) && isBackbone(n));
  await s4.copyFrom(s2.session, (n) => notMomentum(n) && !isBackbone(n));
  s2.destroy();
  await s4.run(opts.run?.(4) ?? {});
  await opts.afterStage?.(4, s4);
  return { final: s4, rpn: s3 };
}
