/**
 * Faster R-CNN demo: trains frcnn-small end to end (approximate joint training) on the GPU on the
 * synthetic shapes dataset, then detects on the held-out split and reports VOC mAP@0.5.
 *
 *   npx tsx examples/frcnn-demo.ts [--iters 3000] [--log-every 50] [--lr 0.02] [--images 400]
 *                                  [--data ./data-cache/shapes] [--size 128x160] [--step-at 0.75]
 *
 * The dataset (PNG images + VOC annotations) is generated under --data when absent. All images have
 * the --size canvas (H×W), so one training and one inference program cover them; horizontal flips
 * every other visit. lr is dropped ×0.1 at --step-at of the iterations (PFR's step policy).
 *
 * Measured on lavapipe (2 CPU cores), 400 images (320 train / 80 test), 128×160: 3000 iterations at
 * lr 0.02 → 93 ms/iter, 278 s of training, 30 ms/image inference, VOC mAP@0.5 33.4 %; 2500 iterations
 * at lr 0.01 → 19.0 %; 3000 at lr 0.04 → 31.8 %. The first run at a new canvas size also pays ~3
 * minutes of shader compilation in the first step (Mesa compiles on first dispatch; its disk cache
 * makes later runs start at once).
 */
import { existsSync } from 'node:fs';
import '../ops/index.js';
import { join } from 'node:path';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { decodeImage, flipBoxesHorizontal, flipImageHorizontal, type RgbImage, toFloat32 } from '../data/image.js';
import { generateShapesDataset } from '../data/shapes.js';
import { loadVoc } from '../data/voc.js';
import { evaluateVoc, type VocDetection, type VocGroundTruth } from '../eval/voc.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { buildFrcnnTraining } from '../models/frcnn/train.js';
import { generateAnchors } from '../ops/anchors.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : def;
}

const iters = Number(arg('iters', '3000'));
const logEvery = Number(arg('log-every', '50'));
const baseLr = Number(arg('lr', '0.02'));
const stepAt = Number(arg('step-at', '0.75'));
const count = Number(arg('images', '400'));
const dataDir = arg('data', './data-cache/shapes');
const [H, W] = arg('size', '128x160').split('x').map(Number) as [number, number];
const MAX_GT = 6;
const PIXEL = { mean: [0.5, 0.5, 0.5] as const, std: [0.25, 0.25, 0.25] as const };

const t0 = performance.now();
if (!existsSync(join(dataDir, 'labels.txt'))) {
  console.log(`generating ${count} shapes images (${H}×${W}) under ${dataDir}`);
  await generateShapesDataset(dataDir, {
    count,
    seed: 1,
    size: { width: W, height: H },
    maxObjects: MAX_GT,
    imageFormat: 'png',
    splits: { train: 0.8, test: 0.2 },
  });
}
const train = await loadVoc(dataDir, { split: 'train', difficult: 'drop', imageExt: '.png' });
const test = await loadVoc(dataDir, { split: 'test', imageExt: '.png' });
const K = train.classes.length - 1;
const decode = (ds: typeof train) => Promise.all(ds.samples.map((s) => decodeImage(s.imagePath)));
const trainImgs = await decode(train);
const testImgs = await decode(test);
for (const im of [...trainImgs, ...testImgs])
  if (im.height !== H || im.width !== W) throw new Error(`image ${im.width}×${im.height} is not ${W}×${H}`);
console.log(`data: ${train.samples.length} train, ${test.samples.length} test images, ${K} classes`);

const dev = await getDevice();
const limits = limitsFrom(dev.limits);
const model = {
  backbone: 'frcnn-small',
  numClasses: K,
  canvas: [H, W] as [number, number],
  limits,
  // shapes are 0.2–0.55 of the short side (~25–70 px): anchors of 16, 32, 64 px
  baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2, 4]),
};
const gT = new GraphBuilder();
const tr = buildFrcnnTraining(gT, {
  ...model,
  maxGt: MAX_GT,
  proposals: { minSize: 4, preNmsTopN: 1000, postNmsTopN: 300 },
});
const trainProg = compile(gT, { outputs: tr.outputs, updates: tr.updates, limits, name: 'frcnn-train', seed: 3 });
const trainer = await Session.create(trainProg.spec, { gpu: dev });
console.log(
  `train program: ${trainProg.spec.stats.dispatches} dispatches (${((performance.now() - t0) / 1000).toFixed(1)} s so far)`,
);

