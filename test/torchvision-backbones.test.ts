/**
 * torchvision's detection backbones in the DSL (models/torchvision/), against torchvision itself:
 * fasterrcnn_resnet50_fpn's (ResNet-50 body + FPN over layer1–4 + LastLevelMaxPool) and
 * fasterrcnn_mobilenet_v3_large_fpn's (MobileNetV3-Large features + FPN over features.13 and .16 +
 * LastLevelMaxPool). For each,
 * test/fixtures/torch/torchvision_frcnn.py saves a seeded state dict (BatchNorm statistics from a
 * batch, then scaled: non-trivial) as a .pth zip file, and torchvision's transformed input and FPN
 * features for 4 images of different aspect ratios and sizes. The state dict is read by
 * runtime/torch, mapped by name (the detection heads' keys ignored), and ONE compiled program with
 * run-time image sizes runs every image on the GPU (lavapipe): each level within 1e-3 of
 * torchvision's, relative normwise (the issue's tolerance), with no pipeline created after the
 * first image. Then the RPN (models/torchvision/rpn.ts) on top, one program for every size again:
 * at least 99 % of torchvision's proposals matched by one of ours at IoU ≥ 0.99, and the other way
 * round (the fixture scales the RPN head's init so that objectness ranks are not near-ties). Then the
 * whole detector (RoIHeads, models/torchvision/roi-heads.ts, and transform.postprocess's box mapping
 * to the original image): the same detection count as torchvision, and ≥ 98 % of torchvision's
 * detections that score more than 1e-3 above its 100th (the cap cuts a dense band of scores; near-ties
 * there may swap) matched by one of ours with the same label, IoU ≥ 0.98 and |Δscore| ≤ 1e-3 (the
 * fixture scales the box predictor so that detections clear the 0.05 threshold).
 * The transform (models/torchvision/transform.ts: normalize, resize, pad) is compared with torchvision's
 * on the original images; the model tests then take torchvision's own transformed images as input.
 * Skipped, saying so, without python3-torch.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import '../ops/index.js';
import type { Tensor } from '../compiler/tensor.js';
import { featurePyramid } from '../models/torchvision/fpn.js';
import { mobilenetV3LargeFeatures } from '../models/torchvision/mobilenet.js';
import { resnet50Body } from '../models/torchvision/resnet.js';
import { tvOriginalBoxes, tvRoiHeads } from '../models/torchvision/roi-heads.js';
import { type TvRpnOptions, tvRpn } from '../models/torchvision/rpn.js';
import { tvTransform } from '../models/torchvision/transform.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import { readSafetensors } from '../runtime/safetensors.js';
import { pipelineCount, Session } from '../runtime/session.js';
import { loadStateDict, mapStateDict, toFloat32 } from '../runtime/torch/index.js';
import { freshSeed, relError } from './helpers.js';
import { hasTorch, NO_TORCH_MESSAGE, PYTHON } from './torch-fixtures.js';

const HAS_TORCH = hasTorch();
if (!HAS_TORCH) console.warn(`torchvision-resnet-fpn.test.ts: ${NO_TORCH_MESSAGE}`);

const root = mkdtempSync(join(tmpdir(), 'wgflow-tv-backbones-'));
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await closeDevice();
});

interface Model {
  readonly name: string;
  readonly body: (image: Tensor) => readonly Tensor[];
  readonly inChannels: readonly number[];
}

/** The RPN settings torchvision's model reports. */
function rpnOptions(r: RpnMeta): TvRpnOptions {
  return {
    prefix: 'rpn',
    inChannels: 256,
    anchorSizes: r.sizes,
    aspectRatios: r.aspect_ratios,
    preNmsTopN: r.pre_nms_top_n,
    postNmsTopN: r.post_nms_top_n,
    nmsThresh: r.nms_thresh,
    scoreThresh: r.score_thresh,
    minSize: r.min_size,
  };
}

