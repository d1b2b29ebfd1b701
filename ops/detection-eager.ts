/**
 * Eager, torchvision-style detection API: host tensors in, host tensors out, each call running a small
 * cached GPU program (ops/eager.ts). Empty inputs (0 boxes) never reach the GPU — tensors cannot have a
 * 0-sized dimension in this compiler — and get empty results computed on the host.
 *
 * Several helpers add to this file; each keeps its part in its own clearly marked section.
 */
import { WgflowError } from '../compiler/errors.js';
import type { Tensor } from '../compiler/tensor.js';
import type { HostTensor } from '../runtime/session.js';
import {
  BBOX_XFORM_CLIP,
  type BoxFormat,
  boxArea as boxAreaOp,
  boxConvert as boxConvertOp,
  boxIou as boxIouOp,
  type CodingOptions,
  clipBoxes as clipBoxesOp,
  type DecodeOptions,
  decodeBoxes as decodeBoxesOp,
  encodeBoxes as encodeBoxesOp,
  smallBoxMask,
} from './boxes.js';
import { type HostInput, runEager } from './eager.js';
import { batchedNmsPacked, nmsPacked } from './nms.js';
import { type RoiAlignOptions, roiAlign as roiAlignOp } from './roi-align.js';
import { outputPair, type RoiPoolOptions, roiPool as roiPoolOp } from './roi-pool.js';

// ======================================================================= box ops (ops/boxes.ts)

/** f32 [N,4] boxes (integer typed arrays are converted, as torchvision accepts int boxes); returns N. */
function boxesIn(t: HostInput, what: string, perClass = false): { input: HostInput; n: number } {
  const s = t.shape;
  const cols = s[1] ?? 0;
  if (s.length !== 2 || (perClass ? cols % 4 !== 0 || cols === 0 : cols !== 4)) {
    throw new WgflowError(`${what} must have shape [N,${perClass ? '4K' : '4'}], got [${s.join(',')}]`);
  }
  if (t.data.length !== (s[0] as number) * cols) {
    throw new WgflowError(`${what}: ${t.data.length} values for shape [${s.join(',')}]`);
  }
  const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
  return { input: { data, shape: [s[0] as number, cols] }, n: s[0] as number };
}

const emptyF32 = (shape: readonly number[]): HostTensor => ({ data: new Float32Array(0), shape, dtype: 'f32' });

async function one(
  key: string,
  inputs: Record<string, HostInput>,
  build: Parameters<typeof runEager>[2],
): Promise<HostTensor> {
  const out = await runEager(key, inputs, build);
  return out.out as HostTensor;
}

/** torchvision.ops.box_iou: [N,M] IoU (NaN for two zero-area boxes, as in torchvision; PFR's +1 convention with plusOne). */
export async function boxIou(
  boxes1: HostInput,
  boxes2: HostInput,
  opts: { plusOne?: boolean } = {},
): Promise<HostTensor> {
  const a = boxesIn(boxes1, 'boxIou: boxes1');
  const b = boxesIn(boxes2, 'boxIou: boxes2');
  if (a.n === 0 || b.n === 0) return emptyF32([a.n, b.n]);
  const plusOne = opts.plusOne ?? false;
  return one(`box_iou:${plusOne}`, { a: a.input, b: b.input }, (_g, i) => ({
    out: boxIouOp(i.a as Tensor, i.b as Tensor, { plusOne }),
  }));
}

/** torchvision.ops.box_area: [N]. */
export async function boxArea(boxes: HostInput, opts: { plusOne?: boolean } = {}): Promise<HostTensor> {
  const b = boxesIn(boxes, 'boxArea: boxes');
  if (b.n === 0) return emptyF32([0]);
  const plusOne = opts.plusOne ?? false;
  return one(`box_area:${plusOne}`, { b: b.input }, (_g, i) => ({ out: boxAreaOp(i.b as Tensor, { plusOne }) }));
}

