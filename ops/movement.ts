/**
 * Movement ops: reshape and stop_gradient (views, no kernel), transpose, slice, pad, concat and
 * gather (opaque kernels, one thread per output element), plus the gradient helpers slice_grad and
 * gather_grad (gather formulations: every output element is written by exactly one thread, no atomics).
 */

import { type Dim, dimDivExact, dimEq, dimFmt, dimMul, SymDim } from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import { type Attrs, type AttrValue, fmtValue, type Node } from '../compiler/ir.js';
import type { Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import {
  type DimShape,
  type DType,
  dimsOf,
  fmtShape,
  normAxis,
  numel,
  numelDims,
  type Shape,
  stridesOf,
  type TensorType,
  typeOf,
} from '../compiler/types.js';
import { unravel } from './kit/indexing.js';
import { perThread } from './kit/launch.js';
import { storeOut } from './kit/store.js';

// ---------------------------------------------------------------- attribute helpers

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function intList(attrs: Attrs, key: string, allowNull = false): (number | null)[] {
  const v = attrs[key];
  if (!Array.isArray(v) || !v.every((x) => isInt(x) || (allowNull && x === null))) {
    fail(`attribute ${key} must be a list of integers${allowNull ? ' (or nulls)' : ''}, got ${fmtValue(v)}`);
  }
  return v as (number | null)[];
}

function axisAttr(attrs: Attrs, rank: number): number {
  const a = attrs.axis;
  if (!isInt(a)) fail(`attribute axis must be an integer, got ${fmtValue(a)}`);
  const ax = normAxis(a, rank);
  if (ax < 0) fail(`axis ${a} is out of range for rank ${rank}`);
  return ax;
}

function shapeAttr(attrs: Attrs, key: string): number[] {
  const v = attrs[key];
  if (!Array.isArray(v) || !v.every((d) => isInt(d) && d > 0))
    fail(`attribute ${key} must be a shape (positive integers), got ${fmtValue(v)}`);
  return v as number[];
}

const prod = (s: Shape, from = 0, to = s.length): number => {
  let n = 1;
  for (let i = from; i < to; i++) n *= s[i] as number;
  return n;
};

// ---------------------------------------------------------------- CPU helpers

/** out[flat] = fn(coords) over a row-major shape (coords reused between calls). */
function cpuMap(shape: Shape, fn: (coords: readonly number[]) => number): Float64Array {
  const n = numel(shape);
  const out = new Float64Array(n);
  const rank = shape.length;
  const c = new Array<number>(rank).fill(0);
  for (let flat = 0; flat < n; flat++) {
    out[flat] = fn(c);
    for (let d = rank - 1; d >= 0; d--) {
      c[d] = (c[d] as number) + 1;
      if ((c[d] as number) < (shape[d] as number)) break;
      c[d] = 0;
    }
  }
  return out;
}

const dataOf = (t: RefTensor | undefined): Float64Array => (t as RefTensor).data;

// ---------------------------------------------------------------- kernel helpers

const isLit = (e: Expr, v: number): boolean => e.k === 'lit' && e.v === v;
/** e * c with trivial cases folded (u32). */
const mulC = (e: Expr, c: number): Expr => (c === 0 || isLit(e, 0) ? K.u32(0) : c === 1 ? e : K.mul(e, K.u32(c)));
const addE = (a: Expr, b: Expr): Expr => (isLit(a, 0) ? b : isLit(b, 0) ? a : K.add(a, b));
const dot = (terms: readonly Expr[], strides: readonly number[]): Expr =>
  terms.reduce<Expr>((acc, t, i) => addE(acc, mulC(t, strides[i] as number)), K.u32(0));

const zeroOf = (dt: DType): Expr => K.lit(0, dt);

// ---------------------------------------------------------------- views

/**
 * Resolves a reshape target (at most one -1; axes may be run-time sizes) against the input's axes;
 * fails with both shapes. Element counts are compared symbolically.
 */
export function resolveReshape(from: DimShape, target: AttrValue | undefined): Dim[] {
  if (!Array.isArray(target) || !target.every((d) => typeof d === 'number' || d instanceof SymDim)) {
    fail(`attribute shape must be a list of numbers or sizes, got ${fmtValue(target)}`);
  }
  const shape = target as Dim[];
  let infer = -1;
  let known: Dim = 1;
  shape.forEach((d, i) => {
    if (d === -1) {
      if (infer >= 0) fail(`shape ${fmtShape(shape)} has more than one -1`);
      infer = i;
    } else if (typeof d === 'number' && (!Number.isInteger(d) || d <= 0)) {
      fail(`shape ${fmtShape(shape)} has a bad dimension ${d} (dimensions must be positive integers or a single -1)`);
    } else known = dimMul(known, d);
  });
  const n = numelDims(from);
  if (infer >= 0) {
    const q = dimDivExact(n, known);
    if (q === undefined)
      fail(
        `cannot reshape ${fmtShape(from)} (${dimFmt(n)} elements) to ${fmtShape(shape)}: ${dimFmt(n)} is not a multiple of ${dimFmt(known)}`,
      );
    const out = [...shape];
    out[infer] = q;
    return out;
  }
  if (!dimEq(known, n))
    fail(`cannot reshape ${fmtShape(from)} (${dimFmt(n)} elements) to ${fmtShape(shape)} (${dimFmt(known)} elements)`);
  return [...shape];
}

registerOp({
  name: 'reshape',
  kind: 'view',
  dynamic: true,
  infer: ([x], attrs) => {
    const t = x as TensorType;
    return typeOf(resolveReshape(dimsOf(t), attrs.shape), t.dtype);
  },
  cpu: ({ inputs }) => dataOf(inputs[0]).slice(),
  grad: ({ inputs, dy }) => [dy.reshape((inputs[0] as Tensor).dims)],
});

registerOp({
  name: 'stop_gradient',
  kind: 'view',
  dynamic: true,
  infer: ([x]) => x as TensorType,
  cpu: ({ inputs }) => dataOf(inputs[0]).slice(),
  grad: () => [null],
});

// ---------------------------------------------------------------- transpose

function permAttr(attrs: Attrs, rank: number): number[] {
  const v = attrs.perm;
  const ok =
    Array.isArray(v) &&
    v.length === rank &&
    v.every(isInt) &&
    [...(v as number[])].sort((a, b) => a - b).every((p, i) => p === i);
  if (!ok) fail(`perm ${fmtValue(v)} is not a permutation of the ${rank} axes 0..${rank - 1}`);
  return v as number[];
}

registerOp({
  name: 'transpose',
  kind: 'opaque',
  infer: ([x], attrs) => {
    const t = x as TensorType;
    const perm = permAttr(attrs, t.shape.length);
    return { shape: perm.map((p) => t.shape[p] as number), dtype: t.dtype };
  },
  cpu: ({ inputs, attrs, out }) => {
    const x = inputs[0] as RefTensor;
    const perm = attrs.perm as number[];
    const xs = stridesOf(x.shape);
    const st = perm.map((p) => xs[p] as number);
    return cpuMap(out.shape, (c) => x.data[c.reduce((acc, v, i) => acc + v * (st[i] as number), 0)] as number);
  },
  grad: ({ attrs, dy }) => {
    const perm = attrs.perm as number[];
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [dy.transpose(inv)];
  },
  lower: (a) => {
    const perm = a.attrs.perm as number[];
    const x = a.inputs[0] as LowerArgs['output'];
    const xs = stridesOf(x.type.shape);
    const st = perm.map((p) => xs[p] as number);
    return [
      perThread(a.name, numel(a.output.type.shape), (kb, flat) => {
        const c = unravel(kb, flat, a.output.type.shape);
        storeOut(kb, a, flat, K.load(x.buf, dot(c, st)), { coords: c });
      }),
    ];
  },
});

// ---------------------------------------------------------------- slice

interface AxisSlice {
  readonly start: number;
  readonly step: number;
  readonly len: number;
}

/** Python slice semantics per axis (negative indices count from the end, clamped); null = default. */
function resolveSlice(shape: Shape, attrs: Attrs): AxisSlice[] {
  const starts = intList(attrs, 'starts', true);
  const ends = intList(attrs, 'ends', true);
  const steps = attrs.steps === null || attrs.steps === undefined ? null : intList(attrs, 'steps', true);
  const rank = shape.length;
  if (starts.length !== ends.length)
    fail(`starts ${fmtValue(starts)} and ends ${fmtValue(ends)} have different lengths`);
  if (starts.length > rank) fail(`${starts.length} starts/ends for a rank-${rank} tensor ${fmtShape(shape)}`);
  if (steps && steps.length !== starts.length)
    fail(`steps ${fmtValue(steps)} must have one entry per start (${starts.length})`);
  return shape.map((n, d) => {
    if (d >= starts.length) return { start: 0, step: 1, len: n };
    const step = steps?.[d] ?? 1;
    if (step <= 0) fail(`step ${step} on axis ${d} must be a positive integer`);
    const norm = (v: number): number => (v < 0 ? Math.max(0, v + n) : Math.min(v, n));
    const s = norm(starts[d] ?? 0);
    const e = norm(ends[d] ?? n);
    const len = e > s ? Math.ceil((e - s) / step) : 0;
    if (len === 0) {
      fail(
        `axis ${d} of ${fmtShape(shape)} sliced [${starts[d]}:${ends[d]}:${step}] is empty (zero-size tensors are not supported)`,
      );
    }
    return { start: s, step, len };
  });
}

/** The slice attributes of a node, without inputShape (as passed on to slice_grad and back). */
const sliceAttrs = (attrs: Attrs): Attrs => ({
  starts: attrs.starts ?? [],
  ends: attrs.ends ?? [],
  steps: attrs.steps ?? null,
});

function cpuSlice(x: RefTensor, ax: readonly AxisSlice[], outShape: Shape): Float64Array {
  const xs = stridesOf(x.shape);
  const base = ax.reduce((acc, s, d) => acc + s.start * (xs[d] as number), 0);
  const st = ax.map((s, d) => s.step * (xs[d] as number));
  return cpuMap(outShape, (c) => x.data[c.reduce((acc, v, i) => acc + v * (st[i] as number), base)] as number);
}

registerOp({
  name: 'slice',
  kind: 'opaque',
  infer: ([x], attrs) => {
    const t = x as TensorType;
    return { shape: resolveSlice(t.shape, attrs).map((s) => s.len), dtype: t.dtype };
  },
  cpu: ({ inputs, attrs, out }) => {
    const x = inputs[0] as RefTensor;
    return cpuSlice(x, resolveSlice(x.shape, attrs), out.shape);
  },
  grad: ({ inputs, attrs, dy }) => [
    dy.builder.apply('slice_grad', [dy], { ...sliceAttrs(attrs), inputShape: [...(inputs[0] as Tensor).shape] }),
  ],
  lower: (a) => {
    const x = a.inputs[0] as LowerArgs['output'];
    const ax = resolveSlice(x.type.shape, a.attrs);
    const xs = stridesOf(x.type.shape);
    const base = ax.reduce((acc, s, d) => acc + s.start * (xs[d] as number), 0);
    const st = ax.map((s, d) => s.step * (xs[d] as number));
    return [
      perThread(a.name, numel(a.output.type.shape), (kb, flat) => {
        const c = unravel(kb, flat, a.output.type.shape);
        storeOut(kb, a, flat, K.load(x.buf, addE(K.u32(base), dot(c, st))), { coords: c });
      }),
    ];
  },
});

// ---------------------------------------------------------------- embed: slice_grad and pad

/**
 * out[c] = in[(c - off) / step] where every axis has c >= off, (c - off) % step == 0 and
 * (c - off) / step < in.shape; `fill` elsewhere. slice_grad is an embed with the slice's
 * start/step; pad one with off = before, step 1.
 */
function cpuEmbed(
  x: RefTensor,
  outShape: Shape,
  off: readonly number[],
  step: readonly number[],
  fill: number,
): Float64Array {
  const xs = stridesOf(x.shape);
  return cpuMap(outShape, (c) => {
    let idx = 0;
    for (let d = 0; d < c.length; d++) {
      const r = (c[d] as number) - (off[d] as number);
      const q = r / (step[d] as number);
      if (r < 0 || !Number.isInteger(q) || q >= (x.shape[d] as number)) return fill;
      idx += q * (xs[d] as number);
    }
    return x.data[idx] as number;
  });
}

function lowerEmbed(a: LowerArgs, off: readonly number[], step: readonly number[], fill: Expr): Kernel[] {
  const x = a.inputs[0] as LowerArgs['output'];
  const inShape = x.type.shape;
  const outShape = a.output.type.shape;
  const xs = stridesOf(inShape);
  return [
    perThread(a.name, numel(outShape), (kb, flat) => {
      const c = unravel(kb, flat, outShape);
      const conds: Expr[] = [];
      const q = c.map((cd, d) => {
        const o = off[d] as number;
        const s = step[d] as number;
        const n = inShape[d] as number;
        // An axis copied whole needs no test.
        if (o === 0 && s === 1 && n === outShape[d]) return cd;
        if (o > 0) conds.push(K.ge(cd, K.u32(o)));
        const r = o > 0 ? kb.let('r', K.sub(K.max(cd, K.u32(o)), K.u32(o))) : cd;
        if (s !== 1) conds.push(K.eq(K.mod(r, K.u32(s)), K.u32(0)));
        const qd = s !== 1 ? kb.let('q', K.div(r, K.u32(s))) : r;
        conds.push(K.lt(qd, K.u32(n)));
        return qd;
      });
      if (conds.length === 0) {
        storeOut(kb, a, flat, K.load(x.buf, dot(q, xs)), { coords: c });
        return;
      }
      const ok = kb.let(
        'inside',
        conds.reduce((p, e) => K.and(p, e)),
      );
      const v = kb.var('v', fill);
      kb.if(ok, () => kb.assign(v, K.load(x.buf, dot(q, xs))));
      storeOut(kb, a, flat, v, { coords: c });
    }),
  ];
}

registerOp({
  name: 'slice_grad',
  kind: 'opaque',
  infer: ([dy], attrs) => {
    const t = dy as TensorType;
    const inShape = shapeAttr(attrs, 'inputShape');
    const want = resolveSlice(inShape, attrs).map((s) => s.len);
    if (t.shape.length !== want.length || !t.shape.every((d, i) => d === want[i])) {
      fail(`dy has shape ${fmtShape(t.shape)}, but slicing ${fmtShape(inShape)} gives ${fmtShape(want)}`);
    }
    return { shape: inShape, dtype: t.dtype };
  },
  cpu: ({ inputs, attrs, out }) => {
    const ax = resolveSlice(out.shape, attrs);
    return cpuEmbed(
      inputs[0] as RefTensor,
      out.shape,
      ax.map((s) => s.start),
      ax.map((s) => s.step),
      0,
    );
  },
  grad: ({ attrs, dy }) => [dy.builder.apply('slice', [dy], sliceAttrs(attrs))],
  lower: (a) => {
    const ax = resolveSlice(a.output.type.shape, a.attrs);
    return lowerEmbed(
      a,
      ax.map((s) => s.start),
      ax.map((s) => s.step),
      zeroOf(a.output.type.dtype),
    );
  },
});

function padsAttr(attrs: Attrs, shape: Shape): [number, number][] {
  const v = attrs.pads;
  const ok =
    Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => isInt(x) && x >= 0));
  if (!ok) fail(`pads ${fmtValue(v)} must be a list of [before, after] pairs of non-negative integers`);
  const pads = v as [number, number][];
  if (pads.length > shape.length) fail(`${pads.length} pads for a rank-${shape.length} tensor ${fmtShape(shape)}`);
  return shape.map((_, d) => pads[d] ?? [0, 0]);
}

