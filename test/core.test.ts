import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { ShapeError, WgflowError } from '../compiler/errors.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import { sgd } from '../compiler/optim.js';
import { GraphBuilder, init } from '../compiler/tensor.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import { Session } from '../runtime/session.js';
import { checkGpuVsCpu, freshSeed, rand, relError } from './helpers.js';

afterAll(closeDevice);

describe('DSL and IR', () => {
  it('prints a flat SSA list, one line per node', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3]);
    const w = g.param('w', [3], init.normal(0.1));
    x.mul(w).relu().sum();
    const lines = g.graph.print().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toBe('%0 = input "x"() : f32[2,3]');
    expect(lines[2]).toBe('%2 = mul(%0, %1) : f32[2,3]');
    expect(lines[4]).toBe('%4 = sum(%3) {axes:[0,1], keepDims:false} : f32[]');
  });

  it('a wrong shape throws at once with the op, the shapes and the caller file:line', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [7, 13]);
    const b = g.input('b', [7, 12]);
    let err: unknown;
    try {
      a.add(b);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeError);
    const msg = (err as Error).message;
    expect(msg).toContain('add:');
    expect(msg).toContain('f32[7,13]');
    expect(msg).toContain('f32[7,12]');
    expect(msg).toMatch(/test\/core\.test\.ts:\d+:\d+/);
  });

  it('rejects mixed dtypes and duplicate names', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [4]);
    const i = g.input('i', [4], 'i32');
    expect(() => a.add(i)).toThrow(/dtypes f32 and i32 differ/);
    expect(() => g.input('a', [2])).toThrow(/already used/);
  });
});

describe('passes', () => {
  it('DCE drops unused nodes, CSE merges duplicates, constants fold', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [5]);
    x.exp(); // dead
    const c = g.constant(2).mul(g.constant(3)); // folds to 6
    const y = x.mul(c).add(x.mul(c)); // x*c computed once
    const { report, graph } = compile(g, { outputs: { y } });
    expect(report.removed).toBe(1);
    expect(report.folded).toBe(1);
    expect(report.merged).toBe(1);
    expect(graph.print()).toContain('{value:6}');
  });

  it('an elementwise chain with broadcasting is one dispatch; a reduction takes its prologue and epilogue', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [7, 13]);
    const b = g.input('b', [13]);
    const y = x.add(b).mul(2).relu().exp().sub(1);
    const m = x.mul(x).sum([1]).sqrt().mul(0.5);
    const fused = compile(g, { outputs: { y, m } });
    expect(fused.spec.stats.dispatches).toBe(2);
    const unfused = compile(g, { outputs: { y, m }, fusion: false });
    expect(unfused.spec.stats.dispatches).toBe(9);
  });

  it('memory planning reuses buffers and reports peak bytes', () => {
    const g = new GraphBuilder();
    let h = g.input('x', [64, 64]);
    for (let i = 0; i < 6; i++) h = h.sum([1], true).add(h).mul(0.5); // reduction boundaries force temporaries
    const { spec } = compile(g, { outputs: { h } });
    expect(spec.stats.tempBytesUnplanned).toBeGreaterThan(spec.stats.tempBufferBytes);
    expect(spec.stats.peakTempBytes).toBeGreaterThan(0);
    expect(spec.stats.peakTempBytes).toBeLessThanOrEqual(spec.stats.tempBufferBytes);
  });

  it('a tensor over the binding limit is split across bindings, one over the buffer limit across buffers', () => {
    const g = new GraphBuilder();
    const x = g.input('image', [1, 64, 600, 1000]); // 153.6 MB > 128 MiB (VGG16 conv1 at 600×1000)
    const y = x.relu();
    const { spec } = compile(g, { outputs: { y }, limits: WEBGPU_DEFAULT_LIMITS });
    expect(spec.kernels[0]?.windows).toEqual([
      [0, 134217728],
      [134217728, 153600000 - 134217728],
      [0, 134217728],
      [134217728, 153600000 - 134217728],
    ]);
    // over maxBufferSize (256 MiB): the tensor's buffer becomes chunks of 256 MiB
    const big = new GraphBuilder();
    const z = big.input('image', [1, 128, 600, 1000]).relu(); // 307.2 MB
    const chunked = compile(big, { outputs: { z }, limits: WEBGPU_DEFAULT_LIMITS }).spec;
    expect(chunked.inputs[0]?.chunks).toHaveLength(2);
    expect(Math.max(...chunked.buffers.map((b) => b.bytes))).toBeLessThanOrEqual(268435456);
    // a tensor whose element indices overflow u32 is refused, naming it
    const huge = new GraphBuilder();
    const h = huge.input('x', [65536, 65537]).relu();
    expect(() => compile(huge, { outputs: { h } })).toThrow(
      /input "x" makes f32\[65536,65537\] = \d+ elements, over the 2\^32/,
    );
  });
});

