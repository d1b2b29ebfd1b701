/**
 * A small CNN (conv-ReLU-pool-conv-ReLU-pool-linear-softmax-CE) trained on a generated task:
 * 16×16 grayscale images of one of four shapes (horizontal bar, vertical bar, hollow square, diagonal
 * cross) at random places and sizes, with noise. Used by the example script and by the test suite.
 */
import {
  compile,
  GraphBuilder,
  getDevice,
  limitsFrom,
  Session,
  sgd,
  softmaxCrossEntropy,
  uniformStream,
} from '../index.js';
import { CLASSES, IMAGE, smallCnn } from '../models/small-cnn.js';

export { CLASSES, IMAGE, smallCnn };

/** `count` labelled images, deterministic in `seed`. Pixels in [0, 1] plus noise. */
export function makeShapesTask(count: number, seed: number): { images: Float32Array; labels: Int32Array } {
  const r = uniformStream(seed);
  const images = new Float32Array(count * IMAGE * IMAGE);
  const labels = new Int32Array(count);
  const ri = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  for (let n = 0; n < count; n++) {
    const label = ri(0, CLASSES - 1);
    labels[n] = label;
    const img = images.subarray(n * IMAGE * IMAGE, (n + 1) * IMAGE * IMAGE);
    const set = (y: number, x: number) => {
      if (y >= 0 && y < IMAGE && x >= 0 && x < IMAGE) img[y * IMAGE + x] = 0.6 + 0.4 * r();
    };
    const len = ri(6, 11);
    const y0 = ri(1, IMAGE - len - 1);
    const x0 = ri(1, IMAGE - len - 1);
    if (label === 0) for (let i = 0; i < len; i++) set(y0 + Math.floor(len / 2), x0 + i);
    if (label === 1) for (let i = 0; i < len; i++) set(y0 + i, x0 + Math.floor(len / 2));
    if (label === 2) {
      for (let i = 0; i < len; i++) {
        set(y0, x0 + i);
        set(y0 + len - 1, x0 + i);
        set(y0 + i, x0);
        set(y0 + i, x0 + len - 1);
      }
    }
    if (label === 3) {
      for (let i = 0; i < len; i++) {
        set(y0 + i, x0 + i);
        set(y0 + i, x0 + len - 1 - i);
      }
    }
    for (let i = 0; i < img.length; i++) img[i] = (img[i] as number) + 0.15 * (r() - 0.5);
  }
  return { images, labels };
}

export interface TrainResult {
  readonly losses: number[];
  readonly accuracy: number;
  readonly seconds: number;
  readonly dispatchesPerStep: number;
}

export interface TrainOptions {
  readonly steps?: number;
  readonly batch?: number;
  readonly lr?: number;
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

/** Trains on the GPU and measures accuracy on a held-out generated set. */
export async function trainSmallCnn(opts: TrainOptions = {}): Promise<TrainResult> {
  const steps = opts.steps ?? 300;
  const batch = opts.batch ?? 32;
  const lr = opts.lr ?? 0.05;
  const seed = opts.seed ?? 1;
  const dev = await getDevice();
  const limits = limitsFrom(dev.limits);
  const g = new GraphBuilder();
  const x = g.input('images', [batch, 1, IMAGE, IMAGE]);
  const labels = g.input('labels', [batch], 'i32');
  const logits = smallCnn(g, x);
  const loss = softmaxCrossEntropy(logits, labels);
  const step = sgd(loss, { momentum: 0.9, weightDecay: 5e-4 });
  const train = compile(g, { outputs: { loss }, updates: step.updates, limits, name: 'small-cnn-train', seed });
  const infer = compile(g, { outputs: { logits }, limits, name: 'small-cnn-infer' });
  const trainer = await Session.create(train.spec, { gpu: dev });
  const data = makeShapesTask(steps * batch, seed + 100);
  const losses: number[] = [];
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const images = data.images.subarray(s * batch * IMAGE * IMAGE, (s + 1) * batch * IMAGE * IMAGE);
    const y = data.labels.subarray(s * batch, (s + 1) * batch);
    const out = await trainer.run({ images, labels: y, [step.lrInput]: [lr] });
    const l = (out.loss?.data[0] as number) ?? Number.NaN;
    if (!Number.isFinite(l)) throw new Error(`small CNN: loss is ${l} at step ${s}`);
    losses.push(l);
    if (opts.log && (s % 50 === 0 || s === steps - 1)) opts.log(`step ${s}  loss ${l.toFixed(4)}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const evaluator = await Session.create(infer.spec, { gpu: dev });
  for (const p of infer.spec.persistent) evaluator.write(p.name, (await trainer.read(p.name)).data);
  const test = makeShapesTask(batch * 8, seed + 999);
  let correct = 0;
  for (let b = 0; b < 8; b++) {
    const out = await evaluator.run({
      images: test.images.subarray(b * batch * IMAGE * IMAGE, (b + 1) * batch * IMAGE * IMAGE),
    });
    const lg = out.logits?.data as Float32Array;
    for (let i = 0; i < batch; i++) {
      let best = 0;
      for (let c = 1; c < CLASSES; c++)
        if ((lg[i * CLASSES + c] as number) > (lg[i * CLASSES + best] as number)) best = c;
      if (best === test.labels[b * batch + i]) correct++;
    }
  }
  trainer.destroy();
  evaluator.destroy();
  return { losses, accuracy: correct / (batch * 8), seconds, dispatchesPerStep: train.spec.stats.dispatches };
}
