/**
 * Allocation stage: the program's logical buffers (every buffer a lowered group reads or writes, plus
 * the sources and outputs), their physical buffers by liveness (passes/memory.ts, with the in-place
 * aliases), and the BufferSpecs the runtime creates: params and state with their initializer,
 * constants with their data. Sizes are the upper bounds of run-time sizes.
 */
import type { BufferSpec, InitSpec } from '../../runtime/program.js';
import { valueBuffer } from '../buffers.js';
import type { GroupCode } from '../codegen.js';
import type { Graph, Node } from '../ir.js';
import type { Init } from '../tensor.js';
import { numel } from '../types.js';
import { isScalarConst } from './fuse.js';
import type { InPlacePlan } from './inplace.js';
import { type LogicalBuffer, type MemoryPlan, planMemory } from './memory.js';

/** A logical buffer holding the value of `node`. */
export interface NodeBuffer extends LogicalBuffer {
  readonly node: Node;
}

export interface Allocation {
  /** Logical value buffers by name (scratch buffers are in the lowered steps). */
  readonly logical: ReadonlyMap<string, NodeBuffer>;
  readonly plan: MemoryPlan;
  /** Parallel to plan.physical. */
  readonly buffers: readonly BufferSpec[];
  /** The physical buffer of a logical buffer or scratch buffer. */
  physicalOf(name: string): number;
  /** Bytes of a logical buffer or scratch buffer (its upper bound). */
  bytesOf(name: string): number;
}

function hashSeed(seed: number, name: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The initializer of a param/state: its Init with fan-in/out (PyTorch's convention) and a per-name seed. */
export function initSpec(n: Node, seed: number): InitSpec {
  const init = n.attrs.init as unknown as Init;
  const s = n.type.shape;
  const area = s.slice(2).reduce((a, b) => a * b, 1);
  const fanIn = s.length >= 2 ? (s[1] as number) * area : (s[0] ?? 1);
  const fanOut = s.length >= 2 ? (s[0] as number) * area : (s[0] ?? 1);
  return { ...(init as object), kind: init.kind, fanIn, fanOut, seed: hashSeed(seed, n.name as string) } as InitSpec;
}

const isSource = (n: Node) => n.op === 'input' || n.op === 'param' || n.op === 'state';

/**
 * The logical buffers of the program. `pinned`: names kept alive to the end (outputs, values copied
 * into state after the kernels).
 */
export function logicalBuffers(
  graph: Graph,
  steps: readonly GroupCode[],
  pinned: ReadonlySet<string>,
  outputs: readonly number[],
): Map<string, NodeBuffer> {
  const logical = new Map<string, NodeBuffer>();
  const note = (id: number) => {
    const vb = valueBuffer(graph, id);
    if (logical.has(vb.name)) return;
    const n = graph.node(vb.node);
    const role = isSource(n) || n.op === 'const' ? (n.op as LogicalBuffer['role']) : 'temp';
    logical.set(vb.name, { name: vb.name, bytes: numel(n.type.shape) * 4, role, pinned: pinned.has(vb.name), node: n });
  };
  for (const code of steps) for (const b of [...code.reads, ...code.writes]) note(b.node);
  for (const n of graph.nodes) if (isSource(n)) note(n.id);
  for (const id of outputs) note(id);
  return logical;
}

/** Plans and describes every buffer of the program. */
export function allocate(
  graph: Graph,
  steps: readonly GroupCode[],
  inPlace: InPlacePlan,
  outputs: readonly number[],
  seed: number,
): Allocation {
  const pinned = new Set([
    ...outputs.map((id) => valueBuffer(graph, id).name),
    ...inPlace.copies.map((c) => c.value.name),
  ]);
  const logical = logicalBuffers(graph, steps, pinned, outputs);
  const uses = steps.map((c) => ({
    reads: c.reads.map((b) => b.name),
    writes: c.writes.map((b) => b.name),
    scratch: c.scratch,
  }));
  const plan = planMemory(logical, uses, inPlace.aliases, Number.MAX_SAFE_INTEGER);
  const buffers = plan.physical.map((p): BufferSpec => {
    const owner = p.owner !== undefined ? logical.get(p.owner)?.node : undefined;
    const spec: BufferSpec = { id: p.id, bytes: p.bytes, role: p.role, dtype: owner?.type.dtype ?? 'f32' };
    if (owner && (owner.op === 'param' || owner.op === 'state')) return { ...spec, init: initSpec(owner, seed) };
    if (owner && owner.op === 'const') {
      const data = isScalarConst(owner)
        ? new Array<number>(numel(owner.type.shape)).fill(owner.attrs.value as number)
        : (owner.attrs.data as number[]);
      return { ...spec, data };
    }
    return spec;
  });
  const scratchBytes = new Map(steps.flatMap((c) => c.scratch.map((sc) => [sc.name, sc.bytes] as const)));
  return {
    logical,
    plan,
    buffers,
    physicalOf: (name) => {
      const id = plan.assign.get(name);
      if (id === undefined) throw new Error(`internal: no buffer for ${name}`);
      return id;
    },
    bytesOf: (name) => logical.get(name)?.bytes ?? scratchBytes.get(name) ?? 4,
  };
}
