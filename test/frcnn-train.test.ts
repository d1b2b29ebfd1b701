/**
 * Faster R-CNN approximate joint training (models/frcnn/train.ts): one full training step of frcnn-small
 * on a tiny canvas, GPU gradients of every trainable parameter against the float64 CPU interpreter; and
 * a short GPU run on generated shapes images whose total loss goes down.
 * Warm Mesa shader cache: ~2.5 s + ~2.2 s. With a cold cache lavapipe compiles every pipeline on its first
 * dispatch, which adds about a minute to the first step of each test (the program shapes differ).
 * The discrete choices (proposals, sampling) are the same on the GPU and the CPU for these fixed feeds;
 * for arbitrary feeds a float32 vs float64 IoU at a threshold could flip a sample.
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { toFloat32 } from '../data/image.js';
import { renderShapesImage } from '../data/shapes.js';
import { buildFrcnnTraining, FRCNN_TRAIN_DEFAULTS } from '../models/frcnn/train.js';
import { generateAnchors } from '../ops/anchors.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';
import { fanInParamFeeds, rand, relError } from './helpers.js';

const K = 3;
const G = 3;
/** Anchors of 16 and 32 pixels (3 ratios): the default 128–512 ones do not fit a tiny canvas. */
const ANCHORS = generateAnchors(16, [0.5, 1, 2], [1, 2]);

describe('frcnn-small training step', () => {
  it('GPU gradients of every param match the CPU interpreter (64×96 canvas, G = 3)', async () => {
    const g = new GraphBuilder();
    const m = buildFrcnnTraining(g, {
      backbone: 'frcnn-small',
      numClasses: K,
      canvas: [64, 96],
      maxGt: G,
      baseAnchors: ANCHORS,
      proposals: { minSize: 4, preNmsTopN: 200, postNmsTopN: 64 },
      anchorTargets: { batchSize: 64 },
      proposalTargets: { batchSize: 32 },
      dropout: true,
    });
    expect(m.params.length).toBeGreaterThan(10);
    const outs: Record<string, Tensor> = { ...m.outputs };
    m.params.forEach((p, i) => {
      outs[`grad:${p.node.name}`] = m.grads[i] as Tensor;
    });
    const feeds: Record<string, number[]> = {
      ...fanInParamFeeds(g, 11),
      image: rand([1, 3, 64, 96], 5).map((v, i) => (i % 96 < 90 && Math.floor(i / 96) % 64 < 60 ? v : 0)),
      im_info: [60, 90, 1],
      gt_boxes: [4, 6, 30, 40, 40, 10, 85, 50, 20, 30, 58, 58],
      gt_labels: [1, 2, 3],
      gt_count: [3],
      seed: [12345],
    };
    const dev = await getDevice();
    const { spec } = compile(g, { outputs: outs, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev, initial: feeds });
    const inputs: Record<string, number[]> = {};
    for (const i of spec.inputs) inputs[i.name] = feeds[i.name] as number[];
    const t0 = performance.now();
    const gpu = await session.run(inputs);
    const t1 = performance.now();
    session.destroy();
    const names = Object.keys(outs);
    const cpu = interpret(
      g.graph,
      feeds,
      names.map((n) => (outs[n] as Tensor).id),
    );
    const t2 = performance.now();
    console.log(`timing: GPU ${(t1 - t0).toFixed(0)} ms, CPU ${(t2 - t1).toFixed(0)} ms`);
    let worst = 0;
    names.forEach((name, k) => {
      const r = cpu[k] as RefTensor;
      const got = (gpu[name] as HostTensor).data;
      const e = relError(got, r.data);
      worst = Math.max(worst, e);
      expect(e, name).toBeLessThanOrEqual(1e-3);
    });
    console.log(
      `frcnn-small train step 64×96: ${spec.stats.dispatches} dispatches, GPU ${(t1 - t0).toFixed(0)} ms, CPU ${(t2 - t1).toFixed(0)} ms, ` +
        `${m.params.length} params, worst rel err ${worst.toExponential(2)}, losses ${names
          .slice(0, 5)
          .map((n) => `${n}=${((gpu[n] as HostTensor).data[0] as number).toFixed(4)}`)
          .join(' ')}`,
    );
    // every loss term is active
    for (const n of ['rpn_cls_loss', 'rpn_bbox_loss', 'cls_loss', 'bbox_loss'])
      expect((gpu[n] as HostTensor).data[0] as number).toBeGreaterThan(0);
  }, 900_000);

  it('20 steps on generated shapes images lower the total loss', async () => {
    const H = 64;
    const W = 96;
    const g = new GraphBuilder();
    const m = buildFrcnnTraining(g, {
      backbone: 'frcnn-small',
      numClasses: 6,
      canvas: [H, W],
      maxGt: 4,
      baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2, 4]),
      proposals: { minSize: 4, preNmsTopN: 300, postNmsTopN: 64 },
      anchorTargets: { batchSize: 128 },
      proposalTargets: { batchSize: 32 },
    });
    const imgs = Array.from({ length: 4 }, (_, i) => renderShapesImage(7, i, { size: { width: W, height: H } }));
    const dev = await getDevice();
    const { spec } = compile(g, {
      outputs: { loss: m.outputs.loss as Tensor },
      updates: m.updates,
      seed: 3,
      limits: limitsFrom(dev.limits),
    });
    const session = await Session.create(spec, { gpu: dev, initial: fanInParamFeeds(g, 3) });
    const losses: number[] = [];
    const t0 = performance.now();
    let t1 = t0;
    for (let s = 0; s < 20; s++) {
      if (s === 1) t1 = performance.now();
      const r = imgs[s % imgs.length]!;
      const boxes = new Array<number>(16).fill(0);
      const labels = new Array<number>(4).fill(0);
      const objs = r.objects.slice(0, 4);
      objs.forEach((o, j) => {
        boxes.splice(4 * j, 4, ...o.box);
        labels[j] = o.label;
      });
      const out = await session.run({
        image: toFloat32(r.image, { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }),
        im_info: [H, W, 1],
        gt_boxes: boxes,
        gt_labels: labels,
        gt_count: [objs.length],
        seed: [s + 1],
        [m.lrInput]: [0.01],
      });
      const l = (out.loss as HostTensor).data[0] as number;
      expect(Number.isFinite(l)).toBe(true);
      losses.push(l);
    }
    session.destroy();
    const first = losses.slice(0, 4).reduce((a, b) => a + b, 0) / 4;
    const last = losses.slice(-4).reduce((a, b) => a + b, 0) / 4;
    console.log(
      `frcnn-small 20 steps at ${H}×${W}: first ${(t1 - t0).toFixed(0)} ms, then ${((performance.now() - t1) / 19).toFixed(0)} ms/step, loss ${first.toFixed(3)} -> ${last.toFixed(3)} (lr default would be ${FRCNN_TRAIN_DEFAULTS.lr})`,
    );
    expect(last).toBeLessThan(first);
  }, 900_000);
});

