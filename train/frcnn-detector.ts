/**
 * Faster R-CNN inference on the GPU for a run configuration: compiles the inference program once (fixed
 * canvas), takes its weights from a training session or a checkpoint, and turns images into detections
 * in original-image pixel coordinates (py-faster-rcnn's inclusive convention, as the training data).
 * It is the {@link Detector} that loadDetector() gives for the frcnn-* models.
 */
import { compile } from '../compiler/compile.js';
import { WgflowError } from '../compiler/errors.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { decodeImage, type RgbImage } from '../data/image.js';
import { type ImageInput, toRgbImage } from '../data/image-input.js';
import { BACKGROUND } from '../data/types.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { getDevice } from '../runtime/device.js';
import { readSafetensors } from '../runtime/safetensors.js';
import { type HostTensor, Session } from '../runtime/session.js';
import type { DetectionResult, DetectOptions, Detector } from './detector.js';
import { prepareImage } from './feed.js';
import { type FrcnnRunConfig, inferenceOptions, validateConfig } from './frcnn-config.js';

export interface Detection {
  /** [x1, y1, x2, y2] in original-image pixels (inclusive convention, as the training data). */
  readonly box: [number, number, number, number];
  /** 1..K. */
  readonly label: number;
  readonly className: string;
  readonly score: number;
}

export class FrcnnDetector implements Detector {
  readonly boxConvention = 'inclusive';
  readonly classes: readonly string[];

  private constructor(
    readonly config: FrcnnRunConfig,
    readonly session: Session,
  ) {
    this.classes = [BACKGROUND, ...config.classes];
  }

  get model(): string {
    return this.config.model;
  }

  static async create(config: FrcnnRunConfig): Promise<FrcnnDetector> {
    validateConfig(config);
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const inf = buildFrcnnInference(g, inferenceOptions(config, limits));
    const prog = compile(g, { outputs: inf.outputs, limits, name: `${config.model}-infer` });
    return new FrcnnDetector(config, await Session.create(prog.spec, { gpu: dev }));
  }

  /** Copies every parameter from the first of the (training) sessions that holds its name. */
  async copyWeightsFrom(...sources: Session[]): Promise<void> {
    for (const p of this.session.spec.persistent) {
      const src = sources.find((s) => s.spec.persistent.some((q) => q.name === p.name));
      if (!src) throw new WgflowError(`copyWeightsFrom: no session holds parameter "${p.name}"`);
      this.session.write(p.name, (await src.read(p.name)).data);
    }
  }

  /** Loads the parameters from a training checkpoint (optimizer state in it is ignored). */
  async loadCheckpoint(path: string): Promise<void> {
    const { tensors } = await readSafetensors(path);
    for (const p of this.session.spec.persistent) {
      const t = tensors.get(p.name);
      if (!t)
        throw new WgflowError(`checkpoint ${path}: missing tensor "${p.name}" needed by ${this.session.spec.name}`);
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
        throw new WgflowError(
          `checkpoint ${path}: tensor "${p.name}" has shape [${t.shape.join(',')}], the model expects [${p.shape.join(',')}]`,
        );
      this.session.write(p.name, t.data);
    }
  }

  async detect(images: ImageInput | readonly ImageInput[], opts: DetectOptions = {}): Promise<DetectionResult[]> {
    const list: readonly ImageInput[] = Array.isArray(images) ? images : [images as ImageInput];
    const min = opts.scoreThreshold ?? Number.NEGATIVE_INFINITY;
    const results: DetectionResult[] = [];
    for (const [k, input] of list.entries()) {
      const dets = (await this.detectRgb(await toRgbImage(input, `detect: image ${k}`))).filter((d) => d.score >= min);
      results.push({
        boxes: Float32Array.from(dets.flatMap((d) => d.box)),
        labels: Int32Array.from(dets, (d) => d.label),
        scores: Float32Array.from(dets, (d) => d.score),
      });
    }
    return results;
  }

  /** The detections of one decoded image, with their class names. */
  async detectRgb(img: RgbImage): Promise<Detection[]> {
    const prepared = prepareImage(img, this.config);
    const out = await this.session.run(
      { image: prepared.data, im_info: prepared.imInfo },
      {
        outputs: ['det_boxes', 'det_scores', 'det_classes', 'det_count'],
      },
    );
    const n = (out.det_count as HostTensor).data[0] as number;
    const bx = (out.det_boxes as HostTensor).data;
    const sc = (out.det_scores as HostTensor).data;
    const cl = (out.det_classes as HostTensor).data;
    const dets: Detection[] = [];
    for (let d = 0; d < n; d++) {
      const label = cl[d] as number;
      dets.push({
        box: [bx[4 * d] as number, bx[4 * d + 1] as number, bx[4 * d + 2] as number, bx[4 * d + 3] as number],
        label,
        className: this.config.classes[label - 1] ?? `class ${label}`,
        score: sc[d] as number,
      });
    }
    return dets;
  }

  async detectFile(path: string): Promise<{ image: RgbImage; detections: Detection[] }> {
    const image = await decodeImage(path);
    return { image, detections: await this.detectRgb(image) };
  }

  destroy(): void {
    this.session.destroy();
  }
}
