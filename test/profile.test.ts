/** Per-dispatch GPU timing (runtime/profile.ts): one time per dispatch, named, non-negative, summing to at most the step. */
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { sgd } from '../compiler/optim.js';
import { GraphBuilder, init } from '../compiler/tensor.js';
import { softmaxCrossEntropy } from '../ops/losses.js';
import { getDevice } from '../runtime/device.js';
import { canProfile, kernelPattern, topKernels } from '../runtime/profile.js';
import { Session } from '../runtime/session.js';
import { rand, randInt } from './helpers.js';

/** A small training step: matmul + bias + ReLU, a second matmul, softmax CE, SGD with momentum. */
async function smallProgram() {
  const dev = await getDevice();
  const g = new GraphBuilder();
  const x = g.input('x', [64, 256]);
  const y = g.input('y', [64], 'i32');
  const w1 = g.param('w1', [256, 256], init.he());
  const b1 = g.param('b1', [256], init.zeros());
  const w2 = g.param('w2', [256, 10], init.xavier());
  const logits = x.matmul(w1).add(b1).relu().matmul(w2);
  const loss = softmaxCrossEntropy(logits, y);
  const step = sgd(loss, { momentum: 0.9 });
  const { spec } = compile(g, { outputs: { loss }, updates: step.updates, limits: limitsFrom(dev.limits), seed: 5 });
  const feeds = { x: rand([64, 256], 11), y: randInt([64], 12, 0, 10), lr: [0.01] };
  return { dev, spec, feeds };
}

describe('per-dispatch profiling', () => {
  it('returns one named, non-negative time per dispatch; their sum is at most the wall time of the step', async () => {
    const { dev, spec, feeds } = await smallProgram();
    if (!canProfile(dev.device)) {
      await expect(Session.create(spec, { gpu: dev, profile: true })).rejects.toThrow(/timestamp-query/);
      return;
    }
    const plain = await Session.create(spec, { gpu: dev });
    const profiled = await Session.create(spec, { gpu: dev, profile: true });
    expect(plain.lastRunProfile).toBeUndefined();
    const dispatchSteps = spec.steps.filter((s) => s.kind === 'dispatch');
    expect(dispatchSteps.length).toBe(spec.stats.dispatches);
    expect(dispatchSteps.length).toBeGreaterThan(3);
    for (let run = 0; run < 2; run++) {
      const t0 = performance.now();
      const out = await profiled.run(feeds);
      const wall = performance.now() - t0;
      const ref = await plain.run(feeds);
      // profiling changes only how passes are recorded: same loss, same parameter updates
      expect(out.loss?.data[0]).toBe(ref.loss?.data[0]);
      const p = profiled.lastRunProfile;
      expect(p).toBeDefined();
      if (!p) return;
      expect(p.dispatches.length).toBe(dispatchSteps.length);
      p.dispatches.forEach((d, i) => {
        const k = (dispatchSteps[i] as { kernel: number }).kernel;
        expect(d.index).toBe(i);
        expect(d.kernel).toBe(k);
        expect(d.name).toBe(spec.kernels[k]?.name);
        expect(Number.isFinite(d.ms)).toBe(true);
        expect(d.ms).toBeGreaterThanOrEqual(0);
      });
      const sum = p.dispatches.reduce((a, d) => a + d.ms, 0);
      expect(p.totalMs).toBeCloseTo(sum, 9);
      // the 64×256×256 matmul alone is far above the 65.5 µs timestamp quantum: something was measured
      expect(p.totalMs).toBeGreaterThan(0);
      expect(p.totalMs).toBeLessThanOrEqual(wall);
      expect(p.spanMs).toBeLessThanOrEqual(wall);
    }
    const w1a = await profiled.read('w1');
    const w1b = await plain.read('w1');
    expect(Array.from(w1a.data)).toEqual(Array.from(w1b.data));

    const p = profiled.lastRunProfile;
    if (!p) return;
    const top = topKernels([p, p]);
    expect(top.reduce((a, k) => a + k.totalMs, 0)).toBeCloseTo(2 * p.totalMs, 6);
    expect(top.reduce((a, k) => a + k.calls, 0)).toBe(2 * p.dispatches.length);
    for (let i = 1; i < top.length; i++)
      expect((top[i - 1] as { totalMs: number }).totalMs).toBeGreaterThanOrEqual(
        (top[i] as { totalMs: number }).totalMs,
      );
    expect(topKernels([p], 2).length).toBe(2);
    const patterns = topKernels([p], Number.POSITIVE_INFINITY, kernelPattern);
    expect(patterns.every((k) => !/^k\d+_/.test(k.name))).toBe(true);
    expect(patterns.reduce((a, k) => a + k.calls, 0)).toBe(p.dispatches.length);
    plain.destroy();
    profiled.destroy();
  });
});
