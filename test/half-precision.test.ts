/**
 * Spec §9's half-precision cases. wgflow computes in f32 (it has no f16 dtype); these tests round the
 * inputs to f16 values, as torchvision's f16 tests feed f16 tensors, and check that the results agree
 * with the f32 ones within torchvision's f16 tolerances.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as eager from '../ops/detection-eager.js';
import { clearEagerCache } from '../ops/eager.js';
import { closeDevice } from '../runtime/device.js';
import { f16round } from './half.js';
import { freshSeed, rand, relError } from './helpers.js';

afterAll(async () => {
  await clearEagerCache();
  await closeDevice();
});

const FLOAT_BOXES = [
  285.3538, 185.5758, 1193.511, 851.4551, 285.1472, 188.7374, 1192.4984, 851.0669, 279.244, 197.9812, 1189.4746,
  849.2019,
];
const FLOAT_SCORES = [0.637, 0.7569, 0.3966];
const f32 = (xs: readonly number[], shape: number[]) => ({ data: Float32Array.from(xs), shape });

describe('half-precision inputs (spec §9)', () => {
  it('NMS on FLOAT_BOXES: f16-rounded inputs keep the same boxes as f32 (threshold 0.2)', async () => {
    const full = await eager.nms(f32(FLOAT_BOXES, [3, 4]), f32(FLOAT_SCORES, [3]), 0.2);
    const half = await eager.nms(f32(FLOAT_BOXES.map(f16round), [3, 4]), f32(FLOAT_SCORES.map(f16round), [3]), 0.2);
    expect(Array.from(full)).toEqual([1]);
    expect(Array.from(half)).toEqual(Array.from(full));
  });

  it('RoIAlign and RoIPool on f16-rounded features and RoIs match the f32 result within 4e-3', async () => {
    const seed = freshSeed();
    const x = rand([2, 5, 10, 10], seed, 0, 1);
    const rois = [0, 0, 0, 9, 9, 0, 0, 5, 4, 9, 0, 5, 5, 9, 9, 1, 0, 0, 9, 9].map((v, i) =>
      i % 5 === 0 ? v : v + 0.3,
    );
    for (const op of ['roiAlign', 'roiPool'] as const) {
      const opts =
        op === 'roiAlign' ? { outputSize: 5, spatialScale: 1, samplingRatio: -1 } : { outputSize: 5, spatialScale: 1 };
      const run = (xs: number[], rs: number[]) =>
        op === 'roiAlign'
          ? eager.roiAlign(f32(xs, [2, 5, 10, 10]), f32(rs, [4, 5]), opts)
          : eager.roiPool(f32(xs, [2, 5, 10, 10]), f32(rs, [4, 5]), opts);
      const full = await run(x, rois);
      const half = await run(x.map(f16round), rois.map(f16round));
      expect(relError(half.data, full.data), `${op} (seed ${seed})`).toBeLessThan(4e-3);
    }
  });
});
