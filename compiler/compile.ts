/**
 * The compiler driver, as typed stages: simplify (DCE, CSE, constant folding) → fuse → schedule →
 * lower each group to kernel ASTs with the logical buffers it reads and writes → in-place updates →
 * plan memory (for the upper bounds of run-time sizes) → bind (physical buffers, size slots) → render
 * for the target → a ProgramSpec the runtime executes.
 */
import type { DimJson, SymbolSpec } from '../runtime/dims.js';
import type {
  BufferSpec,
  GridJson,
  InitSpec,
  KernelSpec,
  ProgramSpec,
  StepSpec,
  TensorSpec,
} from '../runtime/program.js';
import { baseNode, bufName, type GroupCode, lowerGroup } from './codegen.js';
import { type Dim, dimJson, dimMax, dimMul, isSym } from './dims.js';
import { WgflowError } from './errors.js';
import { inputValueRanges } from './index-ranges.js';
import { fmtValue, type Graph, type Node } from './ir.js';
import type { Kernel } from './kernel/ast.js';
import { type DeviceLimits, WEBGPU_DEFAULT_LIMITS } from './limits.js';
import { bindingParts, bindKernel } from './passes/bind.js';
import { chunkBuffers } from './passes/chunk.js';
import { fuse, isScalarConst, schedule } from './passes/fuse.js';
import { planInPlace } from './passes/inplace.js';
import { type LogicalBuffer, planMemory, type StepUse } from './passes/memory.js';
import { simplify } from './passes/simplify.js';
import { getOp } from './registry.js';
import { type Target, targetByName, webgpuTarget } from './targets.js';
import { GraphBuilder, type Init, Tensor } from './tensor.js';
import type { TargetName } from './tuning.js';
import { dimsOf, fmtType, isDynamic, numel, numelDims, sameType } from './types.js';

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
  /**
   * The target whose tuning tables the lowerings use ('webgpu' default). The program's kernels are
   * always rendered as WGSL too (the ASTs are target-neutral; compiler/cuda-artifact.ts renders CUDA C).
   */
  readonly target?: TargetName;
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

/** Workgroups of a kernel as a static dispatch (of the largest sizes) and, when dynamic, its expression. */
function gridOf(k: Kernel, limits: DeviceLimits): { dispatch: [number, number, number]; grid?: GridJson } {
  const max = limits.maxComputeWorkgroupsPerDimension;
  if ('xyz' in k.grid) {
    const g = k.grid.xyz;
    const d = g.map(dimMax) as [number, number, number];
    if (d.some((x) => x > max))
      throw new WgflowError(`kernel ${k.name}: grid [${d.join(',')}] exceeds ${max} workgroups per dimension`);
    return g.some(isSym)
      ? { dispatch: d, grid: { xyz: g.map(dimJson) as [DimJson, DimJson, DimJson] } }
      : { dispatch: d };
  }
  const n = dimMax(k.grid.linear);
  const y = Math.ceil(n / max);
  if (y > max) throw new WgflowError(`kernel ${k.name}: ${n} workgroups cannot be folded into a ${max}×${max} grid`);
  const dispatch: [number, number, number] = n <= max ? [n, 1, 1] : [max, y, 1];
  return isSym(k.grid.linear) ? { dispatch, grid: { linear: dimJson(k.grid.linear) } } : { dispatch };
}

/** A value the caller passed where a Tensor of `builder` is needed: rejected unless it is one. */
function ownTensor(builder: GraphBuilder, v: unknown, what: string): void {
  if (!(v instanceof Tensor))
    throw new WgflowError(`compile: ${what} is ${fmtValue(v)}, not a Tensor (a value declared with this GraphBuilder)`);
  if (v.builder !== builder)
    throw new WgflowError(
      `compile: ${what} (${v.toString()}) belongs to another GraphBuilder; compile the builder that declared it`,
    );
}

