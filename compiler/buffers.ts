/**
 * Logical buffers, typed. Lowering names each buffer a kernel uses and says whose it is: the value of
 * a node (views resolved to the node they view) or a scratch buffer of one group. Every later stage
 * (in-place analysis, memory planning, binding) works from these records; none parses a name back
 * into a node.
 * The name is only the kernel AST's identifier until binding renames it: `t<node>` for a value,
 * `s<group>_<k>` for scratch.
 */
import type { Graph, Node } from './ir.js';
import type { BufRef } from './kernel/ast.js';
import { getOp } from './registry.js';
import type { DType } from './types.js';

/** The buffer holding a node's value (the base node of a view). */
export interface ValueBuffer {
  readonly kind: 'value';
  /** The kernel AST's identifier of it. */
  readonly name: string;
  /** The node whose value it holds (never a view). */
  readonly node: number;
  readonly dtype: DType;
}

/** A buffer that lives during one group's kernels only. */
export interface ScratchBuffer {
  readonly kind: 'scratch';
  readonly name: string;
  /** The fused group whose kernels use it. */
  readonly group: number;
  readonly bytes: number;
}

export type LogicalBufferRef = ValueBuffer | ScratchBuffer;

/** The node whose buffer holds `id`'s value (views resolve to their base). */
export function baseNode(graph: Graph, id: number): Node {
  let n = graph.node(id);
  while (getOp(n.op).kind === 'view') n = graph.node(n.inputs[0] as number);
  return n;
}

/** The logical buffer of node `id`'s value. */
export function valueBuffer(graph: Graph, id: number): ValueBuffer {
  const b = baseNode(graph, id);
  return { kind: 'value', name: `t${b.id}`, node: b.id, dtype: b.type.dtype };
}

/** The buffer reference a kernel uses to read or write node `id` (typed as the node, e.g. a view's dtype). */
export function bufName(graph: Graph, id: number): BufRef {
  return { name: valueBuffer(graph, id).name, t: graph.node(id).type.dtype };
}

/** Scratch buffer k of group `group`. */
export function scratchBuffer(group: number, k: number, bytes: number): ScratchBuffer {
  return { kind: 'scratch', name: `s${group}_${k}`, group, bytes: Math.max(4, bytes) };
}
