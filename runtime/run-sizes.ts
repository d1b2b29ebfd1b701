/**
 * What one run's sizes make of a program: for static programs, its compiled numbers; for programs with
 * run-time sizes, the values bound from the fed shapes (runtime/dims.ts) and everything evaluated from
 * them — each kernel's size block and grid, the bytes of copies, the shapes of inputs and outputs.
 * Shared by the WebGPU and CUDA sessions; cached per distinct set of symbol values.
 */
import { bindSymbols, evalDim, evalShape, type SizeEnv } from './dims.js';
import { WgflowError } from './errors.js';
import type { Feed } from './host-data.js';
import type { KernelSpec, ProgramSpec, TensorSpec } from './program.js';

export interface RunSizes {
  /** Symbol values ('' key for static programs). */
  readonly key: string;
  readonly env: SizeEnv;
  /** Per kernel: workgroups [x, y, z] (a zero means: skip the dispatch). */
  readonly dispatch: readonly (readonly [number, number, number])[];
  /** Per kernel: its run-time size values in slot order (empty when it reads none). */
  readonly sizes: readonly Uint32Array[];
  /** Per step: bytes of a copy step (0 for dispatches). */
  readonly copyBytes: readonly number[];
  shapeOf(t: TensorSpec): number[];
}

/** A fed value with its shape (needed for inputs with run-time sizes). */
export interface ShapedFeed {
  readonly data: Feed;
  readonly shape: readonly number[];
}

export const isShaped = (f: unknown): f is ShapedFeed =>
  typeof f === 'object' && f !== null && 'data' in f && 'shape' in f && Array.isArray((f as ShapedFeed).shape);

/** Folds a 1-D workgroup count into 2-D past the per-dimension limit (the kernels read the folded index). */
export function foldLinear(n: number, max: number, what: string): [number, number, number] {
  if (n <= max) return [n, 1, 1];
  const y = Math.ceil(n / max);
  if (y > max) throw new WgflowError(`${what}: ${n} workgroups cannot be folded into a ${max}×${max} grid`);
  return [max, y, 1];
}

function kernelDispatch(k: KernelSpec, env: SizeEnv, maxPerDim: number): [number, number, number] {
  if (!k.grid) return [...k.dispatch];
  if ('linear' in k.grid) return foldLinear(evalDim(k.grid.linear, env), maxPerDim, `kernel ${k.name}`);
  const g = k.grid.xyz.map((d) => evalDim(d, env)) as [number, number, number];
  if (g.some((d) => d > maxPerDim))
    throw new WgflowError(`kernel ${k.name}: grid [${g.join(',')}] exceeds ${maxPerDim} workgroups per dimension`);
  return g;
}

export class RunSizer {
  private last: RunSizes | undefined;

  constructor(
    private readonly spec: ProgramSpec,
    private readonly maxWorkgroupsPerDimension: number,
  ) {}

  get dynamic(): boolean {
    return (this.spec.symbols?.length ?? 0) > 0;
  }

  /** The sizes of a run with these feeds (inputs with run-time sizes must be ShapedFeeds). */
  sizesFor(feeds: Readonly<Record<string, Feed | ShapedFeed>>): RunSizes {
    const spec = this.spec;
    let env: SizeEnv = {};
    if (this.dynamic) {
      const axes: Parameters<typeof bindSymbols>[1][number][] = [];
      for (const inp of spec.inputs) {
        if (!inp.dims) continue;
        const f = feeds[inp.name];
        if (f === undefined) continue; // reported as a missing input by the session
        if (!isShaped(f))
          throw new WgflowError(
            `run "${spec.name}": input "${inp.name}" has run-time sizes [${inp.dims.map((d) => JSON.stringify(d)).join(', ')}]; feed it as { data, shape }`,
          );
        if (f.shape.length !== inp.dims.length)
          throw new WgflowError(
            `run "${spec.name}": input "${inp.name}" has rank ${inp.dims.length}, fed shape [${f.shape.join(',')}]`,
          );
        inp.dims.forEach((dim, axis) => {
          axes.push({ input: inp.name, axis, dim, size: f.shape[axis] as number });
        });
      }
      env = bindSymbols(spec.symbols ?? [], axes, spec.name);
    }
    const key = JSON.stringify(env);
    if (this.last?.key === key) return this.last;
    const max = this.maxWorkgroupsPerDimension;
    const sizes: RunSizes = {
      key,
      env,
      dispatch: spec.kernels.map((k) => kernelDispatch(k, env, max)),
      sizes: spec.kernels.map((k) => Uint32Array.from((k.sizes ?? []).map((d) => evalDim(d, env)))),
      copyBytes: spec.steps.map((s) => (s.kind === 'copy' ? (s.bytesDim ? evalDim(s.bytesDim, env) : s.bytes) : 0)),
      shapeOf: (t) => (t.dims ? evalShape(t.dims, env) : [...t.shape]),
    };
    this.last = sizes;
    return sizes;
  }
}
