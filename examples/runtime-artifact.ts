/**
 * Run a compiled Faster R-CNN artifact with the runtime alone, as a deployed service does: no compiler,
 * no ts-morph, no sharp, no canvas (`wgflow/runtime` imports none of them). Make the artifact with
 *
 *   npx wgflow compile frcnn-small --checkpoint runs/train/checkpoint.safetensors --out art
 *
 * then
 *
 *   npx tsx runtime-artifact.ts art IMAGE.ppm        (in a project that installed wgflow)
 *   npm run example -- examples/runtime-artifact.ts art IMAGE.ppm   (in a clone)
 *
 * The image is a binary PPM (P6: any image converter writes one, e.g. `convert x.jpg x.ppm`), which
 * needs no decoder library. The preprocessing is the model's, read from the artifact's metadata and done
 * by the runtime's `prepareImage` (the same code the browser page uses): resize (py-faster-rcnn's rule,
 * bilinear with half-pixel centres), pixel normalization, zero padding to the compiled canvas and
 * `im_info`. The detections come back in the original image's pixels; prints them as one JSON line.
 */
import { readFileSync } from 'node:fs';
import {
  type CanvasSpec,
  closeDevice,
  type HostTensor,
  loadArtifact,
  prepareImage,
  type RgbImage,
} from 'wgflow/runtime';

/** A binary PPM (P6, maxval 255). */
function readPpm(path: string): RgbImage {
  const buf = readFileSync(path);
  const fields: string[] = [];
  let i = 0;
  while (fields.length < 4) {
    while (i < buf.length && /\s/.test(String.fromCharCode(buf[i] as number))) i++;
    if (buf[i] === 0x23)
      while (i < buf.length && buf[i] !== 0x0a) i++; // a comment line
    else {
      let f = '';
      while (i < buf.length && !/\s/.test(String.fromCharCode(buf[i] as number)))
        f += String.fromCharCode(buf[i++] as number);
      fields.push(f);
    }
  }
  const [magic, w, h, max] = fields;
  if (magic !== 'P6' || max !== '255') throw new Error(`${path}: not a binary 8-bit PPM (P6, maxval 255)`);
  const width = Number(w);
  const height = Number(h);
  const data = new Uint8Array(buf.subarray(i + 1, i + 1 + width * height * 3));
  if (data.length !== width * height * 3) throw new Error(`${path}: truncated pixel data`);
  return { width, height, data };
}

const [dir, imagePath] = process.argv.slice(2);
if (!dir || !imagePath) {
  console.error('usage: runtime-artifact.ts ARTIFACT_DIR IMAGE.ppm');
  process.exit(2);
}
const artifact = await loadArtifact(dir);
try {
  const pre = artifact.manifest.metadata.config as unknown as CanvasSpec;
  const classes = artifact.manifest.metadata.classes as string[];
  const image = readPpm(imagePath);
  const prepared = prepareImage(image, pre);
  const out = await artifact.session.run({ image: prepared.data, im_info: prepared.imInfo });
  const n = (out.det_count as HostTensor).data[0] as number;
  const boxes = (out.det_boxes as HostTensor).data;
  const detections = Array.from({ length: n }, (_, d) => ({
    class: classes[((out.det_classes as HostTensor).data[d] as number) - 1],
    score: (out.det_scores as HostTensor).data[d] as number,
    box: Array.from(boxes.subarray(4 * d, 4 * d + 4)),
  }));
  console.log(JSON.stringify({ image: imagePath, width: image.width, height: image.height, detections }));
} finally {
  artifact.session.destroy();
  await closeDevice();
}
