/**
 * Train a Faster R-CNN on a folder of images with PASCAL VOC annotations, then evaluate it:
 *
 *   npx tsx train-folder.ts DATASET [--out runs/example] [--iters 2000] [--canvas 128x160] [--pretrain-steps 400]
 *   npm run example -- examples/train-folder.ts DATASET …   (in a clone)
 *
 * DATASET holds Annotations/*.xml, JPEGImages/ and ImageSets/Main/{train,test}.txt (what
 * generateShapesDataset() writes, e.g. `wgflow demo` does). train() has the same defaults as
 * `wgflow train` (frcnn-small's recipe, crop pre-training, checkpoints every 500 iterations);
 * evaluate() scores the 'test' split as `wgflow eval` does.
 */
import { parseArgs } from 'node:util';
import { closeDevice, evaluate, loadDetector, train } from 'wgflow';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string', default: 'runs/example' },
    iters: { type: 'string' },
    canvas: { type: 'string' },
    'pretrain-steps': { type: 'string' },
  },
});
const dataset = positionals[0];
if (!dataset) {
  console.error('usage: train-folder.ts DATASET [--out DIR] [--iters N] [--canvas HxW] [--pretrain-steps N]');
  process.exit(2);
}

try {
  const run = await train({
    dataset,
    out: values.out,
    ...(values.iters ? { iters: Number(values.iters) } : {}),
    ...(values.canvas ? { canvas: values.canvas } : {}),
    ...(values['pretrain-steps'] ? { pretrainSteps: Number(values['pretrain-steps']) } : {}),
    log: (line) => console.error(line),
    onIteration: (r, iterations) => {
      if ((r.iteration + 1) % 10 === 0 || r.iteration + 1 === iterations)
        console.error(`iteration ${r.iteration + 1}/${iterations}: loss ${r.losses.loss?.toFixed(4)}`);
    },
  });
  const detector = await loadDetector({ model: run.config.model, checkpoint: run.checkpoint });
  try {
    const ev = await evaluate(detector, dataset, { split: 'test' });
    console.log(
      JSON.stringify({
        checkpoint: run.checkpoint,
        iterations: run.config.iterations,
        vocMap: ev.voc.map,
        cocoAp: ev.coco.stats[0],
      }),
    );
  } finally {
    detector.destroy();
  }
} finally {
  await closeDevice();
}
