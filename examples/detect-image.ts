/**
 * Detect objects in images with a trained Faster R-CNN, as a library user does:
 *
 *   npx tsx detect-image.ts CHECKPOINT IMAGE... [--score 0.5]      (in a project that installed wgflow)
 *   npm run example -- examples/detect-image.ts CHECKPOINT IMAGE…  (in a clone)
 *
 * loadDetector() compiles the model for this machine's GPU and loads the checkpoint written by
 * `wgflow train` (or train()); detect() takes file paths, encoded bytes or decoded RGB(A) pixels, does
 * the preprocessing, and returns boxes in the original image's pixels. The per-class detections are
 * then merged across classes with ops.nms, fed plain arrays, as torchvision.ops.nms is fed tensors.
 * Prints one JSON line per image.
 */
import { parseArgs } from 'node:util';
import { closeDevice, loadDetector, ops } from 'wgflow';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { score: { type: 'string', default: '0.5' } },
});
const [checkpoint, ...images] = positionals;
if (!checkpoint || images.length === 0) {
  console.error('usage: detect-image.ts CHECKPOINT IMAGE... [--score 0.5]');
  process.exit(2);
}
const scoreThreshold = Number(values.score);

const detector = await loadDetector({ model: 'frcnn-small', checkpoint });
try {
  const results = await detector.detect(images, { scoreThreshold });
  for (const [k, { boxes, labels, scores }] of results.entries()) {
    // plain nested arrays [[x1, y1, x2, y2], ...] and a plain array of scores
    const rows = Array.from(scores, (_, i) => Array.from(boxes.subarray(4 * i, 4 * i + 4)));
    const kept = await ops.nms(rows, Array.from(scores), 0.5);
    const objects = Array.from(kept, (i) => ({
      class: detector.classes[labels[i] as number],
      score: Number((scores[i] as number).toFixed(4)),
      box: rows[i]?.map((v) => Number(v.toFixed(1))),
    }));
    console.log(JSON.stringify({ image: images[k], detections: scores.length, afterClassAgnosticNms: objects }));
  }
} finally {
  detector.destroy();
  await closeDevice();
}
