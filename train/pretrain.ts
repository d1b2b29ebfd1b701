/**
 * Classification pre-training of the backbone and the fc head on object crops: our stand-in for the
 * ImageNet pre-training that Faster R-CNN starts from (the paper and PFR initialise VGG16 / ZF from
 * ImageNet classifiers; a small backbone trained from scratch has no such weights).
 *
 * Crops: every training ground-truth box with 10 % context on each side (label = its class) and
 * random background boxes of object-like sizes overlapping no object by IoU ≥ 0.3 (label 0), resized
 * to S×S, randomly flipped. The graph is the detector's own layers under the same names: backbone →
 * RoI pooling of the whole crop (7×7, as in the detector) → fc6 → fc7 → cls_score (K + 1 classes),
 * softmax cross-entropy over a batch of B crops, SGD. So the weights go into the detector unchanged.
 * Everything runs on the GPU in one compiled step; bbox_pred is not trained here.
 */
import { compile } from '../compiler/compile.js';
import { WgflowError } from '../compiler/errors.js';
import { limitsFrom } from '../compiler/limits.js';
import { CAFFE_BIAS_MULTIPLIERS, sgd, trainableParams } from '../compiler/optim.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { decodeImage, type RgbImage, resizeBilinear, toFloat32 } from '../data/image.js';
import { Rng } from '../data/shapes.js';
import type { DetectionDataset } from '../data/types.js';
import { roiHead } from '../models/frcnn/head.js';
import { getBackbone, ParamMap } from '../models/frcnn/index.js';
import { learningRateAt, type StepSchedule } from '../models/frcnn/schedule.js';
import { softmaxCrossEntropy } from '../ops/losses.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';
import type { FrcnnRunConfig } from './frcnn-config.js';

export interface PretrainOptions {
  readonly steps: number;
  /** Crops per step (default 32). */
  readonly batch?: number;
  /** Crop side S (default 64). */
  readonly size?: number;
  readonly lr?: StepSchedule;
  /** Background crops per image (default 1). */
  readonly backgroundPerImage?: number;
  readonly seed?: number;
  readonly onStep?: (step: number, loss: number, accuracy: number) => void;
}

interface Crop {
  readonly pixels: Float32Array;
  readonly label: number;
}

function cropImage(img: RgbImage, x1: number, y1: number, x2: number, y2: number, S: number, flip: boolean): RgbImage {
  const w = x2 - x1 + 1;
  const h = y2 - y1 + 1;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const sx = flip ? x2 - x : x1 + x;
      const s = ((y1 + y) * img.width + sx) * 3;
      const d = (y * w + x) * 3;
      data[d] = img.data[s] as number;
      data[d + 1] = img.data[s + 1] as number;
      data[d + 2] = img.data[s + 2] as number;
    }
  return resizeBilinear({ width: w, height: h, data }, S, S);
}

const iou = (a: readonly number[], b: ArrayLike<number>): number => {
  const iw = Math.min(a[2] as number, b[2] as number) - Math.max(a[0] as number, b[0] as number) + 1;
  const ih = Math.min(a[3] as number, b[3] as number) - Math.max(a[1] as number, b[1] as number) + 1;
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const area = (r: ArrayLike<number>) =>
    ((r[2] as number) - (r[0] as number) + 1) * ((r[3] as number) - (r[1] as number) + 1);
  return inter / (area(a) + area(b) - inter);
};

/** Object and background crops of the dataset (both flips), normalized as the config says. */
export async function objectCrops(
  config: FrcnnRunConfig,
  ds: DetectionDataset,
  S: number,
  bgPerImage: number,
  seed: number,
): Promise<Crop[]> {
  const rng = new Rng(seed, 0xc20b);
  const crops: Crop[] = [];
  for (const s of ds.samples) {
    const img = await decodeImage(s.imagePath);
    const gts: Float32Array[] = [];
    for (let j = 0; j < s.labels.length; j++) {
      if (s.difficult[j] === 1) continue;
      const b = s.boxes.subarray(4 * j, 4 * j + 4);
      gts.push(b);
      const bw = (b[2] as number) - (b[0] as number) + 1;
      const bh = (b[3] as number) - (b[1] as number) + 1;
      const x1 = Math.max(0, Math.round((b[0] as number) - 0.1 * bw));
      const y1 = Math.max(0, Math.round((b[1] as number) - 0.1 * bh));
      const x2 = Math.min(img.width - 1, Math.round((b[2] as number) + 0.1 * bw));
      const y2 = Math.min(img.height - 1, Math.round((b[3] as number) + 0.1 * bh));
      for (const flip of [false, true])
        crops.push({
          pixels: toFloat32(cropImage(img, x1, y1, x2, y2, S, flip), config.pixel),
          label: s.labels[j] as number,
        });
    }
    let made = 0;
    for (let tries = 0; made < bgPerImage && tries < 50; tries++) {
      const w = rng.int(16, Math.min(80, img.width - 1));
      const h = rng.int(16, Math.min(80, img.height - 1));
      const x1 = rng.int(0, img.width - w);
      const y1 = rng.int(0, img.height - h);
      const box = [x1, y1, x1 + w - 1, y1 + h - 1];
      if (gts.some((g) => iou(box, g) >= 0.3)) continue;
      crops.push({
        pixels: toFloat32(cropImage(img, x1, y1, x1 + w - 1, y1 + h - 1, S, rng.next() < 0.5), config.pixel),
        label: 0,
      });
      made++;
    }
  }
  return crops;
}

