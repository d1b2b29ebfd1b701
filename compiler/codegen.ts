/**
 * Lowers one fused group to kernels (target-neutral ASTs). Elementwise and reduce groups are generated
 * here; gemm and opaque anchors call their op's `lower`, with the fused epilogue passed in.
 * Each group's code says which logical buffers (compiler/buffers.ts) it reads, writes and scratches.
 */

import { bufName, type ScratchBuffer, scratchBuffer, type ValueBuffer, valueBuffer } from './buffers.js';
import { type Dim, dimCeilDiv, dimEq, dimMax, isSym } from './dims.js';
import type { Graph } from './ir.js';
import type { Expr, Kernel, Scalar } from './kernel/ast.js';
import * as K from './kernel/build.js';
import { kernelBuffers } from './kernel/build.js';
import type { DeviceLimits } from './limits.js';
import { type FusionResult, type Group, isScalarConst, prologueOf } from './passes/fuse.js';
import { getOp } from './registry.js';
import { type Target, webgpuTarget } from './targets.js';
import { type DimShape, dimStrides, dimsOf, numelDims } from './types.js';

/** A group's kernels with the logical buffers they use, known from the group (not re-read from the ASTs). */
export interface GroupCode {
  /** The fused group (FusionResult.groups index). */
  readonly group: number;
  readonly kernels: readonly Kernel[];
  /** Buffers that live during this group's kernels only. */
  readonly scratch: readonly ScratchBuffer[];
  /** The logical buffers of the group's external inputs (its leaves, views resolved). */
  readonly reads: readonly ValueBuffer[];
  /** The logical buffer of the value the group computes. */
  readonly writes: readonly ValueBuffer[];
}

type Storage = Exclude<Scalar, 'bool'>;

/** Strides for reading a tensor of `inShape` at coordinates of a broadcast `outShape`. */
function bcastStrides(inShape: DimShape, outShape: DimShape): Dim[] {
  const s = dimStrides(inShape);
  const off = outShape.length - inShape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return 0;
    return inShape[j] === 1 && d !== 1 ? 0 : (s[j] as Dim);
  });
}

/** Row-major coordinates of `flat` in `shape` (axes may be run-time sizes), computed lazily and cached. */
export function coordsOf(flat: Expr, shape: DimShape): (d: number) => Expr {
  const strides = dimStrides(shape);
  const cache = new Map<number, Expr>();
  return (d: number) => {
    let c = cache.get(d);
    if (!c) {
      const st = strides[d] as Dim;
      const size = shape[d] as Dim;
      const q = st === 1 ? flat : K.div(flat, K.size(st));
      c = d === 0 ? q : K.mod(q, K.size(size));
      cache.set(d, c);
    }
    return c;
  };
}

/** Workgroups to cover `total` items, `per` a workgroup (at least one when static). */
export function gridFor(total: Dim, per: number): Dim {
  return isSym(total) ? dimCeilDiv(total, per) : Math.max(1, Math.ceil(total / per));
}

interface TreeCtx {
  readonly graph: Graph;
  readonly members: ReadonlySet<number>;
  readonly refShape: DimShape;
  readonly coord: (d: number) => Expr;
  /** Row-major index in refShape, when known. */
  readonly flat: Expr | undefined;
  /** Values supplied from outside the tree (the anchor's result). */
  readonly given: ReadonlyMap<number, Expr>;
}

function leafIndex(ctx: TreeCtx, shape: DimShape): Expr {
  if (ctx.flat && dimEq(numelDims(shape), numelDims(ctx.refShape)) && shape.length <= ctx.refShape.length) {
    const st = bcastStrides(shape, ctx.refShape);
    const full = dimStrides(ctx.refShape);
    if (st.every((s, i) => dimEq(s, full[i] as Dim))) return ctx.flat;
  }
  const st = bcastStrides(shape, ctx.refShape);
  let idx: Expr | undefined;
  st.forEach((s, d) => {
    if (s === 0) return;
    const term = s === 1 ? ctx.coord(d) : K.mul(ctx.coord(d), K.size(s));
    idx = idx ? K.add(idx, term) : term;
  });
  return idx ?? K.u32(0);
}

/** The value of node `id` at the current coordinates, as one expression. */
function tree(ctx: TreeCtx, id: number): Expr {
  const given = ctx.given.get(id);
  if (given) return given;
  const n = ctx.graph.node(id);
  if (isScalarConst(n)) return K.lit(n.attrs.value as number, n.type.dtype);
  if (!ctx.members.has(id)) return K.load(bufName(ctx.graph, id), leafIndex(ctx, dimsOf(n.type)));
  const def = getOp(n.op);
  if (!def.expr) throw new Error(`internal: elementwise op ${n.op} has no expr`);
  const args = n.inputs.map((i) => tree(ctx, i));
  const inTypes = n.inputs.map((i) => ctx.graph.node(i).type);
  return def.expr({ args, attrs: n.attrs, inTypes, out: n.type, index: ctx.flat ?? K.u32(0) });
}

