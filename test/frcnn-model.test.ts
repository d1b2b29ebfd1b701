/**
 * Faster R-CNN model graphs (models/frcnn): shapes of every stage, band splitting ≡ no splitting
 * (forward and gradients), the proposal layer and the detection post-processing against host references
 * of py-faster-rcnn's proposal_layer / test_net (CPU interpreter), the frcnn-small inference graph on the
 * GPU against the CPU interpreter, and the VGG16 / ZF graphs at 600×1000 compiling under the WebGPU
 * default limits (every binding ≤ 128 MiB). Small backbone + 128×160 canvas keep it CI-fast.
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import {
  buildFrcnnInference,
  FRCNN_MODELS,
  getBackbone,
  PROPOSALS_TEST,
  small,
  vgg16,
  zf,
} from '../models/frcnn/index.js';
import { cpuNms } from '../ops/nms.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';
import { modelFeeds as feedsWith } from './frcnn-feeds.js';
import { relError } from './helpers.js';

const CANVAS: [number, number] = [128, 160];
const K = 4; // foreground classes
const IM_INFO = [100, 150, 1.25]; // valid 100×150 of the 128×160 canvas, scale 1.25
const modelFeeds = (g: GraphBuilder, seed: number, imInfo = IM_INFO) => feedsWith(g, seed, imInfo);

// ---------------------------------------------------------------- feeds

function run(g: GraphBuilder, feeds: Record<string, ArrayLike<number>>, outs: Record<string, Tensor>) {
  const names = Object.keys(outs);
  const vals = interpret(
    g.graph,
    feeds,
    names.map((n) => (outs[n] as Tensor).id),
  );
  const r: Record<string, RefTensor> = {};
  names.forEach((n, i) => {
    r[n] = vals[i] as RefTensor;
  });
  return r;
}

const at = (t: RefTensor, i: number) => t.data[i] as number;
const row = (t: RefTensor, i: number, w: number) => Array.from(t.data.subarray(i * w, (i + 1) * w));

// ---------------------------------------------------------------- host references (PFR)

function decodePfr(a: readonly number[], d: readonly number[], w: readonly number[]): number[] {
  const aw = (a[2] as number) - (a[0] as number) + 1;
  const ah = (a[3] as number) - (a[1] as number) + 1;
  const acx = (a[0] as number) + 0.5 * aw;
  const acy = (a[1] as number) + 0.5 * ah;
  const dx = (d[0] as number) / (w[0] as number);
  const dy = (d[1] as number) / (w[1] as number);
  const dw = (d[2] as number) / (w[2] as number);
  const dh = (d[3] as number) / (w[3] as number);
  const pcx = dx * aw + acx;
  const pcy = dy * ah + acy;
  const pw = Math.exp(dw) * aw;
  const ph = Math.exp(dh) * ah;
  return [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph];
}

const clip = (b: number[], H: number, W: number) => [
  Math.min(Math.max(b[0] as number, 0), W - 1),
  Math.min(Math.max(b[1] as number, 0), H - 1),
  Math.min(Math.max(b[2] as number, 0), W - 1),
  Math.min(Math.max(b[3] as number, 0), H - 1),
];

/** py-faster-rcnn proposal_layer on the valid region (stable sort). Returns boxes in order. */
function refProposals(
  fg: RefTensor,
  deltas: RefTensor,
  anchors: RefTensor,
  imInfo: readonly number[],
  Hf: number,
  Wf: number,
  A: number,
  validCells: [number, number],
  R: number,
): number[][] {
  const [vH, vW, scale] = imInfo as [number, number, number];
  const cands: { box: number[]; score: number; i: number }[] = [];
  for (let y = 0; y < Hf; y++)
    for (let x = 0; x < Wf; x++)
      for (let a = 0; a < A; a++) {
        const i = (y * Wf + x) * A + a;
        if (y >= validCells[0] || x >= validCells[1]) continue;
        const b = clip(decodePfr(row(anchors, i, 4), row(deltas, i, 4), [1, 1, 1, 1]), vH, vW);
        const ws = (b[2] as number) - (b[0] as number) + 1;
        const hs = (b[3] as number) - (b[1] as number) + 1;
        // scores are f32 tensors in the graph: saturated probabilities (1 − 3e-9 vs 1 − 4e-9) tie there
        if (ws >= 16 * scale && hs >= 16 * scale) cands.push({ box: b, score: Math.fround(at(fg, i)), i });
      }
  cands.sort((p, q) => q.score - p.score || p.i - q.i);
  const pre = cands.slice(0, PROPOSALS_TEST.preNmsTopN);
  const keep = cpuNms(
    pre.flatMap((c) => c.box),
    pre.map((c) => c.score),
    { iouThreshold: 0.7, plusOne: true },
  );
  return keep.slice(0, R).map((k) => (pre[k] as { box: number[] }).box);
}

