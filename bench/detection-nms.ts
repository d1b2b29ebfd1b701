/**
 * NMS benchmark: 6000 random boxes → at most 300 kept at IoU 0.7 (Faster R-CNN's test-time RPN
 * setting: pre-NMS top-6000, post-NMS 300). The boxes are built on the GPU from the harness's seeded
 * uniform inputs: corners in [0, 800)², sizes in [8, 208); so the timed graph is the NMS op (sorted
 * runs, greedy walk) plus two tiny elementwise kernels, a concat and the two output slices.
 */
import { GraphBuilder } from '../index.js';
import { nms } from '../ops/nms.js';
import { type BenchRow, type TimeOptions, timeGraph } from './harness.js';

export const NMS_BENCH_BOXES = 6000;
export const NMS_BENCH_KEEP = 300;

export async function detectionNmsBench(opts: TimeOptions = {}): Promise<BenchRow> {
  const n = NMS_BENCH_BOXES;
  return timeGraph(
    'detection',
    `nms ${n}->${NMS_BENCH_KEEP} (IoU 0.7)`,
    // not a FLOP-bound workload: reported as 0 GFLOP
    0,
    (g) => {
      const xy = g.input('xy', [n, 2]);
      const wh = g.input('wh', [n, 2]);
      const scores = g.input('scores', [n]);
      const p1 = xy.add(1).mul(400);
      const p2 = p1.add(wh.add(1).mul(100).add(8));
      const r = nms(g.concat([p1, p2], 1), scores, { iouThreshold: 0.7, maxOutput: NMS_BENCH_KEEP });
      return { indices: r.indices, count: r.count };
    },
    new GraphBuilder(),
    opts,
  );
}
