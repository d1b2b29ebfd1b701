/**
 * Run-time sizes in a compiled program. The compiler writes each size that kernels, grids, buffers or
 * outputs depend on as a DimJson expression over the program's size symbols; the runtime binds the
 * symbols from the shapes of the inputs it is fed (checking each against its declared range) and
 * evaluates the expressions once per distinct input shape.
 */
import { WgflowError } from './errors.js';

/** A size expression: a constant, a symbol, a sum, a product, floor(x / d), min or max. */
export type DimJson =
  | number
  | { readonly s: string }
  | { readonly op: '+' | '*' | 'min' | 'max'; readonly a: readonly DimJson[] }
  | { readonly op: 'fdiv'; readonly a: readonly [DimJson] | readonly DimJson[]; readonly d: number };

/** A size symbol of a program and its allowed range. */
export interface SymbolSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
}

export type SizeEnv = Readonly<Record<string, number>>;

export function evalDim(d: DimJson, env: SizeEnv): number {
  if (typeof d === 'number') return d;
  if ('s' in d) {
    const v = env[d.s];
    if (v === undefined) throw new WgflowError(`size symbol "${d.s}" has no value (no fed input carries it)`);
    return v;
  }
  const a = d.a.map((x) => evalDim(x, env));
  switch (d.op) {
    case '+':
      return a.reduce((s, x) => s + x, 0);
    case '*':
      return a.reduce((s, x) => s * x, 1);
    case 'min':
      return Math.min(...a);
    case 'max':
      return Math.max(...a);
    case 'fdiv':
      return Math.floor((a[0] as number) / d.d);
  }
}

/** Evaluates a shape whose axes may be size expressions. */
export function evalShape(dims: readonly DimJson[], env: SizeEnv): number[] {
  return dims.map((d) => evalDim(d, env));
}

/**
 * Binds the symbols from fed shapes: `axes` pairs an input axis's declared size with the size fed.
 * Throws a WgflowError naming the input when a symbol is out of range, bound twice to different
 * values, or a static axis does not match.
 */
export function bindSymbols(
  symbols: readonly SymbolSpec[],
  axes: readonly { readonly input: string; readonly axis: number; readonly dim: DimJson; readonly size: number }[],
  program: string,
): Record<string, number> {
  const env: Record<string, number> = {};
  const from: Record<string, string> = {};
  for (const a of axes) {
    if (!Number.isInteger(a.size) || a.size < 0)
      throw new WgflowError(`run "${program}": input "${a.input}" axis ${a.axis} has size ${a.size}`);
    if (typeof a.dim === 'number') {
      if (a.dim !== a.size)
        throw new WgflowError(
          `run "${program}": input "${a.input}" axis ${a.axis} must be ${a.dim} (a static size), got ${a.size}`,
        );
      continue;
    }
    if (!('s' in a.dim)) continue; // derived sizes are checked after binding
    const name = a.dim.s;
    const sym = symbols.find((s) => s.name === name);
    if (!sym) throw new WgflowError(`run "${program}": input "${a.input}" uses unknown size symbol ${name}`);
    if (a.size < sym.min || a.size > sym.max)
      throw new WgflowError(
        `run "${program}": input "${a.input}" axis ${a.axis} (${name}) is ${a.size}, outside the compiled range ${sym.min}..${sym.max}`,
      );
    const prev = env[name];
    if (prev !== undefined && prev !== a.size)
      throw new WgflowError(
        `run "${program}": size ${name} is ${prev} in input "${from[name]}" but ${a.size} in input "${a.input}"`,
      );
    env[name] = a.size;
    from[name] = a.input;
  }
  for (const a of axes) {
    if (typeof a.dim === 'number' || 's' in a.dim) continue;
    const want = evalDim(a.dim, env);
    if (want !== a.size)
      throw new WgflowError(
        `run "${program}": input "${a.input}" axis ${a.axis} must be ${want} for these sizes, got ${a.size}`,
      );
  }
  for (const s of symbols)
    if (env[s.name] === undefined) throw new WgflowError(`run "${program}": no input gives the size ${s.name}`);
  return env;
}
