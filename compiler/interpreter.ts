/** Runs a graph on the CPU with each op's float64 reference: the oracle for every GPU test. */
import { WgflowError } from './errors.js';
import type { Graph } from './ir.js';
import { getOp, type RefTensor } from './registry.js';
import { fmtShape, numel } from './types.js';

export interface Feeds {
  /** Values of input, param and state nodes, by name. Any numeric array of the right length. */
  readonly [name: string]: ArrayLike<number>;
}

/** Evaluates the nodes needed for `outputs` (node ids) and returns their values. */
export function interpret(graph: Graph, feeds: Feeds, outputs: readonly number[]): RefTensor[] {
  const needed = new Uint8Array(graph.nodes.length);
  const stack = [...outputs];
  while (stack.length > 0) {
    const id = stack.pop() as number;
    if (needed[id]) continue;
    needed[id] = 1;
    stack.push(...graph.node(id).inputs);
  }
  const values: (RefTensor | undefined)[] = new Array(graph.nodes.length);
  for (const node of graph.nodes) {
    if (!needed[node.id]) continue;
    const { shape, dtype } = node.type;
    let data: Float64Array;
    if (node.op === 'input' || node.op === 'param' || node.op === 'state') {
      const feed = feeds[node.name as string];
      if (!feed) throw new WgflowError(`interpret: no value fed for ${node.op} "${node.name}" ${fmtShape(shape)}`);
      if (feed.length !== numel(shape)) {
        throw new WgflowError(
          `interpret: ${node.op} "${node.name}" needs ${numel(shape)} values for ${fmtShape(shape)}, got ${feed.length}`,
        );
      }
      data = Float64Array.from(feed);
    } else {
      const inputs = node.inputs.map((i) => values[i] as RefTensor);
      data = getOp(node.op).cpu({ inputs, attrs: node.attrs, out: node.type, node });
      if (data.length !== numel(shape)) {
        throw new Error(`internal: CPU reference of ${node.op} returned ${data.length} values for ${fmtShape(shape)}`);
      }
    }
    values[node.id] = { data, shape, dtype };
  }
  return outputs.map((id) => values[id] as RefTensor);
}
