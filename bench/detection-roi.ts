/**
 * RoI pooling benchmarks: RoIAlign and RoIPool of 300 RoIs into 7×7 bins on a 1×512×38×50 feature map
 * (VGG16 conv5_3 of a 608×800 image, spatial scale 1/16; RoIAlign with sampling ratio 2), forward, plus
 * the backward kernels (d features for both, d boxes for RoIAlign). The RoIs are a fixed, seeded set of
 * boxes inside the image (graph constants: only the feature map is uploaded per run).
 *
 * "GFLOP" counts useful work: RoIAlign ≈ 11 flops per sample and channel (4 weights, 4 multiply-adds,
 * accumulate), backward to features 8 per sample·channel, to boxes 14; RoIPool one comparison per pixel
 * scanned per channel. These are memory-bound kernels; the rate is indicative only.
 */
import { GraphBuilder, grad, type Tensor } from '../index.js';
import { roiAlign } from '../ops/roi-align.js';
import { roiPool } from '../ops/roi-pool.js';
import { type BenchRow, seeded, type TimeOptions, timeGraph } from './harness.js';

const N = 1;
const C = 512;
const H = 38;
const W = 50;
const K = 300;
const P = 7;
const SCALE = 1 / 16;
const SAMPLING = 2;

/** 300 seeded boxes (batch 0) inside the 608×800 image, 16 to 400 pixels on a side. */
export function benchRois(): number[] {
  const u = seeded(K * 4, 4242).map((v) => (v + 1) / 2);
  const out: number[] = [];
  for (let k = 0; k < K; k++) {
    const [a, b, c, d] = [u[4 * k], u[4 * k + 1], u[4 * k + 2], u[4 * k + 3]] as [number, number, number, number];
    const w = 16 + c * 384;
    const h = 16 + d * 384;
    const x1 = a * (W * 16 - w);
    const y1 = b * (H * 16 - h);
    out.push(0, x1, y1, x1 + w, y1 + h);
  }
  return out.map(Math.fround);
}

function roiPoolComparisons(rois: readonly number[]): number {
  let n = 0;
  const r = (v: number) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
  for (let k = 0; k < K; k++) {
    const [x1, y1, x2, y2] = [1, 2, 3, 4].map((j) => r((rois[k * 5 + j] as number) * SCALE)) as [
      number,
      number,
      number,
      number,
    ];
    const bh = Math.max(y2 - y1 + 1, 1) / P;
    const bw = Math.max(x2 - x1 + 1, 1) / P;
    for (let p = 0; p < P; p++) {
      const hs = Math.min(Math.max(Math.floor(p * bh) + y1, 0), H);
      const he = Math.min(Math.max(Math.ceil((p + 1) * bh) + y1, 0), H);
      for (let q = 0; q < P; q++) {
        const ws = Math.min(Math.max(Math.floor(q * bw) + x1, 0), W);
        const we = Math.min(Math.max(Math.ceil((q + 1) * bw) + x1, 0), W);
        n += Math.max(he - hs, 0) * Math.max(we - ws, 0);
      }
    }
  }
  return n * C;
}

const alignOpts = { outputSize: P, spatialScale: SCALE, samplingRatio: SAMPLING, aligned: false };
const samples = K * C * P * P * SAMPLING * SAMPLING;
const workload = (op: string) =>
  `${op} ${K} RoIs -> ${P}x${P} on ${N}x${C}x${H}x${W} (scale 1/16${op.startsWith('RoIAlign') ? ', sampling 2' : ''})`;

/** RoIAlign forward. */
export function benchRoiAlign(opts: TimeOptions = {}): Promise<BenchRow> {
  return timeGraph(
    'detection',
    workload('RoIAlign'),
    (samples * 11) / 1e9,
    (g) => {
      const x = g.input('x', [N, C, H, W]);
      return { y: roiAlign(x, g.constant(benchRois(), [K, 5]), alignOpts) };
    },
    new GraphBuilder(),
    opts,
  );
}

/** RoIPool forward. */
export function benchRoiPool(opts: TimeOptions = {}): Promise<BenchRow> {
  return timeGraph(
    'detection',
    workload('RoIPool'),
    roiPoolComparisons(benchRois()) / 1e9,
    (g) => {
      const x = g.input('x', [N, C, H, W]);
      return { y: roiPool(x, g.constant(benchRois(), [K, 5]), { outputSize: P, spatialScale: SCALE }) };
    },
    new GraphBuilder(),
    opts,
  );
}

/** RoIAlign backward: d features (gather) and d boxes (one workgroup per RoI), given dy. */
export function benchRoiAlignBackward(opts: TimeOptions = {}): Promise<BenchRow> {
  return timeGraph(
    'detection',
    workload('RoIAlign backward (d features + d boxes)'),
    (samples * (8 + 14)) / 1e9,
    (g) => {
      const x = g.input('x', [N, C, H, W]);
      const rois = g.input('rois', [K, 5]);
      const dy = g.input('dy', [K, C, P, P]);
      const b = g.constant(benchRois(), [K, 5]);
      // rois enter through an input added to the constant boxes (the input is fed small noise)
      const boxes = b.add(rois.mul(0.01));
      const [dx, dr] = grad(roiAlign(x, boxes, alignOpts).mul(dy).sum(), [x, rois]);
      return { dx: dx as Tensor, drois: dr as Tensor };
    },
    new GraphBuilder(),
    opts,
  );
}

/** RoIPool backward (d features, gather). */
export function benchRoiPoolBackward(opts: TimeOptions = {}): Promise<BenchRow> {
  return timeGraph(
    'detection',
    workload('RoIPool backward (d features)'),
    roiPoolComparisons(benchRois()) / 1e9,
    (g) => {
      const x = g.input('x', [N, C, H, W]);
      const dy = g.input('dy', [K, C, P, P]);
      const [dx] = grad(
        roiPool(x, g.constant(benchRois(), [K, 5]), { outputSize: P, spatialScale: SCALE })
          .mul(dy)
          .sum(),
        [x],
      );
      return { dx: dx as Tensor };
    },
    new GraphBuilder(),
    opts,
  );
}

/** The RoI suite: forward rows first, then the backward rows. */
export async function detectionRoiSuite(
  opts: TimeOptions = {},
  log: (s: string) => void = () => {},
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const f of [benchRoiAlign, benchRoiPool, benchRoiAlignBackward, benchRoiPoolBackward]) {
    const r = await f(opts);
    rows.push(r);
    log(`${r.workload}: ${r.medianMs.toFixed(1)} ms (min ${r.minMs.toFixed(1)}), ${r.dispatches} dispatches`);
  }
  return rows;
}
