/**
 * Eager, torchvision-style detection API: host tensors in, host tensors out, each call running a small
 * cached GPU program (ops/eager.ts). Inputs are {@link TensorLike}: `{ data, shape }`, typed arrays or
 * nested arrays. Arguments come in torchvision's order with torchvision's option names (camelCase).
 * Empty inputs (0 boxes) never reach the GPU — tensors cannot have a 0-sized dimension in this
 * compiler — and get empty results computed on the host.
 *
 * Several helpers add to this file; each keeps its part in its own clearly marked section.
 */
import { WgflowError } from '../compiler/errors.js';
import { fmtValue } from '../compiler/ir.js';
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
import { type HostInput, runEager, type TensorLike, toHostInput } from './eager.js';
import {
  boolOption,
  checkCount,
  checkFiniteRows,
  EAGER_LIMITS,
  type EagerLimitOptions,
  imageSizeOption,
  iouThresholdOption,
  limitOption,
  outputSizeOption,
  positiveOption,
  roiAlignSamples,
  weightsOption,
} from './eager-limits.js';
import { batchedNmsPacked, nmsPacked } from './nms.js';
import { type RoiAlignOptions, roiAlign as roiAlignOp } from './roi-align.js';
import { type RoiPoolOptions, roiPool as roiPoolOp } from './roi-pool.js';

// ======================================================================= box ops (ops/boxes.ts)

/**
 * f32 [N,4] boxes ([N,4K] with `perClass`); integer values are converted, as torchvision accepts int
 * boxes, and a bare typed array of N×4 values is read as [N,4]. Returns N.
 */