/** IoU of two (x1, y1, x2, y2) boxes, float64 (torchvision's convention: no +1). */
function iou(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  const at = (v: ArrayLike<number>, k: number) => v[k] as number;
  const w = Math.max(0, Math.min(at(a, 4 * i + 2), at(b, 4 * j + 2)) - Math.max(at(a, 4 * i), at(b, 4 * j)));
  const h = Math.max(0, Math.min(at(a, 4 * i + 3), at(b, 4 * j + 3)) - Math.max(at(a, 4 * i + 1), at(b, 4 * j + 1)));
  const area = (v: ArrayLike<number>, k: number) =>
    (at(v, 4 * k + 2) - at(v, 4 * k)) * (at(v, 4 * k + 3) - at(v, 4 * k + 1));
  const inter = w * h;
  return inter / (area(a, i) + area(b, j) - inter);
}

/** The fraction of `want`'s n boxes that some box of `got` (m boxes) matches at IoU ≥ t. */
function matchedFraction(want: ArrayLike<number>, n: number, got: ArrayLike<number>, m: number, t: number): number {
  let hit = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++)
      if (iou(want, i, got, j) >= t) {
        hit++;
        break;
      }
  }
  return n === 0 ? 1 : hit / n;
}
const MODELS: readonly Model[] = [
  {
    name: 'fasterrcnn_resnet50_fpn',
    body: (image) => resnet50Body(image, { prefix: 'backbone.body', trainableLayers: 3 }).features,
    inChannels: [256, 512, 1024, 2048],
  },
  {
    name: 'fasterrcnn_mobilenet_v3_large_fpn',
    body: (image) => mobilenetV3LargeFeatures(image, { prefix: 'backbone.body', trainableLayers: 3 }).features,
    inChannels: [160, 960],
  },
];
const seed = freshSeed();
/** Original sizes: wide, tall, square (resized to 159, not 160), very wide (padded to 96 × 256). */
const IMAGES = ['150x230', '230x150', '200x200', '97x311'];

interface RpnMeta {
  pre_nms_top_n: number;
  post_nms_top_n: number;
  nms_thresh: number;
  score_thresh: number;
  min_size: number;
  sizes: number[][];
  aspect_ratios: number[][];
}

interface RoiMeta {
  score_thresh: number;
  nms_thresh: number;
  detections_per_img: number;
  featmap_names: string[];
  scales: number[];
  num_classes: number;
  representation_size: number;
}

interface Meta {
  images: { size: [number, number]; resized: [number, number]; padded: [number, number] }[];
  levels: string[];
  rpn: RpnMeta;
  roi_heads: RoiMeta;
}

