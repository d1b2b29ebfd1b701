/**
 * Reverse-mode autodiff: extends the graph with gradient nodes, walking it backwards from a scalar
 * loss and summing contributions per node. Each op's rule lives beside the op in ops/.
 */
import { WgflowError } from './errors.js';
import { getOp } from './registry.js';
import type { Tensor } from './tensor.js';
import { fmtType, numel, sameShape } from './types.js';

/** Gradients of `loss` (a one-element f32 tensor) with respect to each of `wrt`, in order. */
export function grad(loss: Tensor, wrt: readonly Tensor[], seed?: Tensor): Tensor[] {
  const g = loss.builder;
  const graph = g.graph;
  if (!seed && (loss.dtype !== 'f32' || numel(loss.shape) !== 1)) {
    throw new WgflowError(
      `grad: the loss must be a one-element f32 tensor, got ${fmtType(loss.type)} (declared at ${loss.node.site})`,
    );
  }
  // Nodes on a path from a wrt node to the loss.
  const wrtIds = new Set(wrt.map((t) => t.id));
  const reaches = new Uint8Array(graph.nodes.length);
  for (const n of graph.nodes) {
    if (n.id > loss.id) break;
    if (wrtIds.has(n.id) || n.inputs.some((i) => reaches[i])) reaches[n.id] = 1;
  }
  const acc = new Map<number, Tensor>();
  acc.set(loss.id, seed ?? g.constant(1, loss.shape, 'f32'));
  for (let id = loss.id; id >= 0; id--) {
    const dy = acc.get(id);
    if (!dy || !reaches[id]) continue;
    const node = graph.node(id);
    if (node.inputs.length === 0) continue;
    const def = getOp(node.op);
    if (!def.grad) {
      if (node.inputs.some((i) => reaches[i])) {
        throw new WgflowError(
          `grad: op ${node.op} (declared at ${node.site}) has no gradient rule, but a parameter's gradient flows through it`,
        );
      }
      continue;
    }
    const inputs = node.inputs.map((i) => g.tensor(i));
    const grads = def.grad({ node, attrs: node.attrs, inputs, output: g.tensor(id), dy });
    node.inputs.forEach((inId, k) => {
      const gi = grads[k];
      if (!gi || !reaches[inId]) return;
      const inType = graph.node(inId).type;
      if (!sameShape(gi.shape, inType.shape)) {
        throw new Error(
          `internal: gradient rule of ${node.op} gave ${fmtType(gi.type)} for input ${k} of type ${fmtType(inType)}`,
        );
      }
      const prev = acc.get(inId);
      acc.set(inId, prev ? prev.add(gi) : gi);
    });
  }
  // A tensor the loss does not depend on gets zeros of its shape.
  return wrt.map((t) => acc.get(t.id) ?? g.where(g.constant(0, [], 'u32'), t, 0));
}
