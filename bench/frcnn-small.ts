/**
 * The frcnn-small suite (the shapes demo's model and settings, train/frcnn-config.ts smallShapesConfig):
 * - inference of one 128×160 image, compiled for it and as one program for every batch B ≤ 4 and size
 *   H ≤ 160, W ≤ 200, with the ratio of their minima;
 * - one training step at 128×160 with batches of 1, 2 and 4 images, as images/s: compiled for each batch,
 *   and as the one program for every batch B ≤ 4 and size, with the ratio of their minima.
 * Feeds are real-shaped: im_info (H, W, 1) per image, three gt boxes per image inside it.
 */
import type { Dim } from '../compiler/dims.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder, getDevice, type Tensor } from '../index.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { buildFrcnnTraining } from '../models/frcnn/train.js';
import { inferenceOptions, smallShapesConfig, trainingOptions } from '../train/frcnn-config.js';
import { type BenchRow, type TimeOptions, timeGraph } from './harness.js';

const H = 128;
const W = 160;
/** Bounds of the one-program-for-every-size rows (the pre-NMS count of 1000 needs H, W ≥ 96). */
const BOUNDS = { H: { min: 96, max: 160 }, W: { min: 96, max: 200 } };
const MAX_BATCH = 4;

interface Sizes {
  readonly canvas: readonly [Dim, Dim];
  readonly images: Dim;
}
const CLASSES = ['circle', 'square', 'triangle', 'star', 'cross', 'diamond'];

/** Uniform [0, 1) pixels, deterministic. */
function pixels(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  });
}

function inferenceFeeds(): Record<string, number[]> {
  return { image: pixels(3 * H * W, 5), im_info: [H, W, 1] };
}

function trainingFeeds(B: number, G: number): Record<string, number[]> {
  const box = (k: number): number[] => [8 + 9 * k, 10 + 7 * k, 50 + 11 * k, 60 + 5 * k];
  const gt: number[] = [];
  const labels: number[] = [];
  for (let b = 0; b < B; b++)
    for (let j = 0; j < G; j++) {
      gt.push(...(j < 3 ? box(j + b) : [0, 0, 1, 1]));
      labels.push(1 + ((j + b) % CLASSES.length));
    }
  return {
    image: pixels(B * 3 * H * W, 7 + B),
    im_info: Array.from({ length: B }, () => [H, W, 1]).flat(),
    gt_boxes: gt,
    gt_labels: labels,
    gt_count: new Array<number>(B).fill(3),
    seed: [11],
    lr: [0.001],
  };
}

export async function frcnnSmallSuite(
  opts: TimeOptions = {},
  log: (s: string) => void = () => {},
): Promise<BenchRow[]> {
  const dev = await getDevice();
  const limits = limitsFrom(dev.limits);
  const config = smallShapesConfig(CLASSES, 1000);
  const G = config.maxGt;
  const rows: BenchRow[] = [];
  const push = (r: BenchRow): BenchRow => {
    rows.push(r);
    log(`${r.workload}: ${r.medianMs.toFixed(1)} ms${r.note ? ` (${r.note})` : ''}`);
    return r;
  };
  const polyLabel = `one program for B <= ${MAX_BATCH}, H ${BOUNDS.H.min}-${BOUNDS.H.max}, W ${BOUNDS.W.min}-${BOUNDS.W.max}`;
  /** Canvas and image count: exact numbers, or the run-time sizes of the one program. */
  const exact = (B: number) => (): Sizes => ({ canvas: [H, W], images: B });
  const poly = (g: GraphBuilder): Sizes => ({
    canvas: [g.dim('H', BOUNDS.H), g.dim('W', BOUNDS.W)],
    images: g.dim('B', { max: MAX_BATCH }),
  });
  const ratio = (r: BenchRow, base: BenchRow) => `${(r.minMs / base.minMs).toFixed(2)}x the exact program (minima)`;

  // inference of one image: exact canvas vs the one program
  const inference = (sizes: (g: GraphBuilder) => Sizes) => (g: GraphBuilder) =>
    buildFrcnnInference(g, { ...inferenceOptions(config, limits), ...sizes(g) }).outputs;
  const feeds = inferenceFeeds();
  const fixed = push(
    await timeGraph('frcnn-small', `inference ${H}x${W}, compiled for it`, 0, inference(exact(1)), new GraphBuilder(), {
      ...opts,
      feeds,
    }),
  );
  const polyInf = await timeGraph(
    'frcnn-small',
    `inference ${H}x${W}, ${polyLabel}`,
    0,
    inference(poly),
    new GraphBuilder(),
    {
      ...opts,
      feeds,
      shapes: { image: [1, 3, H, W], im_info: [1, 3] },
    },
  );
  push({ ...polyInf, note: ratio(polyInf, fixed) });

  // training steps of 1, 2 and 4 images: a program compiled for each, and the one program
  const training = (sizes: (g: GraphBuilder) => Sizes) => (g: GraphBuilder) => {
    const m = buildFrcnnTraining(g, { ...trainingOptions(config, limits), ...sizes(g) });
    return { outs: { loss: m.outputs.loss as Tensor }, updates: m.updates };
  };
  const throughput = (B: number, r: BenchRow) => `${((1000 * B) / r.medianMs).toFixed(2)} images/s`;
  for (const B of [1, 2, 4]) {
    const f = trainingFeeds(B, G);
    const r = await timeGraph(
      'frcnn-small',
      `training step ${H}x${W}, batch ${B}, compiled for it`,
      0,
      training(exact(B)),
      new GraphBuilder(),
      { ...opts, feeds: f },
    );
    push({ ...r, note: throughput(B, r) });
    const p = await timeGraph(
      'frcnn-small',
      `training step ${H}x${W}, batch ${B}, ${polyLabel}`,
      0,
      training(poly),
      new GraphBuilder(),
      {
        ...opts,
        feeds: f,
        shapes: { image: [B, 3, H, W], im_info: [B, 3], gt_boxes: [B, G, 4], gt_labels: [B, G], gt_count: [B, 1] },
      },
    );
    push({ ...p, note: `${throughput(B, p)}; ${ratio(p, r)}` });
  }
  return rows;
}