describe.skipIf(!HAS_TORCH).each(MODELS)(`$name against torchvision (seed ${seed})`, (model) => {
  let meta: Meta;
  const dir = join(root, model.name);
  beforeAll(() => {
    const t0 = performance.now();
    const r = spawnSync(
      PYTHON,
      [
        'test/fixtures/torch/torchvision_frcnn.py',
        dir,
        '--model',
        model.name,
        '--seed',
        String(seed),
        '--images',
        IMAGES.join(','),
        '--min-size',
        '160',
        '--max-size',
        '256',
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`torchvision_frcnn.py failed (seed ${seed}): ${r.stderr}`);
    meta = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as Meta;
    console.log(`torchvision_frcnn.py: ${((performance.now() - t0) / 1000).toFixed(1)} s, ${r.stdout.trim()}`);
  }, 120_000);

  /** The graph's inputs and the FPN on the image ([1, 3, H, W], H and W run-time sizes ≤ 256). */
  const pyramid = () => {
    const g = new GraphBuilder();
    const H = g.dim('H', { min: 64, max: 256 });
    const W = g.dim('W', { min: 64, max: 256 });
    const image = g.input('image', [1, 3, H, W]);
    const fpn = featurePyramid(model.body(image), {
      prefix: 'backbone.fpn',
      inChannels: model.inChannels,
      outChannels: 256,
    });
    return { g, H, W, fpn, sizes: () => g.input('image_size', [1, 2]) };
  };
  /** One program for the outputs, its params from the zip .pth (keys of `unused` heads ignored), and the fixture. */
  const programOf = async (g: GraphBuilder, outputs: Record<string, Tensor>, unused: readonly RegExp[]) => {
    const dev = await getDevice();
    const { spec } = compile(g, { outputs, limits: limitsFrom(dev.limits) });
    const sd = await loadStateDict(join(dir, 'model.zip.pth'));
    const mapped = mapStateDict(
      spec.persistent.map((p) => ({ name: p.name, shape: p.shape })),
      sd,
      { ignore: unused },
    );
    const initial = Object.fromEntries([...mapped].map(([k, t]) => [k, toFloat32(t)]));
    const session = await Session.create(spec, { gpu: dev, initial });
    const { tensors } = await readSafetensors(join(dir, 'out.safetensors'));
    const input = (k: number) => {
      const t = tensors.get(`input.${k}`);
      if (!t) throw new Error(`no input.${k}`);
      return { data: t.data as Float32Array, shape: [...t.shape] };
    };
    const want = (key: string) => {
      const t = tensors.get(key);
      if (!t) throw new Error(`the fixture has no ${key}`);
      return t;
    };
    return { session, input, want };
  };

  it('the transform (normalize, resize, pad) gives torchvision’s input for every image', async () => {
    const { tensors } = await readSafetensors(join(dir, 'out.safetensors'));
    for (const [k, im] of meta.images.entries()) {
      const img = tensors.get(`image.${k}`);
      const want = tensors.get(`input.${k}`);
      if (!img || !want) throw new Error(`no image.${k} or input.${k}`);
      const t = tvTransform(img.data as Float32Array, im.size[0], im.size[1], { minSize: 160, maxSize: 256 });
      expect(t.resized, `image ${k}`).toEqual(im.resized);
      expect(t.padded, `image ${k}`).toEqual(im.padded);
      const w = want.data as Float32Array;
      let same = 0;
      for (let i = 0; i < w.length; i++) if (t.data[i] === w[i]) same++;
      const err = relError(t.data, w);
      console.log(
        `image ${im.size.join('×')} → ${t.resized.join('×')}: ${same} of ${w.length} values bit-equal, relative error ${err.toExponential(1)}`,
      );
      // torchvision's sizes exactly; values to float rounding (measured about 1e-5, not bit for bit)
      expect(err, `image ${k}`).toBeLessThan(1e-4);
    }
  });

  it('FPN features of 4 image sizes from one program, each level within 1e-3 of torchvision', async () => {
    const { g, fpn } = pyramid();
    expect(fpn.names).toEqual(meta.levels);
    const outputs = Object.fromEntries(fpn.names.map((n, i) => [`p${n}`, fpn.maps[i] as Tensor]));
    const t0 = performance.now();
    const { session, input, want } = await programOf(g, outputs, [/^rpn\./, /^roi_heads\./]);
    let pipelines = -1;
    try {
      for (const [k, im] of meta.images.entries()) {
        const t1 = performance.now();
        const got = await session.run({ image: input(k) });
        const ms = performance.now() - t1;
        if (k === 0) pipelines = pipelineCount();
        const errs = fpn.names.map((n) => {
          const w = want(`feature.${k}.${n}`);
          const out = got[`p${n}`];
          expect(out?.shape, `image ${k} level ${n}`).toEqual(w.shape);
          return relError(out?.data as Float32Array, w.data as Float32Array);
        });
        console.log(
          `image ${im.size.join('×')} → ${im.padded.join('×')}: ${ms.toFixed(0)} ms; relative errors ${errs.map((e) => e.toExponential(1)).join(', ')}`,
        );
        errs.forEach((e, i) => expect(e, `image ${k} level ${fpn.names[i]}`).toBeLessThan(1e-3));
      }
      expect(pipelineCount(), 'no pipeline after the first image').toBe(pipelines);
    } finally {
      session.destroy();
    }
    console.log(`compile, load and 4 runs: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }, 600_000);

  it('RPN proposals of 4 image sizes from one program: ≥ 99 % of torchvision’s matched at IoU ≥ 0.99', async () => {
    const { g, H, W, fpn, sizes } = pyramid();
    const rpn = tvRpn(fpn.maps, { padded: [H, W], sizes: sizes() }, rpnOptions(meta.rpn));
    const { session, input, want } = await programOf(g, { boxes: rpn.boxes, count: rpn.count }, [/^roi_heads\./]);
    try {
      for (const [k, im] of meta.images.entries()) {
        const got = await session.run({ image: input(k), image_size: im.resized });
        const w = want(`proposals.${k}`);
        const n = w.shape[0] as number;
        const m = (got.count?.data[0] ?? 0) as number;
        const boxes = got.boxes?.data as Float32Array;
        const recall = matchedFraction(w.data as Float32Array, n, boxes, m, 0.99);
        const precision = matchedFraction(boxes, m, w.data as Float32Array, n, 0.99);
        console.log(
          `image ${im.size.join('×')} → ${im.padded.join('×')}: torchvision ${n} proposals, ours ${m}; ` +
            `${(100 * recall).toFixed(2)} % of torchvision's matched at IoU ≥ 0.99, ${(100 * precision).toFixed(2)} % of ours`,
        );
        expect(recall, `image ${k}`).toBeGreaterThanOrEqual(0.99);
        expect(precision, `image ${k}`).toBeGreaterThanOrEqual(0.99);
      }
    } finally {
      session.destroy();
    }
  }, 600_000);

  it('detections of 4 image sizes from one program: the same counts, ≥ 98 % matched (label, IoU ≥ 0.98, |Δscore| ≤ 1e-3)', async () => {
    const { g, H, W, fpn, sizes } = pyramid();
    const resized = sizes();
    const original = g.input('original_size', [1, 2]);
    const rpn = tvRpn(fpn.maps, { padded: [H, W], sizes: resized }, rpnOptions(meta.rpn));
    const rh = meta.roi_heads;
    // torchvision's _filter_input: the pooler's names that the backbone has (MobileNet: '0', '1')
    const pooled = rh.featmap_names
      .filter((n) => fpn.names.includes(n))
      .map((n) => fpn.maps[fpn.names.indexOf(n)] as Tensor);
    const det = tvRoiHeads(pooled, rpn, resized, {
      prefix: 'roi_heads',
      inChannels: 256,
      scales: rh.scales,
      representationSize: rh.representation_size,
      numClasses: rh.num_classes,
      scoreThresh: rh.score_thresh,
      nmsThresh: rh.nms_thresh,
      detectionsPerImage: rh.detections_per_img,
    });
    const boxes = tvOriginalBoxes(det.boxes, resized, original);
    const outputs = { boxes, scores: det.scores, labels: det.labels, count: det.count };
    const { session, input, want } = await programOf(g, outputs, []);
    let allConsidered = 0;
    let allMatched = 0;
    try {
      for (const [k, im] of meta.images.entries()) {
        const got = await session.run({ image: input(k), image_size: im.resized, original_size: im.size });
        const wantBoxes = want(`boxes.${k}`).data as Float32Array;
        const wantScores = want(`scores.${k}`).data as Float32Array;
        const wantLabels = want(`labels.${k}`).data as Float32Array;
        const n = wantScores.length;
        const m = got.count?.data[0] as number;
        const gb = got.boxes?.data as Float32Array;
        const gs = got.scores?.data as Float32Array;
        const gl = got.labels?.data as Int32Array;
        // where the 100-detection cap cuts a band of scores, compare those clearly above the last one
        const cut = n === rh.detections_per_img ? (wantScores[n - 1] as number) + 1e-3 : -1;
        let considered = 0;
        let matched = 0;
        for (let i = 0; i < n; i++) {
          if ((wantScores[i] as number) <= cut) continue;
          considered++;
          for (let j = 0; j < m; j++)
            if (
              gl[j] === wantLabels[i] &&
              Math.abs((gs[j] as number) - (wantScores[i] as number)) <= 1e-3 &&
              iou(wantBoxes, i, gb, j) >= 0.98
            ) {
              matched++;
              break;
            }
        }
        console.log(
          `image ${im.size.join('×')}: torchvision ${n} detections, ours ${m}; of the ${considered} scoring above ` +
            `the last + 1e-3 (${cut.toFixed(4)}), ${matched} matched (label, IoU ≥ 0.98, |Δscore| ≤ 1e-3)`,
        );
        expect(m, `image ${k} count`).toBe(n);
        expect(considered, `image ${k}: detections to compare`).toBeGreaterThan(0);
        allConsidered += considered;
        allMatched += matched;
      }
      // ≥ 98 % over the 4 images (one image's near-ties alone do not decide it)
      expect(allMatched / allConsidered).toBeGreaterThanOrEqual(0.98);
    } finally {
      session.destroy();
    }
  }, 600_000);
});
