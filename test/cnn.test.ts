import { afterAll, describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { init } from '../compiler/tensor.js';
import { CLASSES, IMAGE, makeShapesTask, smallCnn, trainSmallCnn } from '../examples/small-cnn.js';
import { softmaxCrossEntropy } from '../ops/losses.js';
import { closeDevice } from '../runtime/device.js';
import { checkGpuVsCpu, freshSeed, randInt } from './helpers.js';

afterAll(closeDevice);

describe('small CNN', () => {
  it('GPU gradients of every parameter match the CPU interpreter (float64)', async () => {
    const seed = freshSeed();
    const batch = 3;
    const { errors } = await checkGpuVsCpu(
      (g) => {
        const x = g.input('images', [batch, 1, IMAGE, IMAGE]);
        const labels = g.input('labels', [batch], 'i32');
        const logits = smallCnn(g, x);
        const loss = softmaxCrossEntropy(logits, labels);
        const params = g.graph.nodes.filter((n) => n.op === 'param').map((n) => g.tensor(n.id));
        const grads = grad(loss, params);
        const out: Record<string, ReturnType<typeof g.tensor>> = { loss };
        params.forEach((p, i) => {
          out[`d ${p.node.name}`] = grads[i] as ReturnType<typeof g.tensor>;
        });
        return out;
      },
      { seed, feeds: { labels: randInt([batch], seed, 0, CLASSES) }, rtol: 1e-4 },
    );
    expect(Object.keys(errors)).toHaveLength(7); // loss + 6 parameter gradients
  });

  it('a conv-ReLU-pool stack with a 5-channel odd-size input matches on the GPU, gradients included', async () => {
    await checkGpuVsCpu((g) => {
      const x = g.input('x', [2, 5, 11, 13]);
      const w1 = g.param('w1', [6, 5, 3, 3], init.he());
      const b1 = g.param('b1', [6], init.normal(0.1));
      const h = x
        .conv2d(w1, { padding: 1 })
        .add(b1.reshape([1, 6, 1, 1]))
        .relu()
        .maxPool2d({ kernel: 2, ceilMode: true });
      const loss = h.mul(h).mean();
      const [dw, db, dx] = grad(loss, [w1, b1, x]);
      return { h, loss, dw: dw as typeof h, db: db as typeof h, dx: dx as typeof h };
    });
  });

  it('trains on the GPU: loss falls ≥ 10× and held-out accuracy ≥ 95 %', async () => {
    const r = await trainSmallCnn({ steps: 150, seed: 7 });
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    const first = mean(r.losses.slice(0, 10));
    const last = mean(r.losses.slice(-10));
    expect(first / last).toBeGreaterThanOrEqual(10);
    expect(r.accuracy).toBeGreaterThanOrEqual(0.95);
  });

  it('the generated task is balanced and not trivial (images differ, labels cover every class)', () => {
    const { images, labels } = makeShapesTask(400, 3);
    const counts = new Array(CLASSES).fill(0);
    for (const l of labels) counts[l]++;
    for (const c of counts) expect(c).toBeGreaterThan(60);
    expect(images.some((v) => v !== 0)).toBe(true);
  });
});
