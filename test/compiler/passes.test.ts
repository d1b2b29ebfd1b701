/**
 * Each compiler pass on its own: simplify (DCE, CSE, folding), fuse and schedule, lowering's declared
 * reads and writes, in-place updates (alias or copy), memory planning, binding (shared buffers, windows,
 * split tensors) and the shared renderer visitor. No GPU: these test IR → IR functions.
 */
import { describe, expect, it } from 'vitest';
import { bufName, valueBuffer } from '../../compiler/buffers.js';
import { lowerGroup, lowerProgram } from '../../compiler/codegen.js';
import { compile } from '../../compiler/compile.js';
import type { Kernel } from '../../compiler/kernel/ast.js';
import * as K from '../../compiler/kernel/build.js';
import { kernelBuffers } from '../../compiler/kernel/build.js';
import { renderCuda } from '../../compiler/kernel/cuda.js';
import { walkKernel } from '../../compiler/kernel/visit.js';
import { renderWgsl } from '../../compiler/kernel/wgsl.js';
import { limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../../compiler/limits.js';
import { sgd } from '../../compiler/optim.js';
import { bindingParts, bindKernel, windowBytes } from '../../compiler/passes/bind.js';
import { fuse, schedule } from '../../compiler/passes/fuse.js';
import { planInPlace } from '../../compiler/passes/inplace.js';
import { planMemory } from '../../compiler/passes/memory.js';
import { simplify } from '../../compiler/passes/simplify.js';
import { GraphBuilder, init } from '../../compiler/tensor.js';
import '../../ops/index.js';

describe('simplify', () => {
  it('removes dead nodes, merges duplicates, folds constants, and keeps roots', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [5]);
    x.exp(); // dead
    const six = g.constant(2).mul(g.constant(3));
    const a = x.mul(six);
    const b = x.mul(six); // same as a
    const y = a.add(b);
    const r = simplify(g.graph, [y.id]);
    expect(r.stats).toEqual({ removed: 1, folded: 1, merged: 1 });
    expect(r.map[a.id]).toBe(r.map[b.id]);
    expect(r.graph.nodes.filter((n) => n.op === 'exp')).toHaveLength(0);
    expect(r.graph.print()).toContain('{value:6}');
  });

  it('does not fold a node with run-time sizes', () => {
    const g = new GraphBuilder();
    const n = g.dim('N', { max: 4 });
    const x = g.input('x', [n]);
    const y = x.add(g.constant(1).add(1));
    const r = simplify(g.graph, [y.id]);
    expect(r.graph.nodes.find((m) => m.op === 'add' && m.type.dims)).toBeDefined();
  });
});

describe('fuse and schedule', () => {
  it('an elementwise tree is one group; a reduction takes prologue and epilogue; a gemm its epilogue', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [8, 16]);
    const w = g.param('w', [4, 16], init.normal(0.1));
    const e = x.mul(2).add(1).relu(); // one group
    const s = x.mul(x).sum([1]).sqrt(); // prologue mul, epilogue sqrt
    const m = x.matmul(w, { transB: true }).relu(); // epilogue relu
    const fr = fuse(g.graph, new Set([e.id, s.id, m.id]), 8);
    const groupOf = (id: number) => fr.groups[fr.groupOf[id] as number];
    expect(groupOf(e.id)?.members.size).toBe(3);
    expect(groupOf(s.id)?.anchor).toBe(s.node.inputs[0]);
    expect(groupOf(s.id)?.members.size).toBe(2);
    expect(g.graph.node(groupOf(m.id)?.anchor as number).op).toBe('matmul');
    const order = schedule(g.graph, fr, new Set());
    expect(order).toHaveLength(fr.groups.length);
  });

  it('counts one binding per window for tensors split across bindings', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [100]);
    const b = g.input('b', [100]);
    const c = g.input('c', [100]);
    const y = a.add(b).add(c);
    // without costs all four buffers fit 4 bindings; with a, b, c taking 2 each they do not
    expect(fuse(g.graph, new Set([y.id]), 4).groups).toHaveLength(1);
    const split = fuse(g.graph, new Set([y.id]), 4, true, (id) => (g.graph.node(id).op === 'input' ? 2 : 1));
    expect(split.groups.length).toBeGreaterThan(1);
  });

  it('updates of persistent state run after every reader of the old value', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [6]);
    const w = g.param('w', [6], init.constant(1));
    const loss = x.mul(w).sum();
    const step = sgd(loss, { momentum: 0.9 });
    const { spec } = compile(g, { outputs: { loss }, updates: step.updates });
    const names = spec.kernels.map((k) => k.name);
    const lossAt = names.findIndex((n) => /sum/.test(n));
    expect(lossAt).toBeGreaterThanOrEqual(0);
    // every kernel that writes w (a param buffer) comes after the loss kernel reads it
    const wBuf = spec.persistent.find((p) => p.name === 'w')?.buffer;
    spec.kernels.forEach((k, i) => {
      if (k.bindings.some((b, j) => b === wBuf && k.writes[j])) expect(i).toBeGreaterThan(lossAt);
    });
  });
});