describe('GPU execution', () => {
  it('folds grids past 65,535 workgroups into 2-D (elementwise over 16.9M elements)', async () => {
    const n = 65_600 * 256 + 17;
    const g = new GraphBuilder();
    const x = g.input('x', [n]);
    const y = x.mul(3).add(1);
    const dev = await getDevice();
    const { spec } = compile(g, { outputs: { y }, limits: limitsFrom(dev.limits) });
    const k = spec.kernels[0];
    expect(k?.dispatch[1]).toBeGreaterThan(1);
    const s = await Session.create(spec, { gpu: dev });
    const xv = new Float32Array(n);
    for (let i = 0; i < n; i++) xv[i] = (i % 1009) - 500;
    const out = (await s.run({ x: xv })).y?.data as Float32Array;
    s.destroy();
    for (const i of [0, 1, 65_535 * 256, n - 1]) expect(out[i]).toBe(((i % 1009) - 500) * 3 + 1);
  });

  it('fused elementwise and reduction kernels match the CPU interpreter', async () => {
    for (const shape of [
      [7, 13],
      [3, 5, 6],
      [1000, 3],
    ] as const) {
      await checkGpuVsCpu((g) => {
        const x = g.input('x', shape);
        const b = g.input('b', [shape[shape.length - 1] as number]);
        const y = x.add(b).mul(x).sigmoid().tanh().maximum(x.abs().sqrt());
        return { y, s: y.sum([0]), m: x.max([shape.length - 1]).exp(), all: x.mul(b).sum() };
      });
    }
  });

  it('a parallel (workgroup-per-output) reduction over 300k elements matches', async () => {
    await checkGpuVsCpu((g) => {
      const x = g.input('x', [3, 100_003]);
      return { s: x.sum([1]), m: x.max([1]) };
    });
  });

  it('SGD with momentum and weight decay updates params in place on the GPU, matching the CPU', async () => {
    const seed = freshSeed();
    const g = new GraphBuilder();
    const x = g.input('x', [6, 5]);
    const w = g.param('w', [5], init.normal(0.5));
    const loss = x.mul(w).sum([1]).sub(1).pow(2).mean();
    const step = sgd(loss, { momentum: 0.9, weightDecay: 0.01 });
    const dev = await getDevice();
    const { spec } = compile(g, { outputs: { loss }, updates: step.updates, limits: limitsFrom(dev.limits) });
    expect(spec.steps.every((s) => s.kind === 'dispatch')).toBe(true); // both updates in place: no copies
    const xv = rand([6, 5], seed);
    const w0 = rand([5], seed + 1);
    const s = await Session.create(spec, { gpu: dev, initial: { w: w0 } });
    // CPU: the same three steps by hand
    let wc = [...w0];
    let buf = [0, 0, 0, 0, 0];
    for (let it = 0; it < 3; it++) {
      const out = await s.run({ x: xv, lr: [0.1] });
      const lossRef = interpret(g.graph, { x: xv, w: wc, lr: [0.1], 'w.momentum': buf }, [loss.id])[0]
        ?.data[0] as number;
      expect(relError([out.loss?.data[0] as number], [lossRef])).toBeLessThan(1e-5);
      const gradRef = interpret(g.graph, { x: xv, w: wc, lr: [0.1], 'w.momentum': buf }, [
        step.grads[0]?.id as number,
      ])[0]?.data as Float64Array;
      buf = buf.map((b, i) => 0.9 * b + (gradRef[i] as number) + 0.01 * (wc[i] as number));
      wc = wc.map((v, i) => v - 0.1 * (buf[i] as number));
    }
    const wGpu = (await s.read('w')).data;
    s.destroy();
    expect(relError(wGpu, wc)).toBeLessThan(1e-5);
  });

  it('runtime errors name what is missing', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [3]);
    const { spec } = compile(g, { outputs: { y: x.exp() } });
    const s = await Session.create(spec);
    await expect(s.run({})).rejects.toThrow(/missing input "x" f32\[3\]/);
    await expect(s.run({ x: [1, 2] })).rejects.toThrow(/expected 3 values, got 2/);
    await expect(s.run({ x: [1, 2, 3], z: [1] })).rejects.toThrow(WgflowError);
    s.destroy();
  });
});

describe('runtime errors', () => {
  it('a kernel that fails to compile is reported by name, with the WGSL line', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4]);
    const { spec } = compile(g, { outputs: { y: x.exp() } });
    const k = spec.kernels[0] as (typeof spec.kernels)[number];
    const broken = { ...spec, kernels: [{ ...k, name: 'broken_kernel', wgsl: k.wgsl.replace('exp(', 'expo(') }] };
    await expect(Session.create(broken)).rejects.toThrow(
      /kernel broken_kernel failed to compile[\s\S]*error at \d+:\d+/,
    );
  });

  it('without a WebGPU adapter, the error says what to install', () => {
    const code =
      "import('./runtime/device.ts').then(async (m) => { try { await m.getDevice(); console.log('DEVICE'); } catch (e) { console.log(e.message); } })";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
      env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stdout).toContain('No WebGPU adapter was found');
    expect(r.stdout).toContain('npx wgflow setup-gpu');
  });

  it('running on a destroyed device throws instead of hanging', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4]);
    const { spec } = compile(g, { outputs: { y: x.exp() } });
    const s = await Session.create(spec);
    await closeDevice();
    await new Promise((r) => setTimeout(r, 50));
    await expect(s.run({ x: [1, 2, 3, 4] })).rejects.toThrow(/device was destroyed/);
  });
});