function threads(limits: DeviceLimits): number {
  return Math.min(256, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
}

function kernelName(graph: Graph, g: Group): string {
  const ops = [...(g.anchor !== undefined ? [g.anchor] : []), ...[...g.members].sort((a, b) => a - b)].map(
    (i) => graph.node(i).op,
  );
  const label = [...new Set(ops)].slice(0, 4).join('_');
  return `k${g.index}_${label}`;
}

function lowerElementwise(graph: Graph, g: Group, limits: DeviceLimits): Kernel[] {
  const root = graph.node(g.root);
  const dims = dimsOf(root.type);
  const total = numelDims(dims);
  const wg = threads(limits);
  const kb = new K.KernelBuilder(kernelName(graph, g));
  const gid = kb.let('gid', K.add(K.mul(K.builtin('wg_linear'), K.u32(wg)), K.builtin('lidx')));
  kb.if(K.lt(gid, K.size(total)), () => {
    const ctx: TreeCtx = {
      graph,
      members: g.members,
      refShape: dims,
      coord: coordsOf(gid, dims),
      flat: gid,
      given: new Map(),
    };
    kb.store(bufName(graph, g.root), gid, tree(ctx, g.root));
  });
  return [kb.finish([wg, 1, 1], { linear: gridFor(total, wg) })];
}

function reduceIdentity(kind: 'sum' | 'max' | 'min', t: Storage): Expr {
  if (kind === 'sum') return K.lit(0, t);
  if (t === 'f32') return K.f32(kind === 'max' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY);
  if (t === 'i32') return K.i32(kind === 'max' ? -2147483648 : 2147483647);
  return K.u32(kind === 'max' ? 0 : 0xffffffff);
}

function combine(kind: 'sum' | 'max' | 'min', a: Expr, b: Expr): Expr {
  return kind === 'sum' ? K.add(a, b) : kind === 'max' ? K.max(a, b) : K.min(a, b);
}

function lowerReduce(graph: Graph, g: Group, limits: DeviceLimits): Kernel[] {
  const a = graph.node(g.anchor as number);
  const kind = getOp(a.op).reduce as 'sum' | 'max' | 'min';
  const input = graph.node(a.inputs[0] as number);
  const inShape = dimsOf(input.type);
  const axes = new Set(a.attrs.axes as number[]);
  const kept = inShape.map((_, d) => d).filter((d) => !axes.has(d));
  const red = inShape.map((_, d) => d).filter((d) => axes.has(d));
  const keptShape = kept.map((d) => inShape[d] as Dim);
  const redShape = red.map((d) => inShape[d] as Dim);
  const O = numelDims(keptShape);
  const R = numelDims(redShape);
  const inStrides = dimStrides(inShape);
  const t = a.type.dtype as Storage;
  const root = graph.node(g.root);
  const prologue = prologueOf(graph, g);
  const epilogueMembers = new Set([...g.members].filter((m) => !prologue.has(m)));
  const kb = new K.KernelBuilder(kernelName(graph, g));

  /** Value of the reduction input at (output index o, reduced index r). */
  const inputAt = (keptCoord: (j: number) => Expr, r: Expr): Expr => {
    const redCoord = coordsOf(r, redShape);
    const coord = (d: number): Expr => {
      const kj = kept.indexOf(d);
      return kj >= 0 ? keptCoord(kj) : redCoord(red.indexOf(d));
    };
    let flat: Expr | undefined;
    inShape.forEach((_, d) => {
      const s = inStrides[d] as Dim;
      const term = s === 1 ? coord(d) : K.mul(coord(d), K.size(s));
      flat = flat ? K.add(flat, term) : term;
    });
    const ctx: TreeCtx = {
      graph,
      members: prologue,
      refShape: inShape,
      coord,
      flat: flat ?? K.u32(0),
      given: new Map(),
    };
    return tree(ctx, input.id);
  };
  const store = (o: Expr, value: Expr) => {
    const ctx: TreeCtx = {
      graph,
      members: epilogueMembers,
      refShape: dimsOf(root.type),
      coord: coordsOf(o, dimsOf(root.type)),
      flat: o,
      given: new Map([[a.id, value]]),
    };
    kb.store(bufName(graph, g.root), o, tree(ctx, g.root));
  };

  /** acc = combine of the inputs at reduced indices from, from+step, … < to, for the output at keptCoord. */
  const accumulate = (from: Expr, to: Expr, step: number, keptCoord: (j: number) => Expr): Expr => {
    const acc = kb.var('acc', reduceIdentity(kind, t));
    kb.for('r', from, to, (r) => kb.assign(acc, combine(kind, acc, inputAt(keptCoord, r))), { t: 'u32', step });
    return acc;
  };

  // structural choice on the upper bounds: correct for every run-time size below them
  const parallel = dimMax(R) >= 256 && dimMax(O) <= 16384;
  if (!parallel) {
    const wg = threads(limits);
    const o = kb.let('o', K.add(K.mul(K.builtin('wg_linear'), K.u32(wg)), K.builtin('lidx')));
    kb.if(K.lt(o, K.size(O)), () => {
      store(o, accumulate(K.u32(0), K.size(R), 1, coordsOf(o, keptShape)));
    });
    return [kb.finish([wg, 1, 1], { linear: gridFor(O, wg) })];
  }
  // One workgroup per output element: strided partial sums, then a tree in workgroup memory.
  const T = threads(limits);
  const shared = kb.array('part', t, T, 'workgroup');
  const o = kb.let('o', K.builtin('wg_linear'));
  const lidx = K.builtin('lidx');
  const valid = kb.let('valid', K.lt(o, K.size(O)));
  const acc = accumulate(lidx, K.select(valid, K.size(R), K.u32(0)), T, coordsOf(o, keptShape));
  kb.astore(shared, lidx, acc);
  kb.barrier();
  for (let s = T >> 1; s > 0; s >>= 1) {
    kb.if(K.lt(lidx, K.u32(s)), () => {
      kb.astore(shared, lidx, combine(kind, kb.aload(shared, t, lidx), kb.aload(shared, t, K.add(lidx, K.u32(s)))));
    });
    kb.barrier();
  }
  kb.if(K.and(valid, K.eq(lidx, K.u32(0))), () => store(o, kb.aload(shared, t, K.u32(0))));
  return [kb.finish([T, 1, 1], { linear: isSym(O) ? O : Math.max(1, O) })];
}

function lowerAnchor(
  graph: Graph,
  g: Group,
  limits: DeviceLimits,
  target: Target,
): Pick<GroupCode, 'kernels' | 'scratch'> {
  const a = graph.node(g.anchor as number);
  const def = getOp(a.op);
  if (!def.lower) throw new Error(`internal: op ${a.op} has no kernel`);
  const root = graph.node(g.root);
  const scratch: ScratchBuffer[] = [];
  const kernels = def.lower({
    node: a,
    attrs: a.attrs,
    inputs: a.inputs.map((i) => ({ buf: bufName(graph, i), type: graph.node(i).type })),
    output: { buf: bufName(graph, g.root), type: root.type },
    limits,
    target: target.name,
    tuning: target.tuning(),
    name: kernelName(graph, g),
    hasEpilogue: g.members.size > 0,
    epilogue: (value, coords, flat) => {
      if (g.members.size === 0) return value;
      const ctx: TreeCtx = {
        graph,
        members: g.members,
        refShape: root.type.shape,
        coord: (d) => coords[d] as Expr,
        flat,
        given: new Map([[a.id, value]]),
      };
      return tree(ctx, g.root);
    },
    scratch: (t, n) => {
      const sb = scratchBuffer(g.index, scratch.length, n * 4);
      scratch.push(sb);
      return { name: sb.name, t };
    },
  });
  return { kernels, scratch };
}

export function lowerGroup(graph: Graph, g: Group, limits: DeviceLimits, target: Target = webgpuTarget): GroupCode {
  // an anchor's kernels load every input of the anchor, scalar constants included (only fused
  // elementwise trees inline those as literals)
  const anchorInputs = g.anchor !== undefined ? graph.node(g.anchor).inputs : [];
  const reads = new Map<number, ValueBuffer>();
  for (const l of [...g.leaves, ...anchorInputs]) {
    const vb = valueBuffer(graph, l);
    reads.set(vb.node, vb);
  }
  const writes = [valueBuffer(graph, g.root)];
  const kind = g.anchor === undefined ? 'elementwise' : getOp(graph.node(g.anchor).op).kind;
  const code =
    kind === 'elementwise'
      ? { kernels: lowerElementwise(graph, g, limits), scratch: [] }
      : kind === 'reduce'
        ? { kernels: lowerReduce(graph, g, limits), scratch: [] }
        : lowerAnchor(graph, g, limits, target);
  // The ASTs may use only what the group declares (a lowering that reads another buffer is a bug).
  const declared = new Set([...reads.values(), ...writes, ...code.scratch].map((b) => b.name));
  for (const k of code.kernels)
    for (const b of kernelBuffers(k))
      if (!declared.has(b.buf.name))
        throw new Error(`internal: kernel ${k.name} uses buffer ${b.buf.name}, which its group does not declare`);
  return { group: g.index, ...code, reads: [...reads.values()], writes };
}

/** The lowering stage: the code of each group in `order` (the schedule), in that order. */
export function lowerProgram(
  graph: Graph,
  fr: FusionResult,
  order: readonly number[],
  limits: DeviceLimits,
  target: Target = webgpuTarget,
): GroupCode[] {
  return order.map((gi) => lowerGroup(graph, fr.groups[gi] as Group, limits, target));
}
