/**
 * torchvision's Faster R-CNN models from the user's own weights: a `.pth` file (torch.save's zip or
 * legacy format, a bare state_dict or a checkpoint with a 'model' entry) or safetensors with
 * torchvision's key names, read by runtime/torch with no Python. The weights give the class count
 * (roi_heads.box_predictor.cls_score.weight); one program compiled for every image size up to the
 * bound runs each image (one per run) after torchvision's transform on the host
 * (models/torchvision/transform.ts); boxes come back in the original image's pixels with torchvision's
 * convention (continuous: width x2 − x1), labels as torchvision's ids.
 */
import { compile } from '../compiler/compile.js';
import { WgflowError } from '../compiler/errors.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { type ImageInput, toRgbImage } from '../data/image-input.js';
import { TV_COCO_CATEGORIES } from '../models/torchvision/coco.js';
import {
  buildTvDetection,
  TV_DETECTION_MODELS,
  TV_MODEL_SPECS,
  type TvDetectionModel,
} from '../models/torchvision/detector.js';
import { tvTransform } from '../models/torchvision/transform.js';
import { getDevice } from '../runtime/device.js';
import { Session } from '../runtime/session.js';
import { loadStateDict, mapStateDict, toFloat32 } from '../runtime/torch/index.js';
import type { DetectionResult, DetectOptions, Detector } from './detector.js';

export interface TorchvisionDetectorOptions {
  /** torchvision's builder name, e.g. 'fasterrcnn_resnet50_fpn'. */
  readonly model: TvDetectionModel;
  /** A .pth (zip or legacy) or .safetensors file with torchvision's state_dict keys. */
  readonly weights: string;
  /** The transform's sizes (the builder's defaults: 800 / 1333, 320 / 640 for the _320 model). */
  readonly minSize?: number;
  readonly maxSize?: number;
  /** The RoI heads' box_score_thresh (0.05), box_nms_thresh (0.5) and detections_per_img (100). */
  readonly scoreThreshold?: number;
  readonly nmsThreshold?: number;
  readonly detectionsPerImage?: number;
  /** Class names by label (default: COCO's 91 when the weights have 91 classes, else 'class N'). */
  readonly classes?: readonly string[];
}

export function isTorchvisionModel(name: unknown): name is TvDetectionModel {
  return typeof name === 'string' && (TV_DETECTION_MODELS as readonly string[]).includes(name);
}

const CLS_WEIGHT = 'roi_heads.box_predictor.cls_score.weight';

/**
 * Keys of older torchvision checkpoints, renamed as torchvision's own _load_from_state_dict hooks do:
 * FPN convs `inner_blocks.i.weight` → `inner_blocks.i.0.weight` (and layer_blocks), the RPN head's
 * `conv.weight` → `conv.0.0.weight`.
 */
export function tvKeyOf(key: string): string {
  return key
    .replace(/^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$/, '$1.0.$2')
    .replace(/^(rpn\.head\.conv)\.(weight|bias)$/, '$1.0.0.$2');
}

export class TorchvisionDetector implements Detector {
  readonly boxConvention = 'continuous';

  private constructor(
    readonly model: TvDetectionModel,
    readonly classes: readonly string[],
    readonly session: Session,
    private readonly sizes: { readonly minSize: number; readonly maxSize: number },
  ) {}

  static async create(o: TorchvisionDetectorOptions): Promise<TorchvisionDetector> {
    if (!isTorchvisionModel(o.model))
      throw new WgflowError(
        `torchvision detector: unknown model '${String(o.model)}' (known: ${TV_DETECTION_MODELS.join(', ')})`,
      );
    const sd = await loadStateDict(o.weights);
    const cls = sd.tensors.get(CLS_WEIGHT);
    const numClasses = cls?.shape.length === 2 ? (cls.shape[0] as number) : undefined;
    if (numClasses === undefined)
      throw new WgflowError(
        `${o.weights}: no ${CLS_WEIGHT} [classes, 1024]: not a torchvision Faster R-CNN state dict`,
      );
    const spec = TV_MODEL_SPECS[o.model];
    const sizes = { minSize: o.minSize ?? spec.minSize, maxSize: o.maxSize ?? spec.maxSize };
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const det = buildTvDetection(g, o.model, {
      numClasses,
      maxImageSize: Math.max(sizes.minSize, sizes.maxSize),
      ...(o.scoreThreshold !== undefined ? { scoreThresh: o.scoreThreshold } : {}),
      ...(o.nmsThreshold !== undefined ? { nmsThresh: o.nmsThreshold } : {}),
      ...(o.detectionsPerImage !== undefined ? { detectionsPerImage: o.detectionsPerImage } : {}),
    });
    // every tensor mapped by name, all problems at once (num_batches_tracked ignored), before compiling
    const params = g.graph.nodes.filter((n) => n.op === 'param');
    const mapped = mapStateDict(
      params.map((n) => ({ name: n.name as string, shape: n.type.shape })),
      sd,
      { rename: tvKeyOf, source: o.weights },
    );
    const { spec: program } = compile(g, { outputs: det.outputs, limits, name: o.model });
    const initial = Object.fromEntries(
      program.persistent.flatMap((p) => {
        const t = mapped.get(p.name);
        return t ? [[p.name, toFloat32(t)]] : [];
      }),
    );
    const classes =
      o.classes ??
      (numClasses === TV_COCO_CATEGORIES.length
        ? TV_COCO_CATEGORIES
        : ['__background__', ...Array.from({ length: numClasses - 1 }, (_, i) => `class ${i + 1}`)]);
    if (classes.length !== numClasses)
      throw new WgflowError(
        `torchvision detector: ${classes.length} class names for ${numClasses} classes in ${o.weights}`,
      );
    return new TorchvisionDetector(o.model, classes, await Session.create(program, { gpu: dev, initial }), sizes);
  }