/** BoxCoder.encode: regression targets [N,4] of gt relative to anchors (proposals). */
export async function encodeBoxes(anchors: HostInput, gt: HostInput, opts: CodingOptions = {}): Promise<HostTensor> {
  const a = boxesIn(anchors, 'encodeBoxes: anchors');
  const g = boxesIn(gt, 'encodeBoxes: gt');
  if (a.n !== g.n) throw new WgflowError(`encodeBoxes: ${a.n} anchors but ${g.n} gt boxes`);
  if (a.n === 0) return emptyF32([0, 4]);
  const weights = opts.weights ?? [1, 1, 1, 1];
  const plusOne = opts.plusOne ?? false;
  return one(`box_encode:${weights.join(',')}:${plusOne}`, { a: a.input, g: g.input }, (_b, i) => ({
    out: encodeBoxesOp(i.a as Tensor, i.g as Tensor, { weights, plusOne }),
  }));
}

/** BoxCoder.decode: boxes [N,4K] from anchors [N,4] and deltas [N,4K]. */
export async function decodeBoxes(
  anchors: HostInput,
  deltas: HostInput,
  opts: DecodeOptions = {},
): Promise<HostTensor> {
  const a = boxesIn(anchors, 'decodeBoxes: anchors');
  const d = boxesIn(deltas, 'decodeBoxes: deltas', true);
  if (a.n !== d.n) throw new WgflowError(`decodeBoxes: ${a.n} anchors but ${d.n} rows of deltas`);
  if (a.n === 0) return emptyF32([0, deltas.shape[1] as number]);
  const weights = opts.weights ?? [1, 1, 1, 1];
  const clampLog = opts.clampLog === undefined ? BBOX_XFORM_CLIP : opts.clampLog;
  const plusOne = opts.plusOne ?? false;
  return one(`box_decode:${weights.join(',')}:${clampLog}:${plusOne}`, { a: a.input, d: d.input }, (_b, i) => ({
    out: decodeBoxesOp(i.a as Tensor, i.d as Tensor, { weights, clampLog, plusOne }),
  }));
}

/** clip_boxes_to_image: x to [0, W], y to [0, H] (PFR with plusOne: [0, W−1], [0, H−1]). `size` is [H, W]. */
export async function clipBoxes(
  boxes: HostInput,
  size: readonly [number, number],
  opts: { plusOne?: boolean } = {},
): Promise<HostTensor> {
  const b = boxesIn(boxes, 'clipBoxes: boxes');
  if (b.n === 0) return emptyF32([0, 4]);
  const plusOne = opts.plusOne ?? false;
  return one(`clip_boxes:${size[0]},${size[1]}:${plusOne}`, { b: b.input }, (_g, i) => ({
    out: clipBoxesOp(i.b as Tensor, [size[0], size[1]], { plusOne }),
  }));
}

/**
 * torchvision.ops.remove_small_boxes: indices (i32, ascending) of boxes with w ≥ minSize and h ≥ minSize.
 * The mask is computed on the GPU; compacting it into indices happens on the host (eager API only —
 * compiled graphs use the mask, or a fixed-capacity compaction op).
 */
export async function removeSmallBoxes(
  boxes: HostInput,
  minSize: number,
  opts: { plusOne?: boolean } = {},
): Promise<Int32Array> {
  const b = boxesIn(boxes, 'removeSmallBoxes: boxes');
  if (b.n === 0) return new Int32Array(0);
  const plusOne = opts.plusOne ?? false;
  const mask = await one(`small_box_mask:${minSize}:${plusOne}`, { b: b.input }, (_g, i) => ({
    out: smallBoxMask(i.b as Tensor, minSize, { plusOne }),
  }));
  const keep: number[] = [];
  mask.data.forEach((v, k) => {
    if (v !== 0) keep.push(k);
  });
  return Int32Array.from(keep);
}

