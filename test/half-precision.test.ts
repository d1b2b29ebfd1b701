/**
 * Spec §9's half-precision cases. wgflow computes in f32 (it has no f16 dtype); these tests round the
 * inputs to f16 values, as torchvision's f16 tests feed f16 tensors, and check that the results agree
 * with the f32 ones within torchvision's f16 tolerances.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { roiAlign, roiPool } from '../ops/detection.js';
import * as eager from '../ops/detection-eager.js';
import { clearEagerCache } from '../ops/eager.js';
import { closeDevice } from '../runtime/device.js';
import { f16round } from './half.js';
import { checkGpuVsCpu, freshSeed, rand } from './helpers.js';

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

  it('RoIAlign and RoIPool on f16-valued features and RoIs match the float64 reference on the same inputs', async () => {
    // torchvision compares its f16 run with a reference on the same f16 inputs; wgflow computes in f32,
    // so the check is GPU (f32 arithmetic) vs the float64 CPU reference, both fed the f16-rounded values.
    const seed = freshSeed();
    const x = rand([2, 5, 10, 10], seed, 0, 1).map(f16round);
    const rois = [0, 0, 0, 9, 9, 0, 0, 5, 4, 9, 0, 5, 5, 9, 9, 1, 0, 0, 9, 9].map((v, i) =>
      f16round(i % 5 === 0 ? v : v + 0.3),
    );
    await checkGpuVsCpu(
      (g) => {
        const f = g.input('x', [2, 5, 10, 10]);
        const r = g.input('rois', [4, 5]);
        return {
          align: roiAlign(f, r, { outputSize: 5, spatialScale: 1, samplingRatio: -1 }),
          pool: roiPool(f, r, { outputSize: 5, spatialScale: 1 }),
        };
      },
      { feeds: { x, rois }, seed, rtol: 1e-5 },
    );
  });
});
