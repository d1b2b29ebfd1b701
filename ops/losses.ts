/**
 * Losses: softmax cross-entropy over class logits (opaque kernels for the loss and its gradient,
 * with an ignored label) and smooth L1 (an elementwise op that fuses), plus the user-facing
 * functions that apply a reduction.
 */

import type { Dim } from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtShape, fmtType, sameDims, type TensorType, typeOf } from '../compiler/types.js';
import { storeOut } from './kit/store.js';
import { type RowCtx, rowKernel } from './rows.js';
import { rowMaxSumExp } from './softmax.js';
import { numAttr } from './util.js';

export type Reduction = 'mean' | 'sum' | 'none';

function ignoreAttr(attrs: LowerArgs['attrs']): number {
  const ii = numAttr(attrs, 'ignoreIndex');
  if (!Number.isInteger(ii) || ii < -2147483648 || ii > 2147483647)
    fail(`ignoreIndex must be an i32 integer, got ${ii}`);
  return ii;
}

/**
 * Shape rule shared by the loss and its gradient: logits f32[N,C], labels i32[N] (and dy f32[N]). N may be a
 * run-time size; C is static.
 */
function checkCe(inputs: readonly TensorType[], withDy: boolean): { n: Dim; c: number } {
  const want = withDy ? 3 : 2;
  if (inputs.length !== want)
    fail(`takes ${want} inputs (logits, labels${withDy ? ', dy' : ''}), got ${inputs.length}`);
  const [logits, labels, dy] = inputs as [TensorType, TensorType, TensorType | undefined];
  const [n, c] = dimsOf(logits) as [Dim, Dim];
  if (logits.dtype !== 'f32' || logits.shape.length !== 2) fail(`logits must be f32[N,C], got ${fmtType(logits)}`);
  if (typeof c !== 'number') fail(`the class count C of logits ${fmtType(logits)} must be a static size`);
  if (labels.dtype !== 'i32')
    fail(`labels must be i32 (class indices), got ${fmtType(labels)}; cast them with .cast('i32')`);
  if (!sameDims(dimsOf(labels), [n]))
    fail(`labels must be i32${fmtShape([n])} to match logits ${fmtType(logits)}, got ${fmtType(labels)}`);
  if (dy && (dy.dtype !== 'f32' || !sameDims(dimsOf(dy), [n])))
    fail(`dy must be f32${fmtShape([n])}, got ${fmtType(dy)}`);
  return { n, c };
}

/** Per-row float64 log-sum-exp and the row's label; throws on a label outside [0, C) that is not ignored. */
function cpuRows(
  op: string,
  logits: RefTensor,
  labels: RefTensor,
  ignoreIndex: number,
  each: (row: number, label: number | null, m: number, s: number) => void,
): void {
  const [n, c] = logits.shape as [number, number];
  for (let r = 0; r < n; r++) {
    const label = labels.data[r] as number;
    if (label === ignoreIndex) {
      each(r, null, 0, 1);
      continue;
    }
    if (!(Number.isInteger(label) && label >= 0 && label < c)) {
      throw new WgflowError(
        `${op}: label ${label} of row ${r} is outside [0, ${c}) and is not the ignoreIndex ${ignoreIndex}`,
      );
    }
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < c; j++) m = Math.max(m, logits.data[r * c + j] as number);
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp((logits.data[r * c + j] as number) - m);
    each(r, label, m, s);
  }
}

/** Label handling shared by both kernels: ignored rows give 0, labels outside [0, C) give NaN. */
function labelGuard(lab: Expr, c: number, ignoreIndex: number, value: Expr): Expr {
  const inRange = K.and(K.ge(lab, K.i32(0)), K.lt(lab, K.i32(c)));
  return K.select(K.eq(lab, K.i32(ignoreIndex)), K.f32(0), K.select(inRange, value, K.f32(Number.NaN)));
}

/**
 * The kernel of both ops: one row of logits f32[N,C] (input 0) at a time, with the row's label
 * (input 1) loaded as `lab` (i32); `body` computes and stores the row's outputs.
 */
function ceRowKernel(
  args: LowerArgs,
  body: (ctx: RowCtx, logits: BufRef, lab: Expr, c: number, ignoreIndex: number) => void,
): Kernel[] {
  const [la, lb] = args.inputs;
  if (!la || !lb) throw new Error(`internal: ${args.node.op} needs logits and labels`);
  const [n, c] = dimsOf(la.type) as [Dim, number];
  const ii = ignoreAttr(args.attrs);
  const kernel = rowKernel(
    args.name,
    { outer: n, len: c, inner: 1 },
    args.limits,
    (ctx) => body(ctx, la.buf, ctx.kb.let('lab', K.load(lb.buf, ctx.row)), c, ii),
    { sharedBytesPerLane: 4 },
  );
  return [kernel];
}

registerOp({
  name: 'softmax_cross_entropy',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    const { n } = checkCe(inputs, false);
    ignoreAttr(attrs);
    return typeOf([n], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [logits, labels] = inputs as [RefTensor, RefTensor];
    const c = logits.shape[1] as number;
    const out = new Float64Array(logits.shape[0] as number);
    cpuRows('softmax_cross_entropy', logits, labels, ignoreAttr(attrs), (r, label, m, s) => {
      out[r] = label === null ? 0 : m + Math.log(s) - (logits.data[r * c + label] as number);
    });
    return out;
  },
  grad: ({ inputs, attrs, dy }) => {
    const [logits, labels] = inputs as [Tensor, Tensor];
    return [
      logits.builder.apply('softmax_cross_entropy_grad', [logits, labels, dy], { ignoreIndex: ignoreAttr(attrs) }),
      null,
    ];
  },
  lower: (args) =>
    ceRowKernel(args, (ctx, la, lab, c, ii) => {
      const { kb } = ctx;
      const { m, s } = rowMaxSumExp(ctx, (idx) => K.load(la, idx));
      kb.if(K.and(ctx.valid, ctx.leader), () => {
        const safe = K.cast('u32', K.call('clamp', lab, K.i32(0), K.i32(c - 1)));
        const xl = K.load(la, K.add(ctx.base, safe));
        const loss = labelGuard(lab, c, ii, K.sub(K.add(m, K.log(s)), xl));
        storeOut(kb, args, ctx.row, loss);
      });
    }),
});

