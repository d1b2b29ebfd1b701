/**
 * Graph clean-up before fusion, in one forward sweep that rebuilds the graph:
 * - dead-code elimination (only nodes reachable from the roots survive),
 * - constant folding (an op whose inputs are all small constants becomes a constant, via its CPU reference),
 * - common-subexpression elimination (same op, same inputs, same attributes → one node).
 */
import { type Attrs, Graph, type Node } from '../ir.js';
import { getOp } from '../registry.js';
import { fmtType, isDynamic, numel } from '../types.js';

/** Constants larger than this stay unfolded (folding would bloat the program). */
const FOLD_LIMIT = 4096;

export interface SimplifyResult {
  readonly graph: Graph;
  /** old node id → new node id (undefined for removed nodes). */
  readonly map: (number | undefined)[];
  readonly stats: { readonly removed: number; readonly folded: number; readonly merged: number };
}

function constValues(n: Node): number[] {
  if (typeof n.attrs.value === 'number') return new Array(numel(n.type.shape)).fill(n.attrs.value);
  return [...(n.attrs.data as number[])];
}

export function simplify(src: Graph, roots: readonly number[]): SimplifyResult {
  const live = new Uint8Array(src.nodes.length);
  const stack = [...roots];
  while (stack.length > 0) {
    const id = stack.pop() as number;
    if (live[id]) continue;
    live[id] = 1;
    stack.push(...src.node(id).inputs);
  }
  const out = new Graph();
  const map: (number | undefined)[] = new Array(src.nodes.length);
  const seen = new Map<string, number>();
  const rootSet = new Set(roots);
  let folded = 0;
  let merged = 0;
  let removed = 0;
  for (const n of src.nodes) {
    if (!live[n.id]) {
      removed++;
      continue;
    }
    const inputs = n.inputs.map((i) => map[i] as number);
    out.currentStage = n.stage; // the copy keeps the node's stage
    const def = getOp(n.op);
    const isSource = def.kind === 'source';
    // Fold: every input a constant, small output, not a named root (roots keep their identity).
    if (
      !isSource &&
      inputs.length > 0 &&
      !rootSet.has(n.id) &&
      !isDynamic(n.type) &&
      numel(n.type.shape) <= FOLD_LIMIT
    ) {
      const ins = inputs.map((i) => out.node(i));
      if (ins.every((x) => x.op === 'const')) {
        const data = def.cpu({
          inputs: ins.map((x) => ({
            data: Float64Array.from(constValues(x)),
            shape: x.type.shape,
            dtype: x.type.dtype,
          })),
          attrs: n.attrs,
          out: n.type,
          node: n,
          env: {},
        });
        const values = [...data].map((v) => (n.type.dtype === 'f32' ? Math.fround(v) : v));
        const scalar = n.type.shape.length === 0 || values.every((v) => Object.is(v, values[0]));
        const attrs: Attrs = scalar && n.type.shape.length === 0 ? { value: values[0] as number } : { data: values };
        folded++;
        const key = `const|${n.type.dtype}|${n.type.shape.join(',')}|${JSON.stringify(attrs)}`;
        const prev = seen.get(key);
        if (prev !== undefined) {
          map[n.id] = prev;
          continue;
        }
        const c = out.add('const', [], attrs, n.type, n.site);
        seen.set(key, c.id);
        map[n.id] = c.id;
        continue;
      }
    }
    // CSE (sources other than constants are unique by name).
    const key =
      isSource && n.op !== 'const'
        ? undefined
        : `${n.op}|${fmtType(n.type)}|${inputs.join(',')}|${JSON.stringify(n.attrs)}`;
    if (key !== undefined) {
      const prev = seen.get(key);
      if (prev !== undefined && !rootSet.has(n.id)) {
        map[n.id] = prev;
        merged++;
        continue;
      }
    }
    const added = out.add(n.op, inputs, n.attrs, n.type, n.site, n.name);
    if (key !== undefined && !seen.has(key)) seen.set(key, added.id);
    map[n.id] = added.id;
  }
  return { graph: out, map, stats: { removed, folded, merged } };
}