/** torchvision.ops.box_convert between 'xyxy', 'xywh' and 'cxcywh'. */
export async function boxConvert(boxes: HostInput, inFmt: BoxFormat, outFmt: BoxFormat): Promise<HostTensor> {
  const b = boxesIn(boxes, 'boxConvert: boxes');
  const formats = ['xyxy', 'xywh', 'cxcywh'];
  if (!formats.includes(inFmt) || !formats.includes(outFmt)) {
    throw new WgflowError(`boxConvert: formats must be one of ${formats.join(', ')}, got ${inFmt} → ${outFmt}`);
  }
  if (b.n === 0) return emptyF32([0, 4]);
  return one(`box_convert:${inFmt}:${outFmt}`, { b: b.input }, (_g, i) => ({
    out: boxConvertOp(i.b as Tensor, inFmt, outFmt),
  }));
}

// ======================================================================= end of box ops

// ======================================================================= NMS (ops/nms.ts)

/** Options of the eager nms (torchvision semantics by default). */
export interface EagerNmsOptions {
  /** py-faster-rcnn's +1 convention in widths, heights and intersections. */
  readonly plusOne?: boolean;
  /** Suppress at IoU ≥ threshold (py-faster-rcnn cpu_nms) instead of IoU > threshold. */
  readonly inclusive?: boolean;
  /** Keep at most this many boxes (default: no limit). */
  readonly maxOutput?: number;
}

const asF32 = (t: HostInput): Float32Array => (t.data instanceof Float32Array ? t.data : Float32Array.from(t.data));

/** Checks (boxes [N,4], scores [N]) like torchvision's nms and returns N. */
function nmsInputs(op: string, boxes: HostInput, scores: HostInput): number {
  const bs = boxes.shape;
  const ss = scores.shape;
  if (bs.length !== 2)
    throw new WgflowError(`${op}: boxes must be a 2-D tensor [N,4], got a ${bs.length}-D tensor [${bs.join(',')}]`);
  if (bs[1] !== 4)
    throw new WgflowError(`${op}: boxes must have 4 values per box (x1,y1,x2,y2), got shape [${bs.join(',')}]`);
  if (ss.length !== 1)
    throw new WgflowError(`${op}: scores must be a 1-D tensor [N], got a ${ss.length}-D tensor [${ss.join(',')}]`);
  if (bs[0] !== ss[0]) {
    throw new WgflowError(
      `${op}: boxes [${bs.join(',')}] and scores [${ss.join(',')}] must have the same number of boxes (${bs[0]} vs ${ss[0]})`,
    );
  }
  const n = bs[0] as number;
  if (boxes.data.length !== n * 4)
    throw new WgflowError(`${op}: boxes has ${boxes.data.length} values for shape [${bs.join(',')}]`);
  if (scores.data.length !== n)
    throw new WgflowError(`${op}: scores has ${scores.data.length} values for shape [${ss.join(',')}]`);
  return n;
}

function nmsKey(
  op: string,
  iouThreshold: number,
  opts: EagerNmsOptions,
  n: number,
): { key: string; maxOutput: number } {
  if (typeof iouThreshold !== 'number' || Number.isNaN(iouThreshold)) {
    throw new WgflowError(`${op}: iouThreshold must be a number, got ${String(iouThreshold)}`);
  }
  const maxOutput = Math.min(opts.maxOutput ?? n, n);
  if (!Number.isInteger(maxOutput) || maxOutput < 1)
    throw new WgflowError(`${op}: maxOutput must be a positive integer, got ${String(opts.maxOutput)}`);
  return { key: `${op}:${iouThreshold}:${maxOutput}:${opts.plusOne ?? false}:${opts.inclusive ?? false}`, maxOutput };
}

/** The first `count` entries of a packed [capacity + 1] result (count at the end). */
function unpack(t: HostTensor): Int32Array {
  const cap = t.data.length - 1;
  const count = t.data[cap] as number;
  return Int32Array.from(t.data.subarray(0, count));
}

