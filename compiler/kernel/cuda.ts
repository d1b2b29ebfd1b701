/**
 * Renders a target-neutral Kernel as CUDA C (one `extern "C" __global__` function), from the same AST
 * the WGSL renderer reads. Syntax and WGSL semantics only, no decisions:
 * - one pointer parameter per binding, in kernelBuffers() order (= WGSL binding order), `const` when
 *   the kernel only reads it, `__restrict__` (the compiler binds each physical buffer once per kernel);
 * - WGSL's wrapping i32 arithmetic (C's signed overflow is undefined) goes through unsigned helpers;
 *   shifts take the amount mod 32; integer division and remainder by a non-constant divisor use
 *   WGSL's results for x/0 and INT_MIN/-1; f32 → i32/u32 conversions saturate (`__float2int_rz`);
 * - NaN and ±inf literals are bit patterns; isnan is a bit test (immune to fast-math);
 * - `wg_linear` = blockIdx.x + blockIdx.y * gridDim.x, the 2-D folding the WGSL renderer reads;
 * - workgroup arrays → `__shared__`, private arrays → locals; both start zeroed as WGSL's do;
 *   workgroupBarrier → __syncthreads.
 * Out-of-bounds accesses are not clamped: WGSL's robust buffer access has no CUDA equivalent, so the
 * kernels must bounds-check (they do by construction; nothing here adds checks).
 */
import type { ArrayDecl, BinOp, Expr, Kernel, Scalar } from './ast.js';
import { kernelBuffers, kernelSizes } from './build.js';
import { CStyleRenderer, localSlots, type SizeSlots } from './render-c.js';

/** The parameter holding a kernel's run-time sizes (u32, in kernelSizes() order), after the buffers. */
export const CUDA_SIZES = 'wgf_sizes';

/** Helpers every generated kernel file includes (kernels/wgflow_cuda.h in an artifact). */
export const CUDA_PRELUDE = `// wgflow CUDA helpers: WGSL semantics for the generated kernels.
#pragma once
#define WGF_NAN __uint_as_float(0x7fc00000u)
#define WGF_PINF __uint_as_float(0x7f800000u)
#define WGF_NINF __uint_as_float(0xff800000u)
// i32 arithmetic wraps in WGSL; signed overflow is undefined in C.
static __device__ __forceinline__ int wgf_iadd(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
static __device__ __forceinline__ int wgf_isub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
static __device__ __forceinline__ int wgf_imul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
static __device__ __forceinline__ int wgf_ineg(int a) { return (int)(0u - (unsigned)a); }
static __device__ __forceinline__ int wgf_iabs(int a) { return a < 0 ? wgf_ineg(a) : a; }
static __device__ __forceinline__ int wgf_ishl(int a, unsigned s) { return (int)((unsigned)a << (s & 31u)); }
// WGSL: x / 0 = x, INT_MIN / -1 = INT_MIN; x % 0 = 0, INT_MIN % -1 = 0.
static __device__ __forceinline__ int wgf_idiv(int a, int b) {
  return (b == 0 || (a == (-2147483647 - 1) && b == -1)) ? a : a / b;
}
static __device__ __forceinline__ int wgf_imod(int a, int b) {
  return (b == 0 || (a == (-2147483647 - 1) && b == -1)) ? 0 : a % b;
}
static __device__ __forceinline__ unsigned wgf_udiv(unsigned a, unsigned b) { return b == 0u ? a : a / b; }
static __device__ __forceinline__ unsigned wgf_umod(unsigned a, unsigned b) { return b == 0u ? 0u : a % b; }
static __device__ __forceinline__ bool wgf_isnan(float x) { return (__float_as_uint(x) & 0x7fffffffu) > 0x7f800000u; }
static __device__ __forceinline__ float wgf_fsign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); }
static __device__ __forceinline__ int wgf_isign(int x) { return (x > 0) - (x < 0); }
`;

const cType: Record<Scalar, string> = { f32: 'float', i32: 'int', u32: 'unsigned int', bool: 'bool' };

