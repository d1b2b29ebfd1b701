/**
 * One compiled frcnn-small inference program, and one training program, for every image size: the
 * image input is [1, 3, H, W] with run-time H and W, and each run must equal the program compiled for
 * that exact static canvas (float outputs within 1e-5 relative, proposals and detections identical;
 * for training, the losses and every parameter and momentum after the step), with no pipeline created
 * after the first run.
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { buildFrcnnInference, type FrcnnOptions } from '../models/frcnn/index.js';
import { buildFrcnnTraining, type FrcnnTrainingOptions } from '../models/frcnn/train.js';
import { generateAnchors } from '../ops/anchors.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, pipelineCount, Session } from '../runtime/session.js';
import { modelFeeds } from './frcnn-feeds.js';
import { fanInParamFeeds, freshSeed, rand, relError } from './helpers.js';

const K = 4;
/** The demo's test-time proposal counts; 1000 pre-NMS boxes need H, W ≥ 96 (12×12 cells × 9 anchors). */
const OPTIONS: Omit<FrcnnOptions, 'canvas'> = {
  backbone: 'frcnn-small',
  numClasses: K,
  proposals: { minSize: 4, preNmsTopN: 1000, postNmsTopN: 100 },
};
const BOUNDS = { H: { min: 96, max: 160 }, W: { min: 96, max: 200 } };
/** Odd and even sizes, both bounds, the demo's 128×160. */
const SIZES: readonly (readonly [number, number])[] = [
  [128, 160],
  [96, 96],
  [160, 200],
  [113, 97],
  [150, 131],
  [99, 187],
];

function build(g: GraphBuilder, canvas: FrcnnOptions['canvas']): Record<string, Tensor> {
  const m = buildFrcnnInference(g, { ...OPTIONS, canvas });
  return { ...m.outputs, fg: m.rpn.fgProb, probs: m.detections.probs };
}

describe('frcnn-small inference over run-time image sizes', () => {
  it('the image-size symbols are checked: too small a lower bound for the pre-NMS count is refused', () => {
    const g = new GraphBuilder();
    const canvas = [g.dim('H', { min: 64, max: 160 }), g.dim('W', { min: 64, max: 200 })] as const;
    expect(() => buildFrcnnInference(g, { ...OPTIONS, canvas })).toThrow(
      /proposal layer: pre-NMS top 1000 of .* anchors: the smallest feature map \(8×8, 576 anchors\) has fewer/,
    );
  });

  it(`one program runs ${SIZES.length} image sizes, creating no pipeline after the first run, equal to the static programs`, async () => {
    const seed = freshSeed();
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const outs = build(g, [g.dim('H', BOUNDS.H), g.dim('W', BOUNDS.W)]);
    const { spec } = compile(g, { outputs: outs, limits });
    expect(spec.symbols?.map((s) => s.name)).toEqual(['H', 'W']);
    const params = modelFeeds(g, seed, [1, 1, 1]);
    const initial: Record<string, number[]> = {};
    for (const n of g.graph.nodes)
      if (n.op === 'param') initial[n.name as string] = params[n.name as string] as number[];
    const session = await Session.create(spec, { gpu: dev, initial });

    const feedsAt = SIZES.map(([h, w], k) => ({
      image: { data: rand([1, 3, h, w], seed + 101 * (k + 1)), shape: [1, 3, h, w] },
      im_info: { data: [h, w, 1 + k / 10], shape: [3] },
    }));
    const poly: Record<string, HostTensor>[] = [];
    let afterFirst = -1;
    for (const [k, f] of feedsAt.entries()) {
      poly.push(await session.run(f));
      if (k === 0) afterFirst = pipelineCount();
    }
    expect(pipelineCount(), 'pipelines created after the first run').toBe(afterFirst);
    session.destroy();

    for (const [k, [h, w]] of SIZES.entries()) {
      const gs = new GraphBuilder();
      const so = build(gs, [h, w]);
      const stat = await Session.create(compile(gs, { outputs: so, limits }).spec, { gpu: dev, initial });
      const want = await stat.run({
        image: feedsAt[k]?.image.data as number[],
        im_info: feedsAt[k]?.im_info.data as number[],
      });
      stat.destroy();
      const got = poly[k] as Record<string, HostTensor>;
      const at = `${h}×${w} (seed ${seed})`;
      console.log(
        `${at}: roi_count ${want.roi_count?.data[0]} det_count ${want.det_count?.data[0]} score0 ${want.det_scores?.data[0]} / ${got.det_scores?.data[0]}`,
      );
      expect(want.roi_count?.data[0], `proposals at ${at}`).toBeGreaterThan(10);
      expect(want.det_count?.data[0], `detections at ${at}`).toBeGreaterThan(0);
      for (const name of Object.keys(so)) {
        const a = got[name] as HostTensor;
        const b = want[name] as HostTensor;
        expect(a.shape, `${name} shape at ${at}`).toEqual(b.shape);
        if (so[name]?.dtype === 'f32') expect(relError(a.data, b.data), `${name} at ${at}`).toBeLessThanOrEqual(1e-5);
        else expect(Array.from(a.data), `${name} at ${at}`).toEqual(Array.from(b.data));
      }
    }
  });
});

