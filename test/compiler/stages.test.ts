/**
 * The compile stages after lowering, each on its own: in-place analysis on typed buffers (alias, or a
 * copy when a later group reads the old value or the anchor reads the target), allocation (logical
 * buffers from the typed reads and writes, reuse, pinned outputs, initializers and constant data),
 * emission (grids, windows, copy steps), assembly (tensors by name, symbols, statistics) and chunking
 * of a hand-made program; and compile() as the composition of the stages. No GPU.
 */
import { describe, expect, it } from 'vitest';
import { valueBuffer } from '../../compiler/buffers.js';
import { lowerProgram } from '../../compiler/codegen.js';
import { compile, compileStages } from '../../compiler/compile.js';
import * as K from '../../compiler/kernel/build.js';
import { limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../../compiler/limits.js';
import { sgd } from '../../compiler/optim.js';
import { chunkBuffers, chunkBytes } from '../../compiler/passes/chunk.js';
import { gridOf } from '../../compiler/passes/emit.js';
import { fuse } from '../../compiler/passes/fuse.js';
import { planInPlace } from '../../compiler/passes/inplace.js';
import { GraphBuilder, init } from '../../compiler/tensor.js';
import type { ProgramSpec } from '../../runtime/program.js';
import { testRandom } from '../seeds.js';
import '../../ops/index.js';

describe('compile() is its stages', () => {
  it('the stages compose to the same program; kernels follow the schedule, copies come last', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [6, 5]);
    const w = g.param('w', [4, 5], init.normal(0.1));
    const y = x.matmul(w, { transB: true }).relu();
    const loss = y.mul(y).sum();
    const step = sgd(loss, { momentum: 0.9 });
    const s = compileStages(g, { outputs: { loss, y }, updates: step.updates });
    expect(s.spec).toEqual(compile(g, { outputs: { loss, y }, updates: step.updates }).spec);
    expect(s.lowered.map((c) => c.group)).toEqual(s.order);
    const kernelNames = s.lowered.flatMap((c) => c.kernels.map((k) => k.name));
    expect(s.spec.kernels.map((k) => k.name)).toEqual(kernelNames);
    expect(s.spec.steps.slice(0, kernelNames.length).every((st) => st.kind === 'dispatch')).toBe(true);
    expect(s.spec.steps.length).toBe(kernelNames.length + s.inPlace.copies.length);
  });
});

describe('in-place analysis on typed buffers', () => {
  /** s ← 0.5·s + x, and `late` = sum(s), a reader of the old value. */
  const program = () => {
    const g = new GraphBuilder();
    const x = g.input('x', [5]);
    const s = g.state('s', [5], init.zeros());
    const next = s.mul(0.5).add(x);
    const late = s.sum();
    return { g, s, next, late };
  };

  it('a group after the update that reads the old value forces a copy', () => {
    const { g, s, next, late } = program();
    const fr = fuse(g.graph, new Set([next.id, late.id]), 8);
    const up = fr.groupOf[next.id] as number;
    const reader = fr.groupOf[late.id] as number;
    const update = [{ target: s.id, value: next.id }];
    // the schedule runs updates last; planned the other way round, the reader sees the new value
    const readerLast = lowerProgram(g.graph, fr, [up, reader], WEBGPU_DEFAULT_LIMITS);
    const plan = planInPlace(g.graph, fr, readerLast, update, [late.id]);
    expect(plan.aliases.size).toBe(0);
    expect(plan.copies).toEqual([{ value: valueBuffer(g.graph, next.id), target: valueBuffer(g.graph, s.id) }]);
    const updateLast = lowerProgram(g.graph, fr, [reader, up], WEBGPU_DEFAULT_LIMITS);
    expect(planInPlace(g.graph, fr, updateLast, update, [late.id]).copies).toHaveLength(0);
  });

  it('an update whose anchor reads the target (a matmul) is copied, not aliased', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 4]);
    const s = g.state('s', [4, 4], init.constant(0.25));
    const next = s.matmul(x);
    const st = compileStages(g, { outputs: {}, updates: [{ target: s, value: next }] });
    expect(st.inPlace.copies.map((c) => c.target.node)).toEqual([st.updates[0]?.target]);
    const last = st.spec.steps[st.spec.steps.length - 1];
    expect(last).toEqual({
      kind: 'copy',
      src: st.alloc.physicalOf(st.inPlace.copies[0]?.value.name as string),
      dst: st.spec.persistent.find((p) => p.name === 's')?.buffer,
      bytes: 64,
    });
  });
});

