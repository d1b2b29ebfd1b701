/**
 * One compiled frcnn-small inference program, and one training program, for every image size and
 * batch: the image input is [B, 3, H, W] with run-time B, H and W, and each run must equal the program
 * compiled for that exact static batch and canvas (float outputs within 1e-5 relative, proposals and
 * detections identical; for training, the losses and every parameter and momentum after the step),
 * with no pipeline created after the first run.
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
const MAX_BATCH = 4;
/** [images, H, W]: batches of 1, 2 and 4; odd and even sizes, both bounds, the demo's 128×160. */
const SIZES: readonly (readonly [number, number, number])[] = [
  [1, 128, 160],
  [2, 96, 96],
  [4, 160, 200],
  [2, 113, 97],
  [4, 99, 187],
  [1, 150, 131],
];

function build(
  g: GraphBuilder,
  canvas: FrcnnOptions['canvas'],
  images: FrcnnOptions['images'],
): Record<string, Tensor> {
  const m = buildFrcnnInference(g, { ...OPTIONS, canvas, images });
  return { ...m.outputs, fg: m.rpn.fgProb, probs: m.detections.probs };
}

/** Each image of a batch its own valid size (zero padding past it), from the seed. */
function batchImages(B: number, h: number, w: number, seed: number): { image: number[]; im_info: number[] } {
  const image: number[] = [];
  const info: number[] = [];
  for (let b = 0; b < B; b++) {
    const vh = b === 0 ? h : h - 7 * b;
    const vw = b === 0 ? w : w - 11 * b;
    const px = rand([3, h, w], seed + 31 * b);
    for (let i = 0; i < px.length; i++) {
      const y = Math.floor(i / w) % h;
      image.push(y < vh && i % w < vw ? (px[i] as number) : 0);
    }
    info.push(vh, vw, 1 + b / 10);
  }
  return { image, im_info: info };
}

/** The run's outputs as flat values (a batch-1 static program has no image axis, the polymorphic one has). */
const flat = (t: HostTensor | undefined): number[] => Array.from(t?.data ?? []);