/** The training test's small setting (as test/frcnn-train.test.ts): 6 anchors of 16 and 32 px, 200 pre-NMS boxes. */
const TRAIN: Omit<FrcnnTrainingOptions, 'canvas'> = {
  backbone: 'frcnn-small',
  numClasses: 3,
  maxGt: 3,
  baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2]),
  proposals: { minSize: 4, preNmsTopN: 200, postNmsTopN: 64 },
  anchorTargets: { batchSize: 64 },
  proposalTargets: { batchSize: 32 },
};
/** 200 pre-NMS boxes need 34 cells of 6 anchors: H, W ≥ 48 (6×6 cells). */
const TRAIN_BOUNDS = { H: { min: 48, max: 96 }, W: { min: 48, max: 112 } };
const TRAIN_SIZES: readonly (readonly [number, number])[] = [
  [64, 96],
  [48, 48],
  [96, 112],
  [57, 83],
  [71, 49],
  [90, 101],
];

function trainFeeds(
  h: number,
  w: number,
  k: number,
  seed: number,
): Record<string, { data: number[]; shape: number[] }> {
  // three gt boxes inside the image, from the seed
  const r = rand(12, seed + 7 * k, 0, 1);
  const gt: number[] = [];
  for (let j = 0; j < 3; j++) {
    const [a, b, c, d] = r.slice(4 * j, 4 * j + 4) as [number, number, number, number];
    const x1 = Math.floor(a * (w - 24));
    const y1 = Math.floor(b * (h - 24));
    gt.push(x1, y1, Math.min(w - 1, x1 + 16 + Math.floor(c * 24)), Math.min(h - 1, y1 + 16 + Math.floor(d * 24)));
  }
  return {
    image: { data: rand([1, 3, h, w], seed + 101 * (k + 1)), shape: [1, 3, h, w] },
    im_info: { data: [h, w, 1], shape: [3] },
    gt_boxes: { data: gt, shape: [3, 4] },
    gt_labels: { data: [1, 2, 3], shape: [3] },
    gt_count: { data: [1 + (k % 3)], shape: [1] },
    seed: { data: [1000 + k], shape: [1] },
    lr: { data: [0.01], shape: [] },
  };
}

describe('frcnn-small training over run-time image sizes', () => {
  it(`one training program steps on ${TRAIN_SIZES.length} image sizes, no new pipelines, each step equal to the static program's`, async () => {
    const seed = freshSeed();
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const m = buildFrcnnTraining(g, { ...TRAIN, canvas: [g.dim('H', TRAIN_BOUNDS.H), g.dim('W', TRAIN_BOUNDS.W)] });
    const { spec } = compile(g, { outputs: m.outputs, updates: m.updates, seed: 3, limits });
    expect(spec.symbols?.map((s) => s.name)).toEqual(['H', 'W']);
    const session = await Session.create(spec, { gpu: dev, initial: fanInParamFeeds(g, seed) });
    const persistent = spec.persistent.map((p) => p.name);
    const readAll = async (s: Session): Promise<Record<string, HostTensor>> => {
      const out: Record<string, HostTensor> = {};
      for (const name of persistent) out[name] = await s.read(name);
      return out;
    };
    // every step of the polymorphic program first (the static programs create pipelines of their own)
    const steps: {
      before: Record<string, HostTensor>;
      got: Record<string, HostTensor>;
      after: Record<string, HostTensor>;
    }[] = [];
    let afterFirst = -1;
    for (const [k, [h, w]] of TRAIN_SIZES.entries()) {
      const before = await readAll(session);
      const got = await session.run(trainFeeds(h, w, k, seed));
      if (k === 0) afterFirst = pipelineCount();
      steps.push({ before, got, after: await readAll(session) });
    }
    expect(pipelineCount(), 'pipelines created after the first step').toBe(afterFirst);
    session.destroy();

    for (const [k, [h, w]] of TRAIN_SIZES.entries()) {
      const at = `${h}×${w}, step ${k} (seed ${seed})`;
      const { before, got, after } = steps[k] as (typeof steps)[number];
      const gs = new GraphBuilder();
      const ms = buildFrcnnTraining(gs, { ...TRAIN, canvas: [h, w] });
      const stat = await Session.create(
        compile(gs, { outputs: ms.outputs, updates: ms.updates, seed: 3, limits }).spec,
        {
          gpu: dev,
          initial: Object.fromEntries(Object.entries(before).map(([n, t]) => [n, Array.from(t.data)])),
        },
      );
      const feeds = trainFeeds(h, w, k, seed);
      const want = await stat.run(Object.fromEntries(Object.entries(feeds).map(([n, f]) => [n, f.data])));
      const wantAfter = await readAll(stat);
      stat.destroy();
      expect(want.loss?.data[0], `loss at ${at}`).toBeGreaterThan(0);
      for (const name of Object.keys(ms.outputs)) {
        const a = got[name] as HostTensor;
        const b = want[name] as HostTensor;
        if (ms.outputs[name]?.dtype === 'f32')
          expect(relError(a.data, b.data), `${name} at ${at}`).toBeLessThanOrEqual(1e-5);
        else expect(Array.from(a.data), `${name} at ${at}`).toEqual(Array.from(b.data));
      }
      let moved = 0;
      for (const name of persistent) {
        const e = relError((after[name] as HostTensor).data, (wantAfter[name] as HostTensor).data);
        expect(e, `${name} after the step at ${at}`).toBeLessThanOrEqual(1e-5);
        if (relError((after[name] as HostTensor).data, (before[name] as HostTensor).data) > 0) moved++;
      }
      expect(moved, `parameters and momenta the step changed at ${at}`).toBeGreaterThan(persistent.length / 2);
    }
  });
});
