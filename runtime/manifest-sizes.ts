/**
 * Checks of the manifest fields that carry a program's run-time sizes and split tensors (format
 * version 2): size symbols, size expressions (DimJson), kernel grids, size slots and binding windows,
 * tensor dims, chunks and value ranges. A field that fails names itself; `bad` throws.
 */
import type { DimJson, SymbolSpec } from './dims.js';
import type { KernelSpec, TensorSpec } from './program.js';

type Bad = (what: string) => never;

/** A JSON object (not null, not a list). */
export function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
/** A non-negative safe integer. */
export const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** A kernel's optional run-time fields, copied as they are (between a KernelSpec and the manifest). */
export function kernelSizeFields(
  k: Pick<KernelSpec, 'grid' | 'sizes' | 'windows' | 'stage'>,
): Pick<KernelSpec, 'grid' | 'sizes' | 'windows' | 'stage'> {
  return {
    ...(k.grid ? { grid: k.grid } : {}),
    ...(k.sizes ? { sizes: k.sizes } : {}),
    ...(k.windows ? { windows: k.windows } : {}),
    ...(k.stage !== undefined ? { stage: k.stage } : {}),
  };
}

/** A tensor's optional run-time dims, chunk buffers and value range, copied as they are. */
export function tensorSizeFields(
  t: Pick<TensorSpec, 'dims' | 'chunks' | 'valueRange'>,
): Pick<TensorSpec, 'dims' | 'chunks' | 'valueRange'> {
  return {
    ...(t.dims ? { dims: t.dims } : {}),
    ...(t.chunks ? { chunks: t.chunks } : {}),
    ...(t.valueRange ? { valueRange: t.valueRange } : {}),
  };
}

/** Deepest size expression accepted (the compiler's are a few levels; a deeper one is corrupt). */
const MAX_DIM_DEPTH = 32;
const DIM_OPS = new Set(['+', '*', 'min', 'max', 'fdiv']);

/** The manifest's size symbols (unique names, 1 ≤ min ≤ max); [] when absent. */
export function checkSymbols(raw: unknown, bad: Bad): SymbolSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) return bad('"symbols" is not a list');
  const seen = new Set<string>();
  raw.forEach((s, i) => {
    if (
      !isObj(s) ||
      typeof s.name !== 'string' ||
      s.name === '' ||
      !isCount(s.min) ||
      !isCount(s.max) ||
      s.min < 1 ||
      s.min > s.max
    )
      bad(`symbols[${i}] is not {name, min ≥ 1, max ≥ min}`);
    if (seen.has(s.name)) bad(`symbols[${i}]: the name "${s.name}" is used twice`);
    seen.add(s.name);
  });
  return raw as SymbolSpec[];
}

/** Checks that `d` is a size expression over the declared symbols. */
export function checkDim(d: unknown, symbols: ReadonlySet<string>, at: string, bad: Bad, depth = 0): DimJson {
  if (depth > MAX_DIM_DEPTH) return bad(`${at}: size expression nested deeper than ${MAX_DIM_DEPTH}`);
  if (Number.isSafeInteger(d)) return d as number;
  if (!isObj(d)) return bad(`${at}: ${JSON.stringify(d)} is not a size expression`);
  if ('s' in d) {
    if (typeof d.s !== 'string' || !symbols.has(d.s)) bad(`${at}: size symbol ${JSON.stringify(d.s)} is not declared`);
    return d as DimJson;
  }
  if (!DIM_OPS.has(d.op as string) || !Array.isArray(d.a) || d.a.length === 0)
    return bad(`${at}: not a size expression ({s} or {op: + * min max fdiv, a: [...]})`);
  if (d.op === 'fdiv' && !(Number.isSafeInteger(d.d) && (d.d as number) > 0))
    bad(`${at}: fdiv needs a positive integer divisor d`);
  for (const x of d.a) checkDim(x, symbols, at, bad, depth + 1);
  return d as DimJson;
}

const checkDimList = (v: unknown, n: number | undefined, symbols: ReadonlySet<string>, at: string, bad: Bad) => {
  if (!Array.isArray(v) || (n !== undefined && v.length !== n))
    bad(`${at} is not a list of ${n ?? 'some'} size expressions`);
  v.forEach((d, j) => checkDim(d, symbols, `${at}[${j}]`, bad));
};

/** A kernel's grid, size slots and binding windows (each optional). */
export function checkKernelSizes(
  k: Record<string, unknown>,
  at: string,
  symbols: ReadonlySet<string>,
  bufferBytes: readonly number[],
  bad: Bad,
): void {
  if (k.grid !== undefined) {
    const g = k.grid;
    if (isObj(g) && 'linear' in g) checkDim(g.linear, symbols, `${at}.grid.linear`, bad);
    else if (isObj(g) && 'xyz' in g) checkDimList(g.xyz, 3, symbols, `${at}.grid.xyz`, bad);
    else bad(`${at}.grid is not {linear} or {xyz: [x, y, z]}`);
  }
  if (k.sizes !== undefined) checkDimList(k.sizes, undefined, symbols, `${at}.sizes`, bad);
  if (k.windows !== undefined) {
    const bindings = k.bindings as number[];
    if (!Array.isArray(k.windows) || k.windows.length !== bindings.length)
      bad(`${at}.windows is not one [offset, bytes] per binding`);
    (k.windows as unknown[]).forEach((w, j) => {
      const total = bufferBytes[bindings[j] as number] as number;
      if (
        !Array.isArray(w) ||
        w.length !== 2 ||
        !isCount(w[0]) ||
        !isCount(w[1]) ||
        w[0] % 4 !== 0 ||
        w[1] === 0 ||
        w[0] + w[1] > Math.ceil(total / 4) * 4
      )
        bad(`${at}.windows[${j}] is not [offset, bytes] inside buffer ${bindings[j]} (${total} bytes)`);
    });
  }
  if (k.stage !== undefined && typeof k.stage !== 'string') bad(`${at}.stage is not a string`);
}

/** A tensor's run-time dims, chunk buffers and value range (each optional). */
export function checkTensorSizes(
  t: Record<string, unknown>,
  at: string,
  symbols: ReadonlySet<string>,
  buffers: number,
  bad: Bad,
): void {
  if (t.dims !== undefined) checkDimList(t.dims, (t.shape as number[]).length, symbols, `${at}.dims`, bad);
  if (t.chunks !== undefined) {
    const c = t.chunks;
    if (!Array.isArray(c) || c.length < 2 || !c.every((b) => isCount(b) && b < buffers) || c[0] !== t.buffer)
      bad(`${at}.chunks is not a list of buffers < ${buffers} starting with its buffer`);
  }
  if (t.valueRange !== undefined) {
    const r = t.valueRange;
    if (
      !isObj(r) ||
      !Number.isFinite(r.min) ||
      !Number.isFinite(r.max) ||
      (r.allow !== undefined && !Number.isFinite(r.allow)) ||
      typeof r.rule !== 'string'
    )
      bad(`${at}.valueRange is not {min, max, allow?, rule}`);
  }
}