/** py-faster-rcnn test_net post-processing (per-class NMS loop, then the first 100 by score). */
function refDetections(
  probs: RefTensor,
  bbox: RefTensor,
  rois: RefTensor,
  count: number,
  imInfo: readonly number[],
  numClasses: number,
): { box: number[]; score: number; cls: number }[] {
  const [vH, vW, scale] = imInfo as [number, number, number];
  const H0 = Math.round(vH / scale);
  const W0 = Math.round(vW / scale);
  const K1 = numClasses + 1;
  const all: { box: number[]; score: number; cls: number; flat: number }[] = [];
  for (let j = 1; j <= numClasses; j++) {
    const cand: { box: number[]; score: number; flat: number }[] = [];
    for (let r = 0; r < count; r++) {
      const s = at(probs, r * K1 + j);
      if (!(s > 0.05)) continue;
      const roi = row(rois, r, 5)
        .slice(1)
        .map((v) => v / scale);
      const d = Array.from(bbox.data.subarray(r * 4 * K1 + 4 * j, r * 4 * K1 + 4 * j + 4));
      cand.push({ box: clip(decodePfr(roi, d, [10, 10, 5, 5]), H0, W0), score: s, flat: r * numClasses + j - 1 });
    }
    const keep = cpuNms(
      cand.flatMap((c) => c.box),
      cand.map((c) => c.score),
      { iouThreshold: 0.3, plusOne: true },
    );
    for (const k of keep) all.push({ ...(cand[k] as (typeof cand)[number]), cls: j });
  }
  all.sort((p, q) => q.score - p.score || p.flat - q.flat);
  return all.slice(0, 100);
}

// ---------------------------------------------------------------- tests