  async detect(images: ImageInput | readonly ImageInput[], opts: DetectOptions = {}): Promise<DetectionResult[]> {
    const list = Array.isArray(images) ? images : [images as ImageInput];
    const out: DetectionResult[] = [];
    for (const [i, input] of list.entries()) {
      const rgb = await toRgbImage(input, `detect: image ${i}`);
      const { width: W, height: H } = rgb;
      // to_tensor: CHW float32 in [0, 1]
      const chw = new Float32Array(3 * H * W);
      for (let p = 0; p < H * W; p++)
        for (let c = 0; c < 3; c++) chw[c * H * W + p] = Math.fround((rgb.data[3 * p + c] as number) / 255);
      const t = tvTransform(chw, H, W, this.sizes);
      const got = await this.session.run({
        image: { data: t.data, shape: [1, 3, t.padded[0], t.padded[1]] },
        image_size: [...t.resized],
        original_size: [H, W],
      });
      const output = (name: string) => {
        const v = got[name];
        if (!v) throw new Error(`internal: the ${this.model} program has no output ${name}`);
        return v.data;
      };
      const n = output('count')[0] as number;
      const min = opts.scoreThreshold ?? Number.NEGATIVE_INFINITY;
      const scores = (output('scores') as Float32Array).subarray(0, n);
      const keep = Array.from({ length: n }, (_, j) => j).filter((j) => (scores[j] as number) >= min);
      const boxes = output('boxes') as Float32Array;
      const labels = output('labels') as Int32Array;
      out.push({
        boxes: Float32Array.from(keep.flatMap((j) => Array.from(boxes.subarray(4 * j, 4 * j + 4)))),
        labels: Int32Array.from(keep.map((j) => labels[j] as number)),
        scores: Float32Array.from(keep.map((j) => scores[j] as number)),
      });
    }
    return out;
  }

  destroy(): void {
    this.session.destroy();
  }
}

/** torchvision.models.detection.fasterrcnn_resnet50_fpn with the user's weights. */
export function fasterrcnnResnet50Fpn(o: Omit<TorchvisionDetectorOptions, 'model'>): Promise<TorchvisionDetector> {
  return TorchvisionDetector.create({ ...o, model: 'fasterrcnn_resnet50_fpn' });
}

/** torchvision.models.detection.fasterrcnn_resnet50_fpn_v2 with the user's weights. */
export function fasterrcnnResnet50FpnV2(o: Omit<TorchvisionDetectorOptions, 'model'>): Promise<TorchvisionDetector> {
  return TorchvisionDetector.create({ ...o, model: 'fasterrcnn_resnet50_fpn_v2' });
}

/** torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn with the user's weights. */
export function fasterrcnnMobilenetV3LargeFpn(
  o: Omit<TorchvisionDetectorOptions, 'model'>,
): Promise<TorchvisionDetector> {
  return TorchvisionDetector.create({ ...o, model: 'fasterrcnn_mobilenet_v3_large_fpn' });
}

/** torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn with the user's weights. */
export function fasterrcnnMobilenetV3Large320Fpn(
  o: Omit<TorchvisionDetectorOptions, 'model'>,
): Promise<TorchvisionDetector> {
  return TorchvisionDetector.create({ ...o, model: 'fasterrcnn_mobilenet_v3_large_320_fpn' });
}
