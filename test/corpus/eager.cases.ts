/**
 * Bad inputs to the eager detection ops (`ops.*`): hostile boxes (NaN, ±Infinity, 1e30, values that
 * overflow f32), wrong kinds, ranks and nesting, mismatched lengths, bad options, and the limits on
 * the work of one call (ops/eager-limits.ts). Most fail on the host before any GPU work; the valid ones
 * run on the GPU and check their results.
 */
import { ops } from '../../index.js';
import type { CorpusCase } from './types.js';

type Expect = CorpusCase['expect'];
const wg = (msg: RegExp): Expect => ({ error: 'WgflowError', message: msg });
const as = <T>(v: unknown): T => v as T;

const eager = (id: string, what: string, expect: Expect, run: () => unknown): CorpusCase => ({
  id: `eager/${id}`,
  area: 'eager',
  kind: 'library',
  what,
  expect,
  timeoutMs: 60_000,
  run,
});

const BOXES = [
  [0, 0, 10, 10],
  [1, 1, 11, 11],
  [20, 20, 30, 30],
];
const SCORES = [0.9, 0.8, 0.7];
/** Features f32 [1,2,4,4] (not all zero). */
const FEATURES = { data: Float32Array.from({ length: 32 }, (_, i) => (i % 7) - 2.5), shape: [1, 2, 4, 4] };

const same = (got: ArrayLike<number>, want: readonly number[], what: string) => {
  const g = Array.from(got);
  if (g.length !== want.length || g.some((v, i) => Math.abs(v - (want[i] as number)) > 1e-5))
    throw new Error(`${what}: got [${g.join(', ')}], want [${want.join(', ')}]`);
};