/** Pre-trains; returns a session holding the backbone, fc6, fc7 and cls_score weights. */
export async function pretrainOnCrops(
  config: FrcnnRunConfig,
  ds: DetectionDataset,
  opts: PretrainOptions,
): Promise<{ session: Session; crops: number; seconds: number }> {
  const t0 = performance.now();
  const B = opts.batch ?? 32;
  const S = opts.size ?? 64;
  const seed = opts.seed ?? config.seed;
  const crops = await objectCrops(config, ds, S, opts.backgroundPerImage ?? 1, seed);
  if (crops.length < B) throw new WgflowError(`pretrain: only ${crops.length} crops for a batch of ${B}`);
  const dev = await getDevice();
  const limits = limitsFrom(dev.limits);
  const backbone = getBackbone(config.model);
  const g = new GraphBuilder();
  const x = g.input('crops', [B, 3, S, S]);
  const labels = g.input('labels', [B], 'i32');
  const map = new ParamMap();
  const features = backbone.build(g, x, { limits }, map);
  const rois = g.constant(Array.from({ length: B }, (_, b) => [b, 0, 0, S - 1, S - 1]).flat(), [B, 5]);
  const head = roiHead(
    g,
    features,
    rois,
    {
      head: backbone.head,
      inChannels: backbone.channels,
      numClasses: config.classes.length,
      stride: backbone.stride,
      pooling: config.pooling,
    },
    map,
  );
  const loss = softmaxCrossEntropy(head.clsScore, labels);
  const correct = head.clsScore.argmax(-1).cast('i32').eq(labels).cast('f32').sum();
  const params = trainableParams(g).filter((p) => !(p.node.name ?? '').startsWith('bbox_pred'));
  const step = sgd(loss, {
    params,
    momentum: config.momentum,
    weightDecay: config.weightDecay,
    multipliers: CAFFE_BIAS_MULTIPLIERS,
  });
  const prog = compile(g, {
    outputs: { loss, correct },
    updates: step.updates,
    limits,
    name: `${config.model}-pretrain`,
    seed: config.seed,
  });
  const session = await Session.create(prog.spec, { gpu: dev });
  const lr = opts.lr ?? { base: 0.02, steps: [Math.round(opts.steps * 0.8)], warmupIters: 50 };
  const rng = new Rng(seed, 0x57e9);
  const order = crops.map((_, i) => i);
  let pos = order.length;
  const batchX = new Float32Array(B * 3 * S * S);
  const batchY = new Int32Array(B);
  for (let it = 0; it < opts.steps; it++) {
    for (let b = 0; b < B; b++) {
      if (pos >= order.length) {
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.int(0, i);
          [order[i], order[j]] = [order[j] as number, order[i] as number];
        }
        pos = 0;
      }
      const c = crops[order[pos++] as number] as Crop;
      batchX.set(c.pixels, b * 3 * S * S);
      batchY[b] = c.label;
    }
    const out = await session.run(
      { crops: batchX, labels: batchY, [step.lrInput]: [learningRateAt(lr, it)] },
      { outputs: ['loss', 'correct'] },
    );
    const l = (out.loss as HostTensor).data[0] as number;
    if (!Number.isFinite(l)) throw new WgflowError(`pretrain: loss is ${l} at step ${it}`);
    opts.onStep?.(it, l, ((out.correct as HostTensor).data[0] as number) / B);
  }
  return { session, crops: crops.length, seconds: (performance.now() - t0) / 1000 };
}