function padValue(attrs: Attrs, dt: DType): number {
  const v = attrs.value ?? 0;
  if (typeof v !== 'number') fail(`pad value must be a number, got ${fmtValue(v)}`);
  if (
    dt !== 'f32' &&
    !(Number.isInteger(v) && (dt === 'i32' ? v >= -(2 ** 31) && v < 2 ** 31 : v >= 0 && v < 2 ** 32))
  ) {
    fail(`pad value ${v} does not fit dtype ${dt}`);
  }
  return v;
}

registerOp({
  name: 'pad',
  kind: 'opaque',
  infer: ([x], attrs) => {
    const t = x as TensorType;
    const pads = padsAttr(attrs, t.shape);
    padValue(attrs, t.dtype);
    return {
      shape: t.shape.map((d, i) => d + (pads[i] as [number, number])[0] + (pads[i] as [number, number])[1]),
      dtype: t.dtype,
    };
  },
  cpu: ({ inputs, attrs, out }) => {
    const x = inputs[0] as RefTensor;
    const pads = padsAttr(attrs, x.shape);
    return cpuEmbed(
      x,
      out.shape,
      pads.map((p) => p[0]),
      pads.map(() => 1),
      padValue(attrs, x.dtype),
    );
  },
  grad: ({ inputs, attrs, dy }) => {
    const x = inputs[0] as Tensor;
    const pads = padsAttr(attrs, x.shape);
    return [
      dy.slice(
        pads.map((p) => p[0]),
        pads.map((p, d) => p[0] + (x.shape[d] as number)),
      ),
    ];
  },
  lower: (a) => {
    const x = a.inputs[0] as LowerArgs['output'];
    const pads = padsAttr(a.attrs, x.type.shape);
    const dt = x.type.dtype;
    return lowerEmbed(
      a,
      pads.map((p) => p[0]),
      pads.map(() => 1),
      K.lit(padValue(a.attrs, dt), dt),
    );
  },
});

