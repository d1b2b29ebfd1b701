/**
 * The compiler driver, as typed stages, each a function of its own with its own tests
 * (test/compiler/):
 *   simplify (passes/simplify: DCE, CSE, constant folding)
 *   → fuse and schedule (passes/fuse)
 *   → lower each group to kernel ASTs with the typed logical buffers it reads, writes and scratches
 *     (codegen.lowerProgram, compiler/buffers.ts)
 *   → in-place updates (passes/inplace)
 *   → allocate: logical buffers, memory plan for the upper bounds of run-time sizes, buffer specs
 *     (passes/allocate, passes/memory)
 *   → emit: bind (physical buffers, windows, size slots; passes/bind), render, grids, steps (passes/emit)
 *   → assemble the ProgramSpec (passes/assemble)
 *   → buffers over maxBufferSize become chunks (passes/chunk).
 */

import type { ProgramSpec } from '../runtime/program.js';
import { baseNode } from './buffers.js';
import { type GroupCode, lowerProgram } from './codegen.js';
import { checkOptions, checkTensorSizes, checkUpdates, programSymbols } from './compile-checks.js';
import type { Graph } from './ir.js';
import type { Kernel } from './kernel/ast.js';
import { type DeviceLimits, WEBGPU_DEFAULT_LIMITS } from './limits.js';
import { type Allocation, allocate } from './passes/allocate.js';
import { assembleSpec } from './passes/assemble.js';
import { bindingParts } from './passes/bind.js';
import { chunkBuffers } from './passes/chunk.js';
import { type Emitted, emit } from './passes/emit.js';
import { type FusionResult, fuse, schedule } from './passes/fuse.js';
import { type InPlacePlan, planInPlace, type UpdateIds } from './passes/inplace.js';
import { type SimplifyResult, simplify } from './passes/simplify.js';
import { type Target, targetByName, webgpuTarget } from './targets.js';
import type { GraphBuilder, Tensor } from './tensor.js';
import type { TargetName } from './tuning.js';
import { numel } from './types.js';

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

/** What each stage of one compilation produced, in order (for tests, tools and debugging). */
export interface CompileStages {
  readonly simplified: SimplifyResult;
  /** Program outputs: name and node of the simplified graph. */
  readonly outputs: readonly (readonly [string, number])[];
  readonly updates: readonly UpdateIds[];
  readonly fusion: FusionResult;
  /** Group indices in run order. */
  readonly order: readonly number[];
  readonly lowered: readonly GroupCode[];
  readonly inPlace: InPlacePlan;
  readonly alloc: Allocation;
  readonly emitted: Emitted;
  /** The assembled program before buffers over maxBufferSize are chunked. */
  readonly unchunked: ProgramSpec;
  readonly spec: ProgramSpec;
}

/** Runs every stage of compile() and returns each one's result. */
export function compileStages(builder: GraphBuilder, opts: CompileOptions = {}): CompileStages {
  checkOptions(builder, opts);
  const limits = opts.limits ?? WEBGPU_DEFAULT_LIMITS;
  const target: Target = opts.target ? targetByName(opts.target) : webgpuTarget;
  const updates = opts.updates ?? [];
  checkUpdates(updates);

  const named = Object.entries(opts.outputs ?? {});
  const roots = [...named.map(([, t]) => t.id), ...updates.flatMap((u) => [u.value.id, u.target.id])];
  const simplified = simplify(builder.graph, roots);
  const graph = simplified.graph;
  const m = (id: number) => simplified.map[id] as number;
  const outputs = named.map(([name, t]) => [name, m(t.id)] as const);
  const outNodes = outputs.map(([, id]) => id);
  const ups = updates.map((u) => ({ target: m(u.target.id), value: m(u.value.id) }));
  const symbols = programSymbols(graph);
  checkTensorSizes(graph);

  // a tensor split across bindings counts one binding per window
  const pinned = new Set<number>([...outNodes, ...ups.map((u) => u.value)]);
  const bindingsOf = (id: number) => bindingParts(numel(baseNode(graph, id).type.shape) * 4, limits);
  const fusion = fuse(graph, pinned, limits.maxStorageBuffersPerShaderStage, opts.fusion ?? true, bindingsOf);
  const updateGroups = new Set<number>();
  for (const u of ups) {
    const gi = fusion.groupOf[baseNode(graph, u.value).id];
    if (gi !== undefined) updateGroups.add(gi);
  }
  const order = schedule(graph, fusion, updateGroups);

  const lowered = lowerProgram(graph, fusion, order, limits, target);
  const inPlace = planInPlace(graph, fusion, lowered, ups, outNodes);
  const alloc = allocate(graph, lowered, inPlace, outNodes, opts.seed ?? 0);
  // the program's kernels are rendered as WGSL for every target (compiler/cuda-artifact.ts renders CUDA C)
  const emitted = emit(graph, fusion, lowered, alloc, inPlace, limits, webgpuTarget.render);
  const unchunked = assembleSpec(graph, { name: opts.name ?? 'program', outputs, symbols, alloc, emitted });
  const spec = chunkBuffers(unchunked, limits);
  return { simplified, outputs, updates: ups, fusion, order, lowered, inPlace, alloc, emitted, unchunked, spec };
}

export function compile(builder: GraphBuilder, opts: CompileOptions = {}): Compiled {
  const s = compileStages(builder, opts);
  const graph = s.simplified.graph;
  return {
    spec: s.spec,
    graph,
    kernels: s.emitted.asts,
    report: {
      nodesIn: builder.graph.nodes.length,
      nodesOut: graph.nodes.length,
      ...s.simplified.stats,
      groups: s.fusion.groups.length,
    },
  };
}
