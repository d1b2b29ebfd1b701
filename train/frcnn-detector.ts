/**
 * Faster R-CNN inference on the GPU for a run configuration: compiles the inference program once (fixed
 * canvas), takes its weights from a training session or a checkpoint, and turns images into detections
 * in original-image pixel coordinates. Also evaluates a dataset (VOC and COCO metrics).
 */
import { compile } from '../compiler/compile.js';
import { WgflowError } from '../compiler/errors.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { decodeImage, type RgbImage } from '../data/image.js';
import type { DetectionDataset } from '../data/types.js';
import { type CocoEvalResult, evaluateCoco } from '../eval/coco.js';
import type { CocoAnnotation, CocoDetection } from '../eval/coco-params.js';
import { evaluateVoc, type VocDetection, type VocEvalResult, type VocGroundTruth } from '../eval/voc.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { getDevice } from '../runtime/device.js';
import { readSafetensors } from '../runtime/safetensors.js';
import { type HostTensor, Session } from '../runtime/session.js';
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

export class FrcnnDetector {
  private constructor(
    readonly config: FrcnnRunConfig,
    readonly session: Session,
  ) {}

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

  async detect(img: RgbImage): Promise<Detection[]> {
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
    return { image, detections: await this.detect(image) };
  }

  /** Detects every image of the dataset and evaluates (VOC: AUC and 11-point; COCO). */
  async evaluate(
    ds: DetectionDataset,
    onImage?: (done: number, total: number) => void,
  ): Promise<{ voc: VocEvalResult; voc07: VocEvalResult; coco: CocoEvalResult; detections: Map<string, Detection[]> }> {
    const vocDets: VocDetection[] = [];
    const vocGts: VocGroundTruth[] = [];
    const all = new Map<string, Detection[]>();
    const images: { id: number; width: number; height: number }[] = [];
    const annotations: CocoAnnotation[] = [];
    const results: CocoDetection[] = [];
    // COCO boxes are continuous [x, y, w, h]; the inclusive pixel box x1..x2 covers x2 − x1 + 1 pixels
    const plus = ds.boxConvention === 'inclusive' ? 1 : 0;
    for (let k = 0; k < ds.samples.length; k++) {
      const s = ds.samples[k]!;
      const imageId = k + 1;
      images.push({ id: imageId, width: s.width, height: s.height });
      for (let j = 0; j < s.labels.length; j++) {
        const b = s.boxes.subarray(4 * j, 4 * j + 4);
        vocGts.push({ imageId: s.id, classId: (s.labels[j] as number) - 1, box: b, difficult: s.difficult[j] === 1 });
        const w = (b[2] as number) - (b[0] as number) + plus;
        const h = (b[3] as number) - (b[1] as number) + plus;
        annotations.push({
          id: annotations.length + 1,
          image_id: imageId,
          category_id: s.labels[j] as number,
          bbox: [b[0] as number, b[1] as number, w, h],
          area: w * h,
          iscrowd: s.iscrowd[j] as number,
          ...(s.difficult[j] === 1 ? { ignore: 1 } : {}),
        });
      }
      const { detections } = await this.detectFile(s.imagePath);
      all.set(s.id, detections);
      for (const d of detections) {
        vocDets.push({ imageId: s.id, classId: d.label - 1, score: d.score, box: d.box });
        results.push({
          image_id: imageId,
          category_id: d.label,
          bbox: [d.box[0], d.box[1], d.box[2] - d.box[0] + plus, d.box[3] - d.box[1] + plus],
          score: d.score,
        });
      }
      onImage?.(k + 1, ds.samples.length);
    }
    const names = ds.classes.slice(1);
    const categories = names.map((name, i) => ({ id: i + 1, name }));
    return {
      voc: evaluateVoc(vocDets, vocGts, names),
      voc07: evaluateVoc(vocDets, vocGts, names, { use07: true }),
      coco: evaluateCoco({ images, annotations, categories }, results),
      detections: all,
    };
  }

  destroy(): void {
    this.session.destroy();
  }
}
