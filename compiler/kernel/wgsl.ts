/** Renders a target-neutral Kernel as WGSL. Thin on purpose: syntax only, no decisions. */
import type { Expr, Kernel, Scalar, Stmt } from './ast.js';
import { kernelBuffers } from './build.js';

const wgslType = (t: Scalar): string => t;

function f32Literal(v: number): string {
  // WGSL constant expressions cannot be NaN or infinite: read the bits from private variables.
  if (Number.isNaN(v)) return 'bitcast<f32>(wgf_nan)';
  const f = Math.fround(v);
  if (!Number.isFinite(f)) return f > 0 ? 'bitcast<f32>(wgf_pinf)' : 'bitcast<f32>(wgf_ninf)';
  let s = String(f);
  if (!/[.e]/.test(s)) s += '.0';
  s += 'f';
  return f < 0 || Object.is(f, -0) ? `(${Object.is(f, -0) ? '-0.0f' : s})` : s;
}

function literal(t: Scalar, v: number): string {
  switch (t) {
    case 'f32':
      return f32Literal(v);
    case 'i32':
      if (v === -2147483648) return '(-2147483647i - 1i)';
      return v < 0 ? `(${v}i)` : `${v}i`;
    case 'u32':
      return `${v}u`;
    case 'bool':
      return v ? 'true' : 'false';
  }
}

const builtinText: Record<string, string> = {
  wg_linear: '(wid.x + wid.y * nwg.x)',
  wg_x: 'wid.x',
  wg_y: 'wid.y',
  wg_z: 'wid.z',
  lid_x: 'lid.x',
  lid_y: 'lid.y',
  lid_z: 'lid.z',
  lidx: 'lidx',
};

/** On 1-D workgroups local_invocation_index equals lid.x; lavapipe computes lidx with per-lane divides. */
let oneDimensional = false;

export function renderExpr(e: Expr): string {
  switch (e.k) {
    case 'lit':
      return literal(e.t, e.v);
    case 'var':
      return e.name;
    case 'load':
      return `${e.buf.name}[${renderExpr(e.idx)}]`;
    case 'sload':
      return `${e.arr}[${renderExpr(e.idx)}]`;
    case 'bin':
      return `(${renderExpr(e.a)} ${e.op} ${renderExpr(e.b)})`;
    case 'not':
      return `(!${renderExpr(e.a)})`;
    case 'neg':
      return `(-${renderExpr(e.a)})`;
    case 'call': {
      const args = e.args.map(renderExpr);
      if (e.fn === 'isnan') return `((bitcast<u32>(${args[0]}) & 0x7fffffffu) > 0x7f800000u)`;
      // tanh overflows to NaN for large |x| on some drivers; it is ±1 in f32 past |x| = 10.
      if (e.fn === 'tanh') return `tanh(clamp(${args[0]}, -10.0f, 10.0f))`;
      return `${e.fn}(${args.join(', ')})`;
    }
    case 'select':
      return `select(${renderExpr(e.b)}, ${renderExpr(e.a)}, ${renderExpr(e.c)})`;
    case 'cast':
      return `${wgslType(e.t)}(${renderExpr(e.a)})`;
    case 'bitcast':
      return `bitcast<${wgslType(e.t)}>(${renderExpr(e.a)})`;
    case 'builtin':
      return e.name === 'lidx' && oneDimensional ? 'lid.x' : (builtinText[e.name] as string);
  }
}

function renderStmts(stmts: readonly Stmt[], indent: string, out: string[]): void {
  for (const s of stmts) {
    switch (s.k) {
      case 'let':
        out.push(`${indent}${s.mut ? 'var' : 'let'} ${s.name}: ${wgslType(s.t)} = ${renderExpr(s.init)};`);
        break;
      case 'assign':
        out.push(`${indent}${s.name} = ${renderExpr(s.value)};`);
        break;
      case 'store':
        out.push(`${indent}${s.buf.name}[${renderExpr(s.idx)}] = ${renderExpr(s.value)};`);
        break;
      case 'sstore':
        out.push(`${indent}${s.arr}[${renderExpr(s.idx)}] = ${renderExpr(s.value)};`);
        break;
      case 'for': {
        const step = s.t === 'u32' ? `${s.step}u` : `${s.step}i`;
        out.push(
          `${indent}for (var ${s.v}: ${s.t} = ${renderExpr(s.from)}; ${s.v} < ${renderExpr(s.to)}; ${s.v} += ${step}) {`,
        );
        renderStmts(s.body, `${indent}  `, out);
        out.push(`${indent}}`);
        break;
      }
      case 'if':
        out.push(`${indent}if (${renderExpr(s.cond)}) {`);
        renderStmts(s.then, `${indent}  `, out);
        if (s.else.length > 0) {
          out.push(`${indent}} else {`);
          renderStmts(s.else, `${indent}  `, out);
        }
        out.push(`${indent}}`);
        break;
      case 'barrier':
        out.push(`${indent}workgroupBarrier();`);
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

/** WGSL source; bindings are numbered in the order kernelBuffers() lists them. */
export function renderWgsl(k: Kernel): string {
  const out: string[] = [`// kernel ${k.name}`];
  kernelBuffers(k).forEach(({ buf, write }, i) => {
    out.push(
      `@group(0) @binding(${i}) var<storage, ${write ? 'read_write' : 'read'}> ${buf.name}: array<${wgslType(buf.t)}>;`,
    );
  });
  out.push('var<private> wgf_nan: u32 = 0x7fc00000u;');
  out.push('var<private> wgf_pinf: u32 = 0x7f800000u;');
  out.push('var<private> wgf_ninf: u32 = 0xff800000u;');
  for (const a of k.arrays) {
    if (a.space === 'workgroup') out.push(`var<workgroup> ${a.name}: array<${wgslType(a.t)}, ${a.size}>;`);
  }
  const [x, y, z] = k.workgroupSize;
  oneDimensional = y === 1 && z === 1;
  out.push(`@compute @workgroup_size(${x}, ${y}, ${z})`);
  out.push(
    'fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {',
  );
  // private arrays live in function scope (registers where the driver can)
  for (const a of k.arrays) {
    if (a.space === 'private') out.push(`  var ${a.name}: array<${wgslType(a.t)}, ${a.size}>;`);
  }
  renderStmts(k.body, '  ', out);
  out.push('}');
  return `${out.join('\n')}\n`;
}
