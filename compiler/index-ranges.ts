/**
 * The values an index input may hold. Kernels that read indices from a tensor clamp them into range
 * (gather, gather_grad: an out-of-range index reads or writes the nearest row) or give NaN
 * (softmax_cross_entropy: a label outside [0, C) that is not the ignoreIndex), where the CPU
 * interpreter rejects them. When the indices come from the host, i.e. an input read (directly or
 * through views such as reshape) as indices, the program records the range on that input
 * (TensorSpec.valueRange) and the session checks every feed before upload. Indices computed on the
 * GPU are not checked: there the clamping is the documented device-side behaviour.
 */
import type { ValueRange } from '../runtime/program.js';
import type { Graph, Node } from './ir.js';
import { getOp } from './registry.js';

/** Index operands: (op, input position) → the allowed range for that use. */
function rangeOf(graph: Graph, n: Node): { input: number; range: ValueRange } | undefined {
  const at = n.site ? ` (declared at ${n.site})` : '';
  if (n.op === 'gather' || n.op === 'gather_grad') {
    const shape = n.op === 'gather' ? graph.node(n.inputs[0] as number).type.shape : n.type.shape;
    const rank = shape.length;
    const a = (n.attrs.axis as number | undefined) ?? 0;
    const axis = a < 0 ? a + rank : a;
    const size = shape[axis] as number;
    return {
      input: 1,
      range: { min: 0, max: size - 1, rule: `indices of ${n.op} along axis ${axis} of size ${size}${at}` },
    };
  }
  if (n.op === 'softmax_cross_entropy' || n.op === 'softmax_cross_entropy_grad') {
    const c = graph.node(n.inputs[0] as number).type.shape[1] as number;
    const ii = n.attrs.ignoreIndex as number;
    return {
      input: 1,
      range: { min: 0, max: c - 1, allow: ii, rule: `class labels of ${n.op} over ${c} classes${at}` },
    };
  }
  return undefined;
}

/** The input node a value is a view of (through reshape and the other view ops), if any. */
function sourceInput(graph: Graph, id: number): Node | undefined {
  let n = graph.node(id);
  while (getOp(n.op).kind === 'view' && n.inputs.length === 1) n = graph.node(n.inputs[0] as number);
  return n.op === 'input' ? n : undefined;
}

/** The allowed values of each input read as indices, by node id (the tightest range over its uses). */
export function inputValueRanges(graph: Graph): Map<number, ValueRange> {
  const out = new Map<number, ValueRange>();
  for (const n of graph.nodes) {
    const use = rangeOf(graph, n);
    if (!use) continue;
    const src = sourceInput(graph, n.inputs[use.input] as number);
    if (!src) continue;
    const prev = out.get(src.id);
    if (!prev) {
      out.set(src.id, use.range);
      continue;
    }
    const allow = prev.allow === use.range.allow ? prev.allow : undefined;
    const tighter = use.range.max - use.range.min < prev.max - prev.min ? use.range : prev;
    out.set(src.id, {
      min: Math.max(prev.min, use.range.min),
      max: Math.min(prev.max, use.range.max),
      ...(allow !== undefined ? { allow } : {}),
      rule: tighter.rule,
    });
  }
  return out;
}
