/** Renders a target-neutral Kernel as WGSL. Thin on purpose: syntax only, no decisions. */
import type { Expr, Kernel, Scalar } from './ast.js';
import { kernelBuffers, kernelSizes } from './build.js';
import { CStyleRenderer, localSlots, type SizeSlots } from './render-c.js';

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

/** WGSL syntax on the shared C-style visitor. */
class WgslRenderer extends CStyleRenderer {
  constructor(
    sizes: SizeSlots,
    /** On 1-D workgroups local_invocation_index equals lid.x; lavapipe computes lidx with per-lane divides. */
    private readonly oneDimensional: boolean,
  ) {
    super(sizes);
  }
  protected literal(t: Scalar, v: number): string {
    return literal(t, v);
  }
  protected ident(name: string): string {
    return name;
  }
  protected builtin(name: string): string {
    return name === 'lidx' && this.oneDimensional ? 'lid.x' : (builtinText[name] as string);
  }
  protected size(slot: number): string {
    return `${SIZES}[${slot >> 2}].${'xyzw'[slot & 3]}`;
  }
  protected call(e: Extract<Expr, { k: 'call' }>, args: readonly string[]): string {
    if (e.fn === 'isnan') return `((bitcast<u32>(${args[0]}) & 0x7fffffffu) > 0x7f800000u)`;
    // tanh overflows to NaN for large |x| on some drivers; it is ±1 in f32 past |x| = 10.
    if (e.fn === 'tanh') return `tanh(clamp(${args[0]}, -10.0f, 10.0f))`;
    return `${e.fn}(${args.join(', ')})`;
  }
  protected cast(to: Scalar, _from: Scalar, a: string): string {
    return `${wgslType(to)}(${a})`;
  }
  protected bitcast(to: Scalar, _from: Scalar, a: string): string {
    return `bitcast<${wgslType(to)}>(${a})`;
  }
  protected select(c: string, a: string, b: string): string {
    return `select(${b}, ${a}, ${c})`;
  }
  protected declare(name: string, t: Scalar, init: string, mutable: boolean): string {
    return `${mutable ? 'var' : 'let'} ${name}: ${wgslType(t)} = ${init};`;
  }
  protected forHeader(v: string, t: 'i32' | 'u32', from: string, to: string, step: number): string {
    return `for (var ${v}: ${t} = ${from}; ${v} < ${to}; ${v} += ${step}${t === 'u32' ? 'u' : 'i'})`;
  }
  protected barrier(): string {
    return 'workgroupBarrier();';
  }
}

/** The uniform block of a kernel's run-time sizes (4 per vec4). */
const SIZES = 'wgf_sizes';

/** One expression as WGSL (kernels without run-time sizes; for tests and diagnostics). */
export function renderExpr(e: Expr): string {
  return new WgslRenderer(localSlots([]), false).expr(e);
}

/**
 * WGSL source; storage bindings are numbered in the order kernelBuffers() lists them, and a kernel
 * that reads run-time sizes binds them as one uniform array after them, in kernelSizes() order.
 */
export function renderWgsl(k: Kernel): string {
  const out: string[] = [`// kernel ${k.name}`];
  const bufs = kernelBuffers(k);
  bufs.forEach(({ buf, write }, i) => {
    out.push(
      `@group(0) @binding(${i}) var<storage, ${write ? 'read_write' : 'read'}> ${buf.name}: array<${wgslType(buf.t)}>;`,
    );
  });
  const sizes = kernelSizes(k).map((d) => d.key);
  if (sizes.length > 0)
    out.push(
      `@group(0) @binding(${bufs.length}) var<uniform> ${SIZES}: array<vec4<u32>, ${Math.ceil(sizes.length / 4)}>;`,
    );
  out.push('var<private> wgf_nan: u32 = 0x7fc00000u;');
  out.push('var<private> wgf_pinf: u32 = 0x7f800000u;');
  out.push('var<private> wgf_ninf: u32 = 0xff800000u;');
  for (const a of k.arrays) {
    if (a.space === 'workgroup') out.push(`var<workgroup> ${a.name}: array<${wgslType(a.t)}, ${a.size}>;`);
  }
  const [x, y, z] = k.workgroupSize;
  const r = new WgslRenderer(localSlots(sizes), y === 1 && z === 1);
  out.push(`@compute @workgroup_size(${x}, ${y}, ${z})`);
  out.push(
    'fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {',
  );
  // private arrays live in function scope (registers where the driver can)
  for (const a of k.arrays) {
    if (a.space === 'private') out.push(`  var ${a.name}: array<${wgslType(a.t)}, ${a.size}>;`);
  }
  r.stmts(k.body, '  ', out);
  out.push('}');
  return `${out.join('\n')}\n`;
}
