/**
 * Small helpers to write kernels as ASTs in TypeScript. Expressions are plain values; statements
 * are collected by a KernelBuilder, whose block helpers (for/if) take callbacks.
 */
import type { Dim, SymDim } from '../dims.js';
import type { ArrayDecl, BinOp, BufRef, Builtin, CallFn, Expr, Kernel, Scalar, Stmt } from './ast.js';
import { walkKernel } from './visit.js';

export type Ex = Expr;
export type NumLike = Expr | number;

export const lit = (v: number, t: Scalar = 'f32'): Expr => {
  if ((t === 'u32' || t === 'i32') && !Number.isInteger(v)) throw new Error(`kernel: non-integer ${t} literal ${v}`);
  if (t === 'u32' && (v < 0 || v > 0xffffffff)) throw new Error(`kernel: u32 literal ${v} out of range`);
  return { k: 'lit', t, v };
};
export const f32 = (v: number): Expr => lit(v, 'f32');
export const i32 = (v: number): Expr => lit(v, 'i32');
export const u32 = (v: number): Expr => lit(v, 'u32');
export const bool = (v: boolean): Expr => lit(v ? 1 : 0, 'bool');
export const builtin = (name: Builtin): Expr => ({ k: 'builtin', t: 'u32', name });
/** A size as a u32 expression: a literal when static, else read from the program's size table. */
export const size = (d: Dim): Expr => (typeof d === 'number' ? u32(d) : { k: 'size', t: 'u32', dim: d });

/** Lifts a JS number to a literal of the other operand's type. */
function lift(x: NumLike, like: Scalar): Expr {
  return typeof x === 'number' ? lit(x, like === 'bool' ? 'f32' : like) : x;
}

function bin(op: BinOp, a: NumLike, b: NumLike): Expr {
  const ta = typeof a === 'number' ? undefined : a.t;
  const tb = typeof b === 'number' ? undefined : b.t;
  const t0 = ta ?? tb ?? 'f32';
  const ea = lift(a, t0);
  const eb = lift(b, t0);
  const isShift = op === '<<' || op === '>>';
  if (ea.t !== eb.t && !isShift) throw new Error(`kernel: '${op}' on mismatched types ${ea.t} and ${eb.t}`);
  const cmp = op === '<' || op === '<=' || op === '>' || op === '>=' || op === '==' || op === '!=';
  const logical = op === '&&' || op === '||';
  return { k: 'bin', t: cmp || logical ? 'bool' : ea.t, op, a: ea, b: eb };
}

export const add = (a: NumLike, b: NumLike) => bin('+', a, b);
export const sub = (a: NumLike, b: NumLike) => bin('-', a, b);
export const mul = (a: NumLike, b: NumLike) => bin('*', a, b);
export const div = (a: NumLike, b: NumLike) => bin('/', a, b);
export const mod = (a: NumLike, b: NumLike) => bin('%', a, b);
export const lt = (a: NumLike, b: NumLike) => bin('<', a, b);
export const le = (a: NumLike, b: NumLike) => bin('<=', a, b);
export const gt = (a: NumLike, b: NumLike) => bin('>', a, b);
export const ge = (a: NumLike, b: NumLike) => bin('>=', a, b);
export const eq = (a: NumLike, b: NumLike) => bin('==', a, b);
export const ne = (a: NumLike, b: NumLike) => bin('!=', a, b);
export const and = (a: Expr, b: Expr) => bin('&&', a, b);
export const or = (a: Expr, b: Expr) => bin('||', a, b);
export const bitAnd = (a: NumLike, b: NumLike) => bin('&', a, b);
export const bitOr = (a: NumLike, b: NumLike) => bin('|', a, b);
export const bitXor = (a: NumLike, b: NumLike) => bin('^', a, b);
export const shl = (a: Expr, b: NumLike) => bin('<<', a, typeof b === 'number' ? u32(b) : b);
export const shr = (a: Expr, b: NumLike) => bin('>>', a, typeof b === 'number' ? u32(b) : b);
export const not = (a: Expr): Expr => ({ k: 'not', t: 'bool', a });
export const neg = (a: Expr): Expr => ({ k: 'neg', t: a.t, a });

export function call(fn: CallFn, ...args: NumLike[]): Expr {
  const first = args.find((a): a is Expr => typeof a !== 'number');
  const t: Scalar = first?.t ?? 'f32';
  const es = args.map((a) => lift(a, t));
  return { k: 'call', t: fn === 'isnan' ? 'bool' : t, fn, args: es };
}
export const exp = (a: Expr) => call('exp', a);
export const log = (a: Expr) => call('log', a);
export const sqrt = (a: Expr) => call('sqrt', a);
export const abs = (a: Expr) => call('abs', a);
export const min = (a: NumLike, b: NumLike) => call('min', a, b);
export const max = (a: NumLike, b: NumLike) => call('max', a, b);