/** C/C++/CUDA words that are valid WGSL identifiers; such names get a prefix. */
const RESERVED = new Set(
  (
    'auto bool break case catch char class const constexpr continue default delete do double else enum explicit ' +
    'extern false float for friend goto if inline int long mutable namespace new operator private protected public ' +
    'register restrict return short signed sizeof static struct switch template this throw true try typedef ' +
    'typename union unsigned using virtual void volatile while asm decltype noexcept nullptr alignas alignof ' +
    'threadIdx blockIdx blockDim gridDim warpSize min max abs fabsf NULL main'
  ).split(' '),
);

/** A valid, non-reserved C identifier for a WGSL name. */
export function cIdent(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`CUDA renderer: invalid identifier "${name}"`);
  return RESERVED.has(name) || name.startsWith('__') || name.startsWith('wgf_') ? `wgv_${name}` : name;
}

function f32Literal(v: number): string {
  if (Number.isNaN(v)) return 'WGF_NAN';
  const f = Math.fround(v);
  if (!Number.isFinite(f)) return f > 0 ? 'WGF_PINF' : 'WGF_NINF';
  if (Object.is(f, -0)) return '(-0.0f)';
  let s = String(f);
  if (!/[.e]/.test(s)) s += '.0';
  return f < 0 ? `(${s}f)` : `${s}f`;
}

function literal(t: Scalar, v: number): string {
  switch (t) {
    case 'f32':
      return f32Literal(v);
    case 'i32':
      if (v === -2147483648) return '(-2147483647 - 1)';
      return v < 0 ? `(${v})` : `${v}`;
    case 'u32':
      return `${v}u`;
    case 'bool':
      return v ? 'true' : 'false';
  }
}

const isLit = (e: Expr, ok: (v: number) => boolean): boolean => e.k === 'lit' && ok(e.v);

export interface CudaParam {
  /** C identifier of the parameter (the buffer's logical name as bound). */
  readonly name: string;
  readonly t: Exclude<Scalar, 'bool'>;
  readonly write: boolean;
}

export interface CudaKernel {
  /** The AST kernel's name (e.g. k12_conv2d_add). */
  readonly kernel: string;
  /** The `extern "C"` function name: the kernel's name plus a hash of its source (unique per body). */
  readonly function: string;
  /** The function's text; it needs CUDA_PRELUDE included before it. */
  readonly source: string;
  /** One pointer per binding, in binding order. */
  readonly params: readonly CudaParam[];
  /** Threads per block (the WGSL workgroup size). */
  readonly block: readonly [number, number, number];
  /** Run-time sizes the kernel reads: when > 0, a last parameter points to them (CUDA_SIZES). */
  readonly sizes: number;
}

/** 32-bit FNV-1a of a string, 8 hex digits. */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** Name placeholder replaced by the final function name once the body's hash is known. */
const NAME_SLOT = '@@WGF_FUNCTION@@';

/** CUDA C syntax and WGSL's integer semantics on the shared C-style visitor. */
class CudaRenderer extends CStyleRenderer {
  constructor(
    sizes: SizeSlots,
    private readonly block: readonly [number, number, number],
  ) {
    super(sizes);
  }

  protected literal(t: Scalar, v: number): string {
    return literal(t, v);
  }
  protected ident(name: string): string {
    return cIdent(name);
  }
  protected size(slot: number): string {
    return `${CUDA_SIZES}[${slot}]`;
  }
  protected select(c: string, a: string, b: string): string {
    return `(${c} ? ${a} : ${b})`;
  }
  protected declare(name: string, t: Scalar, init: string, mutable: boolean): string {
    return `${mutable ? '' : 'const '}${cType[t]} ${cIdent(name)} = ${init};`;
  }
  protected forHeader(v: string, t: 'i32' | 'u32', from: string, to: string, step: number): string {
    return `for (${cType[t]} ${v} = ${from}; ${v} < ${to}; ${v} += ${step}${t === 'u32' ? 'u' : ''})`;
  }
  protected barrier(): string {
    return '__syncthreads();';
  }
  protected override neg(e: Extract<Expr, { k: 'neg' }>, a: string): string {
    return e.t === 'i32' ? `wgf_ineg(${a})` : `(-${a})`;
  }

