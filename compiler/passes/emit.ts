/**
 * Emission stage: binds each lowered kernel (passes/bind.ts) to the allocated buffers, renders it,
 * sizes its grid, and lists the run's steps: one dispatch per kernel in schedule order, then the
 * copy steps of the updates that could not be done in place.
 */
import type { DimJson } from '../../runtime/dims.js';
import type { GridJson, KernelSpec, StepSpec } from '../../runtime/program.js';
import type { GroupCode } from '../codegen.js';
import { type Dim, dimJson, dimMax, dimMul, isSym } from '../dims.js';
import { WgflowError } from '../errors.js';
import type { Graph } from '../ir.js';
import type { Kernel } from '../kernel/ast.js';
import type { DeviceLimits } from '../limits.js';
import { dimsOf, numelDims } from '../types.js';
import type { Allocation } from './allocate.js';
import { bindKernel } from './bind.js';
import type { FusionResult } from './fuse.js';
import type { InPlacePlan } from './inplace.js';

export interface Emitted {
  readonly kernels: readonly KernelSpec[];
  /** The bound ASTs of `kernels` (same order), for other targets' renderers. */
  readonly asts: readonly Kernel[];
  readonly steps: readonly StepSpec[];
  readonly maxBindingsPerKernel: number;
  /** Bytes of the largest binding window (at least 4). */
  readonly maxBindingBytes: number;
}

/** Workgroups of a kernel as a static dispatch (of the largest sizes) and, when dynamic, its expression. */
export function gridOf(k: Kernel, limits: DeviceLimits): { dispatch: [number, number, number]; grid?: GridJson } {
  const max = limits.maxComputeWorkgroupsPerDimension;
  if ('xyz' in k.grid) {
    const g = k.grid.xyz;
    const d = g.map(dimMax) as [number, number, number];
    if (d.some((x) => x > max))
      throw new WgflowError(`kernel ${k.name}: grid [${d.join(',')}] exceeds ${max} workgroups per dimension`);
    return g.some(isSym)
      ? { dispatch: d, grid: { xyz: g.map(dimJson) as [DimJson, DimJson, DimJson] } }
      : { dispatch: d };
  }
  const n = dimMax(k.grid.linear);
  const y = Math.ceil(n / max);
  if (y > max) throw new WgflowError(`kernel ${k.name}: ${n} workgroups cannot be folded into a ${max}×${max} grid`);
  const dispatch: [number, number, number] = n <= max ? [n, 1, 1] : [max, y, 1];
  return isSym(k.grid.linear) ? { dispatch, grid: { linear: dimJson(k.grid.linear) } } : { dispatch };
}

export function emit(
  graph: Graph,
  fr: FusionResult,
  steps: readonly GroupCode[],
  alloc: Allocation,
  inPlace: InPlacePlan,
  limits: DeviceLimits,
  render: (k: Kernel) => string,
): Emitted {
  const kernels: KernelSpec[] = [];
  const asts: Kernel[] = [];
  const out: StepSpec[] = [];
  let maxBindings = 0;
  let maxWindow = 4;
  for (const code of steps) {
    const group = fr.groups[code.group] as (typeof fr.groups)[number];
    const stage = graph.node(group.anchor ?? group.root).stage;
    for (const k0 of code.kernels) {
      const bound = bindKernel(k0, { physicalOf: alloc.physicalOf, bytesOf: alloc.bytesOf, limits });
      maxBindings = Math.max(maxBindings, bound.bindings.length);
      for (const [, size] of bound.windows) maxWindow = Math.max(maxWindow, size);
      // windows are listed only when some binding is not its whole buffer
      const whole = bound.windows.every(
        ([off, size], i) =>
          off === 0 && size === Math.ceil((alloc.buffers[bound.bindings[i] as number]?.bytes ?? 0) / 4) * 4,
      );
      asts.push(bound.kernel);
      const { dispatch, grid } = gridOf(bound.kernel, limits);
      kernels.push({
        name: bound.kernel.name,
        wgsl: render(bound.kernel),
        workgroupSize: bound.kernel.workgroupSize,
        dispatch,
        ...(grid ? { grid } : {}),
        ...(bound.sizes.length > 0 ? { sizes: bound.sizes.map(dimJson) } : {}),
        bindings: bound.bindings,
        ...(whole ? {} : { windows: bound.windows }),
        writes: bound.writes,
        ...(stage !== undefined ? { stage } : {}),
      });
      out.push({ kind: 'dispatch', kernel: kernels.length - 1 });
    }
  }
  for (const c of inPlace.copies) {
    const bytes: Dim = dimMul(numelDims(dimsOf(graph.node(c.value.node).type)), 4);
    out.push({
      kind: 'copy',
      src: alloc.physicalOf(c.value.name),
      dst: alloc.physicalOf(c.target.name),
      bytes: dimMax(bytes),
      ...(isSym(bytes) ? { bytesDim: dimJson(bytes) } : {}),
    });
  }
  return { kernels, asts, steps: out, maxBindingsPerKernel: maxBindings, maxBindingBytes: maxWindow };
}