/**
 * torchvision.ops.nms: indices (i32) of the kept boxes in descending score order (stable: equal scores
 * keep the lower index first). IoU > iouThreshold suppresses (see ops/nms.ts for the exact float32
 * semantics). 0 boxes → empty result, without touching the GPU.
 */
export async function nms(
  boxes: HostInput,
  scores: HostInput,
  iouThreshold: number,
  opts: EagerNmsOptions = {},
): Promise<Int32Array> {
  const n = nmsInputs('nms', boxes, scores);
  if (n === 0) return new Int32Array(0);
  const { key, maxOutput } = nmsKey('nms', iouThreshold, opts, n);
  const out = await runEager(
    key,
    { boxes: { data: asF32(boxes), shape: [n, 4] }, scores: { data: asF32(scores), shape: [n] } },
    (_g, i) => ({
      out: nmsPacked(i.boxes as Tensor, i.scores as Tensor, {
        iouThreshold,
        maxOutput,
        plusOne: opts.plusOne ?? false,
        inclusive: opts.inclusive ?? false,
      }),
    }),
  );
  return unpack(out.out as HostTensor);
}

/**
 * torchvision.ops.batched_nms: NMS independently per category `idxs` (integers, [N]); kept indices in
 * descending score order. Uses the coordinate-offset trick on the GPU, so coordinates must be
 * non-negative (clip boxes to the image first); negative coordinates are rejected.
 */
export async function batchedNms(
  boxes: HostInput,
  scores: HostInput,
  idxs: HostInput,
  iouThreshold: number,
  opts: EagerNmsOptions = {},
): Promise<Int32Array> {
  const n = nmsInputs('batchedNms', boxes, scores);
  if (idxs.shape.length !== 1 || idxs.shape[0] !== n || idxs.data.length !== n) {
    throw new WgflowError(
      `batchedNms: idxs must be a 1-D tensor [${n}] (one category per box), got shape [${idxs.shape.join(',')}]`,
    );
  }
  if (n === 0) return new Int32Array(0);
  const classes = idxs.data instanceof Int32Array ? idxs.data : Int32Array.from(idxs.data);
  if (!idxs.data.every((v, k) => v === classes[k])) throw new WgflowError('batchedNms: idxs must hold integers');
  const b = asF32(boxes);
  const neg = b.findIndex((v) => v < 0);
  if (neg >= 0) {
    throw new WgflowError(
      `batchedNms: box ${Math.floor(neg / 4)} has a negative coordinate ${b[neg]}; the coordinate-offset trick needs non-negative boxes (clip them to the image first)`,
    );
  }
  const { key, maxOutput } = nmsKey('batched_nms', iouThreshold, opts, n);
  const out = await runEager(
    key,
    {
      boxes: { data: b, shape: [n, 4] },
      scores: { data: asF32(scores), shape: [n] },
      idxs: { data: classes, shape: [n] },
    },
    (_g, i) => ({
      out: batchedNmsPacked(i.boxes as Tensor, i.scores as Tensor, i.idxs as Tensor, {
        iouThreshold,
        maxOutput,
        plusOne: opts.plusOne ?? false,
        inclusive: opts.inclusive ?? false,
      }),
    }),
  );
  return unpack(out.out as HostTensor);
}

// ======================================================================= end of NMS

// ======================================================================= RoI pooling (ops/roi-pool.ts, ops/roi-align.ts)

/**
 * RoIs as torchvision accepts them: an f32 [K,5] tensor (batch index, x1, y1, x2, y2), or a list with one
 * [L,4] box tensor per image (the batch column is added here). [K,4] tensors are rejected, as in torchvision.
 */
export type RoisInput = HostInput | readonly HostInput[];

