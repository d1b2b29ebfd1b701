/**
 * Binding: each kernel's logical buffers become physical bindings.
 * - Logical buffers that share one physical buffer (the memory plan reused it, or an in-place update)
 *   become one binding, so a kernel never binds a buffer twice.
 * - A binding covers only what the kernel's tensors need (a window from offset 0), so a big reused
 *   buffer does not count against maxStorageBufferBindingSize for a small tensor.
 * - A tensor larger than maxStorageBufferBindingSize is split across several bindings of one buffer
 *   (windows of W bytes, W the largest multiple of the offset alignment that fits): every load and
 *   store of it in the kernel is rewritten to pick its part, `part = i / E`, `i − part·E` inside
 *   (E = W / 4 elements). Works for any kernel (conv, pool, elementwise, reductions and their
 *   gradients) without the op knowing; reads of the parts not taken stay inside their own windows.
 * Also lists the run-time sizes each kernel reads, in slot order, and checks the per-stage limit.
 */
import type { SymDim } from '../dims.js';
import { WgflowError } from '../errors.js';
import type { BufRef, Expr, Kernel, Stmt } from '../kernel/ast.js';
import * as K from '../kernel/build.js';
import { kernelBuffers, kernelSizes } from '../kernel/build.js';
import { renameBuffers } from '../kernel/rename.js';
import { mapExpr } from '../kernel/visit.js';
import type { DeviceLimits } from '../limits.js';

export interface BoundKernel {
  /** The kernel with one name per binding. */
  readonly kernel: Kernel;
  /** Physical buffer ids in binding order. */
  readonly bindings: readonly number[];
  /** Per binding: [offset, size] in bytes of the window bound. */
  readonly windows: readonly (readonly [number, number])[];
  readonly writes: readonly boolean[];
  /** Run-time sizes the kernel reads, in slot order (kernelSizes). */
  readonly sizes: readonly SymDim[];
}

export interface BindContext {
  /** Physical buffer of a logical one. */
  physicalOf(logical: string): number;
  /** Bytes of a logical buffer (its upper bound). */
  bytesOf(logical: string): number;
  readonly limits: DeviceLimits;
}

/** Bytes of one binding window of a split tensor. */
export function windowBytes(limits: DeviceLimits): number {
  const align = limits.minStorageBufferOffsetAlignment;
  return Math.floor(limits.maxStorageBufferBindingSize / align) * align;
}

/** Bindings a tensor of `bytes` takes (1 unless it is split). */
export function bindingParts(bytes: number, limits: DeviceLimits): number {
  return bytes <= limits.maxStorageBufferBindingSize ? 1 : Math.ceil(bytes / windowBytes(limits));
}

interface Split {
  readonly parts: readonly BufRef[];
  /** Elements per window. */
  readonly per: number;
}

function partOf(idx: Expr, per: number): { part: Expr; local: Expr } {
  const part = K.div(idx, K.u32(per));
  return { part, local: K.sub(idx, K.mul(part, K.u32(per))) };
}

function splitLoad(idx: Expr, s: Split): Expr {
  const { part, local } = partOf(idx, s.per);
  let v = K.load(s.parts[0] as BufRef, local);
  for (let p = 1; p < s.parts.length; p++) v = K.select(K.eq(part, K.u32(p)), K.load(s.parts[p] as BufRef, local), v);
  return v;
}