describe('frcnn-small inference over run-time image sizes', () => {
  it('the image-size symbols are checked: too small a lower bound for the pre-NMS count is refused', () => {
    const g = new GraphBuilder();
    const canvas = [g.dim('H', { min: 64, max: 160 }), g.dim('W', { min: 64, max: 200 })] as const;
    expect(() => buildFrcnnInference(g, { ...OPTIONS, canvas })).toThrow(
      /proposal layer: pre-NMS top 1000 of .* anchors: the smallest feature map \(8×8, 576 anchors\) has fewer/,
    );
  });

  it(`one program runs ${SIZES.length} image sizes in batches of 1, 2 and 4, no new pipelines, equal to the static programs`, async () => {
    const seed = freshSeed();
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const outs = build(g, [g.dim('H', BOUNDS.H), g.dim('W', BOUNDS.W)], g.dim('B', { max: MAX_BATCH }));
    const { spec } = compile(g, { outputs: outs, limits });
    expect(spec.symbols?.map((s) => s.name).sort()).toEqual(['B', 'H', 'W']);
    const params = modelFeeds(g, seed, [1, 1, 1]);
    const initial: Record<string, number[]> = {};
    for (const n of g.graph.nodes)
      if (n.op === 'param') initial[n.name as string] = params[n.name as string] as number[];
    const session = await Session.create(spec, { gpu: dev, initial });

    const feedsAt = SIZES.map(([B, h, w], k) => batchImages(B, h, w, seed + 101 * (k + 1)));
    const poly: Record<string, HostTensor>[] = [];
    let afterFirst = -1;
    for (const [k, [B, h, w]] of SIZES.entries()) {
      const f = feedsAt[k] as { image: number[]; im_info: number[] };
      poly.push(
        await session.run({
          image: { data: f.image, shape: [B, 3, h, w] },
          im_info: { data: f.im_info, shape: [B, 3] },
        }),
      );
      if (k === 0) afterFirst = pipelineCount();
    }
    expect(pipelineCount(), 'pipelines created after the first run').toBe(afterFirst);
    session.destroy();

    for (const [k, [B, h, w]] of SIZES.entries()) {
      const gs = new GraphBuilder();
      const so = build(gs, [h, w], B);
      const stat = await Session.create(compile(gs, { outputs: so, limits }).spec, { gpu: dev, initial });
      const want = await stat.run(feedsAt[k] as { image: number[]; im_info: number[] });
      stat.destroy();
      const got = poly[k] as Record<string, HostTensor>;
      const at = `${B} × ${h}×${w} (seed ${seed})`;
      expect(got.det_count?.shape, `det_count shape at ${at}`).toEqual([B]);
      expect(got.det_boxes?.shape, `det_boxes shape at ${at}`).toEqual([B, 100, 4]);
      for (let b = 0; b < B; b++) {
        expect(want.roi_count?.data[b], `proposals of image ${b} at ${at}`).toBeGreaterThan(10);
        expect(want.det_count?.data[b], `detections of image ${b} at ${at}`).toBeGreaterThan(0);
      }
      for (const name of Object.keys(so)) {
        const a = got[name] as HostTensor;
        const b = want[name] as HostTensor;
        expect(a.data.length, `${name} size at ${at}`).toBe(b.data.length);
        if (so[name]?.dtype === 'f32') expect(relError(a.data, b.data), `${name} at ${at}`).toBeLessThanOrEqual(1e-5);
        else expect(flat(a), `${name} at ${at}`).toEqual(flat(b));
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
/** [images, H, W]: batches of 1, 2 and 4 over odd and even sizes and both bounds. */
const TRAIN_SIZES: readonly (readonly [number, number, number])[] = [
  [1, 64, 96],
  [2, 48, 48],
  [4, 96, 112],
  [2, 57, 83],
  [4, 71, 49],
  [1, 90, 101],
];

function trainFeeds(
  B: number,
  h: number,
  w: number,
  k: number,
  seed: number,
): Record<string, { data: number[]; shape: number[] }> {
  // per image: three gt boxes inside it (the first 1–3 used), from the seed
  const r = rand(12 * B, seed + 7 * k, 0, 1);
  const gt: number[] = [];
  for (let j = 0; j < 3 * B; j++) {
    const [a, b, c, d] = r.slice(4 * j, 4 * j + 4) as [number, number, number, number];
    const x1 = Math.floor(a * (w - 24));
    const y1 = Math.floor(b * (h - 24));
    gt.push(x1, y1, Math.min(w - 1, x1 + 16 + Math.floor(c * 24)), Math.min(h - 1, y1 + 16 + Math.floor(d * 24)));
  }
  const { image, im_info } = batchImages(B, h, w, seed + 101 * (k + 1));
  return {
    image: { data: image, shape: [B, 3, h, w] },
    im_info: { data: im_info, shape: [B, 3] },
    gt_boxes: { data: gt, shape: [B, 3, 4] },
    gt_labels: { data: Array.from({ length: 3 * B }, (_, j) => 1 + (j % 3)), shape: [B, 3] },
    gt_count: { data: Array.from({ length: B }, (_, b) => 1 + ((k + b) % 3)), shape: [B, 1] },
    seed: { data: [1000 + k], shape: [1] },
    lr: { data: [0.01], shape: [] },
  };
}

describe('frcnn-small training over run-time image sizes and batches', () => {
  it(`one training program steps on ${TRAIN_SIZES.length} image sizes in batches of 1, 2 and 4, no new pipelines, each step equal to the static program's`, async () => {
    const seed = freshSeed();
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const m = buildFrcnnTraining(g, {
      ...TRAIN,
      canvas: [g.dim('H', TRAIN_BOUNDS.H), g.dim('W', TRAIN_BOUNDS.W)],
      images: g.dim('B', { max: MAX_BATCH }),
    });
    const { spec } = compile(g, { outputs: m.outputs, updates: m.updates, seed: 3, limits });
    expect(spec.symbols?.map((s) => s.name).sort()).toEqual(['B', 'H', 'W']);
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
    for (const [k, [B, h, w]] of TRAIN_SIZES.entries()) {
      const before = await readAll(session);
      const got = await session.run(trainFeeds(B, h, w, k, seed));
      if (k === 0) afterFirst = pipelineCount();
      steps.push({ before, got, after: await readAll(session) });
    }
    expect(pipelineCount(), 'pipelines created after the first step').toBe(afterFirst);
    session.destroy();

    for (const [k, [B, h, w]] of TRAIN_SIZES.entries()) {
      const at = `${B} × ${h}×${w}, step ${k} (seed ${seed})`;
      const { before, got, after } = steps[k] as (typeof steps)[number];
      const gs = new GraphBuilder();
      const ms = buildFrcnnTraining(gs, { ...TRAIN, canvas: [h, w], images: B });
      const stat = await Session.create(
        compile(gs, { outputs: ms.outputs, updates: ms.updates, seed: 3, limits }).spec,
        {
          gpu: dev,
          initial: Object.fromEntries(Object.entries(before).map(([n, t]) => [n, Array.from(t.data)])),
        },
      );
      const feeds = trainFeeds(B, h, w, k, seed);
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
