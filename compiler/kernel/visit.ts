/**
 * Generic traversals of kernel ASTs: `walkKernel` visits every expression and statement, `mapKernel`
 * rebuilds a kernel bottom-up through optional rewrite hooks. Every pass over kernels (buffer lists,
 * renaming, size slots) is written on these two, so a new node kind is handled in one place.
 */
import type { BufRef, Expr, Kernel, Stmt } from './ast.js';

/** Direct sub-expressions of an expression. */
export function childExprs(e: Expr): readonly Expr[] {
  switch (e.k) {
    case 'load':
    case 'sload':
      return [e.idx];
    case 'bin':
      return [e.a, e.b];
    case 'not':
    case 'neg':
    case 'cast':
    case 'bitcast':
      return [e.a];
    case 'call':
      return e.args;
    case 'select':
      return [e.c, e.a, e.b];
    default:
      return [];
  }
}

export interface KernelVisitor {
  /** Called for each expression before its children (pre-order). */
  expr?(e: Expr): void;
  /** Called for each statement before its expressions and nested statements. */
  stmt?(s: Stmt): void;
}

export function walkExpr(e: Expr, v: KernelVisitor): void {
  v.expr?.(e);
  for (const c of childExprs(e)) walkExpr(c, v);
}

function stmtExprs(s: Stmt): readonly Expr[] {
  switch (s.k) {
    case 'let':
      return [s.init];
    case 'assign':
      return [s.value];
    case 'store':
    case 'sstore':
      return [s.idx, s.value];
    case 'for':
      return [s.from, s.to];
    case 'if':
      return [s.cond];
    default:
      return [];
  }
}

export function walkStmts(list: readonly Stmt[], v: KernelVisitor): void {
  for (const s of list) {
    v.stmt?.(s);
    for (const e of stmtExprs(s)) walkExpr(e, v);
    if (s.k === 'for') walkStmts(s.body, v);
    else if (s.k === 'if') {
      walkStmts(s.then, v);
      walkStmts(s.else, v);
    }
  }
}

export function walkKernel(k: Kernel, v: KernelVisitor): void {
  walkStmts(k.body, v);
}

export interface KernelMapper {
  /** Rewrites an expression whose children are already mapped. */
  expr?(e: Expr): Expr;
  /** Renames a buffer reference (loads and stores). */
  buf?(b: BufRef): BufRef;
}

export function mapExpr(e: Expr, m: KernelMapper): Expr {
  let out: Expr;
  switch (e.k) {
    case 'load':
      out = { ...e, buf: m.buf ? m.buf(e.buf) : e.buf, idx: mapExpr(e.idx, m) };
      break;
    case 'sload':
      out = { ...e, idx: mapExpr(e.idx, m) };
      break;
    case 'bin':
      out = { ...e, a: mapExpr(e.a, m), b: mapExpr(e.b, m) };
      break;
    case 'not':
      out = { ...e, a: mapExpr(e.a, m) };
      break;
    case 'neg':
    case 'cast':
    case 'bitcast':
      out = { ...e, a: mapExpr(e.a, m) };
      break;
    case 'call':
      out = { ...e, args: e.args.map((a) => mapExpr(a, m)) };
      break;
    case 'select':
      out = { ...e, c: mapExpr(e.c, m), a: mapExpr(e.a, m), b: mapExpr(e.b, m) };
      break;
    default:
      out = e;
  }
  return m.expr ? m.expr(out) : out;
}

export function mapStmts(list: readonly Stmt[], m: KernelMapper): Stmt[] {
  return list.map((s): Stmt => {
    switch (s.k) {
      case 'let':
        return { ...s, init: mapExpr(s.init, m) };
      case 'assign':
        return { ...s, value: mapExpr(s.value, m) };
      case 'store':
        return { ...s, buf: m.buf ? m.buf(s.buf) : s.buf, idx: mapExpr(s.idx, m), value: mapExpr(s.value, m) };
      case 'sstore':
        return { ...s, idx: mapExpr(s.idx, m), value: mapExpr(s.value, m) };
      case 'for':
        return { ...s, from: mapExpr(s.from, m), to: mapExpr(s.to, m), body: mapStmts(s.body, m) };
      case 'if':
        return { ...s, cond: mapExpr(s.cond, m), then: mapStmts(s.then, m), else: mapStmts(s.else, m) };
      default:
        return s;
    }
  });
}

export function mapKernel(k: Kernel, m: KernelMapper): Kernel {
  return { ...k, body: mapStmts(k.body, m) };
}
