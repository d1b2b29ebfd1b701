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
import { GraphBuilder, init } from '../../compiler/tensor.js';
import { closeDevice, getDevice } from '../../runtime/device.js';
import { Session } from '../../runtime/session.js';
import { freshSeed, rand, relError } from '../helpers.js';

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
    const seed = freshSeed();
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

  it('a kernel that would need more bindings than the device has is refused with the reason', () => {
    const limits = limitsFrom({ maxStorageBufferBindingSize: 1024, maxStorageBuffersPerShaderStage: 4 });
    const g = new GraphBuilder();
    const a = g.input('a', [4096]);
    const b = g.input('b', [4096]);
    expect(() => compile(g, { outputs: { y: a.add(b) }, limits })).toThrow(/binding per 1024-byte window/);
  });
});
