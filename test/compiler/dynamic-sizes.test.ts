/**
 * Run-time sizes end to end: one compiled program runs every size within its bounds with no new
 * pipelines, and equals both the CPU interpreter and a program compiled for the exact static shape.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/compile.js';
import type { Dim } from '../../compiler/dims.js';
import { interpret } from '../../compiler/interpreter.js';
import { limitsFrom } from '../../compiler/limits.js';
import { GraphBuilder, type Tensor } from '../../compiler/tensor.js';
import { anchorsInside } from '../../ops/anchors.js';
import { closeDevice, getDevice } from '../../runtime/device.js';
import { pipelineCount, Session } from '../../runtime/session.js';
import { rand, relError } from '../helpers.js';
import { testSeed } from '../seeds.js';

afterAll(closeDevice);

/** y = sum_j relu(2·x[i, j] + b[j]) / M  and  z = max over everything of x·x. */
function build(g: GraphBuilder, N: Dim, M: Dim): { x: Tensor; b: Tensor; y: Tensor; z: Tensor } {
  const x = g.input('x', [N, M]);
  const b = g.input('b', [M]);
  const y = x.mul(2).add(b).relu().mean(1);
  const z = x.mul(x).max();
  return { x, b, y, z };
}

describe('run-time sizes', () => {
  it('one program, many sizes: equal to the interpreter and to static compiles, no new pipelines', async () => {
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 7 });
    const M = g.dim('M', { max: 700 });
    const { y, z } = build(g, N, M);
    const { spec } = compile(g, { outputs: { y, z }, limits });
    expect(spec.symbols).toEqual([
      { name: 'N', min: 1, max: 7 },
      { name: 'M', min: 1, max: 700 },
    ]);
    const session = await Session.create(spec);
    const seed = testSeed('run-time sizes: one program');
    const sizes: [number, number][] = [
      [1, 1],
      [3, 257],
      [7, 700],
      [2, 513],
      [5, 3],
      [6, 699],
    ];
    let before = -1;
    for (const [k, [n, m]] of sizes.entries()) {
      const xs = rand(n * m, seed + k);
      const bs = rand(m, seed + 100 + k);
      const out = await session.run({ x: { data: xs, shape: [n, m] }, b: { data: bs, shape: [m] } });
      if (k === 0) before = pipelineCount();
      expect(out.y?.shape).toEqual([n]);
      expect(out.z?.shape).toEqual([]);
      const [ry, rz] = interpret(g.graph, { x: { data: xs, shape: [n, m] }, b: { data: bs, shape: [m] } }, [
        y.id,
        z.id,
      ]);
      expect(relError(out.y?.data as Float32Array, ry?.data as Float64Array), `y at ${n}×${m}`).toBeLessThan(1e-5);
      expect(relError(out.z?.data as Float32Array, rz?.data as Float64Array), `z at ${n}×${m}`).toBeLessThan(1e-6);
      // the same graph compiled for exactly this shape
      const gs = new GraphBuilder();
      const st = build(gs, n, m);
      const stat = await Session.create(compile(gs, { outputs: { y: st.y, z: st.z }, limits }).spec);
      const so = await stat.run({ x: xs, b: bs });
      expect(relError(out.y?.data as Float32Array, so.y?.data as Float32Array), `static y at ${n}×${m}`).toBeLessThan(
        1e-5,
      );
      expect(Array.from(out.z?.data ?? [])).toEqual(Array.from(so.z?.data ?? []));
      stat.destroy();
      if (k === 0) before = pipelineCount();
    }
    // the static compiles above create their own pipelines; rerun the dynamic program on every size
    const after = pipelineCount();
    for (const [n, m] of sizes)
      await session.run({ x: { data: rand(n * m, seed), shape: [n, m] }, b: { data: rand(m, seed), shape: [m] } });
    expect(pipelineCount()).toBe(after);
    expect(before).toBeGreaterThan(0);
    session.destroy();
  });

  it('refuses sizes outside the compiled range and inconsistent symbols, naming the input', async () => {
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 4 });
    const M = g.dim('M', { max: 8 });
    const { y } = build(g, N, M);
    const session = await Session.create(compile(g, { outputs: { y } }).spec);
    await expect(
      session.run({ x: { data: rand(10, 1), shape: [5, 2] }, b: { data: rand(2, 2), shape: [2] } }),
    ).rejects.toThrow(/input "x" axis 0 \(N\) is 5, outside the compiled range 1\.\.4/);
    await expect(
      session.run({ x: { data: rand(6, 1), shape: [2, 3] }, b: { data: rand(4, 2), shape: [4] } }),
    ).rejects.toThrow(/size M is 3 in input "x" but 4 in input "b"/);
    await expect(session.run({ x: rand(6, 1), b: { data: rand(3, 2), shape: [3] } })).rejects.toThrow(
      /input "x" has run-time sizes .*feed it as \{ data, shape \}/,
    );
    session.destroy();
  });

  it('ops without run-time-size rules refuse size symbols at declaration', () => {
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 32 });
    const boxes = g.input('boxes', [N, 4]);
    expect(() => anchorsInside(boxes, [60, 100])).toThrow(/anchors_inside.*does not support run-time sizes/);
  });
});
