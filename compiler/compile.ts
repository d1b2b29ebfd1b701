/**
 * The compiler driver: simplify (DCE, CSE, constant folding) → fuse → schedule → lower each group to
 * kernels → plan memory → render WGSL → a ProgramSpec the runtime executes.
 */
import type { BufferSpec, InitSpec, KernelSpec, ProgramSpec, StepSpec, TensorSpec } from '../runtime/program.js';
import { baseNode, bufName, type GroupCode, lowerGroup } from './codegen.js';
import { WgflowError } from './errors.js';
import type { Graph, Node } from './ir.js';
import type { Kernel } from './kernel/ast.js';
import { kernelBuffers } from './kernel/build.js';
import { renameBuffers } from './kernel/rename.js';
import { renderWgsl } from './kernel/wgsl.js';
import { type DeviceLimits, WEBGPU_DEFAULT_LIMITS } from './limits.js';
import { fuse, isScalarConst, schedule } from './passes/fuse.js';
import { type LogicalBuffer, planMemory, type StepUse } from './passes/memory.js';
import { simplify } from './passes/simplify.js';
import { getOp } from './registry.js';
import type { GraphBuilder, Init, Tensor } from './tensor.js';
import { fmtType, numel, sameShape } from './types.js';

/** At the end of each run, `target` (a param or state) takes the value of `value`. */
export interface Update {
  readonly target: Tensor;
  readonly value: Tensor;
}

export interface CompileOptions {
  readonly outputs?: Readonly<Record<string, Tensor>>;
  readonly updates?: readonly Update[];
  /** The device's limits (read them from the adapter); WebGPU defaults otherwise. */
  readonly limits?: DeviceLimits;
  /** Set false to give every op its own kernel (for tests and comparisons). */
  readonly fusion?: boolean;
  readonly name?: string;
  /** Seed of parameter initialization. */
  readonly seed?: number;
}

export interface Compiled {
  readonly spec: ProgramSpec;
  /** The optimized graph the kernels were generated from. */
  readonly graph: Graph;
  /**
   * The target-neutral ASTs of `spec.kernels` (same order, buffers named as bound), for renderers of
   * other targets (CUDA C: compiler/kernel/cuda.ts).
   */
  readonly kernels: readonly Kernel[];
  readonly report: {
    readonly nodesIn: number;
    readonly nodesOut: number;
    readonly removed: number;
    readonly folded: number;
    readonly merged: number;
    readonly groups: number;
  };
}