function boxesIn(t: TensorLike, what: string, perClass = false): { input: HostInput; n: number } {
  const h = toHostInput(t, what, 'f32', { rowsOf: 4 });
  const s = h.shape;
  const cols = s[1] ?? 0;
  if (s.length !== 2 || (perClass ? cols % 4 !== 0 || cols === 0 : cols !== 4)) {
    throw new WgflowError(`${what} must have shape [N,${perClass ? '4K' : '4'}], got [${s.join(',')}]`);
  }
  checkFiniteRows(what, h.data, cols, 'boxes must be finite');
  return { input: { data: h.data, shape: [s[0] as number, cols] }, n: s[0] as number };
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
  boxes1: TensorLike,
  boxes2: TensorLike,
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
export async function boxArea(boxes: TensorLike, opts: { plusOne?: boolean } = {}): Promise<HostTensor> {
  const b = boxesIn(boxes, 'boxArea: boxes');
  if (b.n === 0) return emptyF32([0]);
  const plusOne = opts.plusOne ?? false;
  return one(`box_area:${plusOne}`, { b: b.input }, (_g, i) => ({ out: boxAreaOp(i.b as Tensor, { plusOne }) }));
}

/**
 * torchvision's `BoxCoder.encode(reference_boxes, proposals)`: the regression targets [N,4] that move
 * each proposal (anchor) onto its reference box (ground truth). Argument order as in torchvision.
 */
export async function encodeBoxes(
  referenceBoxes: TensorLike,
  proposals: TensorLike,
  opts: CodingOptions = {},
): Promise<HostTensor> {
  const g = boxesIn(referenceBoxes, 'encodeBoxes: referenceBoxes');
  const a = boxesIn(proposals, 'encodeBoxes: proposals');
  if (a.n !== g.n) throw new WgflowError(`encodeBoxes: ${g.n} reference boxes but ${a.n} proposals`);
  const weights = weightsOption('encodeBoxes', opts.weights);
  const plusOne = boolOption('encodeBoxes', 'plusOne', opts.plusOne, false);
  if (a.n === 0) return emptyF32([0, 4]);
  return one(`box_encode:${weights.join(',')}:${plusOne}`, { a: a.input, g: g.input }, (_b, i) => ({
    out: encodeBoxesOp(i.g as Tensor, i.a as Tensor, { weights, plusOne }),
  }));
}

/**
 * torchvision's `BoxCoder.decode(rel_codes, boxes)`: boxes [N,4K] from the regression deltas
 * `relCodes` [N,4K] (K = 1, or one set per class) applied to `boxes` [N,4] (anchors or proposals).
 * dw, dh are clamped to `bboxXformClip` (default ln(1000/16); null: no clamp, as py-faster-rcnn).
 */
export async function decodeBoxes(
  relCodes: TensorLike,
  boxes: TensorLike,
  opts: DecodeOptions = {},
): Promise<HostTensor> {
  const d = boxesIn(relCodes, 'decodeBoxes: relCodes', true);
  const a = boxesIn(boxes, 'decodeBoxes: boxes');
  if (a.n !== d.n) throw new WgflowError(`decodeBoxes: ${d.n} rows of relCodes but ${a.n} boxes`);
  const weights = weightsOption('decodeBoxes', opts.weights);
  const clip = opts.bboxXformClip === undefined ? BBOX_XFORM_CLIP : opts.bboxXformClip;
  if (clip !== null && (typeof clip !== 'number' || Number.isNaN(clip)))
    throw new WgflowError(`decodeBoxes: bboxXformClip must be a number or null, got ${fmtValue(clip)}`);
  const plusOne = boolOption('decodeBoxes', 'plusOne', opts.plusOne, false);
  if (a.n === 0) return emptyF32([0, d.input.shape[1] as number]);
  return one(`box_decode:${weights.join(',')}:${clip}:${plusOne}`, { a: a.input, d: d.input }, (_b, i) => ({
    out: decodeBoxesOp(i.d as Tensor, i.a as Tensor, { weights, bboxXformClip: clip, plusOne }),
  }));
}

/**
 * torchvision's `clip_boxes_to_image`: x to [0, W], y to [0, H] (PFR with plusOne: [0, W−1], [0, H−1]).
 * `boxes` is [N,4] or [N,4K] (per-class boxes, as decodeBoxes gives); `size` is [H, W].
 */
export async function clipBoxes(
  boxes: TensorLike,
  size: readonly [number, number],
  opts: { plusOne?: boolean } = {},
): Promise<HostTensor> {
  const b = boxesIn(boxes, 'clipBoxes: boxes', true);
  imageSizeOption('clipBoxes', size);
  const plusOne = boolOption('clipBoxes', 'plusOne', opts.plusOne, false);
  if (b.n === 0) return emptyF32([0, b.input.shape[1] as number]);
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
  boxes: TensorLike,
  minSize: number,
  opts: { plusOne?: boolean } = {},
): Promise<Int32Array> {
  const b = boxesIn(boxes, 'removeSmallBoxes: boxes');
  if (typeof minSize !== 'number' || Number.isNaN(minSize))
    throw new WgflowError(`removeSmallBoxes: minSize must be a number, got ${fmtValue(minSize)}`);
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
export async function boxConvert(boxes: TensorLike, inFmt: BoxFormat, outFmt: BoxFormat): Promise<HostTensor> {
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
export interface EagerNmsOptions extends Pick<EagerLimitOptions, 'maxBoxes'> {
  /** py-faster-rcnn's +1 convention in widths, heights and intersections. */
  readonly plusOne?: boolean;
  /** Suppress at IoU ≥ threshold (py-faster-rcnn cpu_nms) instead of IoU > threshold. */
  readonly inclusive?: boolean;
  /** Keep at most this many boxes (default: no limit). */
  readonly maxOutput?: number;
}

/** Checks (boxes [N,4], scores [N]) like torchvision's nms; returns them as f32 and N. */
function nmsInputs(
  op: string,
  boxesArg: TensorLike,
  scoresArg: TensorLike,
  opts: EagerNmsOptions,
): { boxes: Float32Array; scores: Float32Array; n: number } {
  const boxes = toHostInput(boxesArg, `${op}: boxes`, 'f32', { rowsOf: 4 });
  const scores = toHostInput(scoresArg, `${op}: scores`);
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
  checkCount(op, n, 'boxes', limitOption(op, 'maxBoxes', opts.maxBoxes, EAGER_LIMITS.nmsBoxes), 'maxBoxes');
  checkFiniteRows(`${op}: boxes`, boxes.data, 4, 'NMS needs finite boxes');
  return { boxes: boxes.data as Float32Array, scores: scores.data as Float32Array, n };
}

function nmsKey(
  op: string,
  iouThreshold: number,
  opts: EagerNmsOptions,
  n: number,
): { key: string; maxOutput: number } {
  iouThresholdOption(op, iouThreshold);
  boolOption(op, 'plusOne', opts.plusOne, false);
  boolOption(op, 'inclusive', opts.inclusive, false);
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
  boxes: TensorLike,
  scores: TensorLike,
  iouThreshold: number,
  opts: EagerNmsOptions = {},
): Promise<Int32Array> {
  const b = nmsInputs('nms', boxes, scores, opts);
  iouThresholdOption('nms', iouThreshold);
  if (b.n === 0) return new Int32Array(0);
  const { key, maxOutput } = nmsKey('nms', iouThreshold, opts, b.n);
  const out = await runEager(
    key,
    { boxes: { data: b.boxes, shape: [b.n, 4] }, scores: { data: b.scores, shape: [b.n] } },
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
 * descending score order. One NMS on the GPU over boxes shifted by category · (coordinate range + 1),
 * the range being max − min over every coordinate, so boxes of different categories never overlap
 * whatever their (finite) coordinates, negative ones included.
 */
export async function batchedNms(
  boxes: TensorLike,
  scores: TensorLike,
  idxs: TensorLike,
  iouThreshold: number,
  opts: EagerNmsOptions = {},
): Promise<Int32Array> {
  const b = nmsInputs('batchedNms', boxes, scores, opts);
  iouThresholdOption('batchedNms', iouThreshold);
  const classes = toHostInput(idxs, 'batchedNms: idxs', 'i32');
  if (classes.shape.length !== 1 || classes.shape[0] !== b.n) {
    throw new WgflowError(
      `batchedNms: idxs must be a 1-D tensor [${b.n}] (one category per box), got shape [${classes.shape.join(',')}]`,
    );
  }
  if (b.n === 0) return new Int32Array(0);
  const { key, maxOutput } = nmsKey('batched_nms', iouThreshold, opts, b.n);
  const out = await runEager(
    key,
    {
      boxes: { data: b.boxes, shape: [b.n, 4] },
      scores: { data: b.scores, shape: [b.n] },
      idxs: { data: classes.data, shape: [b.n] },
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
 * As nested arrays: `[[0, x1, y1, x2, y2], …]` is the [K,5] tensor, `[[[x1, y1, x2, y2], …], …]` the list.
 */
export type RoisInput = TensorLike | readonly TensorLike[];

/** A list of per-image box tensors (not one nested [K,5] array). */
function isRoiList(rois: RoisInput): rois is readonly TensorLike[] {
  if (!Array.isArray(rois)) return false;
  return rois.every((e) => typeof e === 'object' && e !== null && (!Array.isArray(e) || e.every(Array.isArray)));
}

function roisIn(op: string, rois: RoisInput): { data: Float32Array; k: number } {
  if (isRoiList(rois)) {
    const parts: number[] = [];
    rois.forEach((boxes, img) => {
      const b = toHostInput(boxes, `${op}: boxes of image ${img}`, 'f32', { rowsOf: 4 });
      if (b.shape.length !== 2 || b.shape[1] !== 4) {
        throw new WgflowError(`${op}: boxes of image ${img} must have shape [L,4], got [${b.shape.join(',')}]`);
      }
      const l = b.shape[0] as number;
      for (let r = 0; r < l; r++) parts.push(img, ...Array.from(b.data.subarray(r * 4, r * 4 + 4)));
    });
    return { data: Float32Array.from(parts), k: parts.length / 5 };
  }
  const t = toHostInput(rois as TensorLike, `${op}: rois`, 'f32', { rowsOf: 5 });
  if (t.shape.length !== 2 || t.shape[1] !== 5) {
    throw new WgflowError(
      `${op}: rois must be an f32 [K,5] tensor (batch index, x1, y1, x2, y2) or a list of [L,4] boxes per image, got [${t.shape.join(',')}]`,
    );
  }
  return { data: t.data as Float32Array, k: t.shape[0] as number };
}

/**
 * The RoIs checked on the host: at most `maxRois`, finite, and batch indices that are integers in
 * [0, N) (the kernels would give a zero row for an outside index; torchvision reads out of bounds).
 */
function checkedRois(
  op: string,
  rois: RoisInput,
  n: number,
  opts: Pick<EagerLimitOptions, 'maxRois'>,
): { data: Float32Array; k: number } {
  const r = roisIn(op, rois);
  checkCount(op, r.k, 'RoIs', limitOption(op, 'maxRois', opts.maxRois, EAGER_LIMITS.rois), 'maxRois');
  checkFiniteRows(`${op}: rois`, r.data, 5, 'RoIs must be finite');
  for (let k = 0; k < r.k; k++) {
    const b = r.data[k * 5] as number;
    if (!(Number.isInteger(b) && b >= 0 && b < n))
      throw new WgflowError(
        `${op}: rois row ${k} has batch index ${fmtValue(b)}, not an image of the input (integers in [0, ${n}))`,
      );
  }
  return r;
}

function featuresIn(op: string, input: TensorLike): { input: HostInput; c: number } {
  const x = toHostInput(input, `${op}: input`);
  if (x.shape.length !== 4) throw new WgflowError(`${op}: input must be [N,C,H,W], got [${x.shape.join(',')}]`);
  return { input: x, c: x.shape[1] as number };
}

/**
 * torchvision.ops.roi_pool: [K,C,PH,PW]. 0 RoIs → an empty [0,C,PH,PW] result computed on the host
 * (tensors cannot have a 0-sized dimension in this compiler, so the GPU is not involved).
 */
export async function roiPool(
  input: TensorLike,
  rois: RoisInput,
  opts: RoiPoolOptions & Pick<EagerLimitOptions, 'maxRois'>,
): Promise<HostTensor> {
  if (typeof opts !== 'object' || opts === null)
    throw new WgflowError(`roiPool: options { outputSize, … } are required, got ${fmtValue(opts)}`);
  const x = featuresIn('roiPool', input);
  const r = checkedRois('roiPool', rois, x.input.shape[0] as number, opts);
  const [ph, pw] = outputSizeOption('roiPool', opts.outputSize);
  const roundingMode = opts.roundingMode ?? 'c';
  if (roundingMode !== 'c' && roundingMode !== 'half_even')
    throw new WgflowError(`roiPool: roundingMode must be 'c' or 'half_even', got ${fmtValue(roundingMode)}`);
  const o = {
    outputSize: [ph, pw] as const,
    spatialScale: positiveOption('roiPool', 'spatialScale', opts.spatialScale, 1),
    roundingMode,
  };
  if (r.k === 0) return emptyF32([0, x.c, ph, pw]);
  return one(
    `roi_pool:${ph},${pw}:${o.spatialScale}:${o.roundingMode}`,
    { x: x.input, rois: { data: r.data, shape: [r.k, 5] } },
    (_g, i) => ({
      out: roiPoolOp(i.x as Tensor, i.rois as Tensor, o),
    }),
  );
}

/**
 * torchvision.ops.roi_align: [K,C,PH,PW]. 0 RoIs → an empty [0,C,PH,PW] result computed on the host.
 * The sampling work of each RoI, PH·PW·grid_h·grid_w points per channel, is capped by
 * `maxSamplesPerRoi` (default {@link EAGER_LIMITS}.samplesPerRoi = 2^20: with the adaptive sampling
 * ratio, a RoI of 1024×1024 feature pixels); a RoI over it is refused, not computed differently.
 */
export async function roiAlign(
  input: TensorLike,
  rois: RoisInput,
  opts: RoiAlignOptions & Pick<EagerLimitOptions, 'maxRois' | 'maxSamplesPerRoi'>,
): Promise<HostTensor> {
  if (typeof opts !== 'object' || opts === null)
    throw new WgflowError(`roiAlign: options { outputSize, … } are required, got ${fmtValue(opts)}`);
  const x = featuresIn('roiAlign', input);
  const r = checkedRois('roiAlign', rois, x.input.shape[0] as number, opts);
  const [ph, pw] = outputSizeOption('roiAlign', opts.outputSize);
  const samplingRatio = opts.samplingRatio ?? -1;
  if (typeof samplingRatio !== 'number' || !Number.isInteger(samplingRatio) || samplingRatio > 64)
    throw new WgflowError(
      `roiAlign: samplingRatio must be an integer ≤ 64 (≤ 0: adaptive), got ${fmtValue(samplingRatio)}`,
    );
  const o = {
    outputSize: [ph, pw] as const,
    spatialScale: positiveOption('roiAlign', 'spatialScale', opts.spatialScale, 1),
    samplingRatio,
    aligned: boolOption('roiAlign', 'aligned', opts.aligned, false),
  };
  const cap = limitOption('roiAlign', 'maxSamplesPerRoi', opts.maxSamplesPerRoi, EAGER_LIMITS.samplesPerRoi);
  const geom = { PH: ph, PW: pw, scale: o.spatialScale, samplingRatio, aligned: o.aligned };
  for (let k = 0; k < r.k; k++) {
    const n = roiAlignSamples(r.data, k * 5, geom);
    if (n > cap)
      throw new WgflowError(
        `roiAlign: rois row ${k} [${Array.from(r.data.subarray(k * 5, k * 5 + 5)).join(', ')}] needs ${n} sampling points per channel, over the limit of ${cap} per RoI (a RoI of at most about ${Math.floor(Math.sqrt(cap))}×${Math.floor(Math.sqrt(cap))} feature pixels with the adaptive samplingRatio; raise it with the option maxSamplesPerRoi)`,
      );
  }
  if (r.k === 0) return emptyF32([0, x.c, ph, pw]);
  return one(
    `roi_align:${ph},${pw}:${o.spatialScale}:${o.samplingRatio}:${o.aligned}`,
    { x: x.input, rois: { data: r.data, shape: [r.k, 5] } },
    (_g, i) => ({ out: roiAlignOp(i.x as Tensor, i.rois as Tensor, o) }),
  );
}

// ======================================================================= end of RoI pooling
