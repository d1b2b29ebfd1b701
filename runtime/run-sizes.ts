/**
 * What one run's sizes make of a program: for static programs, its compiled numbers; for programs with
 * run-time sizes, the values bound from the fed shapes (runtime/dims.ts) and everything evaluated from
 * them — each kernel's size block and grid, the bytes of copies, the shapes of inputs and outputs.
 * Shared by the WebGPU and CUDA sessions; cached per distinct set of symbol values.
 */
import { bindSymbols, evalDim, evalShape, type SizeEnv } from './dims.js';
import { WgflowError } from './errors.js';
import { checkValueRange, type Feed, type TypedArray, toTyped } from './host-data.js';
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

/**
 * One input's fed values for a run at `shape` (its shape at this run's sizes), checked: a `{ data, shape }`
 * feed of a static input must have the input's shape; the values must be of a numeric kind, as many as
 * the shape holds, of the dtype (see toTyped), and within the input's valueRange if it is read as indices.
 */
export function feedValues(
  program: string,
  inp: TensorSpec,
  f: Feed | ShapedFeed,
  shape: readonly number[],
): TypedArray {
  const what = `run "${program}": input "${inp.name}" ${inp.dtype}[${shape.join(',')}]`;
  if (isShaped(f) && !inp.dims) {
    const same = f.shape.length === inp.shape.length && f.shape.every((d, i) => d === inp.shape[i]);
    if (!same)
      throw new WgflowError(
        `${what}: fed with shape [${f.shape.map(String).join(',')}], which is not the input's shape`,
      );
  }
  if (typeof f === 'object' && f !== null && 'data' in f && !isShaped(f))
    throw new WgflowError(`${what}: a { data, shape } feed needs shape as an array of sizes`);
  const data = toTyped(
    inp.dtype,
    isShaped(f) ? f.data : f,
    shape.reduce((a, b) => a * b, 1),
    what,
  );
  checkValueRange(inp, data, what);
  return data;
}

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
