/**
 * Faster R-CNN inference timing (not run by CI): builds the inference graph of a registered model
 * (default frcnn-vgg16, 21 classes, 600×1000 canvas), compiles it with the device's limits, initializes
 * the parameters on the device (random; timing does not depend on the values), and times image → 100
 * detections per run (one command buffer; the first run includes pipeline creation).
 *
 *   npx tsx bench/frcnn-vgg16.ts [--model frcnn-vgg16|frcnn-zf|frcnn-small] [--canvas 600x1000] [--runs 3]
 *                                [--pooling roi_pool|roi_align] [--train]
 *
 * --train times ONE TRAINING STEP instead (approximate joint, PFR settings: 12000→2000 proposals, 256
 * anchors, 128 RoIs, SGD momentum + weight decay, conv1–conv2 frozen; 20 random gt boxes), i.e.
 * forward, backward and the update of every trainable parameter in one command buffer.
 *
 * The conv + matmul work (2 flops per multiply-add) is counted from the compiled graph and printed,
 * so rates can be compared across devices.
 */
import { compile, GraphBuilder, getDevice, limitsFrom, Session } from '../index.js';
import { buildFrcnnInference, type RoiPooling } from '../models/frcnn/index.js';
import { buildFrcnnTraining } from '../models/frcnn/train.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

const model = arg('model', 'frcnn-vgg16');
const [ch, cw] = arg('canvas', '600x1000').split('x').map(Number) as [number, number];
const runs = Number(arg('runs', '3'));
const pooling = arg('pooling', 'roi_pool') as RoiPooling;
const train = process.argv.includes('--train');
const GT = 20;

const dev = await getDevice();
const limits = limitsFrom(dev.limits);
const g = new GraphBuilder();
const t0 = performance.now();
const opts = { backbone: model, numClasses: 20, canvas: [ch, cw] as [number, number], limits, pooling };
const m = train ? buildFrcnnTraining(g, { ...opts, maxGt: GT }) : buildFrcnnInference(g, opts);
const t1 = performance.now();
const compiled = compile(g, {
  outputs: m.outputs,
  ...(train && 'updates' in m ? { updates: m.updates } : {}),
  limits,
  name: `${model}-${train ? 'train' : 'infer'}`,
  seed: 1,
});
const t2 = performance.now();

// Useful flops of the convolutions and matmuls (2 per multiply-add).
let flops = 0;
for (const n of compiled.graph.nodes) {
  if (n.op === 'conv2d') {
    const w = compiled.graph.node(n.inputs[1] as number).type.shape;
    const o = n.type.shape;
    flops += 2 * o.reduce((a, b) => a * b, 1) * (w[1] as number) * (w[2] as number) * (w[3] as number);
  } else if (n.op === 'matmul') {
    const a = compiled.graph.node(n.inputs[0] as number).type.shape;
    const o = n.type.shape;
    const kd = n.attrs.transA ? (a[a.length - 2] as number) : (a[a.length - 1] as number);
    flops += 2 * o.reduce((x, y) => x * y, 1) * kd;
  }
}

const session = await Session.create(compiled.spec, { gpu: dev });
const t3 = performance.now();
const image = new Float32Array(3 * ch * cw);
let s = 12345;
for (let i = 0; i < image.length; i++) {
  s = (Math.imul(s, 1103515245) + 12345) >>> 0;
  image[i] = (s / 2 ** 32) * 255 - 128;
}
const validH = Math.min(ch, 600);
const validW = Math.min(cw, 1000);
const gtBoxes: number[] = [];
for (let k = 0; k < GT; k++) {
  const x = (k * 97) % (validW - 200);
  const y = (k * 53) % (validH - 150);
  gtBoxes.push(x, y, x + 60 + ((k * 31) % 140), y + 50 + ((k * 17) % 100));
}
const feeds: Record<string, ArrayLike<number>> = train
  ? {
      image,
      im_info: [validH, validW, 1.5],
      gt_boxes: gtBoxes,
      gt_labels: Array.from({ length: GT }, (_, k) => 1 + (k % 20)),
      gt_count: [GT],
      seed: [7],
      lr: [0.001],
    }
  : { image, im_info: [validH, validW, 1.5] };
const times: number[] = [];
let last: Awaited<ReturnType<Session['run']>> = {};
for (let r = 0; r <= runs; r++) {
  const a = performance.now();
  last = await session.run(feeds);
  times.push(performance.now() - a);
}
session.destroy();
const steady = times.slice(1);
const mean = steady.reduce((a, b) => a + b, 0) / Math.max(1, steady.length);
console.log(`device: ${dev.adapterName}`);
console.log(
  `model ${model} ${train ? 'TRAINING STEP' : 'inference'}, canvas ${ch}×${cw}, pooling ${pooling}, ${g.graph.nodes.length} nodes`,
);
console.log(
  `every binding within the adapter's limits: largest ${(compiled.spec.stats.maxBindingBytes / 2 ** 20).toFixed(1)} MiB ≤ maxStorageBufferBindingSize ${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB (compile rejects any larger tensor)`,
);
console.log(
  `build ${(t1 - t0).toFixed(0)} ms, compile ${(t2 - t1).toFixed(0)} ms, session ${(t3 - t2).toFixed(0)} ms; ` +
    `${compiled.spec.stats.dispatches} dispatches, max binding ${(compiled.spec.stats.maxBindingBytes / 2 ** 20).toFixed(1)} MiB, ` +
    `params ${(compiled.spec.stats.persistentBytes / 2 ** 20).toFixed(0)} MiB, peak temp ${(compiled.spec.stats.peakTempBytes / 2 ** 20).toFixed(0)} MiB`,
);
console.log(`conv+matmul work: ${(flops / 1e9).toFixed(1)} GFLOP per image`);
console.log(
  `first run ${times[0]?.toFixed(0)} ms; steady ${steady.map((t) => t.toFixed(0)).join(', ')} ms ` +
    `(mean ${mean.toFixed(0)} ms, ${(flops / 1e9 / (mean / 1000)).toFixed(1)} GFLOP/s)`,
);
if (train)
  console.log(
    `losses: ${Object.entries(last)
      .map(([k, v]) => `${k} ${(v.data[0] as number).toFixed(4)}`)
      .join(
        ', ',
      )} (random weights and pixels: the values only show the step ran; the GFLOP figure counts every conv2d/matmul node of the compiled step, forward and backward)`,
  );
else console.log(`proposals ${last.roi_count?.data[0]}, detections ${last.det_count?.data[0]}`);