describe('allocation', () => {
  it('logical buffers come from the typed reads and writes: base nodes, roles, pinned outputs, reuse', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [8, 8]);
    const c = g.constant([1, 2, 3, 4, 5, 6, 7, 8], [8]);
    let h = x.add(c);
    for (let k = 0; k < 5; k++) h = h.reshape([64]).reshape([8, 8]).mul(1.5).exp();
    const s = compileStages(g, { outputs: { out: h, mid: x.add(c) }, fusion: false });
    const { logical, plan, buffers } = s.alloc;
    for (const lb of logical.values()) {
      expect(lb.node.op).not.toBe('reshape'); // views resolve to their base
      expect(lb.name).toBe(valueBuffer(s.simplified.graph, lb.node.id).name);
    }
    const roleOf = (op: string) => [...logical.values()].find((lb) => lb.node.op === op)?.role;
    expect(roleOf('input')).toBe('input');
    expect(roleOf('const')).toBe('const');
    expect(buffers.find((b) => b.role === 'const')?.data).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // eleven temporaries (5 × mul, exp, plus the adds) share fewer buffers; outputs keep their own
    const temps = [...logical.values()].filter((lb) => lb.role === 'temp');
    const tempBuffers = new Set(temps.map((lb) => plan.assign.get(lb.name)));
    expect(tempBuffers.size).toBeLessThan(temps.length);
    const outBuf = (name: string) => s.spec.outputs.find((o) => o.name === name)?.buffer;
    for (const lb of temps) {
      if (lb.pinned) continue;
      const id = plan.assign.get(lb.name);
      expect(id).not.toBe(outBuf('out'));
      expect(id).not.toBe(outBuf('mid'));
    }
    expect(temps.filter((lb) => lb.pinned)).toHaveLength(2);
  });

  it('params get their initializer with fan-in and fan-out and a seed per name, stable across compiles', () => {
    const build = () => {
      const g = new GraphBuilder();
      const x = g.input('x', [2, 3, 9, 9]);
      const a = g.param('conv.weight', [7, 3, 3, 3], init.he());
      const b = g.param('other.weight', [7, 3, 3, 3], init.he());
      return { g, y: x.conv2d(a).add(x.conv2d(b)) };
    };
    const one = build();
    const s1 = compileStages(one.g, { outputs: { y: one.y }, seed: 5 });
    const two = build();
    const s2 = compileStages(two.g, { outputs: { y: two.y }, seed: 5 });
    const inits = s1.spec.buffers.filter((b) => b.init).map((b) => b.init);
    expect(inits).toHaveLength(2);
    expect(inits[0]).toMatchObject({ kind: 'he', fanIn: 27, fanOut: 63 });
    expect(inits[0]?.seed).not.toBe(inits[1]?.seed);
    expect(s2.spec.buffers.filter((b) => b.init).map((b) => b.init)).toEqual(inits);
    const s3 = compileStages(build().g, { outputs: {}, seed: 6 });
    expect(s3.spec.buffers.find((b) => b.init)?.init?.seed).not.toBe(inits[0]?.seed);
  });
});

describe('emission', () => {
  const limits = limitsFrom({ maxComputeWorkgroupsPerDimension: 100 });
  const kernelWith = (grid: Parameters<K.KernelBuilder['finish']>[1]) => {
    const kb = new K.KernelBuilder('k_grid');
    kb.store({ name: 'o', t: 'f32' }, K.builtin('lidx'), K.f32(1));
    return kb.finish([64, 1, 1], grid);
  };

  it('grids: linear counts fold into 2-D past the per-dimension limit; too many is refused by name', () => {
    const rnd = testRandom('emission grids');
    const n = 1 + Math.floor(rnd() * 99);
    expect(gridOf(kernelWith({ linear: n }), limits)).toEqual({ dispatch: [n, 1, 1] });
    expect(gridOf(kernelWith({ linear: 250 }), limits)).toEqual({ dispatch: [100, 3, 1] });
    expect(() => gridOf(kernelWith({ linear: 100 * 100 + 1 }), limits)).toThrow(
      /kernel k_grid: 10001 workgroups cannot be folded into a 100×100 grid/,
    );
    expect(() => gridOf(kernelWith({ xyz: [3, 101, 1] }), limits)).toThrow(/k_grid: grid \[3,101,1\] exceeds 100/);
    const g = new GraphBuilder();
    const N = g.dim('N', { max: 640 });
    const dyn = gridOf(kernelWith({ linear: N }), limits);
    expect(dyn.dispatch).toEqual([100, 7, 1]);
    expect(dyn.grid).toEqual({ linear: expect.anything() });
  });

  it('windows are listed only for a binding smaller than its buffer; copy steps follow the dispatches', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4000]);
    const big = x.exp(); // a large temporary, freed before the small ones
    const small = big.sum().mul(2).add(1);
    const { spec, emitted } = compileStages(g, { outputs: { small }, fusion: false });
    expect(emitted.kernels).toBe(spec.kernels);
    const windowed = spec.kernels.filter((k) => k.windows);
    expect(windowed.length).toBeGreaterThan(0);
    for (const k of windowed)
      expect(
        k.windows?.some(([off, size], j) => off !== 0 || size < (spec.buffers[k.bindings[j] as number]?.bytes ?? 0)),
      ).toBe(true);
    expect(emitted.maxBindingBytes).toBe(16000);
  });
});

