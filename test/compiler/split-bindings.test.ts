/**
 * Tensors larger than one storage binding: the compiler splits them across several bindings of one
 * buffer (compiler/passes/bind.ts), transparently to the ops. The programs here are compiled against a
 * binding limit of 256 KiB (the runtime accepts any window up to the device's own limit), so every
 * large tensor is at least twice the limit and is split, through conv, pooling, an elementwise chain,
 * a reduction and all their gradients; results match the CPU interpreter.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { grad } from '../../compiler/autodiff.js';
import { compile } from '../../compiler/compile.js';
import { interpret } from '../../compiler/interpreter.js';
import { limitsFrom } from '../../compiler/limits.js';
import { sgd } from '../../compiler/optim.js';
import { GraphBuilder, init } from '../../compiler/tensor.js';
import { linear } from '../../ops/matmul.js';
import { closeDevice, getDevice } from '../../runtime/device.js';
import { Session } from '../../runtime/session.js';
import { rand, relError, threeChunkGraph, tinyBufferLimits } from '../helpers.js';
import { testSeed } from '../seeds.js';

afterAll(closeDevice);

const LIMIT = 256 * 1024;

describe('tensors over the binding limit', () => {
  it('conv → ReLU → max-pool → elementwise → sum, forward and gradients, split across bindings', async () => {
    const dev = await getDevice();
    const limits = limitsFrom({ ...dev.limits, maxStorageBufferBindingSize: LIMIT });
    const g = new GraphBuilder();
    // x: 1×3×150×130 (234 KB); conv out 1×8×150×130 = 624 KB = 2.4× the limit
    const x = g.input('x', [1, 3, 150, 130]);
    const w = g.param('w', [8, 3, 3, 3], init.normal(0.3));
    const h = x.conv2d(w, { padding: 1 }).relu();
    const p = h.maxPool2d({ kernel: 2 }); // 1×8×75×65 = 156 KB
    const e = h.mul(h).add(h.mul(0.5)).tanh(); // elementwise chain on the split tensor
    const loss = p.sum().add(e.mean());
    const [dx, dw] = grad(loss, [x, w]);
    const compiled = compile(g, { outputs: { loss, h, dx: dx!, dw: dw! }, limits });
    const split = compiled.spec.kernels.filter((k) => k.windows?.some(([off]) => off > 0));
    expect(split.length).toBeGreaterThanOrEqual(4);
    expect(compiled.spec.stats.maxBindingBytes).toBeLessThanOrEqual(LIMIT);
    expect(Math.max(...compiled.spec.buffers.map((b) => b.bytes))).toBeGreaterThan(2 * LIMIT);
    const seed = testSeed('split bindings: conv chain');
    const xs = rand(3 * 150 * 130, seed);
    const ws = rand(8 * 27, seed + 1, -0.3, 0.3);
    const session = await Session.create(compiled.spec, { initial: { w: ws } });
    const out = await session.run({ x: xs });
    const ref = interpret(g.graph, { x: xs, w: ws }, [loss.id, h.id, dx!.id, dw!.id]);
    const names = ['loss', 'h', 'dx', 'dw'] as const;
    names.forEach((n, i) => {
      expect(relError(out[n]?.data as Float32Array, ref[i]?.data as Float64Array), `${n} (seed ${seed})`).toBeLessThan(
        2e-4,
      );
    });
    session.destroy();
  });

  it('buffers over maxBufferSize become chunks: inputs, params, SGD state, outputs and copies across them', async () => {
    // windows of 16 KiB, buffers of at most 20 KiB → chunks of one window (16 KiB); lavapipe's 16
    // storage buffers per stage (each split tensor takes one binding per window)
    const limits = await tinyBufferLimits();
    const g = new GraphBuilder();
    const { n, w, y } = threeChunkGraph(g);
    const loss = y.mul(y).sum();
    const step = sgd(loss, { momentum: 0.9 });
    const wNew = step.updates.find((u) => u.target.node.name === 'w')?.value as typeof w;
    // wNew is also an output, so its update is a copy step (chunk by chunk)
    const { spec } = compile(g, { outputs: { loss, y, w2: w.mul(2), wNew }, updates: step.updates, limits });
    expect(spec.steps.filter((s) => s.kind === 'copy')).toHaveLength(3);
    expect(Math.max(...spec.buffers.map((b) => b.bytes))).toBeLessThanOrEqual(20480);
    expect(spec.persistent.find((p) => p.name === 'w')?.chunks).toHaveLength(3);
    expect(spec.inputs[0]?.chunks).toHaveLength(3);
    const seed = testSeed('split bindings: chunks');
    const xs = rand(n, seed);
    const ws = rand(n, seed + 1);
    const session = await Session.create(spec, { initial: { w: ws } });
    const out = await session.run({ x: xs, lr: [0.1] });
    const ref = interpret(g.graph, { x: xs, w: ws, lr: [0.1], 'w.momentum': new Array(n).fill(0) }, [
      loss.id,
      y.id,
      step.updates.find((u) => u.target.node.name === 'w')?.value.id as number,
    ]);
    expect(relError(out.loss?.data as Float32Array, ref[0]?.data as Float64Array)).toBeLessThan(1e-5);
    expect(relError(out.y?.data as Float32Array, ref[1]?.data as Float64Array)).toBeLessThan(1e-5);
    expect(
      relError(
        out.w2?.data as Float32Array,
        ws.map((v) => 2 * v),
      ),
    ).toBeLessThan(1e-6);
    const wAfter = await session.read('w');
    expect(relError(wAfter.data, ref[2]?.data as Float64Array)).toBeLessThan(1e-5);
    expect(Array.from(out.wNew?.data ?? [])).toEqual(Array.from(wAfter.data));
    session.destroy();
  });

  it('a linear layer whose weight spans several buffers (VGG16 fc6, scaled down): forward and gradients', async () => {
    // weight 700×300 f32 = 840 KB over buffers of at most 320 KiB: 3 chunks, bound as 64 KiB windows
    const dev = await getDevice();
    const limits = limitsFrom({
      ...dev.limits,
      maxStorageBufferBindingSize: 65536,
      maxBufferSize: 327680,
      maxStorageBuffersPerShaderStage: Math.min(16, dev.limits.maxStorageBuffersPerShaderStage ?? 8),
    });
    const g = new GraphBuilder();
    const x = g.input('x', [5, 300]);
    const w = g.param('w', [700, 300], init.normal(0.05));
    const b = g.param('b', [700], init.normal(0.1));
    const y = linear(x, w, b).relu();
    const loss = y.mul(y).sum();
    const [dx, dw] = grad(loss, [x, w]);
    const { spec } = compile(g, { outputs: { y, dx: dx!, dw: dw! }, limits });
    expect(spec.persistent.find((p) => p.name === 'w')?.chunks?.length).toBe(3);
    const seed = testSeed('split bindings: linear');
    const xs = rand(5 * 300, seed);
    const ws = rand(700 * 300, seed + 1, -0.05, 0.05);
    const bs = rand(700, seed + 2, -0.1, 0.1);
    const session = await Session.create(spec, { initial: { w: ws, b: bs } });
    const out = await session.run({ x: xs });
    const ref = interpret(g.graph, { x: xs, w: ws, b: bs }, [y.id, dx!.id, dw!.id]);
    (['y', 'dx', 'dw'] as const).forEach((n, i) => {
      expect(relError(out[n]?.data as Float32Array, ref[i]?.data as Float64Array), `${n} (seed ${seed})`).toBeLessThan(
        1e-4,
      );
    });
    session.destroy();
  });

  it('a kernel that would need more bindings than the device has is refused with the reason', () => {
    const limits = limitsFrom({ maxStorageBufferBindingSize: 1024, maxStorageBuffersPerShaderStage: 4 });
    const g = new GraphBuilder();
    const a = g.input('a', [4096]);
    const b = g.input('b', [4096]);
    expect(() => compile(g, { outputs: { y: a.add(b) }, limits })).toThrow(/binding per 1024-byte window/);
  });
});