  builtin(name: string): string {
    const [x, y] = this.block;
    switch (name) {
      case 'wg_linear':
        return '(blockIdx.x + blockIdx.y * gridDim.x)';
      case 'wg_x':
        return 'blockIdx.x';
      case 'wg_y':
        return 'blockIdx.y';
      case 'wg_z':
        return 'blockIdx.z';
      case 'lid_x':
        return 'threadIdx.x';
      case 'lid_y':
        return 'threadIdx.y';
      case 'lid_z':
        return 'threadIdx.z';
      case 'lidx':
        return this.block[1] === 1 && this.block[2] === 1
          ? 'threadIdx.x'
          : `(threadIdx.x + threadIdx.y * ${x}u + threadIdx.z * ${x * y}u)`;
      default:
        throw new Error(`CUDA renderer: unknown builtin ${name}`);
    }
  }

  protected override bin(e: Extract<Expr, { k: 'bin' }>, a: string, b: string): string {
    const t = e.a.t;
    const op: BinOp = e.op;
    if (t === 'i32') {
      if (op === '+') return `wgf_iadd(${a}, ${b})`;
      if (op === '-') return `wgf_isub(${a}, ${b})`;
      if (op === '*') return `wgf_imul(${a}, ${b})`;
      if (op === '/') return isLit(e.b, (v) => v !== 0 && v !== -1) ? `(${a} / ${b})` : `wgf_idiv(${a}, ${b})`;
      if (op === '%') return isLit(e.b, (v) => v !== 0 && v !== -1) ? `(${a} % ${b})` : `wgf_imod(${a}, ${b})`;
      if (op === '<<') return `wgf_ishl(${a}, ${this.shiftAmount(e.b, b)})`;
      if (op === '>>') return `(${a} >> ${this.shiftAmount(e.b, b)})`;
    }
    if (t === 'u32') {
      if (op === '/') return isLit(e.b, (v) => v !== 0) ? `(${a} / ${b})` : `wgf_udiv(${a}, ${b})`;
      if (op === '%') return isLit(e.b, (v) => v !== 0) ? `(${a} % ${b})` : `wgf_umod(${a}, ${b})`;
      if (op === '<<' || op === '>>') return `(${a} ${op} ${this.shiftAmount(e.b, b)})`;
    }
    if (t === 'f32' && op === '%') return `fmodf(${a}, ${b})`;
    if (t === 'f32' && (op === '&' || op === '|' || op === '^' || op === '<<' || op === '>>'))
      throw new Error(`CUDA renderer: '${op}' on f32`);
    return `(${a} ${op} ${b})`;
  }

  /** WGSL takes a non-constant shift amount mod 32; C leaves shifts ≥ 32 undefined. */
  private shiftAmount(e: Expr, text: string): string {
    if (e.k === 'lit') {
      if (e.v < 0 || e.v > 31) throw new Error(`CUDA renderer: constant shift by ${e.v}`);
      return `${e.v}u`;
    }
    return e.t === 'u32' ? `(${text} & 31u)` : `((unsigned)${text} & 31u)`;
  }

  protected call(e: Extract<Expr, { k: 'call' }>, args: readonly string[]): string {
    const [a, b, c] = args;
    const t = e.args[0]?.t ?? 'f32';
    const float = t === 'f32';
    switch (e.fn) {
      case 'exp':
      case 'log':
      case 'sqrt':
      case 'pow':
      case 'tanh':
      case 'floor':
      case 'ceil':
      case 'trunc':
      case 'sin':
      case 'cos':
        if (!float) throw new Error(`CUDA renderer: ${e.fn} on ${t}`);
        return `${e.fn}f(${args.join(', ')})`;
      case 'fma':
        return `fmaf(${a}, ${b}, ${c})`;
      case 'abs':
        return float ? `fabsf(${a})` : t === 'i32' ? `wgf_iabs(${a})` : `${a}`;
      case 'min':
        return float ? `fminf(${a}, ${b})` : `min(${a}, ${b})`;
      case 'max':
        return float ? `fmaxf(${a}, ${b})` : `max(${a}, ${b})`;
      case 'clamp':
        return float ? `fminf(fmaxf(${a}, ${b}), ${c})` : `min(max(${a}, ${b}), ${c})`;
      case 'sign':
        return float ? `wgf_fsign(${a})` : t === 'i32' ? `wgf_isign(${a})` : `((${a}) > 0u ? 1u : 0u)`;
      case 'isnan':
        return `wgf_isnan(${a})`;
    }
  }