describe('lowering declares what each group reads and writes', () => {
  it('reads = the leaves (views resolved), writes = the root; kernels use nothing else', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 6]);
    const b = g.input('b', [6]);
    const y = x.reshape([24]).reshape([4, 6]).add(b).exp();
    const fr = fuse(g.graph, new Set([y.id]), 8);
    const gi = fr.groupOf[y.id] as number;
    const code = lowerGroup(g.graph, fr.groups[gi] as (typeof fr.groups)[number], WEBGPU_DEFAULT_LIMITS);
    // typed: each buffer names the node whose value it holds (the reshapes resolve to x)
    expect(new Set(code.reads)).toEqual(new Set([valueBuffer(g.graph, x.id), valueBuffer(g.graph, b.id)]));
    expect(code.reads.map((r) => r.node).sort()).toEqual([x.id, b.id].sort());
    expect(code.writes).toEqual([{ kind: 'value', name: bufName(g.graph, y.id).name, node: y.id, dtype: 'f32' }]);
    expect(code.group).toBe(gi);
    const used = new Set(code.kernels.flatMap((k) => kernelBuffers(k).map((u) => u.buf.name)));
    for (const u of used) expect([...code.reads, ...code.writes].map((r) => r.name)).toContain(u);
  });
});

describe('in-place updates', () => {
  const program = (readAfter: boolean) => {
    const g = new GraphBuilder();
    const x = g.input('x', [5]);
    const s = g.state('s', [5], init.zeros());
    const next = s.mul(0.5).add(x); // elementwise: can be written into s
    const outputs: Record<string, typeof next> = { y: x.mul(2) };
    if (readAfter) outputs.late = s.sum(); // a reader of the OLD value
    return { g, s, next, outputs };
  };

  it('aliases an elementwise update into its target', () => {
    const { g, s, next, outputs } = program(false);
    const r = simplify(g.graph, [...Object.values(outputs).map((t) => t.id), next.id, s.id]);
    const graph = r.graph;
    const m = (id: number) => r.map[id] as number;
    const fr = fuse(graph, new Set([m(next.id), ...Object.values(outputs).map((t) => m(t.id))]), 8);
    const order = schedule(graph, fr, new Set([fr.groupOf[m(next.id)] as number]));
    const lowered = lowerProgram(graph, fr, order, WEBGPU_DEFAULT_LIMITS);
    const plan = planInPlace(graph, fr, lowered, [{ target: m(s.id), value: m(next.id) }], []);
    expect(plan.copies).toHaveLength(0);
    expect([...plan.aliases.values()]).toEqual([bufName(graph, m(s.id)).name]);
  });

  it('falls back to a copy when the update is also an output (the copy step runs last)', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [5]);
    const s = g.state('s', [5], init.zeros());
    const next = s.mul(0.5).add(x);
    const { spec } = compile(g, { outputs: { next }, updates: [{ target: s, value: next }] });
    const last = spec.steps[spec.steps.length - 1];
    expect(last?.kind).toBe('copy');
    if (last?.kind === 'copy') {
      expect(last.dst).toBe(spec.persistent.find((p) => p.name === 's')?.buffer);
      expect(last.bytes).toBe(20);
    }
  });

  it('compiled programs alias the SGD updates (no copy steps)', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [3, 4]);
    const w = g.param('w', [4], init.normal(0.1));
    const step = sgd(x.mul(w).sum(), { momentum: 0.9, weightDecay: 1e-4 });
    const { spec } = compile(g, { outputs: {}, updates: step.updates });
    expect(spec.steps.filter((st) => st.kind === 'copy')).toHaveLength(0);
  });
});

