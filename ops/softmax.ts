/**
 * softmax and log_softmax along any axis. One kernel: each row (all elements along the axis for a
 * fixed other index) is handled by one thread when short, or one workgroup with its max and sum
 * reductions in workgroup memory when long. Numerically stable (the row max is subtracted first).
 */
import { fail } from '../compiler/errors.js';
import type { Expr } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { dimsOf, type Shape, type TensorType } from '../compiler/types.js';
import { storeOut } from './kit/store.js';
import { axisAttr } from './reduce.js';
import { type RowCtx, rowGeom, rowGeomDims, rowKernel } from './rows.js';

type Mode = 'softmax' | 'log_softmax';

/** Float64 softmax / log_softmax of x along `axis`. */
export function cpuSoftmax(x: RefTensor, axis: number, mode: Mode): Float64Array {
  const { outer, len, inner } = rowGeom(x.shape, axis);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let m = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < len; j++) m = Math.max(m, x.data[base + j * inner] as number);
      let s = 0;
      for (let j = 0; j < len; j++) s += Math.exp((x.data[base + j * inner] as number) - m);
      const ls = Math.log(s);
      for (let j = 0; j < len; j++) {
        const k = base + j * inner;
        const z = (x.data[k] as number) - m;
        out[k] = mode === 'softmax' ? Math.exp(z) / s : z - ls;
      }
    }
  }
  return out;
}

/** Emits the row max and the row sum of exp(x - max) (both f32, shared by the whole row). */
export function rowMaxSumExp(c: RowCtx, load: (idx: Expr) => Expr): { m: Expr; s: Expr } {
  const { kb } = c;
  // Start from the row's first element (every invocation can read it).
  const pm = kb.var('pm', load(c.base));
  c.forEach((_j, idx) => kb.assign(pm, K.max(pm, load(idx))));
  const m = c.reduce(pm, 'max');
  const ps = kb.var('ps', K.f32(0));
  c.forEach((_j, idx) => kb.assign(ps, K.add(ps, K.exp(K.sub(load(idx), m)))));
  const s = c.reduce(ps, 'sum');
  return { m, s };
}

function lowerSoftmax(args: LowerArgs, mode: Mode) {
  const xa = args.inputs[0];
  if (!xa) throw new Error(`internal: ${mode} without an input`);
  const x = xa.buf;
  const geom = rowGeomDims(dimsOf(xa.type), axisAttr(args.attrs, xa.type.shape));
  const kernel = rowKernel(
    args.name,
    geom,
    args.limits,
    (c) => {
      const { kb } = c;
      const { m, s } = rowMaxSumExp(c, (idx) => K.load(x, idx));
      const scale = mode === 'softmax' ? kb.let('inv', K.div(K.f32(1), s)) : kb.let('lse', K.add(m, K.log(s)));
      kb.if(c.valid, () => {
        c.forEach((_j, idx) => {
          const v = K.load(x, idx);
          const y = mode === 'softmax' ? K.mul(K.exp(K.sub(v, m)), scale) : K.sub(v, scale);
          storeOut(kb, args, idx, y);
        });
      });
    },
    { sharedBytesPerLane: 4 },
  );
  return [kernel];
}

for (const mode of ['softmax', 'log_softmax'] as const) {
  registerOp({
    name: mode,
    kind: 'opaque',
    dynamic: true,
    infer: (inputs, attrs) => {
      if (inputs.length !== 1) fail(`takes one input, got ${inputs.length}`);
      const x = inputs[0] as TensorType;
      if (x.dtype !== 'f32') fail(`needs f32, got ${x.dtype}`);
      axisAttr(attrs, x.shape);
      return x;
    },
    cpu: ({ inputs, attrs }) => {
      const x = inputs[0] as RefTensor;
      return cpuSoftmax(x, axisAttr(attrs, x.shape), mode);
    },
    grad: ({ inputs, attrs, output: y, dy }) => {
      const x = inputs[0] as Tensor;
      const axis = axisAttr(attrs, x.shape as Shape);
      if (mode === 'softmax') return [y.mul(dy.sub(dy.mul(y).sum(axis, true)))];
      return [dy.sub(y.exp().mul(dy.sum(axis, true)))];
    },
    lower: (args) => lowerSoftmax(args, mode),
  });
}
