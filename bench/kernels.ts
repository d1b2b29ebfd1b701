/** The kernel suite: matmul 1024³, conv 3×3 64→64 at 64×64, and VGG16's 13 conv layers at 224×224 (batch 1). */
import { GraphBuilder } from '../index.js';
import { type BenchRow, type TimeOptions, timeGraph } from './harness.js';

/** VGG16 (configuration D) conv layers: [in, out, spatial size]. */
export const VGG16_CONVS: readonly (readonly [number, number, number])[] = [
  [3, 64, 224],
  [64, 64, 224],
  [64, 128, 112],
  [128, 128, 112],
  [128, 256, 56],
  [256, 256, 56],
  [256, 256, 56],
  [256, 512, 28],
  [512, 512, 28],
  [512, 512, 28],
  [512, 512, 14],
  [512, 512, 14],
  [512, 512, 14],
];

const convFlop = (cin: number, cout: number, hw: number, k = 3) => (2 * cin * cout * k * k * hw * hw) / 1e9;

export async function kernelSuite(opts: TimeOptions = {}, log: (s: string) => void = () => {}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const push = (r: BenchRow) => {
    rows.push(r);
    log(`${r.workload}: ${r.medianMs.toFixed(1)} ms, ${r.gflops.toFixed(2)} GFLOP/s`);
  };
  push(
    await timeGraph(
      'kernels',
      'matmul 1024x1024x1024',
      (2 * 1024 ** 3) / 1e9,
      (g) => {
        const a = g.input('a', [1024, 1024]);
        const b = g.input('b', [1024, 1024]);
        return { c: a.matmul(b) };
      },
      new GraphBuilder(),
      opts,
    ),
  );
  push(
    await timeGraph(
      'kernels',
      'conv 3x3 64->64 at 64x64 (+bias+ReLU)',
      convFlop(64, 64, 64),
      (g) => {
        const x = g.input('x', [1, 64, 64, 64]);
        const w = g.input('w', [64, 64, 3, 3]);
        const b = g.input('b', [1, 64, 1, 1]);
        return { y: x.conv2d(w, { padding: 1 }).add(b).relu() };
      },
      new GraphBuilder(),
      opts,
    ),
  );
  let total = 0;
  const g = new GraphBuilder();
  const outs: Record<string, ReturnType<GraphBuilder['input']>> = {};
  VGG16_CONVS.forEach(([cin, cout, hw], i) => {
    const x = g.input(`x${i}`, [1, cin, hw, hw]);
    const w = g.input(`w${i}`, [cout, cin, 3, 3]);
    const b = g.input(`b${i}`, [1, cout, 1, 1]);
    outs[`y${i}`] = x.conv2d(w, { padding: 1 }).add(b).relu();
    total += convFlop(cin, cout, hw);
  });
  push(
    await timeGraph('kernels', 'VGG16 13 conv layers at 224x224 (+bias+ReLU)', total, () => outs, g, {
      ...opts,
      warmup: 1,
    }),
  );
  return rows;
}