describe('assembly', () => {
  it('inputs, outputs and persistent tensors by name on their buffers; symbols; index ranges; stats', () => {
    const g = new GraphBuilder();
    const n = g.dim('N', { min: 2, max: 9 });
    const x = g.input('x', [n, 3]);
    const idx = g.input('idx', [4], 'i32');
    const table = g.param('table', [5, 3], init.normal(0.1), { trainable: false });
    const y = x
      .mul(2)
      .sum([0])
      .add(table.gather(idx).sum([0]));
    const s = compileStages(g, { outputs: { y }, name: 'assembled' });
    const { spec, alloc } = s;
    expect(spec.name).toBe('assembled');
    expect(spec.symbols).toEqual([{ name: 'N', min: 2, max: 9 }]);
    const xi = spec.inputs.find((t) => t.name === 'x');
    expect(xi?.shape).toEqual([9, 3]);
    expect(xi?.dims).toBeDefined();
    expect(spec.inputs.find((t) => t.name === 'idx')?.valueRange).toMatchObject({ min: 0, max: 4 });
    expect(spec.persistent).toEqual([
      expect.objectContaining({ name: 'table', role: 'param', trainable: false, shape: [5, 3] }),
    ]);
    const [, yNode] = s.outputs[0] as readonly [string, number];
    expect(spec.outputs[0]?.buffer).toBe(alloc.physicalOf(valueBuffer(s.simplified.graph, yNode).name));
    expect(spec.stats.dispatches).toBe(spec.kernels.length);
    expect(spec.stats.maxBindingsPerKernel).toBeGreaterThanOrEqual(2);
    expect(spec.stats.peakTempBytes).toBeLessThanOrEqual(spec.stats.tempBytesUnplanned);
  });
});

describe('chunking (a ProgramSpec → ProgramSpec pass)', () => {
  const limits = limitsFrom({ maxStorageBufferBindingSize: 1024, maxBufferSize: 2048 });
  /** One 5000-byte buffer (three chunks), a 64-byte one, a kernel binding the big one's second window. */
  const program = (copyDim?: boolean): ProgramSpec => ({
    format: 'wgflow-program',
    version: 1,
    name: 'chunks',
    buffers: [
      { id: 0, bytes: 5000, role: 'param', dtype: 'f32', init: { kind: 'zeros', fanIn: 1, fanOut: 1, seed: 1 } },
      { id: 1, bytes: 5000, role: 'temp', dtype: 'f32' },
      { id: 2, bytes: 64, role: 'const', dtype: 'f32', data: new Array(16).fill(3) },
    ],
    kernels: [
      {
        name: 'k0',
        wgsl: '',
        workgroupSize: [64, 1, 1],
        dispatch: [1, 1, 1],
        bindings: [0, 2],
        windows: [
          [2048, 1024],
          [0, 64],
        ],
        writes: [true, false],
      },
    ],
    steps: [
      { kind: 'dispatch', kernel: 0 },
      { kind: 'copy', src: 1, dst: 0, bytes: 5000, ...(copyDim ? { bytesDim: { sym: 'N' } as never } : {}) },
    ],
    inputs: [],
    outputs: [],
    persistent: [{ name: 'w', buffer: 0, dtype: 'f32', shape: [1250], role: 'param', trainable: true }],
    stats: {
      dispatches: 1,
      kernels: 1,
      peakTempBytes: 5000,
      tempBufferBytes: 5000,
      tempBytesUnplanned: 5000,
      persistentBytes: 5064,
      maxBindingBytes: 1024,
      maxBufferBytes: 5000,
      maxBindingsPerKernel: 2,
    },
  });

  it('splits buffers into chunks, moves windows and copies onto them, lists the chunks of tensors', () => {
    expect(chunkBytes(limits)).toBe(2048);
    const out = chunkBuffers(program(), limits);
    expect(out.buffers.map((b) => [b.id, b.bytes, b.role])).toEqual([
      [0, 2048, 'param'],
      [1, 2048, 'param'],
      [2, 904, 'param'],
      [3, 2048, 'temp'],
      [4, 2048, 'temp'],
      [5, 904, 'temp'],
      [6, 64, 'const'],
    ]);
    expect(out.buffers[0]?.init).toBeDefined(); // the runtime writes the initializer across the chunks
    expect(out.buffers[1]?.init).toBeUndefined();
    expect(out.buffers[6]?.data).toHaveLength(16);
    expect(out.kernels[0]?.bindings).toEqual([1, 6]);
    expect(out.kernels[0]?.windows).toEqual([
      [0, 1024],
      [0, 64],
    ]);
    expect(out.steps.slice(1)).toEqual([
      { kind: 'copy', src: 3, dst: 0, bytes: 2048 },
      { kind: 'copy', src: 4, dst: 1, bytes: 2048 },
      { kind: 'copy', src: 5, dst: 2, bytes: 904 },
    ]);
    expect(out.persistent[0]).toMatchObject({ buffer: 0, chunks: [0, 1, 2] });
    expect(out.stats.maxBufferBytes).toBe(2048);
  });

  it('returns a program with no oversized buffer unchanged, and refuses a run-time-sized copy across chunks', () => {
    const p = program();
    expect(chunkBuffers(p, limitsFrom({ maxBufferSize: 8192 }))).toBe(p);
    expect(() => chunkBuffers(program(true), limits)).toThrow(/run-time-sized tensor over maxBufferSize/);
  });
});
