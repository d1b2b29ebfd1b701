/** Renames buffers in a kernel AST (used when two logical buffers share one physical buffer). */
import type { BufRef, Expr, Kernel, Stmt } from './ast.js';

export function renameBuffers(k: Kernel, rename: (name: string) => string): Kernel {
  const b = (buf: BufRef): BufRef => ({ name: rename(buf.name), t: buf.t });
  const e = (x: Expr): Expr => {
    switch (x.k) {
      case 'load':
        return { ...x, buf: b(x.buf), idx: e(x.idx) };
      case 'sload':
        return { ...x, idx: e(x.idx) };
      case 'bin':
        return { ...x, a: e(x.a), b: e(x.b) };
      case 'not':
        return { ...x, a: e(x.a) };
      case 'neg':
      case 'cast':
      case 'bitcast':
        return { ...x, a: e(x.a) };
      case 'call':
        return { ...x, args: x.args.map(e) };
      case 'select':
        return { ...x, c: e(x.c), a: e(x.a), b: e(x.b) };
      default:
        return x;
    }
  };
  const s = (st: Stmt): Stmt => {
    switch (st.k) {
      case 'let':
        return { ...st, init: e(st.init) };
      case 'assign':
        return { ...st, value: e(st.value) };
      case 'store':
        return { ...st, buf: b(st.buf), idx: e(st.idx), value: e(st.value) };
      case 'sstore':
        return { ...st, idx: e(st.idx), value: e(st.value) };
      case 'for':
        return { ...st, from: e(st.from), to: e(st.to), body: st.body.map(s) };
      case 'if':
        return { ...st, cond: e(st.cond), then: st.then.map(s), else: st.else.map(s) };
      default:
        return st;
    }
  };
  return { ...k, body: k.body.map(s) };
}
