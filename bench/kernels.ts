/**
 * The kernel suite: matmul 1024³ and conv 3×3 64→64 at 64×64, each for its exact shape and as one program
 * over run-time sizes (the ratio of minima in the row's note), and VGG16's 13 conv layers at 224×224
 * (batch 1; left out with `vgg: false`).
 */
import type { Dim } from '../compiler/dims.js';
import { GraphBuilder, type Tensor } from '../index.js';
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

export async function kernelSuite(
  opts: TimeOptions = {},
  log: (s: string) => void = () => {},
  which: { readonly vgg?: boolean } = {},
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const push = (r: BenchRow) => {
    rows.push(r);
    log(`${r.workload}: ${r.medianMs.toFixed(1)} ms, ${r.gflops.toFixed(2)} GFLOP/s`);
  };
  // Each kernel twice: compiled for its exact shape, and as one program for every size within bounds
  // (sizes read from a uniform at run time), run at the same shape. The ratio is logged.
  const pair = async (
    name: string,
    gflop: number,
    build: (g: GraphBuilder, d: Readonly<Record<string, Dim>>) => Record<string, Tensor>,
    exact: Readonly<Record<string, number>>,
    bounds: Readonly<Record<string, number>>,
    shapes: (d: Readonly<Record<string, number>>) => Readonly<Record<string, readonly number[]>>,
    boundsLabel: string,
  ): Promise<void> => {
    const fixed = await timeGraph('kernels', name, gflop, (g) => build(g, exact), new GraphBuilder(), opts);
    push(fixed);
    const poly = await timeGraph(
      'kernels',
      `${name}, one program for ${boundsLabel}`,
      gflop,
      (g) => {
        const d: Record<string, Dim> = {};
        for (const [k, max] of Object.entries(bounds)) d[k] = g.dim(k, { max });
        return build(g, d);
      },
      new GraphBuilder(),
      { ...opts, shapes: shapes(exact) },
    );
    push({ ...poly, note: `${(poly.minMs / fixed.minMs).toFixed(2)}x the exact program (minima)` });
  };
  const n = (d: Dim | undefined): number => d as number;
  await pair(
    'matmul 1024x1024x1024',
    (2 * 1024 ** 3) / 1e9,
    (g, d) => ({ c: g.input('a', [n(d.M), n(d.K)]).matmul(g.input('b', [n(d.K), n(d.N)])) }),
    { M: 1024, N: 1024, K: 1024 },
    { M: 1024, N: 1024, K: 1024 },
    (d) => ({ a: [n(d.M), n(d.K)], b: [n(d.K), n(d.N)] }),
    'M, N, K <= 1024',
  );
  await pair(
    'conv 3x3 64->64 at 64x64 (+bias+ReLU)',
    convFlop(64, 64, 64),
    (g, d) => {
      const x = g.input('x', [n(d.N), 64, n(d.H), n(d.W)]);
      const w = g.input('w', [64, 64, 3, 3]);
      const b = g.input('b', [1, 64, 1, 1]);
      return { y: x.conv2d(w, { padding: 1 }).add(b).relu() };
    },
    { N: 1, H: 64, W: 64 },
    { N: 4, H: 128, W: 128 },
    (d) => ({ x: [n(d.N), 64, n(d.H), n(d.W)] }),
    'N <= 4, H, W <= 128',
  );
  if (which.vgg === false) return rows;
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