function splitAccesses(k: Kernel, splits: ReadonlyMap<string, Split>): Kernel {
  const expr = (e: Expr): Expr =>
    mapExpr(e, {
      expr: (x) => (x.k === 'load' && splits.has(x.buf.name) ? splitLoad(x.idx, splits.get(x.buf.name) as Split) : x),
    });
  const stmts = (list: readonly Stmt[]): Stmt[] =>
    list.map((s): Stmt => {
      switch (s.k) {
        case 'let':
          return { ...s, init: expr(s.init) };
        case 'assign':
          return { ...s, value: expr(s.value) };
        case 'sstore':
          return { ...s, idx: expr(s.idx), value: expr(s.value) };
        case 'for':
          return { ...s, from: expr(s.from), to: expr(s.to), body: stmts(s.body) };
        case 'if': {
          const then = stmts(s.then);
          return { ...s, cond: expr(s.cond), then, else: stmts(s.else) };
        }
        case 'store': {
          const idx = expr(s.idx);
          const value = expr(s.value);
          const sp = splits.get(s.buf.name);
          if (!sp) return { ...s, idx, value };
          const { part, local } = partOf(idx, sp.per);
          // if (part == 0) p0[local] = v; else if (part == 1) p1[local] = v; …
          let chain: Stmt[] = [];
          for (let p = sp.parts.length - 1; p >= 0; p--) {
            const st: Stmt = { k: 'store', buf: sp.parts[p] as BufRef, idx: local, value };
            const then: Stmt[] = [st];
            chain = p === sp.parts.length - 1 ? then : [{ k: 'if', cond: K.eq(part, K.u32(p)), then, else: chain }];
          }
          return chain[0] as Stmt;
        }
        default:
          return s;
      }
    });
  return { ...k, body: stmts(k.body) };
}

export function bindKernel(k0: Kernel, ctx: BindContext): BoundKernel {
  const { limits } = ctx;
  const canon = new Map<number, string>();
  const need = new Map<string, number>();
  const renamed = renameBuffers(k0, (name) => {
    const id = ctx.physicalOf(name);
    const c = canon.get(id) ?? name;
    canon.set(id, c);
    need.set(c, Math.max(need.get(c) ?? 0, ctx.bytesOf(name)));
    return c;
  });
  const W = windowBytes(limits);
  const splits = new Map<string, Split>();
  for (const { buf } of kernelBuffers(renamed)) {
    const bytes = need.get(buf.name) ?? 0;
    const parts = bindingParts(bytes, limits);
    if (parts > 1)
      splits.set(buf.name, {
        parts: Array.from({ length: parts }, (_, p) => ({ name: `${buf.name}_p${p}`, t: buf.t })),
        per: W / 4,
      });
  }
  const kernel = splits.size > 0 ? splitAccesses(renamed, splits) : renamed;
  const bufs = kernelBuffers(kernel);
  if (bufs.length > limits.maxStorageBuffersPerShaderStage)
    throw new WgflowError(
      `kernel ${kernel.name} binds ${bufs.length} storage buffers, over the device's ${limits.maxStorageBuffersPerShaderStage}` +
        (splits.size > 0 ? ` (tensors over maxStorageBufferBindingSize take one binding per ${W}-byte window)` : ''),
    );
  // each binding name: the canonical buffer it belongs to and, for a window of a split tensor, its part
  const partOfName = new Map<string, { base: string; part: number }>();
  for (const [base, sp] of splits) sp.parts.forEach((ref, part) => partOfName.set(ref.name, { base, part }));
  const physicalOfCanon = new Map([...canon.entries()].map(([id, c]) => [c, id]));
  const physOfBound = (name: string): { id: number; window: [number, number] } => {
    const p = partOfName.get(name);
    const base = p?.base ?? name;
    const id = physicalOfCanon.get(base);
    if (id === undefined) throw new Error(`internal: binding ${name} has no buffer`);
    const bytes = Math.ceil((need.get(base) ?? 4) / 4) * 4;
    if (p === undefined) return { id, window: [0, Math.max(4, bytes)] };
    return { id, window: [p.part * W, Math.min(W, bytes - p.part * W)] };
  };
  const bound = bufs.map((b) => physOfBound(b.buf.name));
  return {
    kernel,
    bindings: bound.map((b) => b.id),
    windows: bound.map((b) => b.window),
    writes: bufs.map((b) => b.write),
    sizes: kernelSizes(kernel),
  };
}