/** c ? a : b */
export function select(c: Expr, a: NumLike, b: NumLike): Expr {
  const t = typeof a !== 'number' ? a.t : typeof b !== 'number' ? b.t : 'f32';
  const ea = lift(a, t);
  const eb = lift(b, t);
  if (ea.t !== eb.t) throw new Error(`kernel: select on mismatched types ${ea.t} and ${eb.t}`);
  return { k: 'select', t, c, a: ea, b: eb };
}
export const cast = (t: Scalar, a: Expr): Expr => (a.t === t ? a : { k: 'cast', t, a });
export const bitcast = (t: Scalar, a: Expr): Expr => ({ k: 'bitcast', t, a });
export const load = (buf: BufRef, idx: Expr): Expr => ({ k: 'load', t: buf.t, buf, idx });

/** Collects statements; block helpers nest. Variable names get a unique suffix. */
export class KernelBuilder {
  private readonly stack: Stmt[][] = [[]];
  private readonly arrays: ArrayDecl[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  private emit(s: Stmt): void {
    (this.stack[this.stack.length - 1] as Stmt[]).push(s);
  }

  private fresh(base: string): string {
    return `${base}_${this.counter++}`;
  }

  /** Immutable binding. */
  let(base: string, init: Expr): Expr {
    const name = this.fresh(base);
    this.emit({ k: 'let', name, t: init.t, init, mut: false });
    return { k: 'var', t: init.t, name };
  }

  /** Mutable variable. */
  var(base: string, init: Expr): Expr {
    const name = this.fresh(base);
    this.emit({ k: 'let', name, t: init.t, init, mut: true });
    return { k: 'var', t: init.t, name };
  }

  assign(v: Expr, value: Expr): void {
    if (v.k !== 'var') throw new Error('kernel: assign to a non-variable');
    if (v.t !== value.t) throw new Error(`kernel: assign ${value.t} to ${v.t} variable ${v.name}`);
    this.emit({ k: 'assign', name: v.name, value });
  }

  store(buf: BufRef, idx: Expr, value: Expr): void {
    if (value.t !== buf.t) throw new Error(`kernel: store ${value.t} into ${buf.t} buffer ${buf.name}`);
    this.emit({ k: 'store', buf, idx, value });
  }

  /** Declares a workgroup-shared or private array; returns its name. */
  array(base: string, t: Scalar, size: number, space: 'workgroup' | 'private'): string {
    const name = this.fresh(base);
    this.arrays.push({ name, t, size, space });
    return name;
  }

  aload(arr: string, t: Scalar, idx: Expr): Expr {
    return { k: 'sload', t, arr, idx };
  }

  astore(arr: string, idx: Expr, value: Expr): void {
    this.emit({ k: 'sstore', arr, idx, value });
  }

  for(
    base: string,
    from: NumLike,
    to: NumLike,
    body: (i: Expr) => void,
    opts: { step?: number; t?: 'i32' | 'u32' } = {},
  ): void {
    const t = opts.t ?? 'i32';
    const v = this.fresh(base);
    this.stack.push([]);
    body({ k: 'var', t, name: v });
    const stmts = this.stack.pop() as Stmt[];
    this.emit({ k: 'for', v, t, from: lift(from, t), to: lift(to, t), step: opts.step ?? 1, body: stmts });
  }

  if(cond: Expr, then: () => void, otherwise?: () => void): void {
    this.stack.push([]);
    then();
    const t = this.stack.pop() as Stmt[];
    this.stack.push([]);
    otherwise?.();
    const e = this.stack.pop() as Stmt[];
    this.emit({ k: 'if', cond, then: t, else: e });
  }

  barrier(): void {
    this.emit({ k: 'barrier' });
  }
  ret(): void {
    this.emit({ k: 'return' });
  }
  brk(): void {
    this.emit({ k: 'break' });
  }

  finish(workgroupSize: readonly [number, number, number], grid: Kernel['grid']): Kernel {
    if (this.stack.length !== 1) throw new Error('kernel: unbalanced blocks');
    return { name: this.name, workgroupSize, grid, arrays: this.arrays, body: this.stack[0] as Stmt[] };
  }
}

/** Buffers a kernel reads and writes, in first-use order, with access modes. */
export function kernelBuffers(k: Kernel): { buf: BufRef; write: boolean }[] {
  const seen = new Map<string, { buf: BufRef; write: boolean }>();
  walkKernel(k, {
    // a statement is visited before its expressions: a store marks its buffer before the index is read
    stmt: (s) => {
      if (s.k !== 'store') return;
      const prev = seen.get(s.buf.name);
      if (prev) prev.write = true;
      else seen.set(s.buf.name, { buf: s.buf, write: true });
    },
    expr: (e) => {
      if (e.k === 'load' && !seen.has(e.buf.name)) seen.set(e.buf.name, { buf: e.buf, write: false });
    },
  });
  return [...seen.values()];
}

/** The run-time sizes a kernel's body reads, by key, in first-use order (its slots). */
export function kernelSizes(k: Kernel): SymDim[] {
  const seen = new Map<string, SymDim>();
  const note = (d: Dim) => {
    if (typeof d !== 'number' && !seen.has(d.key)) seen.set(d.key, d);
  };
  walkKernel(k, { expr: (e) => e.k === 'size' && note(e.dim) });
  return [...seen.values()];
}