describe('memory planning', () => {
  it('reuses a freed buffer for a later value, grows it when needed, and keeps pinned values', () => {
    const logical = new Map([
      ['a', { name: 'a', bytes: 400, role: 'temp' as const, pinned: false }],
      ['b', { name: 'b', bytes: 800, role: 'temp' as const, pinned: false }],
      ['c', { name: 'c', bytes: 1000, role: 'temp' as const, pinned: false }],
      ['out', { name: 'out', bytes: 40, role: 'temp' as const, pinned: true }],
    ]);
    const steps = [
      { reads: [], writes: ['a'], scratch: [] },
      { reads: ['a'], writes: ['b'], scratch: [] },
      { reads: ['b'], writes: ['c'], scratch: [] }, // a is free: c takes a's buffer, grown to 1000
      { reads: ['c'], writes: ['out'], scratch: [{ name: 's0', bytes: 64 }] },
    ];
    const plan = planMemory(logical, steps, new Map(), 1 << 20);
    expect(plan.assign.get('c')).toBe(plan.assign.get('a'));
    expect(plan.physical[plan.assign.get('c') as number]?.bytes).toBe(1000);
    expect(plan.assign.get('out')).not.toBe(plan.assign.get('b'));
    expect(plan.tempBytesUnplanned).toBe(400 + 800 + 1000 + 40 + 64);
    expect(plan.peakTempBytes).toBeLessThanOrEqual(plan.tempBufferBytes);
  });
});

describe('binding', () => {
  const kernel = (): Kernel => {
    const kb = new K.KernelBuilder('k0_test');
    const i = kb.let('i', K.builtin('lidx'));
    kb.store(
      { name: 'out', t: 'f32' },
      i,
      K.add(K.load({ name: 'a', t: 'f32' }, i), K.load({ name: 'b', t: 'f32' }, i)),
    );
    return kb.finish([64, 1, 1], { linear: 1 });
  };

  it('logical buffers on one physical buffer become one binding; windows cover what is needed', () => {
    const phys: Record<string, number> = { a: 0, b: 0, out: 1 };
    const bytes: Record<string, number> = { a: 256, b: 512, out: 256 };
    const r = bindKernel(kernel(), {
      physicalOf: (n) => phys[n] as number,
      bytesOf: (n) => bytes[n] as number,
      limits: WEBGPU_DEFAULT_LIMITS,
    });
    expect(r.bindings).toEqual([1, 0]);
    expect(r.windows).toEqual([
      [0, 256],
      [0, 512],
    ]);
    expect(renderWgsl(r.kernel).match(/@binding/g)).toHaveLength(2);
  });

  it('a tensor over the binding limit is bound as windows, every access picking its window', () => {
    const limits = limitsFrom({ maxStorageBufferBindingSize: 1000 });
    expect(windowBytes(limits)).toBe(768);
    expect(bindingParts(2000, limits)).toBe(3);
    const r = bindKernel(kernel(), {
      physicalOf: (n) => ({ a: 0, b: 1, out: 2 })[n] as number,
      bytesOf: (n) => (n === 'a' ? 2000 : 200),
      limits,
    });
    expect(r.windows.filter((_, j) => r.bindings[j] === 0).sort((x, y) => x[0] - y[0])).toEqual([
      [0, 768],
      [768, 768],
      [1536, 464],
    ]);
    const loads: string[] = [];
    walkKernel(r.kernel, { expr: (e) => e.k === 'load' && loads.push(e.buf.name) });
    expect(new Set(loads)).toEqual(new Set(['a_p0', 'a_p1', 'a_p2', 'b']));
  });
});

describe('the shared renderer visitor', () => {
  it('WGSL and CUDA render the same tree, run-time sizes from each target’s size block', () => {
    const g = new GraphBuilder();
    const n = g.dim('N', { max: 100 });
    const x = g.input('x', [n, 3]);
    const { kernels } = compile(g, { outputs: { y: x.mul(2).add(1) } });
    const k = kernels[0] as Kernel;
    const wgsl = renderWgsl(k);
    const cuda = renderCuda(k);
    expect(wgsl).toMatch(/var<uniform> wgf_sizes: array<vec4<u32>, 1>/);
    expect(wgsl).toContain('wgf_sizes[0].x');
    expect(cuda.sizes).toBe(1);
    expect(cuda.source).toContain('const unsigned int* __restrict__ wgf_sizes');
    expect(cuda.source).toContain('wgf_sizes[0]');
  });
});
