import type { SymDim } from './dims.js';
import { WgflowError } from './errors.js';
import { fmtType, type TensorType } from './types.js';

/**
 * JSON-like attribute values carried by IR nodes (they must print and serialize); a run-time size
 * (SymDim) serializes as its size expression.
 */
export type AttrValue =
  | number
  | string
  | boolean
  | null
  | SymDim
  | readonly AttrValue[]
  | { readonly [k: string]: AttrValue };
export type Attrs = { readonly [k: string]: AttrValue };

/** One SSA value: an op applied to earlier nodes. Nodes never change after creation. */
export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly number[];
  readonly attrs: Attrs;
  readonly type: TensorType;
  /** The user's call site ("file:line:col") that declared the node. */
  readonly site: string;
  /** Name of an input, parameter or state tensor. */
  readonly name?: string;
  /** The model stage that declared the node (GraphBuilder.stage), e.g. "backbone"; kernels carry it. */
  readonly stage?: string;
}

/** A flat SSA list of nodes; a node only refers to nodes before it. */
export class Graph {
  readonly nodes: Node[] = [];
  /** The stage recorded on nodes added from now on (GraphBuilder.stage sets it). */
  currentStage: string | undefined;

  add(op: string, inputs: readonly number[], attrs: Attrs, type: TensorType, site: string, name?: string): Node {
    for (const i of inputs) {
      if (!(i >= 0 && i < this.nodes.length)) throw new Error(`internal: ${op} refers to missing node %${i}`);
    }
    const node: Node = {
      id: this.nodes.length,
      op,
      inputs: [...inputs],
      attrs,
      type,
      site,
      ...(name !== undefined ? { name } : {}),
      ...(this.currentStage !== undefined ? { stage: this.currentStage } : {}),
    };
    this.nodes.push(node);
    return node;
  }

  node(id: number): Node {
    const n = this.nodes[id];
    if (!n) throw new WgflowError(`graph: no node %${String(id)} (this graph has ${this.nodes.length} nodes)`);
    return n;
  }

  /** Consumers of each node (ids), computed on demand. */
  consumers(): number[][] {
    const c: number[][] = this.nodes.map(() => []);
    for (const n of this.nodes) for (const i of n.inputs) c[i]?.push(n.id);
    return c;
  }

  /** One line per node: `%4 = conv2d(%2, %3) {stride:[1,1]} : f32[1,8,7,13]  @ file:line`. */
  print(opts: { sites?: boolean } = {}): string {
    return this.nodes.map((n) => printNode(n, opts.sites ?? false)).join('\n');
  }
}

/**
 * A value as it reads in messages and graph prints: like JSON, but NaN, ±Infinity and -0 print as
 * themselves (JSON.stringify prints null and 0), bigints as `5n`, and what JSON cannot hold by its type.
 */
export function fmtValue(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || typeof v === 'boolean') return String(v);
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return `(${typeof v})`;
  if (Array.isArray(v)) return `[${v.map(fmtValue).join(',')}]`;
  if (ArrayBuffer.isView(v)) return `(a ${v.constructor.name})`;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return fmtValue((v as { toJSON(): unknown }).toJSON());
  return `{${Object.entries(v as object)
    .map(([k, x]) => `${JSON.stringify(k)}:${fmtValue(x)}`)
    .join(',')}}`;
}

export function fmtAttrs(attrs: Attrs): string {
  const keys = Object.keys(attrs);
  if (keys.length === 0) return '';
  return ` {${keys.map((k) => `${k}:${fmtValue(attrs[k])}`).join(', ')}}`;
}

export function printNode(n: Node, sites = false): string {
  const name = n.name !== undefined ? ` "${n.name}"` : '';
  const args = n.inputs.map((i) => `%${i}`).join(', ');
  const site = sites && n.site ? `  @ ${n.site}` : '';
  return `%${n.id} = ${n.op}${name}(${args})${fmtAttrs(n.attrs)} : ${fmtType(n.type)}${site}`;
}