function hashSeed(seed: number, name: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function initSpec(n: Node, seed: number): InitSpec {
  const init = n.attrs.init as unknown as Init;
  const s = n.type.shape;
  const area = s.slice(2).reduce((a, b) => a * b, 1);
  const fanIn = s.length >= 2 ? (s[1] as number) * area : (s[0] ?? 1);
  const fanOut = s.length >= 2 ? (s[0] as number) * area : (s[0] ?? 1);
  return { ...(init as object), kind: init.kind, fanIn, fanOut, seed: hashSeed(seed, n.name as string) } as InitSpec;
}

function foldGrid(k: Kernel, limits: DeviceLimits): [number, number, number] {
  const max = limits.maxComputeWorkgroupsPerDimension;
  if ('xyz' in k.grid) {
    const g = k.grid.xyz;
    if (g.some((d) => d > max))
      throw new WgflowError(`kernel ${k.name}: grid [${g.join(',')}] exceeds ${max} workgroups per dimension`);
    return [g[0], g[1], g[2]];
  }
  const n = k.grid.linear;
  if (n <= max) return [n, 1, 1];
  const y = Math.ceil(n / max);
  if (y > max) throw new WgflowError(`kernel ${k.name}: ${n} workgroups cannot be folded into a ${max}×${max} grid`);
  return [max, y, 1];
}

export function compile(builder: GraphBuilder, opts: CompileOptions = {}): Compiled {
  const limits = opts.limits ?? WEBGPU_DEFAULT_LIMITS;
  const src = builder.graph;
  const outputs = Object.entries(opts.outputs ?? {});
  const updates = opts.updates ?? [];
  const targets = new Set<number>();
  for (const u of updates) {
    const t = u.target.node;
    if (t.op !== 'param' && t.op !== 'state')
      throw new WgflowError(
        `compile: update target %${t.id} is a ${t.op}, not a param or state (at ${u.value.node.site})`,
      );
    if (!sameShape(t.type.shape, u.value.shape) || t.type.dtype !== u.value.dtype) {
      throw new WgflowError(
        `compile: update of "${t.name}" ${fmtType(t.type)} with ${fmtType(u.value.type)} (declared at ${u.value.node.site})`,
      );
    }
    if (targets.has(t.id)) throw new WgflowError(`compile: "${t.name}" is updated twice`);
    targets.add(t.id);
  }
  const roots = [...outputs.map(([, t]) => t.id), ...updates.flatMap((u) => [u.value.id, u.target.id])];
  const simp = simplify(src, roots);
  const graph = simp.graph;
  const m = (id: number) => simp.map[id] as number;
  const outIds = outputs.map(([name, t]) => [name, m(t.id)] as const);
  const ups = updates.map((u) => ({ target: m(u.target.id), value: m(u.value.id) }));

  // Every value a kernel stores must fit one storage binding.
  const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  for (const n of graph.nodes) {
    const bytes = numel(n.type.shape) * 4;
    if (bytes > maxBinding && getOp(n.op).kind !== 'view') {
      throw new WgflowError(
        `${n.op} ${n.name ? `"${n.name}" ` : ''}makes ${fmtType(n.type)} = ${bytes} bytes, over this device's maxStorageBufferBindingSize of ${maxBinding} bytes` +
          `${n.site ? ` (declared at ${n.site})` : ''}; use a smaller input or split the tensor`,
      );
    }
  }

  const pinned = new Set<number>([...outIds.map(([, id]) => id), ...ups.map((u) => u.value)]);
  const fr = fuse(graph, pinned, limits.maxStorageBuffersPerShaderStage, opts.fusion ?? true);
  const updateGroups = new Set<number>();
  for (const u of ups) {
    const gi = fr.groupOf[baseNode(graph, u.value).id];
    if (gi !== undefined) updateGroups.add(gi);
  }
  const order = schedule(graph, fr, updateGroups);
  const position = new Map(order.map((gi, k) => [gi, k]));
  const codes = new Map<number, GroupCode>();
  for (const gi of order) codes.set(gi, lowerGroup(graph, fr.groups[gi] as (typeof fr.groups)[number], limits));

  // Which logical buffers each group reads and writes.
  const readsOf = (code: GroupCode) => {
    const r = new Set<string>();
    const w = new Set<string>();
    for (const k of code.kernels) for (const b of kernelBuffers(k)) (b.write ? w : r).add(b.buf.name);
    return { r, w };
  };
  const uses = order.map((gi) => readsOf(codes.get(gi) as GroupCode));

  // In-place updates: safe when the value is computed by an elementwise group that runs after every
  // other reader of the target.
  const aliases = new Map<string, string>();
  const copies: { value: string; target: string }[] = [];
  for (const u of ups) {
    const target = bufName(graph, u.target).name;
    const vb = baseNode(graph, u.value);
    const value = `t${vb.id}`;
    const gi = fr.groupOf[vb.id];
    const g = gi !== undefined ? fr.groups[gi] : undefined;
    // The group must read the target only at the index it writes: through elementwise loads of the same
    // shape, never as an input of its anchor (a matmul/conv/reduction reads other indices).
    const targetBase = baseNode(graph, u.target).id;
    const anchorReadsTarget =
      g?.anchor !== undefined &&
      (getOp(graph.node(g.anchor).op).kind === 'reduce' ||
        graph.node(g.anchor).inputs.some((i) => baseNode(graph, i).id === targetBase));
    let safe =
      g !== undefined &&
      !anchorReadsTarget &&
      g.root === vb.id &&
      !outIds.some(([, id]) => baseNode(graph, id).id === vb.id);
    if (safe && gi !== undefined) {
      const at = position.get(gi) as number;
      uses.forEach((use, k) => {
        if (k !== at && use.r.has(target) && k > at) safe = false;
      });
    }
    if (safe) aliases.set(value, target);
    else copies.push({ value, target });
  }

  // Logical buffers.
  const logical = new Map<string, LogicalBuffer>();
  const pinnedNames = new Set([...outIds.map(([, id]) => bufName(graph, id).name), ...copies.map((c) => c.value)]);
  const note = (name: string) => {
    if (logical.has(name) || !name.startsWith('t')) return;
    const n = graph.node(Number(name.slice(1)));
    const role = n.op === 'input' || n.op === 'param' || n.op === 'state' || n.op === 'const' ? n.op : 'temp';
    logical.set(name, { name, bytes: numel(n.type.shape) * 4, role, pinned: pinnedNames.has(name) });
  };
  for (const u of uses) for (const name of [...u.r, ...u.w]) note(name);
  for (const n of graph.nodes) if (n.op === 'input' || n.op === 'param' || n.op === 'state') note(`t${n.id}`);
  for (const [, id] of outIds) note(bufName(graph, id).name);
  const steps: StepUse[] = order.map((gi, k) => ({
    reads: [...(uses[k] as { r: Set<string> }).r],
    writes: [...(uses[k] as { w: Set<string> }).w],
    scratch: (codes.get(gi) as GroupCode).scratch,
  }));
  const plan = planMemory(logical, steps, aliases, maxBinding);

  // Buffers.
  const buffers: BufferSpec[] = plan.physical.map((p) => {
    const owner = p.owner !== undefined ? graph.node(Number(p.owner.slice(1))) : undefined;
    const spec: BufferSpec = { id: p.id, bytes: p.bytes, role: p.role, dtype: owner?.type.dtype ?? 'f32' };
    if (owner && (owner.op === 'param' || owner.op === 'state'))
      return { ...spec, init: initSpec(owner, opts.seed ?? 0) };
    if (owner && owner.op === 'const') {
      const data = isScalarConst(owner)
        ? new Array(numel(owner.type.shape)).fill(owner.attrs.value)
        : (owner.attrs.data as number[]);
      return { ...spec, data };
    }
    return spec;
  });
  const phys = (name: string) => {
    const id = plan.assign.get(name);
    if (id === undefined) throw new Error(`internal: no buffer for ${name}`);
    return id;
  };

  // Kernels and steps.
  const kernels: KernelSpec[] = [];
  const kernelAsts: Kernel[] = [];
  const stepsOut: StepSpec[] = [];
  let maxBindings = 0;
  for (const gi of order) {
    for (const k0 of (codes.get(gi) as GroupCode).kernels) {
      // Logical names that share a physical buffer become one binding.
      const canon = new Map<number, string>();
      const k = renameBuffers(k0, (name) => {
        const id = phys(name);
        const c = canon.get(id);
        if (c !== undefined) return c;
        canon.set(id, name);
        return name;
      });
      const bufs = kernelBuffers(k);
      if (bufs.length > limits.maxStorageBuffersPerShaderStage) {
        throw new WgflowError(
          `kernel ${k.name} binds ${bufs.length} storage buffers, over the device's ${limits.maxStorageBuffersPerShaderStage}`,
        );
      }
      maxBindings = Math.max(maxBindings, bufs.length);
      const wgsl = renderWgsl(k);
      kernelAsts.push(k);
      kernels.push({
        name: k.name,
        wgsl,
        workgroupSize: k.workgroupSize,
        dispatch: foldGrid(k, limits),
        bindings: bufs.map((b) => phys(b.buf.name)),
        writes: bufs.map((b) => b.write),
      });
      stepsOut.push({ kind: 'dispatch', kernel: kernels.length - 1 });
    }
  }
  for (const c of copies) {
    const bytes = logical.get(c.value)?.bytes ?? 0;
    stepsOut.push({ kind: 'copy', src: phys(c.value), dst: phys(c.target), bytes });
  }

  const tensorSpec = (name: string, id: number): TensorSpec => {
    const n = graph.node(id);
    return { name, buffer: phys(bufName(graph, id).name), dtype: n.type.dtype, shape: [...n.type.shape] };
  };
  const sources = graph.nodes.filter((n) => n.op === 'input' || n.op === 'param' || n.op === 'state');
  const spec: ProgramSpec = {
    format: 'wgflow-program',
    version: 1,
    name: opts.name ?? 'program',
    buffers,
    kernels,
    steps: stepsOut,
    inputs: sources.filter((n) => n.op === 'input').map((n) => tensorSpec(n.name as string, n.id)),
    outputs: outIds.map(([name, id]) => tensorSpec(name, id)),
    persistent: sources
      .filter((n) => n.op !== 'input')
      .map((n) => ({
        ...tensorSpec(n.name as string, n.id),
        role: n.op as 'param' | 'state',
        trainable: n.op === 'param' && n.attrs.trainable !== false,
      })),
    stats: {
      dispatches: stepsOut.filter((s) => s.kind === 'dispatch').length,
      kernels: new Set(kernels.map((k) => k.wgsl)).size,
      peakTempBytes: plan.peakTempBytes,
      tempBufferBytes: plan.tempBufferBytes,
      tempBytesUnplanned: plan.tempBytesUnplanned,
      persistentBytes: plan.physical.filter((p) => p.role !== 'temp').reduce((n, p) => n + p.bytes, 0),
      maxBindingBytes: Math.max(4, ...plan.physical.map((p) => p.bytes)),
      maxBindingsPerKernel: maxBindings,
    },
  };
  return {
    spec,
    graph,
    kernels: kernelAsts,
    report: { nodesIn: src.nodes.length, nodesOut: graph.nodes.length, ...simp.stats, groups: fr.groups.length },
  };
}
