/**
 * Assembly stage: the ProgramSpec the runtime executes, from the allocated buffers and the emitted
 * kernels and steps: the program's inputs (with the value ranges index inputs must keep), outputs and
 * persistent tensors by name, its size symbols, and the statistics the CLI and benchmarks print.
 */
import type { SymbolSpec } from '../../runtime/dims.js';
import type { ProgramSpec, TensorSpec } from '../../runtime/program.js';
import { valueBuffer } from '../buffers.js';
import { dimJson } from '../dims.js';
import { inputValueRanges } from '../index-ranges.js';
import type { Graph } from '../ir.js';
import type { Allocation } from './allocate.js';
import type { Emitted } from './emit.js';

export interface AssembleInput {
  readonly name: string;
  /** Program outputs: name and node. */
  readonly outputs: readonly (readonly [string, number])[];
  readonly symbols: readonly SymbolSpec[];
  readonly alloc: Allocation;
  readonly emitted: Emitted;
}

export function assembleSpec(graph: Graph, a: AssembleInput): ProgramSpec {
  const { alloc, emitted } = a;
  const ranges = inputValueRanges(graph);
  const tensorSpec = (name: string, id: number): TensorSpec => {
    const n = graph.node(id);
    return {
      name,
      buffer: alloc.physicalOf(valueBuffer(graph, id).name),
      dtype: n.type.dtype,
      shape: [...n.type.shape],
      ...(n.type.dims ? { dims: n.type.dims.map(dimJson) } : {}),
    };
  };
  const sources = graph.nodes.filter((n) => n.op === 'input' || n.op === 'param' || n.op === 'state');
  const { plan } = alloc;
  return {
    format: 'wgflow-program',
    version: 1,
    name: a.name,
    buffers: alloc.buffers,
    kernels: emitted.kernels,
    steps: emitted.steps,
    inputs: sources
      .filter((n) => n.op === 'input')
      .map((n) => {
        const range = ranges.get(n.id);
        return { ...tensorSpec(n.name as string, n.id), ...(range ? { valueRange: range } : {}) };
      }),
    outputs: a.outputs.map(([name, id]) => tensorSpec(name, id)),
    persistent: sources
      .filter((n) => n.op !== 'input')
      .map((n) => ({
        ...tensorSpec(n.name as string, n.id),
        role: n.op as 'param' | 'state',
        trainable: n.op === 'param' && n.attrs.trainable !== false,
      })),
    ...(a.symbols.length > 0 ? { symbols: a.symbols } : {}),
    stats: {
      dispatches: emitted.steps.filter((s) => s.kind === 'dispatch').length,
      kernels: new Set(emitted.kernels.map((k) => k.wgsl)).size,
      peakTempBytes: plan.peakTempBytes,
      tempBufferBytes: plan.tempBufferBytes,
      tempBytesUnplanned: plan.tempBytesUnplanned,
      persistentBytes: plan.physical.filter((p) => p.role !== 'temp').reduce((n, p) => n + p.bytes, 0),
      maxBindingBytes: emitted.maxBindingBytes,
      maxBufferBytes: Math.max(4, ...plan.physical.map((p) => p.bytes)),
      maxBindingsPerKernel: emitted.maxBindingsPerKernel,
    },
  };
}
