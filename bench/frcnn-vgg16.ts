/**
 * Faster R-CNN inference timing (not run by CI): builds the inference graph of a registered model
 * (default frcnn-vgg16, 21 classes, 600×1000 canvas), compiles it with the device's limits, initializes
 * the parameters on the device (random; timing does not depend on the values), and times image → 100
 * detections per run (one command buffer; the first run includes pipeline creation).
 *
 *   npx tsx bench/frcnn-vgg16.ts [--model frcnn-vgg16|frcnn-zf|frcnn-small] [--canvas 600x1000] [--runs 3]
 *                                [--pooling roi_pool|roi_align]
 *
 * The conv + matmul work (2 flops per multiply-add) is counted from the compiled graph and printed,
 * so rates can be compared across devices.
 */
import { compile, GraphBuilder, getDevice, limitsFrom, Session } from '../index.js';
import { buildFrcnnInference, type RoiPooling } from '../models/frcnn/index.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

const model = arg('model', 'frcnn-vgg16');
const [ch, cw] = arg('canvas', '600x1000').split('x').map(Number) as [number, number];
const runs = Number(arg('runs', '3'));
const pooling = arg('pooling', 'roi_pool') as RoiPooling;

const dev = await getDevice();
const limits = limitsFrom(dev.limits);
const g = new GraphBuilder();
const t0 = performance.now();
const m = buildFrcnnInference(g, { backbone: model, numClasses: 20, canvas: [ch, cw], limits, pooling });
const t1 = performance.now();
const compiled = compile(g, { outputs: m.outputs, limits, name: `${model}-infer`, seed: 1 });
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
const feeds = { image, im_info: [validH, validW, 1.5] };
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
console.log(`model ${model}, canvas ${ch}×${cw}, pooling ${pooling}, ${g.graph.nodes.length} nodes`);
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
console.log(`proposals ${last.roi_count?.data[0]}, detections ${last.det_count?.data[0]}`);