describe('frcnn-small batched training', () => {
  it('a batch of 2 images: losses are the sampled-count-weighted means of the single-image losses (no subsampling)', async () => {
    const H = 64;
    const W = 96;
    // batch sizes above every candidate count, all fg allowed: nothing is subsampled, so each image's
    // labels are the same alone and in the batch (the random subsets depend on the image index)
    const opts = {
      backbone: 'frcnn-small',
      numClasses: K,
      canvas: [H, W] as const,
      maxGt: G,
      baseAnchors: ANCHORS,
      proposals: { minSize: 4, preNmsTopN: 200, postNmsTopN: 64 },
      anchorTargets: { batchSize: 100000 },
      proposalTargets: { batchSize: 128, fgFraction: 1 },
      optimizer: false,
    };
    const gb = new GraphBuilder();
    const mb = buildFrcnnTraining(gb, { ...opts, images: 2 });
    expect(mb.image.shape).toEqual([2, 3, H, W]);
    expect(mb.gtBoxes.shape).toEqual([2, G, 4]);
    const g1 = new GraphBuilder();
    const m1 = buildFrcnnTraining(g1, opts);
    const params = fanInParamFeeds(g1, 21);
    const images = [
      { image: rand([1, 3, H, W], 31), im_info: [64, 96, 1], gt: [4, 6, 30, 40, 40, 10, 85, 50, 20, 30, 58, 58], n: 3 },
      {
        image: rand([1, 3, H, W], 32).map((v, i) => (i % W < 80 && Math.floor(i / W) % H < 50 ? v : 0)),
        im_info: [50, 80, 1],
        gt: [10, 8, 44, 40, 50, 12, 78, 46, 0, 0, 1, 1],
        n: 2,
      },
    ];
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const names = [...Object.keys(m1.outputs), ...Object.keys(m1.diagnostics)];
    const run = async (g: GraphBuilder, m: typeof m1, feeds: Record<string, number[]>) => {
      const s = await Session.create(
        compile(g, { outputs: { ...m.outputs, ...m.diagnostics }, limits, seed: 3 }).spec,
        { gpu: dev, initial: params },
      );
      const out = await s.run(feeds);
      s.destroy();
      return Object.fromEntries(names.map((n) => [n, (out[n] as HostTensor).data[0] as number]));
    };
    const singles = [];
    for (const im of images)
      singles.push(
        await run(g1, m1, {
          image: im.image,
          im_info: im.im_info,
          gt_boxes: im.gt,
          gt_labels: [1, 2, 3],
          gt_count: [im.n],
          seed: [7],
        }),
      );
    const both = await run(gb, mb, {
      image: images.flatMap((im) => im.image),
      im_info: images.flatMap((im) => im.im_info),
      gt_boxes: images.flatMap((im) => im.gt),
      gt_labels: [1, 2, 3, 1, 2, 3],
      gt_count: images.map((im) => im.n),
      seed: [7],
    });
    const [a, b] = singles as [Record<string, number>, Record<string, number>];
    for (const n of ['fg_anchors', 'sampled_anchors', 'fg_rois', 'sampled_rois'])
      expect(both[n], n).toBe((a[n] as number) + (b[n] as number));
    expect(a.fg_rois, 'image 0 has foreground RoIs').toBeGreaterThan(0);
    expect(b.fg_rois, 'image 1 has foreground RoIs').toBeGreaterThan(0);
    const weighted = (loss: string, count: string): number =>
      ((a[loss] as number) * (a[count] as number) + (b[loss] as number) * (b[count] as number)) /
      ((a[count] as number) + (b[count] as number));
    const want: Record<string, number> = {
      rpn_cls_loss: weighted('rpn_cls_loss', 'sampled_anchors'),
      rpn_bbox_loss: weighted('rpn_bbox_loss', 'sampled_anchors'),
      cls_loss: weighted('cls_loss', 'sampled_rois'),
      bbox_loss: weighted('bbox_loss', 'sampled_rois'),
    };
    for (const [n, v] of Object.entries(want)) {
      expect(v, `${n} is active`).toBeGreaterThan(0);
      expect(Math.abs((both[n] as number) - v) / v, `${n}: batch ${both[n]} vs weighted singles ${v}`).toBeLessThan(
        1e-5,
      );
    }
    const total = Object.values(want).reduce((s, v) => s + v, 0);
    expect(Math.abs((both.loss as number) - total) / total).toBeLessThan(1e-5);
  });
});
