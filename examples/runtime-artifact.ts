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
 * needs no decoder library. The preprocessing is the model's, read from the artifact's metadata: resize
 * (py-faster-rcnn's rule, bilinear with half-pixel centres), pixel normalization, zero padding to the
 * compiled canvas and `im_info`. The detections come back in the original image's pixels; prints them
 * as one JSON line.
 */
import { readFileSync } from 'node:fs';
import { closeDevice, type HostTensor, loadArtifact } from 'wgflow/runtime';

interface Rgb {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** The artifact's preprocessing settings (metadata.config of `wgflow compile`). */
interface Preprocessing {
  readonly canvas: [number, number];
  readonly resize: { readonly shortSide?: number; readonly maxSize?: number };
  readonly pixel: {
    readonly order?: 'rgb' | 'bgr';
    readonly scale?: number;
    readonly mean?: readonly number[];
    readonly std?: readonly number[];
  };
}

/** A binary PPM (P6, maxval 255). */
function readPpm(path: string): Rgb {
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

/** py-faster-rcnn's scale (short side to shortSide, long side at most maxSize), then fit into the canvas. */
function scaleFor(img: Rgb, p: Preprocessing): { scale: number; h: number; w: number } {
  const [H, W] = p.canvas;
  const short = Math.min(img.height, img.width);
  const long = Math.max(img.height, img.width);
  let scale = (p.resize.shortSide ?? 600) / short;
  if (Math.round(scale * long) > (p.resize.maxSize ?? 1000)) scale = (p.resize.maxSize ?? 1000) / long;
  let h = Math.round(img.height * scale);
  let w = Math.round(img.width * scale);
  if (h > H || w > W) {
    scale = Math.min(H / img.height, W / img.width);
    h = Math.min(H, Math.round(img.height * scale));
    w = Math.min(W, Math.round(img.width * scale));
  }
  return { scale, h, w };
}

/** Bilinear resize, half-pixel centres, no antialiasing (cv2.INTER_LINEAR), rounded to bytes. */
function resize(img: Rgb, h: number, w: number): Rgb {
  if (h === img.height && w === img.width) return img;
  const out = new Uint8Array(w * h * 3);
  const src = (y: number, x: number, c: number) => img.data[(y * img.width + x) * 3 + c] as number;
  for (let y = 0; y < h; y++) {
    const fy = Math.max(0, (y + 0.5) * (img.height / h) - 0.5);
    const y0 = Math.min(Math.floor(fy), img.height - 1);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const wy = Math.min(fy - y0, 1);
    for (let x = 0; x < w; x++) {
      const fx = Math.max(0, (x + 0.5) * (img.width / w) - 0.5);
      const x0 = Math.min(Math.floor(fx), img.width - 1);
      const x1 = Math.min(x0 + 1, img.width - 1);
      const wx = Math.min(fx - x0, 1);
      for (let c = 0; c < 3; c++) {
        const top = src(y0, x0, c) * (1 - wx) + src(y0, x1, c) * wx;
        const bot = src(y1, x0, c) * (1 - wx) + src(y1, x1, c) * wx;
        out[(y * w + x) * 3 + c] = Math.round(top * (1 - wy) + bot * wy);
      }
    }
  }
  return { width: w, height: h, data: out };
}

/** f32 [1, 3, H, W]: (v · scale − mean) / std per channel, the image top-left, zeros elsewhere. */
function toCanvas(img: Rgb, p: Preprocessing): Float32Array {
  const [H, W] = p.canvas;
  const out = new Float32Array(3 * H * W);
  const scale = p.pixel.scale ?? 1 / 255;
  for (let c = 0; c < 3; c++) {
    const src = p.pixel.order === 'bgr' ? 2 - c : c;
    const mean = p.pixel.mean?.[c] ?? 0;
    const inv = 1 / (p.pixel.std?.[c] ?? 1);
    for (let y = 0; y < img.height; y++)
      for (let x = 0; x < img.width; x++)
        out[(c * H + y) * W + x] = ((img.data[(y * img.width + x) * 3 + src] as number) * scale - mean) * inv;
  }
  return out;
}

const [dir, imagePath] = process.argv.slice(2);
if (!dir || !imagePath) {
  console.error('usage: runtime-artifact.ts ARTIFACT_DIR IMAGE.ppm');
  process.exit(2);
}
const artifact = await loadArtifact(dir);
try {
  const pre = artifact.manifest.metadata.config as unknown as Preprocessing;
  const classes = artifact.manifest.metadata.classes as string[];
  const image = readPpm(imagePath);
  const { scale, h, w } = scaleFor(image, pre);
  const out = await artifact.session.run({
    image: toCanvas(resize(image, h, w), pre),
    im_info: [h, w, scale],
  });
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
