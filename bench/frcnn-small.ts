/**
 * The frcnn-small suite (the shapes demo's model and settings, train/frcnn-config.ts smallShapesConfig):
 * - inference at 128×160, compiled for that canvas and as one program for every H ≤ 160, W ≤ 200 (run at
 *   128×160), with the ratio of their minima;
 * - one training step at 128×160 with batches of 1, 2 and 4 images (a program per batch size: a run-time
 *   image count is not supported yet), as images/s, and the one-program-for-every-size step at batch 1.
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
  const rows: BenchRow[] = [];
  const push = (r: BenchRow): BenchRow => {
    rows.push(r);
    log(`${r.workload}: ${r.medianMs.toFixed(1)} ms${r.note ? ` (${r.note})` : ''}`);
    return r;
  };
  const sizes = (g: GraphBuilder): readonly [Dim, Dim] => [g.dim('H', BOUNDS.H), g.dim('W', BOUNDS.W)];
  const inferenceOf = (canvas: (g: GraphBuilder) => readonly [Dim, Dim]) => (g: GraphBuilder) =>
    buildFrcnnInference(g, { ...inferenceOptions(config, limits), canvas: canvas(g) }).outputs;

  // inference: exact canvas vs one program for every size
  const feeds = inferenceFeeds();
  const fixed = push(
    await timeGraph(
      'frcnn-small',
      `inference ${H}x${W}, compiled for ${H}x${W}`,
      0,
      inferenceOf(() => [H, W]),
      new GraphBuilder(),
      { ...opts, feeds },
    ),
  );
  const polyInf = await timeGraph(
    'frcnn-small',
    `inference ${H}x${W}, one program for H ${BOUNDS.H.min}-${BOUNDS.H.max}, W ${BOUNDS.W.min}-${BOUNDS.W.max}`,
    0,
    inferenceOf(sizes),
    new GraphBuilder(),
    { ...opts, feeds, shapes: { image: [1, 3, H, W] } },
  );
  push({ ...polyInf, note: `${(polyInf.minMs / fixed.minMs).toFixed(2)}x the exact program (minima)` });

  // training: batches of 1, 2, 4 (a program each) and the one program for every size at batch 1
  const training = (B: number, canvas: (g: GraphBuilder) => readonly [Dim, Dim]) => (g: GraphBuilder) => {
    const m = buildFrcnnTraining(g, { ...trainingOptions(config, limits), canvas: canvas(g), images: B });
    const outs: Record<string, Tensor> = { loss: m.outputs.loss as Tensor };
    return { outs, updates: m.updates };
  };
  let batch1 = 0;
  for (const B of [1, 2, 4]) {
    const r = await timeGraph(
      'frcnn-small',
      `training step ${H}x${W}, batch ${B}`,
      0,
      training(B, () => [H, W]),
      new GraphBuilder(),
      { ...opts, feeds: trainingFeeds(B, config.maxGt) },
    );
    if (B === 1) batch1 = r.medianMs;
    push({
      ...r,
      note: `${((1000 * B) / r.medianMs).toFixed(2)} images/s${B > 1 ? ` (${((batch1 * B) / r.medianMs).toFixed(2)}x batch 1's)` : ''}`,
    });
  }
  const polyTrain = await timeGraph(
    'frcnn-small',
    `training step ${H}x${W}, batch 1, one program for H ${BOUNDS.H.min}-${BOUNDS.H.max}, W ${BOUNDS.W.min}-${BOUNDS.W.max}`,
    0,
    training(1, sizes),
    new GraphBuilder(),
    { ...opts, feeds: trainingFeeds(1, config.maxGt), shapes: { image: [1, 3, H, W] } },
  );
  push({
    ...polyTrain,
    note: `${(1000 / polyTrain.medianMs).toFixed(2)} images/s; ${(polyTrain.minMs / (rows[2]?.minMs ?? 1)).toFixed(2)}x the exact program (minima)`,
  });
  return rows;
}
