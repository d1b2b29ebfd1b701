/**
 * The checks compile() makes before it compiles: the options' kinds, the updates against the graph,
 * the program's size symbols (only inputs may carry them), and element counts a kernel can index.
 */
import type { SymbolSpec } from '../runtime/dims.js';
import type { CompileOptions, Update } from './compile.js';
import { isSym } from './dims.js';
import { WgflowError } from './errors.js';
import { fmtValue, type Graph } from './ir.js';
import { getOp } from './registry.js';
import { GraphBuilder, Tensor } from './tensor.js';
import { dimsOf, fmtType, isDynamic, numel, sameType } from './types.js';

/** A value the caller passed where a Tensor of `builder` is needed: rejected unless it is one. */
function ownTensor(builder: GraphBuilder, v: unknown, what: string): void {
  if (!(v instanceof Tensor))
    throw new WgflowError(`compile: ${what} is ${fmtValue(v)}, not a Tensor (a value declared with this GraphBuilder)`);
  if (v.builder !== builder)
    throw new WgflowError(
      `compile: ${what} (${v.toString()}) belongs to another GraphBuilder; compile the builder that declared it`,
    );
}

/** Checks the options' kinds: outputs a record of this builder's tensors, updates a list of pairs of them. */
export function checkOptions(builder: GraphBuilder, opts: CompileOptions): void {
  if (!(builder instanceof GraphBuilder))
    throw new WgflowError(`compile: expected a GraphBuilder, got ${fmtValue(builder)}`);
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts))
    throw new WgflowError(`compile: the options must be an object, got ${fmtValue(opts)}`);
  const outs: unknown = opts.outputs;
  if (outs !== undefined) {
    if (typeof outs !== 'object' || outs === null || Array.isArray(outs) || outs instanceof Tensor)
      throw new WgflowError(
        `compile: outputs must be an object of named tensors ({ name: tensor }), got ${outs instanceof Tensor ? 'a Tensor' : fmtValue(outs)}`,
      );
    for (const [name, t] of Object.entries(outs)) {
      if (name.trim() === '') throw new WgflowError('compile: an output has an empty name');
      ownTensor(builder, t, `output "${name}"`);
    }
  }
  const ups: unknown = opts.updates;
  if (ups !== undefined) {
    if (!Array.isArray(ups))
      throw new WgflowError(`compile: updates must be an array of { target, value }, got ${fmtValue(ups)}`);
    ups.forEach((u: unknown, i) => {
      if (typeof u !== 'object' || u === null)
        throw new WgflowError(`compile: update ${i} is ${fmtValue(u)}, not { target, value }`);
      ownTensor(builder, (u as Update).target, `the target of update ${i}`);
      ownTensor(builder, (u as Update).value, `the value of update ${i}`);
    });
  }
  if (opts.seed !== undefined && !(typeof opts.seed === 'number' && Number.isSafeInteger(opts.seed)))
    throw new WgflowError(`compile: seed must be an integer, got ${fmtValue(opts.seed)}`);
}

/** Checks the update list against the graph (each target a param/state of the value's type, once). */
export function checkUpdates(updates: readonly Update[]): void {
  const targets = new Set<number>();
  for (const u of updates) {
    const t = u.target.node;
    if (t.op !== 'param' && t.op !== 'state')
      throw new WgflowError(
        `compile: update target %${t.id} is a ${t.op}, not a param or state (at ${u.value.node.site})`,
      );
    if (!sameType(t.type, u.value.type)) {
      throw new WgflowError(
        `compile: update of "${t.name}" ${fmtType(t.type)} with ${fmtType(u.value.type)} (declared at ${u.value.node.site})`,
      );
    }
    if (targets.has(t.id)) throw new WgflowError(`compile: "${t.name}" is updated twice`);
    targets.add(t.id);
  }
}

/** The size symbols of the program, from its inputs (each axis static or one plain symbol). */
export function programSymbols(graph: Graph): SymbolSpec[] {
  const out = new Map<string, SymbolSpec>();
  for (const n of graph.nodes) {
    if (!isDynamic(n.type) || getOp(n.op).kind !== 'source') continue;
    if (n.op !== 'input')
      throw new WgflowError(`${n.op} "${n.name ?? `%${n.id}`}": only inputs may have run-time sizes`);
    dimsOf(n.type).forEach((d, axis) => {
      if (!isSym(d)) return;
      const name = d.symbolName;
      if (name === undefined)
        throw new WgflowError(
          `input "${n.name}" axis ${axis} is ${d.key}: an input axis must be a number or one size symbol`,
        );
      out.set(name, { name, min: d.min, max: d.max });
    });
  }
  return [...out.values()];
}

/**
 * Rejects values whose element indices would overflow u32. (A value over maxStorageBufferBindingSize is
 * split across bindings by the binding pass, one over maxBufferSize across buffers by the chunk pass.)
 */
export function checkTensorSizes(graph: Graph): void {
  for (const n of graph.nodes) {
    const count = numel(n.type.shape);
    if (count > 0xffffffff && getOp(n.op).kind !== 'view') {
      throw new WgflowError(
        `${n.op} ${n.name ? `"${n.name}" ` : ''}makes ${fmtType(n.type)} = ${count} elements, over the 2^32 − 1 a kernel can index` +
          `${n.site ? ` (declared at ${n.site})` : ''}; use a smaller input`,
      );
    }
  }
}