describe('frcnn registry and shapes', () => {
  it('registers the three models', () => {
    expect(Object.keys(FRCNN_MODELS).sort()).toEqual(['frcnn-small', 'frcnn-vgg16', 'frcnn-zf']);
    expect(getBackbone('frcnn-vgg16')).toBe(vgg16);
    expect(() => getBackbone('frcnn-resnet')).toThrow(/unknown Faster R-CNN model/);
  });

  it('frcnn-small: every stage has the expected shape', () => {
    const g = new GraphBuilder();
    const m = buildFrcnnInference(g, { backbone: 'frcnn-small', numClasses: K, canvas: CANVAS });
    expect(m.image.shape).toEqual([1, 3, 128, 160]);
    expect(m.imInfo.shape).toEqual([3]);
    expect(m.features.shape).toEqual([1, 64, 16, 20]); // stride 8
    const N = 16 * 20 * 9;
    expect(m.rpn.clsLogits.shape).toEqual([N, 2]);
    expect(m.rpn.fgProb.shape).toEqual([N]);
    expect(m.rpn.deltas.shape).toEqual([N, 4]);
    expect(m.rpn.anchors.shape).toEqual([N, 4]);
    expect(m.proposals.rois.shape).toEqual([300, 5]);
    expect(m.proposals.count.shape).toEqual([1]);
    expect(m.head.pooled.shape).toEqual([300, 64, 7, 7]);
    expect(m.head.clsScore.shape).toEqual([300, K + 1]);
    expect(m.head.bboxPred.shape).toEqual([300, 4 * (K + 1)]);
    expect(m.detections.boxes.shape).toEqual([100, 4]);
    expect(m.detections.scores.shape).toEqual([100]);
    expect(m.detections.classes.shape).toEqual([100]);
    expect(m.detections.classes.dtype).toBe('i32');
    expect(m.detections.count.shape).toEqual([1]);
  });

  it('VGG16 and ZF at 600×1000: feature maps, anchors, params, frozen layers', () => {
    expect(vgg16.featureSize(600, 1000)).toEqual([38, 63]); // Caffe ceil pooling (spec §1)
    expect(zf.featureSize(600, 1000)).toEqual([39, 64]);
    expect(small.featureSize(128, 160)).toEqual([16, 20]); // three ceil pools: stride 8
    const g = new GraphBuilder();
    const m = buildFrcnnInference(g, { backbone: 'frcnn-vgg16', numClasses: 20, canvas: [600, 1000] });
    expect(m.features.shape).toEqual([1, 512, 38, 63]);
    expect(m.rpn.anchors.shape).toEqual([21546, 4]);
    expect(m.head.pooled.shape).toEqual([300, 512, 7, 7]);
    expect(m.head.clsScore.shape).toEqual([300, 21]);
    expect(m.head.bboxPred.shape).toEqual([300, 84]);
    const params = g.graph.nodes.filter((n) => n.op === 'param');
    const frozen = params.filter((n) => n.attrs.trainable === false).map((n) => n.name);
    expect(frozen).toEqual([
      'features.0.weight',
      'features.0.bias',
      'features.2.weight',
      'features.2.bias',
      'features.5.weight',
      'features.5.bias',
      'features.7.weight',
      'features.7.bias',
    ]);
    // the name map covers every parameter exactly once; fc6 is one parameter (the compiler splits it)
    const mapped = m.paramMap.entries.map((e) => e.param).sort();
    expect(mapped).toEqual(params.map((n) => n.name as string).sort());
    const fc6 = m.paramMap.entries.find((e) => e.torchvision === 'classifier.0.weight');
    expect(fc6?.param).toBe('classifier.0.weight');
    expect(fc6?.shape).toEqual([4096, 25088]);
    expect(m.paramMap.entries.find((e) => e.caffe === 'conv5_3[0]')?.torchvision).toBe('features.28.weight');
    const gz = new GraphBuilder();
    const mz = buildFrcnnInference(gz, { backbone: 'frcnn-zf', numClasses: 20, canvas: [600, 1000] });
    expect(mz.features.shape).toEqual([1, 256, 39, 64]);
    expect(mz.head.pooled.shape).toEqual([300, 256, 6, 6]);
  });
});