// ---------------------------------------------------------------- concat

registerOp({
  name: 'concat',
  kind: 'opaque',
  infer: (inputs, attrs) => {
    const first = inputs[0];
    if (!first) fail('needs at least one input');
    const rank = first.shape.length;
    if (rank === 0) fail('cannot concatenate scalars (rank 0)');
    const axis = axisAttr(attrs, rank);
    let total = 0;
    inputs.forEach((t, k) => {
      if (t.dtype !== first.dtype) fail(`input ${k} has dtype ${t.dtype}, input 0 has ${first.dtype}`);
      const same = t.shape.length === rank && t.shape.every((d, i) => i === axis || d === first.shape[i]);
      if (!same)
        fail(
          `input ${k} has shape ${fmtShape(t.shape)}, which differs from input 0's ${fmtShape(first.shape)} outside axis ${axis}`,
        );
      total += t.shape[axis] as number;
    });
    const shape = [...first.shape];
    shape[axis] = total;
    return { shape, dtype: first.dtype };
  },
  cpu: ({ inputs, attrs, out }) => {
    const rank = out.shape.length;
    const axis = normAxis(attrs.axis as number, rank);
    const outer = prod(out.shape, 0, axis);
    const inner = prod(out.shape, axis + 1);
    const total = out.shape[axis] as number;
    const res = new Float64Array(numel(out.shape));
    let off = 0;
    for (const t of inputs) {
      const len = t.shape[axis] as number;
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < len * inner; j++)
          res[(o * total + off) * inner + j] = t.data[o * len * inner + j] as number;
      }
      off += len;
    }
    return res;
  },
  grad: ({ inputs, attrs, dy }) => {
    const axis = normAxis(attrs.axis as number, dy.rank);
    let off = 0;
    return inputs.map((t) => {
      const len = t.shape[axis] as number;
      const starts = t.shape.map((_, d) => (d === axis ? off : 0));
      const ends = t.shape.map((n, d) => (d === axis ? off + len : n));
      off += len;
      return dy.slice(starts, ends);
    });
  },
  lower: (a) => {
    const shape = a.output.type.shape;
    const axis = normAxis(a.attrs.axis as number, shape.length);
    const outer = prod(shape, 0, axis);
    const inner = prod(shape, axis + 1);
    const total = shape[axis] as number;
    // The output binding counts against the per-stage storage buffer limit.
    const perKernel = Math.max(1, a.limits.maxStorageBuffersPerShaderStage - 1);
    const kernels: Kernel[] = [];
    let off = 0;
    for (let g = 0; g < a.inputs.length; g += perKernel) {
      const group = a.inputs.slice(g, g + perKernel);
      const groupOff = off;
      const lens = group.map((t) => t.type.shape[axis] as number);
      const groupLen = lens.reduce((p, q) => p + q, 0);
      off += groupLen;
      const name = a.inputs.length > perKernel ? `${a.name}_part${g / perKernel}` : a.name;
      kernels.push(
        perThread(name, outer * groupLen * inner, (kb, flat) => {
          // flat = (o * groupLen + j) * inner + i over this group's region of the output
          const i = inner === 1 ? K.u32(0) : kb.let('i', K.mod(flat, K.u32(inner)));
          const oj = inner === 1 ? flat : kb.let('oj', K.div(flat, K.u32(inner)));
          const j = groupLen === 1 ? K.u32(0) : kb.let('j', K.mod(oj, K.u32(groupLen)));
          const o = outer === 1 ? K.u32(0) : kb.let('o', K.div(oj, K.u32(groupLen)));
          const dst = kb.let('dst', addE(mulC(o, total * inner), addE(mulC(addE(j, K.u32(groupOff)), inner), i)));
          const emit = (k: number, start: number): void => {
            const t = group[k] as LowerArgs['output'];
            const len = lens[k] as number;
            const src = addE(mulC(o, len * inner), addE(mulC(start === 0 ? j : K.sub(j, K.u32(start)), inner), i));
            const v = K.load(t.buf, src);
            kb.store(a.output.buf, dst, a.hasEpilogue ? a.epilogue(v, unravel(kb, dst, shape), dst) : v);
          };
          // if (j < end0) copy input 0 else if (j < end1) copy input 1 ... else copy the last
          const chain = (k: number, start: number): void => {
            if (k === group.length - 1) {
              emit(k, start);
              return;
            }
            const end = start + (lens[k] as number);
            kb.if(
              K.lt(j, K.u32(end)),
              () => emit(k, start),
              () => chain(k + 1, end),
            );
          };
          chain(0, 0);
        }),
      );
    }
    return kernels;
  },
});

