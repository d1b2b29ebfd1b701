/**
 * The train / detect / eval commands of the CLI (cli/wgflow.ts parses the arguments): thin wrappers over
 * the library's train(), loadDetector() and evaluate(), adding progress bars, pictures and tables.
 */
import { existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { WgflowError } from '../compiler/errors.js';
import { decodeImage, resizeBilinear } from '../data/image.js';
import { openDataset } from '../data/open.js';
import { formatCocoTable, formatVocTable } from '../eval/format.js';
import { TV_DETECTION_MODELS, type TvDetectionModel } from '../models/torchvision/detector.js';
import { INPUT_LIMITS, readInputFile } from '../runtime/input-file.js';
import { readCheckpointConfig } from '../train/checkpoint-config.js';
import { loadDetector } from '../train/detector.js';
import { checkSameClasses, evaluate } from '../train/evaluate.js';
import { isTorchvisionModel } from '../train/torchvision-detector.js';
import { type TrainOptions, train } from '../train/train.js';
import { drawDetections } from '../viz/draw-detections.js';
import { makeOutputDir, pictureNames } from './output-paths.js';
import { Progress } from './progress.js';

export interface TrainArgs {
  readonly dataset: string;
  readonly model: string;
  readonly split: string;
  readonly coco?: string;
  readonly iters?: number;
  readonly lr?: number;
  readonly resume?: string;
  readonly out: string;
  readonly checkpointEvery: number;
  readonly canvas?: string;
  readonly mode?: string;
  readonly pooling?: string;
  /** Images per training step. */
  readonly batch?: number;
  readonly skipBad?: boolean;
  /** Crop-classification pre-training steps before detection training (default 400 for frcnn-small, else 0). */
  readonly pretrainSteps?: number;
}

const lossLine = (losses: Readonly<Record<string, number>>) =>
  Object.entries(losses)
    .map(([k, v]) => `${k.replace('_loss', '')} ${v.toFixed(3)}`)
    .join(' ');

export async function trainCommand(a: TrainArgs): Promise<void> {
  let pretrainBar: Progress | undefined;
  let bar: Progress | undefined;
  let barStage: number | undefined = -1;
  const opts: TrainOptions = {
    ...a,
    log: (line) => console.error(line),
    onPretrainStep: (i, steps, loss, acc) => {
      pretrainBar ??= new Progress('pretrain', steps, 50);
      pretrainBar.update(i + 1, `loss ${loss.toFixed(3)} crop accuracy ${acc.toFixed(2)}`);
    },
    onIteration: (r, iterations, stage) => {
      if (!bar || barStage !== stage) {
        bar = new Progress(stage === undefined ? 'train' : `step ${stage}`, iterations, 50);
        barStage = stage;
      }
      const lr = stage === undefined ? ` lr ${r.lr.toPrecision(3)}` : '';
      bar.update(r.iteration + 1, `${lossLine(r.losses)}${lr}`);
    },
  };
  await makeOutputDir(a.out);
  await train(opts);
}

/** A COCO results entry (`bbox` is [x, y, w, h] with w = x2 − x1, COCO's convention). */
interface CocoResultEntry {
  image_id: number | string;
  file_name: string;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
}

const DETECTIONS_FILE = 'detections.json';

/** writeFile, with a failure as one WgflowError naming the file. */
async function writeOutput(path: string, data: Uint8Array | string): Promise<void> {
  try {
    await writeFile(path, data);
  } catch (e) {
    throw new WgflowError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export async function detectCommand(
  images: readonly string[],
  a: {
    checkpoint?: string;
    model?: string;
    weights?: string;
    minSize?: number;
    maxSize?: number;
    out: string;
    score: number;
  },
): Promise<void> {
  // every check that needs no GPU first: the options, the output folder, the images (regular files
  // within the size limit: never a pipe or a device), the output names, the checkpoint's configuration
  if (!Number.isFinite(a.score) || a.score < 0 || a.score > 1)
    throw new WgflowError(`--score must be a number in [0, 1], got ${a.score}`);
  const torchvision = a.model !== undefined;
  if (torchvision) {
    if (!isTorchvisionModel(a.model))
      throw new WgflowError(`--model must be one of ${TV_DETECTION_MODELS.join(', ')}, got '${a.model}'`);
    if (a.weights === undefined)
      throw new WgflowError(`--model ${a.model} needs --weights FILE (.pth or .safetensors)`);
    if (a.checkpoint !== undefined)
      throw new WgflowError('give --checkpoint (a wgflow model) or --model with --weights, not both');
    if (!existsSync(a.weights) || !statSync(a.weights).isFile())
      throw new WgflowError(`--weights ${a.weights}: no such file`);
  } else {
    if (a.checkpoint === undefined) throw new WgflowError('give --checkpoint FILE, or --model NAME --weights FILE');
    if (a.weights !== undefined || a.minSize !== undefined || a.maxSize !== undefined)
      throw new WgflowError('--weights, --min-size and --max-size go with --model (a torchvision model)');
  }
  await makeOutputDir(a.out);
  const inputs: Uint8Array[] = [];
  for (const path of images)
    inputs.push(await readInputFile(path, { what: 'image', maxBytes: INPUT_LIMITS.imageBytes }));
  const names = pictureNames(images, a.out, [DETECTIONS_FILE]);
  if (!torchvision) await readCheckpointConfig(a.checkpoint as string, '--checkpoint');
  const det = await loadDetector(
    torchvision
      ? {
          model: a.model as TvDetectionModel,
          weights: a.weights as string,
          ...(a.minSize !== undefined ? { minSize: a.minSize } : {}),
          ...(a.maxSize !== undefined ? { maxSize: a.maxSize } : {}),
        }
      : { checkpoint: a.checkpoint as string },
  );
  const results: CocoResultEntry[] = [];
  // drawn boxes are inclusive pixel ranges: a continuous x2 is one past the last covered column
  const lastPixel = det.boxConvention === 'continuous' ? 1 : 0;
  try {
    for (const [k, path] of images.entries()) {
      const image = await decodeImage(inputs[k] as Uint8Array, path);
      inputs[k] = new Uint8Array(0);
      const [r] = await det.detect(image);
      if (!r) continue;
      const stem = basename(path, extname(path));
      const id = /^\d+$/.test(stem) ? Number(stem) : k + 1;
      const n = r.scores.length;
      const box = (d: number) => Array.from(r.boxes.subarray(4 * d, 4 * d + 4)) as [number, number, number, number];
      for (let d = 0; d < n; d++) {
        const [x1, y1, x2, y2] = box(d);
        results.push({
          image_id: id,
          file_name: basename(path),
          category_id: r.labels[d] as number,
          bbox: [x1, y1, x2 - x1, y2 - y1],
          score: r.scores[d] as number,
        });
      }
      // small images are drawn enlarged (integer factor) so the class names and scores stay readable
      const z = Math.max(1, Math.ceil(300 / Math.min(image.width, image.height)));
      const canvas = z === 1 ? image : resizeBilinear(image, image.height * z, image.width * z);
      const shown: { box: [number, number, number, number]; label: number; score: number }[] = [];
      for (let d = 0; d < n; d++) {
        if ((r.scores[d] as number) < a.score) continue;
        const [x1, y1, x2, y2] = box(d);
        shown.push({
          box: [x1 * z, y1 * z, (x2 - lastPixel + 1) * z - 1, (y2 - lastPixel + 1) * z - 1],
          label: r.labels[d] as number,
          score: r.scores[d] as number,
        });
      }
      const picture = join(a.out, names[k] as string);
      await writeOutput(picture, await drawDetections(canvas, shown, det.classes));
      console.error(`${path}: ${shown.length} detections ≥ ${a.score} (${n} in all) → ${picture}`);
    }
  } finally {
    det.destroy();
  }
  await writeOutput(join(a.out, DETECTIONS_FILE), `${JSON.stringify(results)}\n`);
  console.error(`COCO results: ${join(a.out, DETECTIONS_FILE)}`);
}

export async function evalCommand(a: {
  dataset: string;
  checkpoint: string;
  split: string;
  coco?: string;
  skipBad?: boolean;
}): Promise<void> {
  // the dataset first: its errors come before the (slower) detector compilation
  const ds = await openDataset({ ...a, forTraining: false });
  const config = await readCheckpointConfig(a.checkpoint, '--checkpoint');
  checkSameClasses(ds.classes.slice(1), config.classes, `the checkpoint ${a.checkpoint}`);
  const det = await loadDetector({ checkpoint: a.checkpoint });
  try {
    const bar = new Progress('eval', ds.samples.length, 25);
    const ev = await evaluate(det, ds, { onImage: (done) => bar.update(done) });
    console.log(formatVocTable(ev.voc));
    console.log();
    console.log(formatVocTable(ev.voc07));
    console.log();
    console.log(formatCocoTable(ev.coco));
  } finally {
    det.destroy();
  }
}