/** Checks the options' kinds: outputs a record of this builder's tensors, updates a list of pairs of them. */
function checkOptions(builder: GraphBuilder, opts: CompileOptions): void {
  if (!(builder instanceof GraphBuilder))
    throw new WgflowError(`compile: expected a GraphBuilder, got ${fmtValue(builder)}`);
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts))
    throw new WgflowError(`compile: the options must be an object, got ${fmtValue(opts)}`);
  const outs: unknown = opts.outputs;
  if (outs !== undefined) {
    if (typeof outs !== 'object' || outs === null || Array.isArray(outs) || outs instanceof Tensor)
      throw new WgflowError(
        `compile: outputs must be an object of named tensors ({ name: tensor }), got ${outs instanceof Tensor ? 'a Tensor' : fmtValue(outs)}`,
      );
    for (const [name, t] of Object.entries(outs)) {
      if (name.trim() === '') throw new WgflowError('compile: an output has an empty name');
      ownTensor(builder, t, `output "${name}"`);
    }
  }
  const ups: unknown = opts.updates;
  if (ups !== undefined) {
    if (!Array.isArray(ups))
      throw new WgflowError(`compile: updates must be an array of { target, value }, got ${fmtValue(ups)}`);
    ups.forEach((u: unknown, i) => {
      if (typeof u !== 'object' || u === null)
        throw new WgflowError(`compile: update ${i} is ${fmtValue(u)}, not { target, value }`);
      ownTensor(builder, (u as Update).target, `the target of update ${i}`);
      ownTensor(builder, (u as Update).value, `the value of update ${i}`);
    });
  }
  if (opts.seed !== undefined && !(typeof opts.seed === 'number' && Number.isSafeInteger(opts.seed)))
    throw new WgflowError(`compile: seed must be an integer, got ${fmtValue(opts.seed)}`);
}

/** Checks the update list against the graph (each target a param/state of the value's type, once). */
function checkUpdates(updates: readonly Update[]): void {
  const targets = new Set<number>();
  for (const u of updates) {
    const t = u.target.node;
    if (t.op !== 'param' && t.op !== 'state')
      throw new WgflowError(
        `compile: update target %${t.id} is a ${t.op}, not a param or state (at ${u.value.node.site})`,
      );
    if (!sameType(t.type, u.value.type)) {
      throw new WgflowError(
        `compile: update of "${t.name}" ${fmtType(t.type)} with ${fmtType(u.value.type)} (declared at ${u.value.node.site})`,
      );
    }
    if (targets.has(t.id)) throw new WgflowError(`compile: "${t.name}" is updated twice`);
    targets.add(t.id);
  }
}

/** The size symbols of the program, from its inputs (each axis static or one plain symbol). */
function programSymbols(graph: Graph): SymbolSpec[] {
  const out = new Map<string, SymbolSpec>();
  for (const n of graph.nodes) {
    if (!isDynamic(n.type) || getOp(n.op).kind !== 'source') continue;
    if (n.op !== 'input')
      throw new WgflowError(`${n.op} "${n.name ?? `%${n.id}`}": only inputs may have run-time sizes`);
    dimsOf(n.type).forEach((d, axis) => {
      if (!isSym(d)) return;
      const name = d.symbolName;
      if (name === undefined)
        throw new WgflowError(
          `input "${n.name}" axis ${axis} is ${d.key}: an input axis must be a number or one size symbol`,
        );
      out.set(name, { name, min: d.min, max: d.max });
    });
  }
  return [...out.values()];
}

/**
 * Rejects values whose element indices would overflow u32. (A value over maxStorageBufferBindingSize is
 * split across bindings by the binding pass, one over maxBufferSize across buffers by the chunk pass.)
 */
function checkTensorSizes(graph: Graph): void {
  for (const n of graph.nodes) {
    const count = numel(n.type.shape);
    if (count > 0xffffffff && getOp(n.op).kind !== 'view') {
      throw new WgflowError(
        `${n.op} ${n.name ? `"${n.name}" ` : ''}makes ${fmtType(n.type)} = ${count} elements, over the 2^32 − 1 a kernel can index` +
          `${n.site ? ` (declared at ${n.site})` : ''}; use a smaller input`,
      );
    }
  }
}