describe('frcnn-small inference', () => {
  const build = (g: GraphBuilder) => {
    const m = buildFrcnnInference(g, { backbone: 'frcnn-small', numClasses: K, canvas: CANVAS });
    const outs: Record<string, Tensor> = {
      ...m.outputs,
      fg: m.rpn.fgProb,
      deltas: m.rpn.deltas,
      anchors: m.rpn.anchors,
      probs: m.detections.probs,
      bbox: m.head.bboxPred,
    };
    return { m, outs };
  };

  it('proposal layer and detections match host references of py-faster-rcnn (CPU interpreter)', () => {
    for (const [seed, info] of [
      [1, IM_INFO],
      [2, [128, 160, 2]],
      [3, [70, 33, 0.6]],
    ] as const) {
      const g = new GraphBuilder();
      const { outs } = build(g);
      const r = run(g, modelFeeds(g, seed, [...info]), outs);
      const cells = small.featureSize(info[0], info[1]);
      const want = refProposals(
        r.fg as RefTensor,
        r.deltas as RefTensor,
        r.anchors as RefTensor,
        info,
        16,
        20,
        9,
        cells,
        300,
      );
      const count = at(r.roi_count as RefTensor, 0);
      expect(count).toBe(want.length);
      expect(count).toBeGreaterThan(5);
      const rois = r.rois as RefTensor;
      for (let i = 0; i < 300; i++) {
        const got = row(rois, i, 5);
        expect(got[0]).toBe(0);
        const w = i < count ? (want[i] as number[]) : [0, 0, 15, 15];
        for (let c = 0; c < 4; c++)
          expect(
            got[c + 1],
            `image ${seed}, proposal ${i}/${count}: [${got.slice(1).join(', ')}] vs [${w.join(', ')}]`,
          ).toBeCloseTo(w[c] as number, 9);
      }
      const det = refDetections(r.probs as RefTensor, r.bbox as RefTensor, rois, count, info, K);
      const dc = at(r.det_count as RefTensor, 0);
      expect(dc).toBe(det.length);
      expect(dc).toBeGreaterThan(0);
      for (let i = 0; i < 100; i++) {
        const cls = at(r.det_classes as RefTensor, i);
        const score = at(r.det_scores as RefTensor, i);
        const box = row(r.det_boxes as RefTensor, i, 4);
        if (i < dc) {
          const d = det[i] as { box: number[]; score: number; cls: number };
          expect(cls).toBe(d.cls);
          expect(score).toBeCloseTo(d.score, 12);
          for (let c = 0; c < 4; c++) expect(box[c]).toBeCloseTo(d.box[c] as number, 9);
        } else {
          expect([cls, score, ...box]).toEqual([-1, 0, 0, 0, 0, 0]);
        }
      }
    }
  });

  it('compiles and runs on the GPU and matches the CPU interpreter', async () => {
    const g = new GraphBuilder();
    const { outs } = build(g);
    const feeds = modelFeeds(g, 1);
    const dev = await getDevice();
    const t0 = performance.now();
    const { spec } = compile(g, { outputs: outs, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev, initial: feeds });
    const gpu = await session.run({ image: feeds.image as number[], im_info: feeds.im_info as number[] });
    const t1 = performance.now();
    await session.run({ image: feeds.image as number[], im_info: feeds.im_info as number[] });
    const t2 = performance.now();
    session.destroy();
    const cpu = run(g, feeds, outs);
    console.log(
      `frcnn-small 128×160: ${spec.stats.dispatches} dispatches, compile+first run ${(t1 - t0).toFixed(0)} ms, run ${(t2 - t1).toFixed(0)} ms, ` +
        `roi_count ${gpu.roi_count?.data[0]}, det_count ${gpu.det_count?.data[0]}`,
    );
    for (const name of Object.keys(outs)) {
      const r = cpu[name] as RefTensor;
      const got = (gpu[name] as HostTensor).data;
      if (r.dtype === 'f32') expect(relError(got, r.data), name).toBeLessThanOrEqual(1e-4);
      else expect(Array.from(got), name).toEqual(Array.from(r.data));
    }
    expect(at(cpu.det_count as RefTensor, 0)).toBeGreaterThan(0);
  });
});

describe('full-size graphs compile under the WebGPU default limits', () => {
  for (const name of ['frcnn-vgg16', 'frcnn-zf'] as const) {
    it(`${name} inference at 600×1000`, () => {
      const g = new GraphBuilder();
      const m = buildFrcnnInference(g, { backbone: name, numClasses: 20, canvas: [600, 1000] });
      const { spec } = compile(g, { outputs: m.outputs, limits: WEBGPU_DEFAULT_LIMITS });
      expect(spec.stats.maxBindingBytes).toBeLessThanOrEqual(WEBGPU_DEFAULT_LIMITS.maxStorageBufferBindingSize);
      // VGG16's conv1 output (64×600×1000 f32 = 153.6 MB) is split across bindings by the compiler,
      // with no slicing in the model
      if (name === 'frcnn-vgg16') {
        expect(spec.kernels.some((k) => k.windows?.some(([off]) => off > 0))).toBe(true);
        // (no slice at all in the backbone: the hand-made bands were slices of its 4-D maps)
        expect(g.graph.nodes.filter((n) => n.op === 'slice' && n.stage === 'backbone')).toHaveLength(0);
        expect(g.graph.nodes.filter((n) => n.stage === 'backbone').length).toBeGreaterThan(30);
        // fc6's weight, 4096×25088 f32 = 411 MB, is one parameter over maxBufferSize (256 MiB): chunked
        const fc6 = spec.persistent.find((p) => p.name === 'classifier.0.weight');
        expect(fc6?.chunks?.length).toBe(2);
        expect(Math.max(...spec.buffers.map((b) => b.bytes))).toBeLessThanOrEqual(WEBGPU_DEFAULT_LIMITS.maxBufferSize);
        expect(g.graph.nodes.filter((n) => n.op === 'param' && /\.part\d/.test(n.name ?? ''))).toHaveLength(0);
      }
    });
  }
});

