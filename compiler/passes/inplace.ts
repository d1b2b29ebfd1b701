/**
 * In-place updates. At the end of a run each updated param/state takes its new value. The value can be
 * written straight into the target's buffer when that is safe; otherwise it gets its own buffer and a
 * copy step runs after every kernel. Safe means: the value is the root of an elementwise-fused group
 * (each thread reads the target only at the index it writes), the group's anchor (a matmul, conv or
 * reduction reads other indices) does not read the target, the value is not also a program output,
 * and no later group reads the target's old value.
 */
import { baseNode, bufName, type GroupCode } from '../codegen.js';
import type { Graph } from '../ir.js';
import { getOp } from '../registry.js';
import type { FusionResult } from './fuse.js';

export interface UpdateIds {
  readonly target: number;
  readonly value: number;
}

export interface InPlacePlan {
  /** Logical value buffer → the target buffer it is written into. */
  readonly aliases: ReadonlyMap<string, string>;
  /** Updates done by a copy step after the kernels. */
  readonly copies: readonly { readonly value: string; readonly target: string }[];
}

export function planInPlace(
  graph: Graph,
  fr: FusionResult,
  order: readonly number[],
  codes: ReadonlyMap<number, GroupCode>,
  updates: readonly UpdateIds[],
  outputs: readonly number[],
): InPlacePlan {
  const position = new Map(order.map((gi, k) => [gi, k]));
  const aliases = new Map<string, string>();
  const copies: { value: string; target: string }[] = [];
  const outputBases = new Set(outputs.map((id) => baseNode(graph, id).id));
  for (const u of updates) {
    const target = bufName(graph, u.target).name;
    const vb = baseNode(graph, u.value);
    const value = bufName(graph, vb.id).name;
    const gi = fr.groupOf[vb.id];
    const g = gi !== undefined ? fr.groups[gi] : undefined;
    const targetBase = baseNode(graph, u.target).id;
    const anchorReadsTarget =
      g?.anchor !== undefined &&
      (getOp(graph.node(g.anchor).op).kind === 'reduce' ||
        graph.node(g.anchor).inputs.some((i) => baseNode(graph, i).id === targetBase));
    let safe = g !== undefined && !anchorReadsTarget && g.root === vb.id && !outputBases.has(vb.id);
    if (safe && gi !== undefined) {
      const at = position.get(gi) as number;
      order.forEach((other, k) => {
        if (k > at && codes.get(other)?.reads.includes(target)) safe = false;
      });
    }
    if (safe) aliases.set(value, target);
    else copies.push({ value, target });
  }
  return { aliases, copies };
}