/** The logical buffers of the program: every buffer a group reads or writes, plus sources and outputs. */
function logicalBuffers(
  graph: Graph,
  codes: ReadonlyMap<number, GroupCode>,
  pinnedNames: ReadonlySet<string>,
  extra: readonly number[],
): Map<string, LogicalBuffer & { node: Node }> {
  const logical = new Map<string, LogicalBuffer & { node: Node }>();
  const note = (id: number) => {
    const n = baseNode(graph, id);
    const name = bufName(graph, n.id).name;
    if (logical.has(name)) return;
    const role = n.op === 'input' || n.op === 'param' || n.op === 'state' || n.op === 'const' ? n.op : 'temp';
    logical.set(name, { name, bytes: numel(n.type.shape) * 4, role, pinned: pinnedNames.has(name), node: n });
  };
  const byName = new Map<string, number>();
  for (const n of graph.nodes) byName.set(bufName(graph, n.id).name, n.id);
  for (const code of codes.values())
    for (const name of [...code.reads, ...code.writes]) {
      const id = byName.get(name);
      if (id === undefined) throw new Error(`internal: logical buffer ${name} names no node`);
      note(id);
    }
  for (const n of graph.nodes) if (n.op === 'input' || n.op === 'param' || n.op === 'state') note(n.id);
  for (const id of extra) note(id);
  return logical;
}

