/** Runs a graph on the CPU with each op's float64 reference: the oracle for every GPU test. */
import { bindSymbols } from '../runtime/dims.js';
import { dimEval, dimJson } from './dims.js';
import { WgflowError } from './errors.js';
import type { Graph } from './ir.js';
import { getOp, type RefTensor } from './registry.js';
import { dimsOf, fmtShape, isDynamic, numel, type TensorType } from './types.js';

/** A fed value: its elements, with the shape when the input has run-time sizes. */
export type InterpretFeed = ArrayLike<number> | { readonly data: ArrayLike<number>; readonly shape: readonly number[] };

export interface Feeds {
  /** Values of input, param and state nodes, by name. Any numeric array of the right length. */
  readonly [name: string]: InterpretFeed;
}

function feedData(f: InterpretFeed, what: string): ArrayLike<number> {
  const v: unknown = typeof f === 'object' && f !== null && 'data' in f && 'shape' in f ? f.data : f;
  if (v instanceof BigInt64Array || v instanceof BigUint64Array)
    throw new WgflowError(`${what}: a ${v.constructor.name} cannot be fed (64-bit integers are not supported)`);
  if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView)))
    throw new WgflowError(
      `${what}: expected a typed array or an array of numbers, got ${v === null ? 'null' : typeof v === 'string' ? 'a string' : typeof v}`,
    );
  const a = v as ArrayLike<unknown>;
  if (Array.isArray(a))
    for (let i = 0; i < a.length; i++)
      if (typeof a[i] !== 'number') throw new WgflowError(`${what}: value ${i} is ${typeof a[i]}, not a number`);
  return a as ArrayLike<number>;
}

/** The type with every run-time size replaced by its value. */
export function concreteType(t: TensorType, env: Readonly<Record<string, number>>): TensorType {
  return isDynamic(t) ? { shape: dimsOf(t).map((d) => dimEval(d, env)), dtype: t.dtype } : t;
}

/** Binds the graph's size symbols from the shapes fed to its run-time-sized inputs. */
function bindFeeds(graph: Graph, feeds: Feeds): Record<string, number> {
  const axes: Parameters<typeof bindSymbols>[1][number][] = [];
  const symbols = new Map<string, { name: string; min: number; max: number }>();
  for (const n of graph.nodes) {
    if (n.op !== 'input' || !isDynamic(n.type)) continue;
    const f = feeds[n.name as string];
    if (typeof f !== 'object' || f === null || !('shape' in f))
      throw new WgflowError(`interpret: input "${n.name}" has run-time sizes; feed it as { data, shape }`);
    const dims = dimsOf(n.type);
    if (f.shape.length !== dims.length)
      throw new WgflowError(`interpret: input "${n.name}" has rank ${dims.length}, fed shape ${fmtShape(f.shape)}`);
    dims.forEach((d, axis) => {
      if (typeof d !== 'number') for (const s of d.symbols()) symbols.set(s, { name: s, min: d.min, max: d.max });
      axes.push({ input: n.name as string, axis, dim: dimJson(d), size: f.shape[axis] as number });
    });
  }
  return bindSymbols([...symbols.values()], axes, 'interpret');
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
  const env = bindFeeds(graph, feeds);
  const values: (RefTensor | undefined)[] = new Array(graph.nodes.length);
  for (const node of graph.nodes) {
    if (!needed[node.id]) continue;
    const type = concreteType(node.type, env);
    const { shape, dtype } = type;
    let data: Float64Array;
    if (node.op === 'input' || node.op === 'param' || node.op === 'state') {
      const feed = feeds[node.name as string];
      if (!feed) throw new WgflowError(`interpret: no value fed for ${node.op} "${node.name}" ${fmtShape(shape)}`);
      const values = feedData(feed, `interpret: ${node.op} "${node.name}"`);
      if (values.length !== numel(shape)) {
        throw new WgflowError(
          `interpret: ${node.op} "${node.name}" needs ${numel(shape)} values for ${fmtShape(shape)}, got ${values.length}`,
        );
      }
      data = Float64Array.from(values);
    } else {
      const inputs = node.inputs.map((i) => values[i] as RefTensor);
      data = getOp(node.op).cpu({ inputs, attrs: node.attrs, out: type, node, env });
      if (data.length !== numel(shape)) {
        throw new Error(`internal: CPU reference of ${node.op} returned ${data.length} values for ${fmtShape(shape)}`);
      }
    }
    values[node.id] = { data, shape, dtype };
  }
  return outputs.map((id) => values[id] as RefTensor);
}
