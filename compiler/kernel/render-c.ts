/**
 * The one visitor both renderers share: C-style syntax (expressions in parentheses, `if`, `for`,
 * assignments, indexing) walked once here; a target supplies only what differs: literal and type
 * spellings, declarations, builtins, calls, casts and the integer-arithmetic rules it needs.
 */
import type { BinOp, Expr, Scalar, Stmt } from './ast.js';

/** Where the renderer finds a run-time size: the kernel's local slot of each size key. */
export interface SizeSlots {
  slotOf(key: string): number;
}

export abstract class CStyleRenderer {
  constructor(protected readonly sizes: SizeSlots) {}

  protected abstract literal(t: Scalar, v: number): string;
  protected abstract ident(name: string): string;
  protected abstract builtin(name: string): string;
  /** The text of a run-time size in its slot. */
  protected abstract size(slot: number): string;
  protected abstract call(e: Extract<Expr, { k: 'call' }>, args: readonly string[]): string;
  protected abstract cast(to: Scalar, from: Scalar, a: string): string;
  protected abstract bitcast(to: Scalar, from: Scalar, a: string): string;
  protected abstract select(c: string, a: string, b: string): string;
  protected abstract declare(name: string, t: Scalar, init: string, mutable: boolean): string;
  protected abstract forHeader(v: string, t: 'i32' | 'u32', from: string, to: string, step: number): string;
  protected abstract barrier(): string;

  /** A binary operation; targets override it for their arithmetic rules (default: `(a op b)`). */
  protected bin(e: Extract<Expr, { k: 'bin' }>, a: string, b: string): string {
    return `(${a} ${e.op as BinOp} ${b})`;
  }

  protected neg(e: Extract<Expr, { k: 'neg' }>, a: string): string {
    void e;
    return `(-${a})`;
  }

  expr(e: Expr): string {
    switch (e.k) {
      case 'lit':
        return this.literal(e.t, e.v);
      case 'var':
        return this.ident(e.name);
      case 'load':
        return `${this.ident(e.buf.name)}[${this.expr(e.idx)}]`;
      case 'sload':
        return `${this.ident(e.arr)}[${this.expr(e.idx)}]`;
      case 'bin':
        return this.bin(e, this.expr(e.a), this.expr(e.b));
      case 'not':
        return `(!${this.expr(e.a)})`;
      case 'neg':
        return this.neg(e, this.expr(e.a));
      case 'call':
        return this.call(
          e,
          e.args.map((a) => this.expr(a)),
        );
      case 'select':
        return this.select(this.expr(e.c), this.expr(e.a), this.expr(e.b));
      case 'cast':
        return this.cast(e.t, e.a.t, this.expr(e.a));
      case 'bitcast':
        return this.bitcast(e.t, e.a.t, this.expr(e.a));
      case 'builtin':
        return this.builtin(e.name);
      case 'size':
        return this.size(this.sizes.slotOf(e.dim.key));
    }
  }

  stmts(list: readonly Stmt[], indent: string, out: string[]): void {
    for (const s of list) {
      switch (s.k) {
        case 'let':
          out.push(`${indent}${this.declare(s.name, s.t, this.expr(s.init), s.mut)}`);
          break;
        case 'assign':
          out.push(`${indent}${this.ident(s.name)} = ${this.expr(s.value)};`);
          break;
        case 'store':
          out.push(`${indent}${this.ident(s.buf.name)}[${this.expr(s.idx)}] = ${this.expr(s.value)};`);
          break;
        case 'sstore':
          out.push(`${indent}${this.ident(s.arr)}[${this.expr(s.idx)}] = ${this.expr(s.value)};`);
          break;
        case 'for':
          out.push(`${indent}${this.forHeader(this.ident(s.v), s.t, this.expr(s.from), this.expr(s.to), s.step)} {`);
          this.stmts(s.body, `${indent}  `, out);
          out.push(`${indent}}`);
          break;
        case 'if':
          out.push(`${indent}if (${this.expr(s.cond)}) {`);
          this.stmts(s.then, `${indent}  `, out);
          if (s.else.length > 0) {
            out.push(`${indent}} else {`);
            this.stmts(s.else, `${indent}  `, out);
          }
          out.push(`${indent}}`);
          break;
        case 'barrier':
          out.push(`${indent}${this.barrier()}`);
          break;
        case 'break':
          out.push(`${indent}break;`);
          break;
        case 'continue':
          out.push(`${indent}continue;`);
          break;
        case 'return':
          out.push(`${indent}return;`);
          break;
      }
    }
  }
}

/** Slots in the order of `keys` (a kernel's kernelSizes()). */
export function localSlots(keys: readonly string[]): SizeSlots {
  const m = new Map(keys.map((k, i) => [k, i]));
  return {
    slotOf: (key) => {
      const s = m.get(key);
      if (s === undefined) throw new Error(`internal: run-time size ${key} has no slot in this kernel`);
      return s;
    },
  };
}
