/**
 * The one GEMM generator (ops/kit/gemm.ts) under every tile of the WebGPU tuning table, forced in turn:
 * matmul and both conv gradients (the weight gradient with split-K) on odd sizes, each against the
 * float64 CPU interpreter (conv2d's forward GEMM stages its operands the same ways). The CUDA table is checked for fit and kept apart.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import type { Tensor } from '../compiler/tensor.js';
import { setTuning } from '../compiler/tuning.js';
import { getDevice, limitsFrom } from '../index.js';
import {
  CUDA_GEMM,
  chooseTile,
  chooseTileSplitK,
  type GemmTile,
  tileFits,
  tileThreads,
  WEBGPU_GEMM,
} from '../ops/kit/gemm.js';
import { checkGpuVsCpu } from './helpers.js';
import { checkRunTimeSizes } from './run-time-sizes.js';

const conv = { stride: [1, 2], padding: [1, 1], dilation: [1, 1], groups: 1 };

afterAll(() => setTuning('webgpu', 'gemm', WEBGPU_GEMM));

describe('GEMM tiles, each forced in turn, match the CPU interpreter', () => {
  // one BK per block, alternating, so that both BKs are covered without doubling the pipelines
  const tiles: GemmTile[] = WEBGPU_GEMM.blocks.map((b, i) => ({
    ...b,
    BK: i % 2 === 0 ? WEBGPU_GEMM.bk : WEBGPU_GEMM.smallBk,
  }));
  for (const t of tiles) {
    it(`${t.BM}×${t.BN}×${t.BK}, ${t.TM}×${t.TN} per thread`, async () => {
      const limits = limitsFrom((await getDevice()).limits);
      expect(tileFits(t, limits)).toBe(true);
      setTuning('webgpu', 'gemm', { ...WEBGPU_GEMM, force: t });
      try {
        const { spec } = await checkGpuVsCpu((g) => {
          const a = g.input('a', [37, 53]);
          const b = g.input('b', [29, 53]);
          const w = g.input('w', [7, 5, 3, 3]);
          const dy = g.input('dy', [2, 7, 9, 6]);
          const xl = g.input('xl', [3, 3, 40, 47]);
          const dyl = g.input('dyl', [3, 6, 40, 24]);
          // operands contiguous along k (matmul's A and B) and along the rows or columns (the
          // gradients' operands), with and without padding taps; conv2d forward stages the same ways
          return {
            mm: a.matmul(b, { transB: true }),
            dx: g.apply('conv2d_grad_input', [dy, w], { ...conv, inputShape: [2, 5, 9, 11] }),
            // K = 3·40·24 = 2880: long enough for split-K
            dwl: g.apply('conv2d_grad_weight', [xl, dyl], { ...conv, weightShape: [6, 3, 3, 3] }),
          };
        });
        // the forced tile is in effect: every GEMM kernel has its threads and its workgroup-memory tiles
        const gemms = spec.kernels.filter((k) => !k.name.endsWith('_sum'));
        expect(gemms).toHaveLength(3);
        for (const k of gemms) {
          expect(k.workgroupSize, k.name).toEqual([tileThreads(t), 1, 1]);
          expect(k.wgsl, k.name).toContain(`array<f32, ${t.BM * t.BK}>`);
        }
        expect(spec.kernels.some((k) => k.name.endsWith('_sum'))).toBe(true);
      } finally {
        setTuning('webgpu', 'gemm', WEBGPU_GEMM);
      }
    });
  }
});

describe('A staged by rows (run-time-sized convs), under a tile of each kind', () => {
  // 128×16: several rows per thread; 8×64 of 2×16: one row per thread, every other k
  for (const t of [
    { BM: 128, BN: 16, BK: 32, TM: 16, TN: 16 },
    { BM: 8, BN: 64, BK: 32, TM: 2, TN: 16 },
  ] as const) {
    it(`${t.BM}×${t.BN}×${t.BK}: conv2d and its input gradient over run-time N, H, W`, async () => {
      setTuning('webgpu', 'gemm', { ...WEBGPU_GEMM, force: t });
      try {
        await checkRunTimeSizes({
          symbols: { N: 2, H: 13, W: 11 },
          build: (g, { N, H, W }) => {
            const x = g.input('x', [N as number, 3, H as number, W as number]);
            const w = g.input('w', [5, 3, 3, 3]);
            const y = x.conv2d(w, { padding: 1, stride: [2, 1] });
            const [dx] = grad(y.mul(y).sum(), [x]) as [Tensor];
            return { y, dx };
          },
          sizes: [
            { N: 2, H: 13, W: 11 },
            { N: 1, H: 5, W: 9 },
          ],
          tol: 1e-5,
        });
      } finally {
        setTuning('webgpu', 'gemm', WEBGPU_GEMM);
      }
    });
  }
});

describe('GEMM tuning tables', () => {
  it('every CUDA block is well formed and uses GPU-sized blocks of 64 to 256 threads', () => {
    const cudaLimits = { ...WEBGPU_DEFAULT_LIMITS, maxComputeWorkgroupStorageSize: 49152 };
    for (const b of CUDA_GEMM.blocks) {
      for (const BK of [CUDA_GEMM.bk, CUDA_GEMM.smallBk]) {
        const t = { ...b, BK };
        expect(tileFits(t, cudaLimits), JSON.stringify(t)).toBe(true);
        expect(tileThreads(t)).toBeGreaterThanOrEqual(b.BM * b.BN >= 64 * 64 ? 64 : 16);
        expect(tileThreads(t)).toBeLessThanOrEqual(256);
      }
    }
    // lavapipe's fat 16×16 threads stay in the WebGPU table
    const big = { ...WEBGPU_DEFAULT_LIMITS, maxComputeWorkgroupStorageSize: 49152 };
    const w = chooseTile(4096, 4096, 4096, 1, big, WEBGPU_GEMM);
    const c = chooseTile(4096, 4096, 4096, 1, big, CUDA_GEMM);
    expect(w.TM * w.TN).toBe(256);
    expect(c.TM * c.TN).toBeLessThanOrEqual(64);
  });

  it('a forced tile that does not fit the device is not used', () => {
    const huge: GemmTile = { BM: 256, BN: 256, BK: 64, TM: 1, TN: 1 };
    const t = chooseTile(100, 100, 100, 1, WEBGPU_DEFAULT_LIMITS, { ...WEBGPU_GEMM, force: huge });
    expect(t).not.toEqual(huge);
    expect(tileFits(t, WEBGPU_DEFAULT_LIMITS)).toBe(true);
  });

  it('split-K: a long K is split, parts cover K in chunks of whole BKs, a short K is not', () => {
    const long = chooseTileSplitK(64, 576, 4096, 1, 64 * 576, WEBGPU_DEFAULT_LIMITS);
    expect(long.splitK.parts).toBeGreaterThan(1);
    expect(long.splitK.chunk % long.tile.BK).toBe(0);
    expect(long.splitK.chunk * long.splitK.parts).toBeGreaterThanOrEqual(4096);
    expect(long.splitK.chunk * (long.splitK.parts - 1)).toBeLessThan(4096);
    expect(chooseTileSplitK(64, 576, 500, 1, 64 * 576, WEBGPU_DEFAULT_LIMITS).splitK.parts).toBe(1);
  });

  it("BK is the table's k step, and the small one only where all of K fits in it", () => {
    expect(chooseTile(4096, 64, 144, 1, WEBGPU_DEFAULT_LIMITS).BK).toBe(WEBGPU_GEMM.bk);
    expect(chooseTile(4096, 64, 9, 1, WEBGPU_DEFAULT_LIMITS).BK).toBe(WEBGPU_GEMM.smallBk);
  });
});