export const cases: CorpusCase[] = [
  // ---- valid inputs (must work and give torchvision's results)
  eager('nms-plain-arrays', 'ops.nms with plain nested arrays (valid, must work)', { ok: true }, () =>
    ops.nms([[0, 0, 1, 1]], [0.5], 0.5),
  ),
  eager('nms-valid-result', 'ops.nms of two overlapping boxes and a separate one', { ok: true }, async () =>
    same(await ops.nms(BOXES, SCORES, 0.5), [0, 2], 'kept'),
  ),
  eager('nms-empty', 'ops.nms of 0 boxes (valid: empty result)', { ok: true }, async () =>
    same(await ops.nms([], [], 0.5), [], 'kept'),
  ),
  eager('nms-nan-score', 'a NaN score is valid (sorts first, as in torch.sort)', { ok: true }, async () =>
    same(await ops.nms(BOXES, [0.9, Number.NaN, 0.7], 0.5), [1, 2], 'kept'),
  ),
  eager('roi-align-normal-box', 'ops.roiAlign of a normal box (torchvision semantics kept)', { ok: true }, async () => {
    const out = await ops.roiAlign(FEATURES, [[0, 0, 0, 3, 3]], { outputSize: 1, samplingRatio: 1 });
    // one sample at (1.5, 1.5): the mean of the 4 pixels (1,1), (1,2), (2,1), (2,2) of each channel
    const px = (c: number, y: number, x: number) => FEATURES.data[c * 16 + y * 4 + x] as number;
    const want = [0, 1].map((c) => (px(c, 1, 1) + px(c, 1, 2) + px(c, 2, 1) + px(c, 2, 2)) / 4);
    same(out.data, want, 'roiAlign');
  }),
  eager('clip-boxes-valid', 'ops.clipBoxes of boxes outside the image', { ok: true }, async () =>
    same((await ops.clipBoxes([[-5, -5, 50, 3]], [10, 20])).data, [0, 0, 20, 3], 'clipped'),
  ),
  // ---- scores and lengths
  eager('nms-scores-undefined', 'ops.nms(boxes, undefined, 0.5)', wg(/nms.*scores/i), () =>
    ops.nms([[0, 0, 1, 1]], undefined as unknown as number[], 0.5),
  ),
  eager(
    'nms-length-mismatch',
    '3 boxes and 2 scores',
    wg(/nms: boxes \[3,4\] and scores \[2\] must have the same number of boxes/),
    () => ops.nms(BOXES, [0.9, 0.8], 0.5),
  ),
  eager('nms-scores-2d', 'scores given as [[0.9], [0.8], [0.7]]', wg(/nms: scores must be a 1-D tensor/), () =>
    ops.nms(BOXES, as([[0.9], [0.8], [0.7]]), 0.5),
  ),
  eager('nms-boxes-3-columns', 'boxes with 3 values each', wg(/nms: boxes must have 4 values per box/), () =>
    ops.nms([[0, 0, 1]], [0.5], 0.5),
  ),
  eager('nms-boxes-ragged', 'ragged nested boxes', wg(/nms: boxes\[1\]: nested arrays must be rectangular/), () =>
    ops.nms(
      as([
        [0, 0, 1, 1],
        [0, 0, 1],
      ]),
      [0.5, 0.4],
      0.5,
    ),
  ),
  eager(
    'nms-boxes-string',
    "boxes given as a string '0,0,1,1'",
    wg(/nms: boxes: expected a typed array.*got string/),
    () => ops.nms(as('0,0,1,1'), [0.5], 0.5),
  ),
  eager(
    'nms-boxes-string-leaf',
    "boxes [['0', 0, 1, 1]]",
    wg(/nms: boxes: nested arrays must hold numbers, found string/),
    () => ops.nms(as([['0', 0, 1, 1]]), [0.5], 0.5),
  ),
  eager('nms-boxes-bigint64', 'boxes as a BigInt64Array', wg(/nms: boxes: 64-bit integer arrays.*not supported/), () =>
    ops.nms(as(BigInt64Array.of(0n, 0n, 1n, 1n)), [0.5], 0.5),
  ),
  eager(
    'nms-boxes-object',
    'boxes as a plain object { x1: 0 }',
    wg(/nms: boxes: expected a typed array, nested arrays of numbers or \{ data, shape \}, got object/),
    () => ops.nms(as({ x1: 0 }), [0.5], 0.5),
  ),
  eager(
    'nms-shaped-strings',
    "{ data: ['a', …], shape } as boxes",
    wg(/nms: boxes: data\[0\] is string, not a number/),
    () => ops.nms(as({ data: ['a', 0, 1, 1], shape: [1, 4] }), [0.5], 0.5),
  ),
  eager('nms-shaped-count', '{ data: 8 values, shape: [1,4] }', wg(/nms: boxes: 8 values for shape \[1,4\]/), () =>
    ops.nms({ data: new Float32Array(8).fill(1), shape: [1, 4] }, [0.5], 0.5),
  ),
  eager(
    'nms-shaped-nan-shape',
    '{ data, shape: [NaN, 4] }',
    wg(/nms: boxes: shape must be an array of non-negative integers/),
    () => ops.nms({ data: [0, 0, 1, 1], shape: [Number.NaN, 4] }, [0.5], 0.5),
  ),
  // ---- finite boxes
  eager(
    'nms-nan-box',
    'a NaN coordinate',
    wg(/nms: boxes: row 1 has the non-finite value NaN at column 2; NMS needs finite boxes/),
    () => ops.nms([BOXES[0] as number[], [1, 1, Number.NaN, 11]], [0.9, 0.8], 0.5),
  ),
  eager('nms-infinite-box', 'an Infinity coordinate', wg(/row 0 has the non-finite value Infinity/), () =>
    ops.nms([[0, 0, Number.POSITIVE_INFINITY, 1]], [0.9], 0.5),
  ),
  eager(
    'nms-f32-overflow',
    'a coordinate 1e39 (finite in float64, Infinity in f32)',
    wg(/row 0 has the non-finite value Infinity at column 3 \(as f32\)/),
    () => ops.nms([[0, 0, 1, 1e39]], [0.9], 0.5),
  ),
  eager(
    'batched-nms-nan-box',
    'batchedNms with a NaN box',
    wg(/batchedNms: boxes: row 0 has the non-finite value NaN/),
    () => ops.batchedNms([[Number.NaN, 0, 1, 1]], [0.9], [0], 0.5),
  ),
  eager(
    'batched-nms-idxs-fraction',
    'batchedNms with a category 0.5',
    wg(/batchedNms: idxs must hold integers, got 0\.5/),
    () => ops.batchedNms([[0, 0, 1, 1]], [0.9], [0.5], 0.5),
  ),
  eager(
    'batched-nms-idxs-length',
    'batchedNms with 2 categories for 1 box',
    wg(/batchedNms: idxs must be a 1-D tensor \[1\]/),
    () => ops.batchedNms([[0, 0, 1, 1]], [0.9], [0, 1], 0.5),
  ),
  eager(
    'box-iou-nan',
    'boxIou with a NaN box',
    wg(/boxIou: boxes2: row 0 has the non-finite value NaN at column 0; boxes must be finite/),
    () => ops.boxIou(BOXES, [[Number.NaN, 0, 1, 1]]),
  ),
  eager(
    'box-area-infinity',
    'boxArea with -Infinity',
    wg(/boxArea: boxes: row 0 has the non-finite value -Infinity/),
    () => ops.boxArea([[Number.NEGATIVE_INFINITY, 0, 1, 1]]),
  ),
  eager(
    'decode-nan-delta',
    'decodeBoxes with a NaN delta',
    wg(/decodeBoxes: relCodes: row 0 has the non-finite value NaN/),
    () => ops.decodeBoxes([[0, Number.NaN, 0, 0]], [[0, 0, 10, 10]]),
  ),
  eager(
    'decode-infinite-box',
    'decodeBoxes with an infinite anchor',
    wg(/decodeBoxes: boxes: row 0 has the non-finite value Infinity/),
    () => ops.decodeBoxes([[0, 0, 0, 0]], [[0, 0, Number.POSITIVE_INFINITY, 10]]),
  ),
  eager(
    'decode-bad-weights',
    'decodeBoxes with weights [1, 1, 0, 1]',
    wg(/decodeBoxes: weights must be 4 finite nonzero numbers/),
    () => ops.decodeBoxes([[0, 0, 0, 0]], [[0, 0, 10, 10]], { weights: [1, 1, 0, 1] }),
  ),
  eager(
    'decode-weights-string',
    "decodeBoxes with weights '1,1,1,1'",
    wg(/weights must be 4 finite nonzero numbers.*got "1,1,1,1"/),
    () => ops.decodeBoxes([[0, 0, 0, 0]], [[0, 0, 10, 10]], { weights: as('1,1,1,1') }),
  ),
  eager(
    'decode-clip-nan',
    'decodeBoxes with bboxXformClip NaN',
    wg(/decodeBoxes: bboxXformClip must be a number or null, got NaN/),
    () => ops.decodeBoxes([[0, 0, 0, 0]], [[0, 0, 10, 10]], { bboxXformClip: Number.NaN }),
  ),
  eager(
    'encode-length-mismatch',
    'encodeBoxes with 3 references and 1 proposal',
    wg(/encodeBoxes: 3 reference boxes but 1 proposals/),
    () => ops.encodeBoxes(BOXES, [[0, 0, 1, 1]]),
  ),
  eager(
    'encode-nan-weights',
    'encodeBoxes with a NaN weight',
    wg(/encodeBoxes: weights must be 4 finite nonzero numbers.*NaN/),
    () => ops.encodeBoxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], { weights: [Number.NaN, 1, 1, 1] }),
  ),
  // ---- clipBoxes sizes
  eager(
    'clip-size-nan',
    'clipBoxes to a NaN height',
    wg(/clipBoxes: size must be \[H, W\], two positive finite numbers, got \[NaN,20\]/),
    () => ops.clipBoxes(BOXES, [Number.NaN, 20]),
  ),
  eager(
    'clip-size-negative',
    'clipBoxes to a negative width',
    wg(/clipBoxes: size must be \[H, W\].*got \[10,-20\]/),
    () => ops.clipBoxes(BOXES, [10, -20]),
  ),
  eager('clip-size-zero', 'clipBoxes to a 0×0 image', wg(/clipBoxes: size must be.*got \[0,0\]/), () =>
    ops.clipBoxes(BOXES, [0, 0]),
  ),
  eager('clip-size-infinity', 'clipBoxes to an infinite size', wg(/got \[Infinity,10\]/), () =>
    ops.clipBoxes(BOXES, [Number.POSITIVE_INFINITY, 10]),
  ),
  eager('clip-size-scalar', 'clipBoxes with size 10 (not [H, W])', wg(/clipBoxes: size must be \[H, W\].*got 10/), () =>
    ops.clipBoxes(BOXES, as(10)),
  ),
  eager(
    'clip-size-empty-boxes',
    'clipBoxes of 0 boxes to a NaN size (checked even without boxes)',
    wg(/clipBoxes: size must be/),
    () => ops.clipBoxes([], [Number.NaN, 1]),
  ),
  eager(
    'remove-small-nan',
    'removeSmallBoxes with minSize NaN',
    wg(/removeSmallBoxes: minSize must be a number, got NaN/),
    () => ops.removeSmallBoxes(BOXES, Number.NaN),
  ),
  eager('box-convert-format', "boxConvert to 'xyz'", wg(/boxConvert: formats must be one of xyxy, xywh, cxcywh/), () =>
    ops.boxConvert(BOXES, 'xyxy', as('xyz')),
  ),
  // ---- iou thresholds and NMS options
  eager('nms-iou-nan', 'iouThreshold NaN', wg(/nms: iouThreshold must be a number.*got NaN/), () =>
    ops.nms(BOXES, SCORES, Number.NaN),
  ),
  eager('nms-iou-string', "iouThreshold '0.5'", wg(/nms: iouThreshold must be a number.*got "0\.5"/), () =>
    ops.nms(BOXES, SCORES, as('0.5')),
  ),
  eager('nms-iou-undefined', 'iouThreshold missing', wg(/nms: iouThreshold must be a number.*\(undefined\)/), () =>
    ops.nms(BOXES, SCORES, as(undefined)),
  ),
  eager(
    'nms-iou-nan-empty',
    'iouThreshold NaN with 0 boxes (checked even without boxes)',
    wg(/iouThreshold must be a number/),
    () => ops.nms([], [], Number.NaN),
  ),
  eager('nms-max-output-zero', 'maxOutput 0', wg(/nms: maxOutput must be a positive integer, got 0/), () =>
    ops.nms(BOXES, SCORES, 0.5, { maxOutput: 0 }),
  ),
  eager('nms-max-output-fraction', 'maxOutput 1.5', wg(/maxOutput must be a positive integer, got 1\.5/), () =>
    ops.nms(BOXES, SCORES, 0.5, { maxOutput: 1.5 }),
  ),
  eager('nms-plus-one-string', "plusOne 'yes'", wg(/nms: plusOne must be true or false, got "yes"/), () =>
    ops.nms(BOXES, SCORES, 0.5, { plusOne: as('yes') }),
  ),
  eager(
    'nms-too-many-boxes',
    'ops.nms of 50 001 boxes (over the default limit)',
    wg(/nms: 50001 boxes is over the limit of 50000 per call \(raise it with the option maxBoxes\)/),
    () => {
      const n = 50_001;
      const boxes = { data: Float32Array.from({ length: n * 4 }, (_, i) => (i % 4 < 2 ? i : i + 5)), shape: [n, 4] };
      return ops.nms(boxes, new Float32Array(n).fill(0.5), 0.5);
    },
  ),
  eager(
    'nms-max-boxes-lowered',
    'ops.nms with maxBoxes: 2 and 3 boxes',
    wg(/nms: 3 boxes is over the limit of 2 per call/),
    () => ops.nms(BOXES, SCORES, 0.5, { maxBoxes: 2 }),
  ),
  eager(
    'nms-max-boxes-nan',
    'ops.nms with maxBoxes NaN',
    wg(/nms: option maxBoxes must be a positive integer \(or Infinity\), got NaN/),
    () => ops.nms(BOXES, SCORES, 0.5, { maxBoxes: Number.NaN }),
  ),
  // ---- RoI ops
  eager(
    'roi-align-huge-box',
    'ops.roiAlign with one RoI [0, 0, 0, 1e30, 1e30] (hung before)',
    wg(
      /roiAlign: rois row 0 \[0, 0, 0, 1\.0000000150474662e\+30, 1\.0000000150474662e\+30\] needs .* sampling points per channel, over the limit of 1048576 per RoI.*maxSamplesPerRoi/,
    ),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, 1e30, 1e30]], { outputSize: 7 }),
  ),
  eager(
    'roi-align-big-box-lowered',
    'a 64×64 RoI with maxSamplesPerRoi 1000',
    wg(/needs 4096 sampling points per channel, over the limit of 1000/),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, 64, 64]], { outputSize: 2, maxSamplesPerRoi: 1000 }),
  ),
  eager(
    'roi-align-big-box-raised',
    'a 2048×2048 RoI is allowed with maxSamplesPerRoi raised',
    { ok: true },
    async () => {
      const out = await ops.roiAlign(FEATURES, [[0, 0, 0, 2048, 2048]], { outputSize: 1, maxSamplesPerRoi: 1 << 23 });
      if (out.data.length !== 2 || !out.data.every(Number.isFinite))
        throw new Error(`bad output ${Array.from(out.data)}`);
    },
  ),
  eager(
    'roi-align-nan-roi',
    'ops.roiAlign with a NaN coordinate',
    wg(/roiAlign: rois: row 0 has the non-finite value NaN at column 3; RoIs must be finite/),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, Number.NaN, 2]], { outputSize: 2 }),
  ),
  eager(
    'roi-align-infinite-list',
    'a per-image box list with Infinity',
    wg(/roiAlign: rois: row 0 has the non-finite value Infinity/),
    () => ops.roiAlign(FEATURES, [[[0, 0, Number.POSITIVE_INFINITY, 2]]], { outputSize: 2 }),
  ),
  eager(
    'roi-align-batch-out-of-range',
    'a RoI of image 1 with one image',
    wg(/roiAlign: rois row 0 has batch index 1, not an image of the input \(integers in \[0, 1\)\)/),
    () => ops.roiAlign(FEATURES, [[1, 0, 0, 2, 2]], { outputSize: 2 }),
  ),
  eager('roi-align-batch-fraction', 'a RoI with batch index 0.5', wg(/batch index 0\.5, not an image/), () =>
    ops.roiAlign(FEATURES, [[0.5, 0, 0, 2, 2]], { outputSize: 2 }),
  ),
  eager('roi-align-batch-negative', 'a RoI with batch index -1', wg(/batch index -1, not an image/), () =>
    ops.roiAlign(FEATURES, [[-1, 0, 0, 2, 2]], { outputSize: 2 }),
  ),
  eager(
    'roi-align-4-columns',
    'a [K,4] tensor as rois (torchvision rejects it too)',
    wg(/roiAlign: rois must be an f32 \[K,5\] tensor/),
    () => ops.roiAlign(FEATURES, { data: [0, 0, 2, 2], shape: [1, 4] }, { outputSize: 2 }),
  ),
  eager(
    'roi-align-output-nan',
    'outputSize NaN',
    wg(/roiAlign: outputSize must be a positive integer or a pair.*got NaN/),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, 2, 2]], { outputSize: Number.NaN }),
  ),
  eager('roi-align-output-zero', 'outputSize [0, 2]', wg(/outputSize must be.*got \[0,2\]/), () =>
    ops.roiAlign(FEATURES, [[0, 0, 0, 2, 2]], { outputSize: [0, 2] }),
  ),
  eager(
    'roi-align-scale-nan',
    'spatialScale NaN',
    wg(/roiAlign: spatialScale must be a positive finite number, got NaN/),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, 2, 2]], { outputSize: 2, spatialScale: Number.NaN }),
  ),
  eager(
    'roi-align-scale-negative',
    'spatialScale -0.0625',
    wg(/spatialScale must be a positive finite number, got -0\.0625/),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, 2, 2]], { outputSize: 2, spatialScale: -0.0625 }),
  ),
  eager(
    'roi-align-sampling-fraction',
    'samplingRatio 1.5',
    wg(/roiAlign: samplingRatio must be an integer ≤ 64.*got 1\.5/),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, 2, 2]], { outputSize: 2, samplingRatio: 1.5 }),
  ),
  eager(
    'roi-align-no-options',
    'ops.roiAlign without options',
    wg(/roiAlign: options \{ outputSize, … \} are required/),
    () => ops.roiAlign(FEATURES, [[0, 0, 0, 2, 2]], as(undefined)),
  ),
  eager(
    'roi-align-features-3d',
    'features [2,4,4] (no batch axis)',
    wg(/roiAlign: input must be \[N,C,H,W\], got \[2,4,4\]/),
    () => ops.roiAlign({ data: FEATURES.data, shape: [2, 4, 4] }, [[0, 0, 0, 2, 2]], { outputSize: 2 }),
  ),
  eager(
    'roi-align-too-many',
    '20 001 RoIs (over the default limit)',
    wg(/roiAlign: 20001 RoIs is over the limit of 20000 per call \(raise it with the option maxRois\)/),
    () => {
      const k = 20_001;
      const rois = {
        data: Float32Array.from({ length: k * 5 }, (_, i) => (i % 5 === 0 ? 0 : i % 5 < 3 ? 0 : 2)),
        shape: [k, 5],
      };
      return ops.roiAlign(FEATURES, rois, { outputSize: 2 });
    },
  ),
  eager(
    'roi-pool-huge-box',
    'ops.roiPool with a NaN RoI',
    wg(/roiPool: rois: row 0 has the non-finite value NaN/),
    () => ops.roiPool(FEATURES, [[0, Number.NaN, 0, 1e30, 1e30]], { outputSize: 2 }),
  ),
  eager(
    'roi-pool-batch-out-of-range',
    'roiPool with batch index 3 of 1 image',
    wg(/roiPool: rois row 0 has batch index 3/),
    () => ops.roiPool(FEATURES, [[3, 0, 0, 2, 2]], { outputSize: 2 }),
  ),
  eager(
    'roi-pool-rounding',
    "roiPool with roundingMode 'floor'",
    wg(/roiPool: roundingMode must be 'c' or 'half_even', got "floor"/),
    () => ops.roiPool(FEATURES, [[0, 0, 0, 2, 2]], { outputSize: 2, roundingMode: as('floor') }),
  ),
  eager(
    'roi-pool-max-rois',
    'roiPool with maxRois 1 and 2 RoIs',
    wg(/roiPool: 2 RoIs is over the limit of 1 per call/),
    () =>
      ops.roiPool(
        FEATURES,
        [
          [0, 0, 0, 2, 2],
          [0, 1, 1, 3, 3],
        ],
        { outputSize: 2, maxRois: 1 },
      ),
  ),
];
