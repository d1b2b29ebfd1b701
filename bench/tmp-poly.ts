import { GraphBuilder } from '../index.js';
import { timeGraph } from './harness.js';

const o = { warmup: 3, runs: 11 };
for (let rep = 0; rep < 2; rep++) {
  const s = await timeGraph(
    'k',
    'mm static',
    2.147,
    (g) => ({ c: g.input('a', [1024, 1024]).matmul(g.input('b', [1024, 1024])) }),
    new GraphBuilder(),
    o,
  );
  const p = await timeGraph(
    'k',
    'mm poly',
    2.147,
    (g) => {
      const M = g.dim('M', { max: 1024 });
      const N = g.dim('N', { max: 1024 });
      const K = g.dim('K', { max: 1024 });
      return { c: g.input('a', [M, K]).matmul(g.input('b', [K, N])) };
    },
    new GraphBuilder(),
    { ...o, shapes: { a: [1024, 1024], b: [1024, 1024] } },
  );
  const cs = await timeGraph(
    'k',
    'conv static',
    0.3,
    (g) => ({
      y: g
        .input('x', [1, 64, 64, 64])
        .conv2d(g.input('w', [64, 64, 3, 3]), { padding: 1 })
        .add(g.input('b', [1, 64, 1, 1]))
        .relu(),
    }),
    new GraphBuilder(),
    o,
  );
  const cp = await timeGraph(
    'k',
    'conv poly',
    0.3,
    (g) => {
      const N = g.dim('N', { max: 4 });
      const H = g.dim('H', { max: 128 });
      const W = g.dim('W', { max: 128 });
      return {
        y: g
          .input('x', [N, 64, H, W])
          .conv2d(g.input('w', [64, 64, 3, 3]), { padding: 1 })
          .add(g.input('b', [1, 64, 1, 1]))
          .relu(),
      };
    },
    new GraphBuilder(),
    { ...o, shapes: { x: [1, 64, 64, 64] } },
  );
  for (const r of [s, p, cs, cp]) console.log(r.workload, r.minMs.toFixed(2), r.medianMs.toFixed(2));
}
process.exit(0);