describe('frcnn-small batched inference', () => {
  it('a batch of 3 images (each its own valid size in im_info) equals 3 single-image runs on the same canvas', async () => {
    const infos = [
      [128, 160, 1],
      [100, 150, 1.25],
      [70, 97, 0.6],
    ];
    const B = infos.length;
    const opts = { backbone: 'frcnn-small', numClasses: K, canvas: CANVAS } as const;
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g1 = new GraphBuilder();
    const single = buildFrcnnInference(g1, opts);
    const gb = new GraphBuilder();
    const batched = buildFrcnnInference(gb, { ...opts, images: B });
    expect(batched.image.shape).toEqual([B, 3, ...CANVAS]);
    expect(batched.imInfo.shape).toEqual([B, 3]);
    expect(batched.outputs.det_boxes?.shape).toEqual([B, 100, 4]);
    expect(batched.outputs.rois?.shape).toEqual([B * 300, 5]);
    const perImage = infos.map((info, b) => modelFeeds(g1, 40 + b, info));
    const params = perImage[0] as Record<string, number[]>;
    const s1 = await Session.create(compile(g1, { outputs: single.outputs, limits }).spec, {
      gpu: dev,
      initial: params,
    });
    const singles: Record<string, HostTensor>[] = [];
    for (const f of perImage)
      singles.push(await s1.run({ image: f.image as number[], im_info: f.im_info as number[] }));
    s1.destroy();
    const sb = await Session.create(compile(gb, { outputs: batched.outputs, limits }).spec, {
      gpu: dev,
      initial: params,
    });
    const out = await sb.run({ image: perImage.flatMap((f) => f.image as number[]), im_info: infos.flat() });
    sb.destroy();
    const part = (t: HostTensor | undefined, b: number): number[] => {
      const n = (t?.data.length ?? 0) / B;
      return Array.from(t?.data.subarray(b * n, (b + 1) * n) ?? []);
    };
    for (let b = 0; b < B; b++) {
      const one = singles[b] as Record<string, HostTensor>;
      expect(one.det_count?.data[0], `image ${b} has detections`).toBeGreaterThan(0);
      expect([out.det_count?.data[b]], `det_count of image ${b}`).toEqual(Array.from(one.det_count?.data ?? []));
      expect([out.roi_count?.data[b]], `roi_count of image ${b}`).toEqual(Array.from(one.roi_count?.data ?? []));
      expect(part(out.det_classes, b), `det_classes of image ${b}`).toEqual(Array.from(one.det_classes?.data ?? []));
      for (const name of ['det_boxes', 'det_scores'] as const)
        expect(relError(part(out[name], b), one[name]?.data ?? []), `${name} of image ${b}`).toBeLessThanOrEqual(1e-5);
      // the RoIs carry the image index; their boxes are the single run's
      const rois = part(out.rois, b);
      const want = Array.from(one.rois?.data ?? []);
      expect(
        rois.filter((_, i) => i % 5 === 0).every((v) => v === b),
        `image column of image ${b}'s RoIs`,
      ).toBe(true);
      expect(
        relError(
          rois.filter((_, i) => i % 5 !== 0),
          want.filter((_, i) => i % 5 !== 0),
        ),
        `rois of image ${b}`,
      ).toBeLessThanOrEqual(1e-5);
    }
  });
});
