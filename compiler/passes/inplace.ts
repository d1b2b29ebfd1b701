/**
 * In-place updates. At the end of a run each updated param/state takes its new value. The value can be
 * written straight into the target's buffer when that is safe; otherwise it gets its own buffer and a
 * copy step runs after every kernel. Safe means: the value is the root of an elementwise-fused group
 * (each thread reads the target only at the index it writes), the group's anchor (a matmul, conv or
 * reduction reads other indices) does not read the target, the value is not also a program output,
 * and no later group reads the target's old value.
 */
import { baseNode, type ValueBuffer, valueBuffer } from '../buffers.js';
import type { GroupCode } from '../codegen.js';
import type { Graph } from '../ir.js';
import { getOp } from '../registry.js';
import type { FusionResult } from './fuse.js';

export interface UpdateIds {
  readonly target: number;
  readonly value: number;
}

export interface InPlacePlan {
  /** Value buffer name → the target buffer it is written into. */
  readonly aliases: ReadonlyMap<string, string>;
  /** Updates done by a copy step after the kernels (in update order). */
  readonly copies: readonly { readonly value: ValueBuffer; readonly target: ValueBuffer }[];
}

/** `steps`: the lowered groups in run order (lowerProgram). */
export function planInPlace(
  graph: Graph,
  fr: FusionResult,
  steps: readonly GroupCode[],
  updates: readonly UpdateIds[],
  outputs: readonly number[],
): InPlacePlan {
  const position = new Map(steps.map((code, k) => [code.group, k]));
  const aliases = new Map<string, string>();
  const copies: { value: ValueBuffer; target: ValueBuffer }[] = [];
  const outputBases = new Set(outputs.map((id) => baseNode(graph, id).id));
  for (const u of updates) {
    const target = valueBuffer(graph, u.target);
    const value = valueBuffer(graph, u.value);
    const gi = fr.groupOf[value.node];
    const g = gi !== undefined ? fr.groups[gi] : undefined;
    const anchorReadsTarget =
      g?.anchor !== undefined &&
      (getOp(graph.node(g.anchor).op).kind === 'reduce' ||
        graph.node(g.anchor).inputs.some((i) => baseNode(graph, i).id === target.node));
    const at = gi !== undefined ? position.get(gi) : undefined;
    const readLater = at !== undefined && steps.slice(at + 1).some((c) => c.reads.some((r) => r.node === target.node));
    const safe =
      g !== undefined &&
      at !== undefined &&
      !anchorReadsTarget &&
      g.root === value.node &&
      !outputBases.has(value.node);
    if (safe && !readLater) aliases.set(value.name, target.name);
    else copies.push({ value, target });
  }
  return { aliases, copies };
}