// ---------------------------------------------------------------- gather

/**
 * Out-of-range indices: the CPU references reject them; the kernels clamp them into [0, n − 1] (no
 * out-of-bounds read, but a wrong index silently reads or accumulates into the first or last slice).
 * Indices fed from the host are checked before upload instead (compiler/index-ranges.ts records the
 * range on the input, the session checks each feed); indices computed on the GPU are clamped.
 */
function gatherIndex(v: number, n: number, shape: Shape, node: Node): number {
  if (!(Number.isInteger(v) && v >= 0 && v < n)) {
    const at = node.site ? ` (declared at ${node.site})` : '';
    throw new WgflowError(
      `${node.op}: index ${v} is out of range for axis ${node.attrs.axis} of size ${n} (x ${fmtShape(shape)})${at}`,
    );
  }
  return v;
}

/** x (for gather_grad, dx) viewed as [outer, n, inner] around the gather axis; y (dy) is [outer, ni, inner]. */
interface GatherGeom {
  readonly outer: number;
  readonly n: number;
  readonly inner: number;
  readonly ni: number;
}

function gatherGeom(xShape: Shape, axis: number, ni: number): GatherGeom {
  const ax = normAxis(axis, xShape.length);
  return { outer: prod(xShape, 0, ax), n: xShape[ax] as number, inner: prod(xShape, ax + 1), ni };
}