registerOp({
  name: 'softmax_cross_entropy_grad',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    const { n, c } = checkCe(inputs, true);
    ignoreAttr(attrs);
    return typeOf([n, c], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const [logits, labels, dy] = inputs as [RefTensor, RefTensor, RefTensor];
    const c = logits.shape[1] as number;
    const out = new Float64Array(logits.data.length);
    cpuRows('softmax_cross_entropy_grad', logits, labels, ignoreAttr(attrs), (r, label, m, s) => {
      if (label === null) return;
      const d = dy.data[r] as number;
      for (let j = 0; j < c; j++) {
        const p = Math.exp((logits.data[r * c + j] as number) - m) / s;
        out[r * c + j] = d * (p - (j === label ? 1 : 0));
      }
    });
    return out;
  },
  lower: (args) => {
    const ld = args.inputs[2];
    if (!ld) throw new Error('internal: softmax_cross_entropy_grad needs three inputs');
    return ceRowKernel(args, (ctx, la, lab, c, ii) => {
      const { kb } = ctx;
      const d = kb.let('dy', K.load(ld.buf, ctx.row));
      const { m, s } = rowMaxSumExp(ctx, (idx) => K.load(la, idx));
      const inv = kb.let('inv', K.div(K.f32(1), s));
      kb.if(ctx.valid, () => {
        ctx.forEach((j, idx) => {
          const p = K.mul(K.exp(K.sub(K.load(la, idx), m)), inv);
          const onehot = K.select(K.eq(K.cast('i32', j), lab), K.f32(1), K.f32(0));
          storeOut(kb, args, idx, labelGuard(lab, c, ii, K.mul(d, K.sub(p, onehot))));
        });
      });
    });
  },
});

/**
 * Softmax cross-entropy of logits f32[N,C] against i32[N] class labels. Rows whose label equals
 * `ignoreIndex` contribute 0; 'mean' divides by the number of other rows (at least 1). A label outside
 * [0, C) that is not the ignoreIndex is rejected when fed from the host (the session checks the feed)
 * and by the CPU interpreter; computed on the GPU, it gives a NaN loss for its row.
 */
export function softmaxCrossEntropy(
  logits: Tensor,
  labels: Tensor,
  opts: { ignoreIndex?: number; reduction?: Reduction } = {},
): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -1;
  const reduction = opts.reduction ?? 'mean';
  const perRow = logits.builder.apply('softmax_cross_entropy', [logits, labels], { ignoreIndex });
  if (reduction === 'none') return perRow;
  if (reduction === 'sum') return perRow.sum();
  const count = labels.ne(ignoreIndex).cast('f32').sum().maximum(1);
  return perRow.sum().div(count);
}

function betaAttr(attrs: LowerArgs['attrs']): number {
  const beta = numAttr(attrs, 'beta');
  if (!(beta >= 0 && Number.isFinite(beta))) fail(`beta must be a finite number >= 0, got ${beta}`);
  return beta;
}

registerOp({
  name: 'smooth_l1',
  kind: 'elementwise',
  dynamic: true,
  infer: (inputs, attrs) => {
    if (inputs.length !== 1) fail(`takes one input, got ${inputs.length}`);
    const x = inputs[0] as TensorType;
    if (x.dtype !== 'f32') fail(`needs f32, got ${x.dtype}`);
    betaAttr(attrs);
    return x;
  },
  cpu: ({ inputs, attrs }) => {
    const beta = betaAttr(attrs);
    return (inputs[0] as RefTensor).data.map((v) => {
      const a = Math.abs(v);
      if (beta === 0) return a;
      return a < beta ? (0.5 * v * v) / beta : a - 0.5 * beta;
    });
  },
  expr: ({ args, attrs }) => {
    const beta = betaAttr(attrs);
    const x = args[0] as Expr;
    const a = K.abs(x);
    if (beta === 0) return a;
    return K.select(K.lt(a, beta), K.div(K.mul(K.mul(x, 0.5), x), beta), K.sub(a, 0.5 * beta));
  },
  grad: ({ inputs, attrs, dy }) => {
    const x = inputs[0] as Tensor;
    const beta = betaAttr(attrs);
    if (beta === 0) return [dy.mul(x.gt(0).cast('f32').sub(x.lt(0).cast('f32')))];
    return [dy.mul(x.div(beta).maximum(-1).minimum(1))];
  },
});

/** Elementwise smooth L1 (Huber divided by beta): 0.5x²/β where |x| < β, |x| − 0.5β elsewhere (β = 0: |x|). */
export function smoothL1(x: Tensor, beta = 1): Tensor {
  return x.builder.apply('smooth_l1', [x], { beta });
}

/** Smooth L1 loss between prediction and target (same shapes, or broadcasting), reduced. */
export function smoothL1Loss(
  pred: Tensor,
  target: Tensor,
  opts: { beta?: number; reduction?: Reduction } = {},
): Tensor {
  const per = smoothL1(pred.sub(target), opts.beta ?? 1);
  const reduction = opts.reduction ?? 'mean';
  if (reduction === 'none') return per;
  return reduction === 'sum' ? per.sum() : per.mean();
}