export function compile(builder: GraphBuilder, opts: CompileOptions = {}): Compiled {
  checkOptions(builder, opts);
  const limits = opts.limits ?? WEBGPU_DEFAULT_LIMITS;
  const target: Target = opts.target ? targetByName(opts.target) : webgpuTarget;
  const src = builder.graph;
  const outputs = Object.entries(opts.outputs ?? {});
  const updates = opts.updates ?? [];
  checkUpdates(updates);

  // 1. simplify
  const roots = [...outputs.map(([, t]) => t.id), ...updates.flatMap((u) => [u.value.id, u.target.id])];
  const simp = simplify(src, roots);
  const graph = simp.graph;
  const m = (id: number) => simp.map[id] as number;
  const outIds = outputs.map(([name, t]) => [name, m(t.id)] as const);
  const ups = updates.map((u) => ({ target: m(u.target.id), value: m(u.value.id) }));
  const symbols = programSymbols(graph);
  checkTensorSizes(graph);

  // 2. fuse and schedule (a tensor split across bindings counts one binding per window)
  const pinned = new Set<number>([...outIds.map(([, id]) => id), ...ups.map((u) => u.value)]);
  const bindingsOf = (id: number) => bindingParts(numel(baseNode(graph, id).type.shape) * 4, limits);
  const fr = fuse(graph, pinned, limits.maxStorageBuffersPerShaderStage, opts.fusion ?? true, bindingsOf);
  const updateGroups = new Set<number>();
  for (const u of ups) {
    const gi = fr.groupOf[baseNode(graph, u.value).id];
    if (gi !== undefined) updateGroups.add(gi);
  }
  const order = schedule(graph, fr, updateGroups);

  // 3. lower: kernel ASTs with the logical buffers each group reads and writes
  const codes = new Map<number, GroupCode>();
  for (const gi of order) codes.set(gi, lowerGroup(graph, fr.groups[gi] as (typeof fr.groups)[number], limits, target));

  // 4. in-place updates
  const { aliases, copies } = planInPlace(
    graph,
    fr,
    order,
    codes,
    ups,
    outIds.map(([, id]) => id),
  );

  // 5. memory
  const pinnedNames = new Set([...outIds.map(([, id]) => bufName(graph, id).name), ...copies.map((c) => c.value)]);
  const logical = logicalBuffers(
    graph,
    codes,
    pinnedNames,
    outIds.map(([, id]) => id),
  );
  const steps: StepUse[] = order.map((gi) => {
    const code = codes.get(gi) as GroupCode;
    return { reads: code.reads, writes: code.writes, scratch: code.scratch };
  });
  const plan = planMemory(logical, steps, aliases, Number.MAX_SAFE_INTEGER);
  const phys = (name: string) => {
    const id = plan.assign.get(name);
    if (id === undefined) throw new Error(`internal: no buffer for ${name}`);
    return id;
  };
  const ownerOf = new Map([...logical.values()].map((lb) => [lb.name, lb.node]));
  const buffers: BufferSpec[] = plan.physical.map((p) => {
    const owner = p.owner !== undefined ? ownerOf.get(p.owner) : undefined;
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

  // 6. bind and render
  const kernels: KernelSpec[] = [];
  const kernelAsts: Kernel[] = [];
  const stepsOut: StepSpec[] = [];
  let maxBindings = 0;
  let maxWindow = 4;
  const scratchBytes = new Map([...codes.values()].flatMap((c) => c.scratch.map((sc) => [sc.name, sc.bytes] as const)));
  const bytesOf = (name: string) => logical.get(name)?.bytes ?? scratchBytes.get(name) ?? 4;
  for (const gi of order) {
    const group = fr.groups[gi] as (typeof fr.groups)[number];
    const stage = graph.node(group.anchor ?? group.root).stage;
    for (const k0 of (codes.get(gi) as GroupCode).kernels) {
      const bound = bindKernel(k0, { physicalOf: phys, bytesOf, limits });
      maxBindings = Math.max(maxBindings, bound.bindings.length);
      for (const [, size] of bound.windows) maxWindow = Math.max(maxWindow, size);
      const whole = bound.windows.every(
        ([off, size], i) => off === 0 && size === Math.ceil((buffers[bound.bindings[i] as number]?.bytes ?? 0) / 4) * 4,
      );
      kernelAsts.push(bound.kernel);
      const { dispatch, grid } = gridOf(bound.kernel, limits);
      kernels.push({
        name: bound.kernel.name,
        wgsl: webgpuTarget.render(bound.kernel),
        workgroupSize: bound.kernel.workgroupSize,
        dispatch,
        ...(grid ? { grid } : {}),
        ...(bound.sizes.length > 0 ? { sizes: bound.sizes.map(dimJson) } : {}),
        bindings: bound.bindings,
        ...(whole ? {} : { windows: bound.windows }),
        writes: bound.writes,
        ...(stage !== undefined ? { stage } : {}),
      });
      stepsOut.push({ kind: 'dispatch', kernel: kernels.length - 1 });
    }
  }
  for (const c of copies) {
    const lb = logical.get(c.value);
    const bytes: Dim = lb ? dimMul(numelDims(dimsOf(lb.node.type)), 4) : 0;
    stepsOut.push({
      kind: 'copy',
      src: phys(c.value),
      dst: phys(c.target),
      bytes: dimMax(bytes),
      ...(isSym(bytes) ? { bytesDim: dimJson(bytes) } : {}),
    });
  }

  const ranges = inputValueRanges(graph);
  const tensorSpec = (name: string, id: number): TensorSpec => {
    const n = graph.node(id);
    return {
      name,
      buffer: phys(bufName(graph, id).name),
      dtype: n.type.dtype,
      shape: [...n.type.shape],
      ...(n.type.dims ? { dims: n.type.dims.map(dimJson) } : {}),
    };
  };
  const sources = graph.nodes.filter((n) => n.op === 'input' || n.op === 'param' || n.op === 'state');
  const unchunked: ProgramSpec = {
    format: 'wgflow-program',
    version: 1,
    name: opts.name ?? 'program',
    buffers,
    kernels,
    steps: stepsOut,
    inputs: sources
      .filter((n) => n.op === 'input')
      .map((n) => {
        const range = ranges.get(n.id);
        return { ...tensorSpec(n.name as string, n.id), ...(range ? { valueRange: range } : {}) };
      }),
    outputs: outIds.map(([name, id]) => tensorSpec(name, id)),
    persistent: sources
      .filter((n) => n.op !== 'input')
      .map((n) => ({
        ...tensorSpec(n.name as string, n.id),
        role: n.op as 'param' | 'state',
        trainable: n.op === 'param' && n.attrs.trainable !== false,
      })),
    ...(symbols.length > 0 ? { symbols } : {}),
    stats: {
      dispatches: stepsOut.filter((s) => s.kind === 'dispatch').length,
      kernels: new Set(kernels.map((k) => k.wgsl)).size,
      peakTempBytes: plan.peakTempBytes,
      tempBufferBytes: plan.tempBufferBytes,
      tempBytesUnplanned: plan.tempBytesUnplanned,
      persistentBytes: plan.physical.filter((p) => p.role !== 'temp').reduce((n, p) => n + p.bytes, 0),
      maxBindingBytes: maxWindow,
      maxBufferBytes: Math.max(4, ...plan.physical.map((p) => p.bytes)),
      maxBindingsPerKernel: maxBindings,
    },
  };
  // 7. buffers over maxBufferSize become chunks
  const spec = chunkBuffers(unchunked, limits);
  return {
    spec,
    graph,
    kernels: kernelAsts,
    report: { nodesIn: src.nodes.length, nodesOut: graph.nodes.length, ...simp.stats, groups: fr.groups.length },
  };
}
