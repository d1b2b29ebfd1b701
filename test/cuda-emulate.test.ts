/**
 * What the generated CUDA C computes, checked without a GPU: every kernel of a program is compiled as
 * host C++ (test/cuda-emulator.ts: block threads as OS threads, __shared__ as statics, __syncthreads as a
 * barrier), the ProgramSpec's steps run over the buffers, and the outputs are compared with the float64
 * CPU interpreter at the tolerance the WGSL tests use. Covers the op zoo (RoIAlign forward and both
 * gradients, NMS, top-k, pooling, softmax, gather, an SGD step whose updated params are compared too),
 * frcnn-small inference, frcnn-small's losses with the gradient of every param, and 2-D folded grids.
 * This tests the CUDA text's semantics; the GPU run itself is test/cuda-runtime.test.ts (GPU only).
 * Skipped, saying so, without g++.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { buildEmulator, runEmulator } from './cuda-emulator.js';
import {
  compareWithInterpreter,
  foldedGrids,
  frcnnSmallGradients,
  frcnnSmallInference,
  opZoo,
  type TestProgram,
  testFeeds,
} from './cuda-programs.js';
import { rand, relError } from './helpers.js';

const gxx = spawnSync('g++', ['--version']).status === 0;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function emulate(p: TestProgram, seed: number) {
  const dir = mkdtempSync(join(tmpdir(), 'wgflow-cuda-emu-'));
  dirs.push(dir);
  const t0 = performance.now();
  const exe = buildEmulator(p.compiled, dir);
  const t1 = performance.now();
  const feeds = testFeeds(p, seed);
  const r = runEmulator(exe, p.compiled.spec, feeds, dir);
  const t2 = performance.now();
  const cmp = compareWithInterpreter(p, feeds, r.outputs);
  for (const c of cmp) {
    expect(c.relError, c.name).toBeLessThanOrEqual(1e-4);
    expect(c.mismatches, c.name).toBe(0);
  }
  const worst = Math.max(...cmp.map((c) => c.relError));
  console.log(
    `${p.name}: ${p.compiled.spec.kernels.length} kernels, g++ ${((t1 - t0) / 1000).toFixed(1)} s, run ${((t2 - t1) / 1000).toFixed(1)} s, ` +
      `${cmp.length} outputs, worst rel err ${worst.toExponential(2)}`,
  );
  return { ...r, feeds };
}

describe.skipIf(!gxx)('generated CUDA C, run on the host, matches the CPU interpreter', () => {
  it('op zoo, with the SGD-updated params', () => {
    const p = opZoo();
    const r = emulate(p, 3);
    expect(r.outputs.kept_count?.[0]).toBeGreaterThan(1);
    expect(p.updates.length).toBeGreaterThan(0);
    const want = interpret(
      p.graph.graph,
      r.feeds,
      p.updates.map((u) => u.value.id),
    );
    p.updates.forEach((u, i) => {
      const name = u.target.node.name as string;
      const ref = (want[i] as RefTensor).data;
      const got = r.persistent[name] as ArrayLike<number>;
      let err = 0;
      let scale = 1e-6;
      for (let j = 0; j < ref.length; j++) {
        err = Math.max(err, Math.abs((got[j] as number) - (ref[j] as number)));
        scale = Math.max(scale, Math.abs(ref[j] as number));
      }
      expect(err / scale, `updated ${name}`).toBeLessThanOrEqual(1e-5);
      expect(Array.from(got), `${name} changed`).not.toEqual(r.feeds[name] ?? []);
    });
  }, 120_000);

  it('frcnn-small inference (128×160)', () => {
    const r = emulate(frcnnSmallInference(), 5);
    expect(r.outputs.det_count?.[0]).toBeGreaterThan(0);
    expect(r.outputs.roi_count?.[0]).toBeGreaterThan(0);
  }, 180_000);

  it('frcnn-small losses and every param gradient (64×96)', () => {
    const r = emulate(frcnnSmallGradients(), 11);
    for (const n of ['rpn_cls_loss', 'rpn_bbox_loss', 'cls_loss', 'bbox_loss'])
      expect(r.outputs[n]?.[0], `${n} is active`).toBeGreaterThan(0);
  }, 180_000);

  it('run-time sizes and tensors split across bindings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgflow-cuda-emu-'));
    dirs.push(dir);
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 6 });
    const M = g.dim('M', { max: 400 });
    const x = g.input('x', [N, M]);
    const b = g.input('b', [M]);
    const y = x.mul(2).add(b).relu().mean(1);
    const big = g.input('big', [3, 4000]);
    const z = big.mul(big).add(1).sum(0);
    // a binding limit of 16 KiB splits the 48 KB tensor into 3 windows
    const compiled = compile(g, { outputs: { y, z }, limits: limitsFrom({ maxStorageBufferBindingSize: 16384 }) });
    expect(compiled.spec.kernels.some((k) => k.windows?.some(([off]) => off > 0))).toBe(true);
    expect(compiled.spec.kernels.some((k) => (k.sizes?.length ?? 0) > 0)).toBe(true);
    const exe = buildEmulator(compiled, dir);
    for (const [n, m] of [
      [1, 3],
      [5, 397],
      [6, 400],
    ] as const) {
      const feeds = {
        x: { data: rand(n * m, n + m), shape: [n, m] },
        b: { data: rand(m, 7 * m), shape: [m] },
        big: rand(12000, 3),
      };
      const r = runEmulator(exe, compiled.spec, feeds, dir);
      const [ry, rz] = interpret(g.graph, feeds, [y.id, z.id]);
      expect(r.outputs.y?.length).toBe(n);
      expect(relError(r.outputs.y as Float32Array, (ry as RefTensor).data), `y ${n}×${m}`).toBeLessThan(1e-5);
      expect(relError(r.outputs.z as Float32Array, (rz as RefTensor).data), 'z').toBeLessThan(1e-5);
    }
  }, 120_000);

  it("GEMMs compiled with the CUDA target's own tuning table (256-thread blocks, split-K)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgflow-cuda-emu-'));
    dirs.push(dir);
    const g = new GraphBuilder();
    const a = g.input('a', [70, 53]);
    const b = g.input('b', [53, 90]);
    const w = g.input('w', [6, 3, 3, 3]);
    const dy = g.input('dy', [3, 6, 40, 24]);
    const x = g.input('x', [3, 3, 40, 47]);
    const conv = { stride: [1, 2], padding: [1, 1], dilation: [1, 1], groups: 1 };
    const mm = a.matmul(b);
    const dx = g.apply('conv2d_grad_input', [dy, w], { ...conv, inputShape: [3, 3, 40, 47] });
    const dw = g.apply('conv2d_grad_weight', [x, dy], { ...conv, weightShape: [6, 3, 3, 3] });
    const compiled = compile(g, { outputs: { mm, dx, dw }, limits: limitsFrom({}), target: 'cuda' });
    const threads = compiled.spec.kernels.filter((k) => !k.name.endsWith('_sum')).map((k) => k.workgroupSize[0]);
    // the CUDA table's blocks, not lavapipe's 8-to-32-thread ones
    for (const t of threads) expect(t).toBeGreaterThanOrEqual(64);
    expect(compiled.spec.kernels.some((k) => k.name.endsWith('_sum'))).toBe(true);
    const feeds = { a: rand(70 * 53, 1), b: rand(53 * 90, 2), w: rand(162, 3), dy: rand(3 * 6 * 40 * 24, 4) };
    const r = runEmulator(buildEmulator(compiled, dir), compiled.spec, { ...feeds, x: rand(3 * 3 * 40 * 47, 5) }, dir);
    const refs = interpret(g.graph, { ...feeds, x: rand(3 * 3 * 40 * 47, 5) }, [mm.id, dx.id, dw.id]);
    for (const [k, n] of ['mm', 'dx', 'dw'].entries())
      expect(relError(r.outputs[n] as Float32Array, (refs[k] as RefTensor).data), n).toBeLessThan(1e-5);
  }, 120_000);

  it('2-D folded grids (16 workgroups per dimension)', () => {
    const p = foldedGrids();
    expect(p.compiled.spec.kernels.filter((k) => k.dispatch[1] > 1).length).toBeGreaterThan(2);
    emulate(p, 7);
  }, 120_000);
});

describe.runIf(!gxx)('without g++', () => {
  it('says why the host runs of the CUDA kernels are skipped', () => {
    console.log('cuda-emulate: g++ is not on PATH: the host runs of the generated CUDA C are skipped');
    expect(gxx).toBe(false);
  });
});