  protected cast(to: Scalar, from: Scalar, a: string): string {
    if (to === from) return a;
    if (from === 'bool') {
      const one = to === 'f32' ? '1.0f' : to === 'u32' ? '1u' : '1';
      const zero = to === 'f32' ? '0.0f' : to === 'u32' ? '0u' : '0';
      return `((${a}) ? ${one} : ${zero})`;
    }
    if (to === 'bool') return from === 'f32' ? `((${a}) != 0.0f)` : `((${a}) != 0)`;
    if (from === 'f32') return to === 'i32' ? `__float2int_rz(${a})` : `__float2uint_rz(${a})`;
    return `((${cType[to]})(${a}))`;
  }

  protected bitcast(to: Scalar, from: Scalar, a: string): string {
    if (to === from) return a;
    if (to === 'bool' || from === 'bool') throw new Error('CUDA renderer: bitcast of bool');
    if (from === 'f32') return to === 'i32' ? `__float_as_int(${a})` : `__float_as_uint(${a})`;
    if (to === 'f32') return from === 'i32' ? `__int_as_float(${a})` : `__uint_as_float(${a})`;
    return `((${cType[to]})(${a}))`;
  }
}

const ZERO: Record<Scalar, string> = { f32: '0.0f', i32: '0', u32: '0u', bool: 'false' };

/** WGSL zero-initializes workgroup memory (Dawn does, by default): the block clears it first. */
function zeroShared(arrays: readonly ArrayDecl[], threads: number, lidx: string, out: string[]): void {
  const shared = arrays.filter((a) => a.space === 'workgroup');
  if (shared.length === 0) return;
  for (const a of shared) {
    const n = cIdent(a.name);
    out.push(
      `  for (unsigned int wgf_i = ${lidx}; wgf_i < ${a.size}u; wgf_i += ${threads}u) ${n}[wgf_i] = ${ZERO[a.t]};`,
    );
  }
  out.push('  __syncthreads();');
}

/** CUDA C for one kernel (see the file comment); the function name carries a hash of the body. */
export function renderCuda(k: Kernel): CudaKernel {
  const [x, y, z] = k.workgroupSize;
  const threads = x * y * z;
  if (threads < 1 || threads > 1024)
    throw new Error(`CUDA renderer: kernel ${k.name} has ${threads} threads per block`);
  const sizes = kernelSizes(k).map((d) => d.key);
  const r = new CudaRenderer(localSlots(sizes), k.workgroupSize);
  const params: CudaParam[] = kernelBuffers(k).map(({ buf, write }) => ({ name: cIdent(buf.name), t: buf.t, write }));
  const name = k.name.replace(/[^A-Za-z0-9_]/g, '_');
  const out: string[] = [`// wgflow kernel ${name}: block (${x}, ${y}, ${z})`];
  const plist = [
    ...params.map((p) => `${p.write ? '' : 'const '}${cType[p.t]}* __restrict__ ${p.name}`),
    ...(sizes.length > 0 ? [`const unsigned int* __restrict__ ${CUDA_SIZES}`] : []),
  ].join(', ');
  out.push(`extern "C" __global__ void __launch_bounds__(${threads}) ${NAME_SLOT}(${plist}) {`);
  for (const a of k.arrays) {
    const n = cIdent(a.name);
    if (a.space === 'workgroup') out.push(`  __shared__ ${cType[a.t]} ${n}[${a.size}];`);
    else out.push(`  ${cType[a.t]} ${n}[${a.size}] = {};`);
  }
  zeroShared(k.arrays, threads, r.builtin('lidx'), out);
  r.stmts(k.body, '  ', out);
  out.push('}');
  const body = `${out.join('\n')}\n`;
  const fn = `${/^[A-Za-z]/.test(name) ? '' : 'k'}${name}_${fnv1a(body)}`;
  return {
    kernel: k.name,
    function: fn,
    source: body.replace(NAME_SLOT, fn),
    params,
    block: [x, y, z],
    sizes: sizes.length,
  };
}