/** Calls f(xi, yi) for every element the gather copies from x[xi] to y[yi], in the order (j, o, i). */
function forEachGathered(
  geom: GatherGeom,
  ind: RefTensor,
  xShape: Shape,
  node: Node,
  f: (xi: number, yi: number) => void,
): void {
  const { outer, n, inner, ni } = geom;
  for (let j = 0; j < ni; j++) {
    const k = gatherIndex(ind.data[j] as number, n, xShape, node);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) f((o * n + k) * inner + i, (o * ni + j) * inner + i);
    }
  }
}

registerOp({
  name: 'gather',
  kind: 'opaque',
  infer: ([x, idx], attrs) => {
    const tx = x as TensorType;
    const ti = idx as TensorType;
    if (!ti) fail('needs inputs (x, indices)');
    if (ti.dtype !== 'i32') fail(`indices must be i32, got ${ti.dtype}${fmtShape(ti.shape)}`);
    const axis = axisAttr(attrs, tx.shape.length);
    return { shape: [...tx.shape.slice(0, axis), ...ti.shape, ...tx.shape.slice(axis + 1)], dtype: tx.dtype };
  },
  cpu: ({ inputs, attrs, node }) => {
    const [x, ind] = inputs as [RefTensor, RefTensor];
    const geom = gatherGeom(x.shape, attrs.axis as number, ind.data.length);
    const res = new Float64Array(geom.outer * geom.ni * geom.inner);
    forEachGathered(geom, ind, x.shape, node, (xi, yi) => {
      res[yi] = x.data[xi] as number;
    });
    return res;
  },
  grad: ({ inputs, attrs, dy }) => {
    const [x, ind] = inputs as [Tensor, Tensor];
    return [dy.builder.apply('gather_grad', [dy, ind], { axis: attrs.axis ?? 0, inputShape: [...x.shape] }), null];
  },
  lower: (a) => {
    const [x, ind] = a.inputs as [LowerArgs['output'], LowerArgs['output']];
    const { outer, n, inner, ni } = gatherGeom(x.type.shape, a.attrs.axis as number, numel(ind.type.shape));
    return [
      perThread(a.name, outer * ni * inner, (kb, flat) => {
        const i = inner === 1 ? K.u32(0) : kb.let('i', K.mod(flat, K.u32(inner)));
        const oj = inner === 1 ? flat : kb.let('oj', K.div(flat, K.u32(inner)));
        const j = ni === 1 ? K.u32(0) : kb.let('j', K.mod(oj, K.u32(ni)));
        const o = outer === 1 ? K.u32(0) : kb.let('o', K.div(oj, K.u32(ni)));
        // out-of-range indices are clamped (the CPU reference rejects them)
        const k = kb.let('k', K.cast('u32', K.call('clamp', K.load(ind.buf, j), K.i32(0), K.i32(n - 1))));
        const src = addE(mulC(o, n * inner), addE(mulC(k, inner), i));
        storeOut(kb, a, flat, K.load(x.buf, src));
      }),
    ];
  },
});