function roisIn(op: string, rois: RoisInput): { data: Float32Array; k: number } {
  if (Array.isArray(rois)) {
    const list = rois as readonly HostInput[];
    const parts: number[] = [];
    list.forEach((b, img) => {
      if (b.shape.length !== 2 || b.shape[1] !== 4) {
        throw new WgflowError(`${op}: boxes of image ${img} must have shape [L,4], got [${b.shape.join(',')}]`);
      }
      const l = b.shape[0] as number;
      if (b.data.length !== l * 4)
        throw new WgflowError(
          `${op}: boxes of image ${img} have ${b.data.length} values for shape [${b.shape.join(',')}]`,
        );
      for (let r = 0; r < l; r++) parts.push(img, ...Array.from(b.data.subarray(r * 4, r * 4 + 4)));
    });
    return { data: Float32Array.from(parts), k: parts.length / 5 };
  }
  const t = rois as HostInput;
  if (t.shape.length !== 2 || t.shape[1] !== 5) {
    throw new WgflowError(
      `${op}: rois must be an f32 [K,5] tensor (batch index, x1, y1, x2, y2) or a list of [L,4] boxes per image, got [${t.shape.join(',')}]`,
    );
  }
  const k = t.shape[0] as number;
  if (t.data.length !== k * 5)
    throw new WgflowError(`${op}: rois have ${t.data.length} values for shape [${t.shape.join(',')}]`);
  return { data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data), k };
}

function featuresIn(op: string, input: HostInput): { input: HostInput; c: number } {
  if (input.shape.length !== 4) throw new WgflowError(`${op}: input must be [N,C,H,W], got [${input.shape.join(',')}]`);
  const data = input.data instanceof Float32Array ? input.data : Float32Array.from(input.data);
  return { input: { data, shape: input.shape }, c: input.shape[1] as number };
}

/**
 * torchvision.ops.roi_pool: [K,C,PH,PW]. 0 RoIs → an empty [0,C,PH,PW] result computed on the host
 * (tensors cannot have a 0-sized dimension in this compiler, so the GPU is not involved).
 */
export async function roiPool(input: HostInput, rois: RoisInput, opts: RoiPoolOptions): Promise<HostTensor> {
  const x = featuresIn('roiPool', input);
  const r = roisIn('roiPool', rois);
  const [ph, pw] = outputPair(opts.outputSize);
  if (r.k === 0) return emptyF32([0, x.c, ph, pw]);
  const o = {
    outputSize: [ph, pw] as const,
    spatialScale: opts.spatialScale ?? 1,
    roundingMode: opts.roundingMode ?? 'c',
  };
  return one(
    `roi_pool:${ph},${pw}:${o.spatialScale}:${o.roundingMode}`,
    { x: x.input, rois: { data: r.data, shape: [r.k, 5] } },
    (_g, i) => ({
      out: roiPoolOp(i.x as Tensor, i.rois as Tensor, o),
    }),
  );
}

/** torchvision.ops.roi_align: [K,C,PH,PW]. 0 RoIs → an empty [0,C,PH,PW] result computed on the host. */
export async function roiAlign(input: HostInput, rois: RoisInput, opts: RoiAlignOptions): Promise<HostTensor> {
  const x = featuresIn('roiAlign', input);
  const r = roisIn('roiAlign', rois);
  const [ph, pw] = outputPair(opts.outputSize);
  if (r.k === 0) return emptyF32([0, x.c, ph, pw]);
  const o = {
    outputSize: [ph, pw] as const,
    spatialScale: opts.spatialScale ?? 1,
    samplingRatio: opts.samplingRatio ?? -1,
    aligned: opts.aligned ?? false,
  };
  return one(
    `roi_align:${ph},${pw}:${o.spatialScale}:${o.samplingRatio}:${o.aligned}`,
    { x: x.input, rois: { data: r.data, shape: [r.k, 5] } },
    (_g, i) => ({ out: roiAlignOp(i.x as Tensor, i.rois as Tensor, o) }),
  );
}

// ======================================================================= end of RoI pooling
