/**
 * The CUDA renderer against its WGSL twin. Structure: for every kernel of frcnn-small (inference and a
 * training step) and of the op zoo, the CUDA function's pointer parameters equal the WGSL bindings
 * (order, names, element types, read-only ↔ const), the block equals @workgroup_size, the launch grid
 * covers the kernel's workgroups (folded 2-D grids read as blockIdx.x + blockIdx.y·gridDim.x exactly
 * where WGSL reads wid.x + wid.y·nwg.x), and both texts have the same accesses per buffer, the same
 * barriers, loops, branches and arrays. Targeted tests pin WGSL semantics in C: wrapping i32
 * arithmetic, division by zero, shifts, NaN/inf literals, select, casts and bitcasts, builtins.
 */
import { describe, expect, it } from 'vitest';
import { renderCudaProgram } from '../compiler/cuda-artifact.js';
import type { CallFn, Expr, Kernel } from '../compiler/kernel/ast.js';
import {
  add,
  bitcast,
  builtin,
  cast,
  div,
  f32,
  i32,
  KernelBuilder,
  load,
  lt,
  mod,
  mul,
  neg,
  select,
  shl,
  shr,
  sub,
  u32,
} from '../compiler/kernel/build.js';
import { cIdent, renderCuda } from '../compiler/kernel/cuda.js';
import { renderWgsl } from '../compiler/kernel/wgsl.js';
import { launchOf } from '../runtime/cuda/launch.js';
import type { KernelSpec } from '../runtime/program.js';
import { foldedGrids, frcnnSmallInference, frcnnSmallTraining, opZoo, type TestProgram } from './cuda-programs.js';

// ---------------------------------------------------------------- parsing both texts

interface Shape {
  readonly bindings: { name: string; t: string; write: boolean }[];
  readonly block: number[];
  readonly barriers: number;
  readonly shared: string[];
  readonly private: string[];
  readonly foldedGrid: number;
  readonly accesses: Record<string, number>;
  readonly loops: number;
  readonly branches: number;
  readonly exits: number;
}

const count = (s: string, needle: string) => s.split(needle).length - 1;
const CTYPE: Record<string, string> = { float: 'f32', int: 'i32', 'unsigned int': 'u32', bool: 'bool' };

function accessesOf(text: string, names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (text.match(new RegExp(`\\b${n}\\[`, 'g')) ?? []).length;
  return out;
}

function wgslShape(w: string): Shape {
  const bindings = [...w.matchAll(/@binding\((\d+)\) var<storage, (read|read_write)> (\w+): array<(\w+)>;/g)].map(
    (m) => ({ name: m[3] as string, t: m[4] as string, write: m[2] === 'read_write' }),
  );
  const ws = /@workgroup_size\((\d+), (\d+), (\d+)\)/.exec(w);
  const body = w.slice(w.indexOf('fn main('));
  const shared = [...w.matchAll(/var<workgroup> (\w+): array<(\w+), (\d+)>;/g)].map((m) => `${m[2]} ${m[1]}[${m[3]}]`);
  const priv = [...body.matchAll(/^ {2}var (\w+): array<(\w+), (\d+)>;/gm)].map((m) => `${m[2]} ${m[1]}[${m[3]}]`);
  const names = [
    ...bindings.map((b) => b.name),
    ...[...w.matchAll(/var<workgroup> (\w+)/g)].map((m) => m[1] as string),
  ];
  return {
    bindings,
    block: ws ? [Number(ws[1]), Number(ws[2]), Number(ws[3])] : [],
    barriers: count(body, 'workgroupBarrier();'),
    shared,
    private: priv,
    foldedGrid: count(body, '(wid.x + wid.y * nwg.x)'),
    accesses: accessesOf(body, names),
    loops: count(body, 'for ('),
    branches: count(body, 'if ('),
    exits: count(body, 'return;') + count(body, 'break;') + count(body, 'continue;'),
  };
}