registerOp({
  name: 'gather_grad',
  kind: 'opaque',
  infer: ([dy, idx], attrs) => {
    const td = dy as TensorType;
    const ti = idx as TensorType;
    if (!ti) fail('needs inputs (dy, indices)');
    if (ti.dtype !== 'i32') fail(`indices must be i32, got ${ti.dtype}${fmtShape(ti.shape)}`);
    const inShape = shapeAttr(attrs, 'inputShape');
    const axis = axisAttr(attrs, inShape.length);
    const want = [...inShape.slice(0, axis), ...ti.shape, ...inShape.slice(axis + 1)];
    if (td.shape.length !== want.length || !td.shape.every((d, i) => d === want[i])) {
      fail(
        `dy has shape ${fmtShape(td.shape)}, but gathering ${fmtShape(inShape)} along axis ${axis} gives ${fmtShape(want)}`,
      );
    }
    return { shape: inShape, dtype: td.dtype };
  },
  cpu: ({ inputs, attrs, out, node }) => {
    const [dy, ind] = inputs as [RefTensor, RefTensor];
    const res = new Float64Array(numel(out.shape));
    forEachGathered(gatherGeom(out.shape, attrs.axis as number, ind.data.length), ind, out.shape, node, (xi, yi) => {
      res[xi] = (res[xi] as number) + (dy.data[yi] as number);
    });
    return res;
  },
  grad: ({ inputs, attrs, dy }) => [dy.gather(inputs[1] as Tensor, attrs.axis as number), null],
  lower: (a) => {
    const [dy, ind] = a.inputs as [LowerArgs['output'], LowerArgs['output']];
    const shape = a.output.type.shape;
    const { outer, n, inner, ni } = gatherGeom(shape, a.attrs.axis as number, numel(ind.type.shape));
    const dt = a.output.type.dtype;
    return [
      perThread(a.name, numel(shape), (kb, flat) => {
        // flat = (o * n + k) * inner + i; sum dy[o, j, i] over every j whose index is k
        const i = inner === 1 ? K.u32(0) : kb.let('i', K.mod(flat, K.u32(inner)));
        const ok = inner === 1 ? flat : kb.let('ok', K.div(flat, K.u32(inner)));
        const k = n === 1 ? K.u32(0) : kb.let('k', K.mod(ok, K.u32(n)));
        const o = outer === 1 ? K.u32(0) : kb.let('o', K.div(ok, K.u32(n)));
        const base = kb.let('base', addE(mulC(o, ni * inner), i));
        const acc = kb.var('acc', zeroOf(dt));
        kb.for(
          'j',
          0,
          ni,
          (j) => {
            const kj = K.cast('u32', K.call('clamp', K.load(ind.buf, j), K.i32(0), K.i32(n - 1)));
            kb.if(K.eq(kj, k), () => kb.assign(acc, K.add(acc, K.load(dy.buf, addE(base, mulC(j, inner))))));
          },
          { t: 'u32' },
        );
        storeOut(kb, a, flat, acc);
      }),
    ];
  },
});