const terms = ['rpn_cls_loss', 'rpn_bbox_loss', 'cls_loss', 'bbox_loss', 'loss'] as const;
const avg = new Array<number>(terms.length).fill(0);
let n = 0;
const tTrain = performance.now();
for (let it = 0; it < iters; it++) {
  const k = it % trainImgs.length;
  const visit = Math.floor(it / trainImgs.length);
  const s = train.samples[k]!;
  let img: RgbImage = trainImgs[k]!;
  let boxes = s.boxes;
  if (visit % 2 === 1) {
    img = flipImageHorizontal(img);
    boxes = flipBoxesHorizontal(boxes, W);
  }
  const G = Math.min(s.labels.length, MAX_GT);
  const gtBoxes = new Float32Array(MAX_GT * 4);
  gtBoxes.set(boxes.subarray(0, 4 * G));
  const gtLabels = new Int32Array(MAX_GT);
  gtLabels.set(s.labels.subarray(0, G));
  const lr = it < stepAt * iters ? baseLr : baseLr * 0.1;
  const out = await trainer.run({
    image: toFloat32(img, PIXEL),
    im_info: [H, W, 1],
    gt_boxes: gtBoxes,
    gt_labels: gtLabels,
    gt_count: [G],
    seed: [it + 1],
    [tr.lrInput]: [lr],
  });
  terms.forEach((t, i) => {
    avg[i] = (avg[i] as number) + ((out[t] as HostTensor).data[0] as number);
  });
  n++;
  const total = (out.loss as HostTensor).data[0] as number;
  if (!Number.isFinite(total)) throw new Error(`loss is ${total} at iteration ${it}`);
  if ((it + 1) % logEvery === 0 || it === iters - 1) {
    const ms = (performance.now() - tTrain) / (it + 1);
    console.log(
      `iter ${it + 1}/${iters}  ${terms.map((t, i) => `${t} ${((avg[i] as number) / n).toFixed(4)}`).join('  ')}  lr ${lr}  ${ms.toFixed(0)} ms/iter`,
    );
    avg.fill(0);
    n = 0;
  }
}
const trainSec = (performance.now() - tTrain) / 1000;

// ---- inference on the held-out split
const gI = new GraphBuilder();
const inf = buildFrcnnInference(gI, { ...model, proposals: { minSize: 4, preNmsTopN: 1000, postNmsTopN: 100 } });
const inferProg = compile(gI, { outputs: inf.outputs, limits, name: 'frcnn-infer' });
const evaluator = await Session.create(inferProg.spec, { gpu: dev });
for (const p of inferProg.spec.persistent) evaluator.write(p.name, (await trainer.read(p.name)).data);
const dets: VocDetection[] = [];
const gts: VocGroundTruth[] = [];
const tInfer = performance.now();
for (let k = 0; k < test.samples.length; k++) {
  const s = test.samples[k]!;
  for (let j = 0; j < s.labels.length; j++)
    gts.push({
      imageId: s.id,
      classId: (s.labels[j] as number) - 1,
      box: s.boxes.subarray(4 * j, 4 * j + 4),
      difficult: s.difficult[j] === 1,
    });
  const out = await evaluator.run({ image: toFloat32(testImgs[k]!, PIXEL), im_info: [H, W, 1] });
  const c = (out.det_count as HostTensor).data[0] as number;
  const bx = (out.det_boxes as HostTensor).data;
  const sc = (out.det_scores as HostTensor).data;
  const cl = (out.det_classes as HostTensor).data;
  for (let d = 0; d < c; d++)
    dets.push({
      imageId: s.id,
      classId: (cl[d] as number) - 1,
      score: sc[d] as number,
      box: Array.from(bx.subarray(4 * d, 4 * d + 4)),
    });
}
const inferMs = (performance.now() - tInfer) / test.samples.length;
const res = evaluateVoc(dets, gts, train.classes.slice(1));
for (const c of res.perClass) console.log(`  AP ${c.name.padEnd(10)} ${(100 * c.ap).toFixed(1)}  (${c.npos} gt)`);
console.log(
  `frcnn-small ${H}×${W}: ${iters} iterations in ${trainSec.toFixed(1)} s (${((1000 * trainSec) / iters).toFixed(0)} ms/iter), ` +
    `inference ${inferMs.toFixed(0)} ms/image, VOC mAP@0.5 ${(100 * res.map).toFixed(1)} % on ${test.samples.length} held-out images; ` +
    `total ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
trainer.destroy();
evaluator.destroy();
await closeDevice();