function cudaShape(c: string): Shape {
  const sig = /extern "C" __global__ void __launch_bounds__\((\d+)\) (\w+)\(([^)]*)\)/.exec(c);
  if (!sig) throw new Error(`no kernel signature in\n${c}`);
  const bindings = (sig[3] as string)
    .split(', ')
    .filter((p) => p !== '')
    .map((p) => {
      const m = /^(const )?(float|int|unsigned int)\* __restrict__ (\w+)$/.exec(p);
      if (!m) throw new Error(`unexpected parameter "${p}"`);
      return { name: m[3] as string, t: CTYPE[m[2] as string] as string, write: m[1] === undefined };
    });
  const hdr = /\/\/ wgflow kernel \w+: block \((\d+), (\d+), (\d+)\)/.exec(c);
  const block = hdr ? [Number(hdr[1]), Number(hdr[2]), Number(hdr[3])] : [];
  if (block.reduce((a, b) => a * b, 1) !== Number(sig[1])) throw new Error('launch bounds ≠ block size');
  const shared = [...c.matchAll(/__shared__ (float|int|unsigned int|bool) (\w+)\[(\d+)\];/g)].map(
    (m) => `${CTYPE[m[1] as string]} ${m[2]}[${m[3]}]`,
  );
  const priv = [...c.matchAll(/^ {2}(float|int|unsigned int|bool) (\w+)\[(\d+)\] = \{\};/gm)].map(
    (m) => `${CTYPE[m[1] as string]} ${m[2]}[${m[3]}]`,
  );
  const zeroing = count(c, 'wgf_i = ');
  const names = [
    ...bindings.map((b) => b.name),
    ...[...c.matchAll(/__shared__ [\w ]+? (\w+)\[/g)].map((m) => m[1] as string),
  ];
  const acc = accessesOf(c.slice(c.indexOf('{')), names);
  for (const s of c.matchAll(/__shared__ [\w ]+? (\w+)\[/g)) acc[s[1] as string] = (acc[s[1] as string] ?? 0) - 2; // decl + zeroing
  return {
    bindings,
    block,
    barriers: count(c, '__syncthreads();') - (shared.length > 0 ? 1 : 0),
    shared,
    private: priv,
    foldedGrid: count(c, '(blockIdx.x + blockIdx.y * gridDim.x)'),
    accesses: acc,
    loops: count(c, 'for (') - zeroing,
    branches: count(c, 'if ('),
    exits: count(c, 'return;') + count(c, 'break;') + count(c, 'continue;'),
  };
}

/** The launch covers the kernel's workgroups and is folded only where the kernel unfolds it. */
function checkLaunch(k: Kernel, ks: KernelSpec, cudaSource: string): void {
  const { grid, block } = launchOf(ks);
  expect(block, k.name).toEqual([...k.workgroupSize]);
  if ('xyz' in k.grid) {
    expect(grid, k.name).toEqual([...k.grid.xyz]);
  } else {
    expect(grid[2], k.name).toBe(1);
    const linear = k.grid.linear as number; // these programs have static sizes
    expect(grid[0] * grid[1], k.name).toBeGreaterThanOrEqual(linear);
    expect(grid[0] * (grid[1] - 1), k.name).toBeLessThan(linear);
    if (grid[1] > 1) expect(cudaSource, k.name).toContain('(blockIdx.x + blockIdx.y * gridDim.x)');
  }
}

function checkProgram(p: TestProgram): number {
  const { spec, kernels } = p.compiled;
  const src = renderCudaProgram(p.compiled);
  expect(src.entries.length).toBe(spec.kernels.length);
  spec.kernels.forEach((ks, i) => {
    const c = src.entries[i] as (typeof src.entries)[number];
    const w = wgslShape(ks.wgsl);
    const cu = cudaShape(c.source);
    expect(cu.bindings, `${ks.name}: bindings`).toEqual(w.bindings);
    expect(cu.bindings.length, ks.name).toBe(ks.bindings.length);
    expect(
      cu.bindings.map((b) => b.write),
      ks.name,
    ).toEqual([...ks.writes]);
    expect(cu.block, `${ks.name}: block`).toEqual(w.block);
    expect(cu.block, ks.name).toEqual([...ks.workgroupSize]);
    expect(cu.barriers, `${ks.name}: barriers`).toBe(w.barriers);
    expect(cu.shared, `${ks.name}: workgroup arrays`).toEqual(w.shared);
    expect(cu.private, `${ks.name}: private arrays`).toEqual(w.private);
    expect(cu.foldedGrid, `${ks.name}: folded grid reads`).toBe(w.foldedGrid);
    expect(cu.accesses, `${ks.name}: accesses per buffer`).toEqual(w.accesses);
    expect([cu.loops, cu.branches, cu.exits], `${ks.name}: loops, branches, exits`).toEqual([
      w.loops,
      w.branches,
      w.exits,
    ]);
    checkLaunch(kernels[i] as Kernel, ks, c.source);
  });
  return spec.kernels.length;
}

describe('CUDA kernels have the structure of their WGSL twins', () => {
  for (const [label, make] of [
    ['frcnn-small inference', frcnnSmallInference],
    ['frcnn-small training step', frcnnSmallTraining],
    ['the op zoo', opZoo],
  ] as const) {
    it(`every kernel of ${label}`, () => {
      const n = checkProgram(make());
      expect(n).toBeGreaterThan(40);
    });
  }

  it('grids folded into 2-D (a 16-workgroup limit) read wg_linear as the WGSL kernels do', () => {
    const p = foldedGrids();
    const folded = p.compiled.spec.kernels.filter((k) => k.dispatch[1] > 1);
    expect(folded.length).toBeGreaterThan(2);
    checkProgram(p);
  });

  it('the compiled ASTs belong to the spec (a mismatch is an error naming the kernel)', () => {
    const p = opZoo();
    const swapped = { spec: p.compiled.spec, kernels: [...p.compiled.kernels].reverse() };
    expect(() => renderCudaProgram(swapped)).toThrow(/does not match spec kernel/);
    expect(() => renderCudaProgram({ spec: p.compiled.spec, kernels: [] })).toThrow(/kernel ASTs/);
  });
});

// ---------------------------------------------------------------- targeted rendering

/** Renders `e` stored into a buffer of its type; returns the CUDA and WGSL texts of the store. */
function renderStore(e: Expr, wg: [number, number, number] = [64, 1, 1]): { cuda: string; wgsl: string } {
  const kb = new KernelBuilder('k0_probe');
  const t = e.t === 'bool' ? 'u32' : e.t;
  kb.store({ name: 'out', t }, u32(0), e.t === 'bool' ? select(e, u32(1), u32(0)) : e);
  const k = kb.finish(wg, { linear: 1 });
  const cuda = renderCuda(k).source;
  const wgsl = renderWgsl(k);
  const line = (s: string) => (s.split('\n').find((l) => l.includes('out[0u] = ')) ?? '').trim();
  return { cuda: line(cuda), wgsl: line(wgsl) };
}

const vi = (name: string): Expr => ({ k: 'var', t: 'i32', name });
const vu = (name: string): Expr => ({ k: 'var', t: 'u32', name });
const vf = (name: string): Expr => ({ k: 'var', t: 'f32', name });
const vb = (name: string): Expr => ({ k: 'var', t: 'bool', name });

describe('CUDA renderer keeps WGSL semantics', () => {
  it('i32 arithmetic wraps (unsigned helpers); u32 arithmetic is plain C', () => {
    expect(renderStore(add(vi('a'), vi('b'))).cuda).toBe('out[0u] = wgf_iadd(a, b);');
    expect(renderStore(sub(vi('a'), 1)).cuda).toBe('out[0u] = wgf_isub(a, 1);');
    expect(renderStore(mul(vi('a'), -3)).cuda).toBe('out[0u] = wgf_imul(a, (-3));');
    expect(renderStore(neg(vi('a'))).cuda).toBe('out[0u] = wgf_ineg(a);');
    expect(renderStore(add(mul(vu('a'), 3), vu('b'))).cuda).toBe('out[0u] = ((a * 3u) + b);');
  });

  it('integer division and remainder: plain by a safe constant, WGSL results for x/0 and INT_MIN/-1 otherwise', () => {
    expect(renderStore(div(vu('a'), 7)).cuda).toBe('out[0u] = (a / 7u);');
    expect(renderStore(mod(vu('a'), vu('b'))).cuda).toBe('out[0u] = wgf_umod(a, b);');
    expect(renderStore(div(vu('a'), vu('b'))).cuda).toBe('out[0u] = wgf_udiv(a, b);');
    expect(renderStore(div(vi('a'), 4)).cuda).toBe('out[0u] = (a / 4);');
    expect(renderStore(div(vi('a'), -1)).cuda).toBe('out[0u] = wgf_idiv(a, (-1));');
    expect(renderStore(mod(vi('a'), vi('b'))).cuda).toBe('out[0u] = wgf_imod(a, b);');
    expect(renderStore(div(vf('a'), vf('b'))).cuda).toBe('out[0u] = (a / b);');
    expect(renderStore(mod(vf('a'), vf('b'))).cuda).toBe('out[0u] = fmodf(a, b);');
  });

  it('shift amounts are taken mod 32 unless constant; i32 left shifts go through unsigned', () => {
    expect(renderStore(shl(vu('a'), vu('s'))).cuda).toBe('out[0u] = (a << (s & 31u));');
    expect(renderStore(shr(vu('a'), 3)).cuda).toBe('out[0u] = (a >> 3u);');
    expect(renderStore(shl(vi('a'), vu('s'))).cuda).toBe('out[0u] = wgf_ishl(a, (s & 31u));');
    expect(renderStore(shr(vi('a'), 31)).cuda).toBe('out[0u] = (a >> 31u);');
    expect(() => renderStore(shl(vu('a'), 32))).toThrow(/constant shift by 32/);
  });

  it('literals: NaN and ±inf as bit patterns, -0, exact f32 values, INT_MIN, u32 max', () => {
    expect(renderStore(f32(Number.NaN)).cuda).toBe('out[0u] = WGF_NAN;');
    expect(renderStore(f32(Number.POSITIVE_INFINITY)).cuda).toBe('out[0u] = WGF_PINF;');
    expect(renderStore(f32(-1e39)).cuda).toBe('out[0u] = WGF_NINF;'); // rounds to -inf in f32
    expect(renderStore(f32(-0)).cuda).toBe('out[0u] = (-0.0f);');
    expect(renderStore(i32(-2147483648)).cuda).toBe('out[0u] = (-2147483647 - 1);');
    expect(renderStore(u32(4294967295)).cuda).toBe('out[0u] = 4294967295u;');
    for (const v of [0.1, 1 / 3, 1e-40, 3.4028234663852886e38, -2.5e-7, 16777217]) {
      const text = renderStore(f32(v)).cuda;
      const lit = /= \(?(-?[0-9.e+-]+)f\)?;$/.exec(text)?.[1];
      expect(lit, text).toBeDefined();
      expect(Math.fround(Number(lit)), `${v} → ${text}`).toBe(Math.fround(v));
    }
  });

  it('select(c, a, b) is c ? a : b (WGSL writes select(b, a, c))', () => {
    const r = renderStore(select(lt(vf('x'), 0), vf('a'), vf('b')));
    expect(r.cuda).toBe('out[0u] = ((x < 0.0f) ? a : b);');
    expect(r.wgsl).toBe('out[0u] = select(b, a, (x < 0.0f));');
  });

  it('casts saturate like WGSL; bitcasts are the CUDA intrinsics', () => {
    expect(renderStore(cast('i32', vf('x'))).cuda).toBe('out[0u] = __float2int_rz(x);');
    expect(renderStore(cast('u32', vf('x'))).cuda).toBe('out[0u] = __float2uint_rz(x);');
    expect(renderStore(cast('f32', vu('n'))).cuda).toBe('out[0u] = ((float)(n));');
    expect(renderStore(cast('u32', vi('n'))).cuda).toBe('out[0u] = ((unsigned int)(n));');
    expect(renderStore(cast('f32', vb('p'))).cuda).toBe('out[0u] = ((p) ? 1.0f : 0.0f);');
    expect(renderStore(bitcast('u32', vf('x'))).cuda).toBe('out[0u] = __float_as_uint(x);');
    expect(renderStore(bitcast('f32', vi('n'))).cuda).toBe('out[0u] = __int_as_float(n);');
    expect(renderStore(bitcast('i32', vu('n'))).cuda).toBe('out[0u] = ((int)(n));');
  });

  it('math calls: f32 functions, integer min/max/abs, isnan as a bit test, clamp as min(max)', () => {
    const call = (fn: CallFn, ...args: Expr[]): Expr => ({
      k: 'call',
      t: fn === 'isnan' ? 'bool' : (args[0] as Expr).t,
      fn,
      args,
    });
    expect(renderStore(call('exp', vf('x'))).cuda).toBe('out[0u] = expf(x);');
    expect(renderStore(call('tanh', vf('x'))).cuda).toBe('out[0u] = tanhf(x);');
    expect(renderStore(call('fma', vf('a'), vf('b'), vf('c'))).cuda).toBe('out[0u] = fmaf(a, b, c);');
    expect(renderStore(call('max', vf('a'), vf('b'))).cuda).toBe('out[0u] = fmaxf(a, b);');
    expect(renderStore(call('min', vu('a'), vu('b'))).cuda).toBe('out[0u] = min(a, b);');
    expect(renderStore(call('abs', vi('a'))).cuda).toBe('out[0u] = wgf_iabs(a);');
    expect(renderStore(call('clamp', vi('a'), vi('lo'), vi('hi'))).cuda).toBe('out[0u] = min(max(a, lo), hi);');
    expect(renderStore(call('isnan', vf('x'))).cuda).toBe('out[0u] = (wgf_isnan(x) ? 1u : 0u);');
    expect(renderStore(call('sign', vf('x'))).cuda).toBe('out[0u] = wgf_fsign(x);');
  });

  it('builtins: threadIdx/blockIdx, the linear local index of 2-D blocks, the folded workgroup id', () => {
    expect(renderStore(builtin('lidx'), [8, 4, 2]).cuda).toBe(
      'out[0u] = (threadIdx.x + threadIdx.y * 8u + threadIdx.z * 32u);',
    );
    expect(renderStore(builtin('lidx'), [256, 1, 1]).cuda).toBe('out[0u] = threadIdx.x;');
    expect(renderStore(builtin('wg_linear')).cuda).toBe('out[0u] = (blockIdx.x + blockIdx.y * gridDim.x);');
    expect(renderStore(builtin('lid_y'), [8, 4, 1]).cuda).toBe('out[0u] = threadIdx.y;');
    expect(renderStore(builtin('wg_z')).cuda).toBe('out[0u] = blockIdx.z;');
  });

  it('workgroup memory is __shared__ and zeroed first; private arrays start zeroed; barriers are __syncthreads', () => {
    const kb = new KernelBuilder('k3_tile');
    const src = { name: 'src', t: 'f32' } as const;
    const dst = { name: 'dst', t: 'f32' } as const;
    const tile = kb.array('tile', 'f32', 128, 'workgroup');
    const acc = kb.array('acc', 'f32', 4, 'private');
    const l = builtin('lidx');
    kb.astore(tile, l, load(src, l));
    kb.barrier();
    kb.astore(acc, u32(0), kb.aload(tile, 'f32', sub(u32(127), l)));
    kb.store(dst, l, kb.aload(acc, 'f32', u32(0)));
    const c = renderCuda(kb.finish([128, 1, 1], { linear: 4 }));
    expect(c.source).toContain('__shared__ float tile_0[128];');
    expect(c.source).toContain('float acc_1[4] = {};');
    expect(c.source).toContain(
      'for (unsigned int wgf_i = threadIdx.x; wgf_i < 128u; wgf_i += 128u) tile_0[wgf_i] = 0.0f;',
    );
    expect(count(c.source, '__syncthreads();')).toBe(2);
    expect(c.source).toMatch(
      /void __launch_bounds__\(128\) k3_tile_[0-9a-f]{8}\(const float\* __restrict__ src, float\* __restrict__ dst\)/,
    );
    expect(c.params).toEqual([
      { name: 'src', t: 'f32', write: false },
      { name: 'dst', t: 'f32', write: true },
    ]);
  });

  it('names: C keywords and CUDA builtins are escaped; function names carry a hash of the body', () => {
    expect(cIdent('restrict')).toBe('wgv_restrict');
    expect(cIdent('threadIdx')).toBe('wgv_threadIdx');
    expect(cIdent('t12')).toBe('t12');
    expect(() => cIdent('a-b')).toThrow(/invalid identifier/);
    const make = (name: string, c: number) => {
      const kb = new KernelBuilder(name);
      kb.store({ name: 'float', t: 'f32' }, builtin('lidx'), f32(c));
      return kb.finish([32, 1, 1], { linear: 1 });
    };
    const a = renderCuda(make('k1_fill', 1));
    expect(a.source).toContain('float* __restrict__ wgv_float');
    expect(renderCuda(make('k1_fill', 1)).function).toBe(a.function);
    expect(renderCuda(make('k1_fill', 2)).function).not.toBe(a.function);
    expect(renderCuda(make('k2_fill', 1)).function).toMatch(/^k2_fill_[0-9a-f]{8}$/);
  });
});
