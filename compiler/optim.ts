/**
 * Optimizers as graph nodes: the update of every parameter is part of the compiled step, so it runs
 * as fused kernels in the same command buffer as the forward and backward passes, and parameters and
 * optimizer state never leave the GPU. The learning rate is a scalar input, so a schedule changes it
 * per step without recompiling.
 */
import { grad } from './autodiff.js';
import type { Update } from './compile.js';
import { WgflowError } from './errors.js';
import { type GraphBuilder, init, type Tensor } from './tensor.js';

export interface SgdOptions {
  /** Momentum (PyTorch semantics: buf = momentum·buf + g; p -= lr·buf). Default 0.9. */
  readonly momentum?: number;
  /** L2 weight decay added to the gradient (g + wd·p). Default 0. */
  readonly weightDecay?: number;
  /** Parameters to train; default: every trainable param of the graph. */
  readonly params?: readonly Tensor[];
  /** Name of the learning-rate input (an f32 scalar fed each run). */
  readonly lrInput?: string;
  /**
   * Per-parameter multipliers (Caffe's lr_mult / decay_mult), e.g. py-faster-rcnn's biases: lr ×2,
   * no weight decay. Default 1 and 1.
   */
  readonly multipliers?: (param: Tensor) => { readonly lr?: number; readonly decay?: number };
}

/** py-faster-rcnn's solver convention: biases learn at 2× the rate and get no weight decay. */
export const CAFFE_BIAS_MULTIPLIERS = (p: Tensor): { lr: number; decay: number } =>
  /(^|\.)bias$/.test(p.node.name ?? '') ? { lr: 2, decay: 0 } : { lr: 1, decay: 1 };

export interface TrainStep {
  readonly updates: Update[];
  readonly params: Tensor[];
  readonly grads: Tensor[];
  /** Feed the learning rate under this input name each step. */
  readonly lrInput: string;
}

export function trainableParams(g: GraphBuilder): Tensor[] {
  return g.graph.nodes.filter((n) => n.op === 'param' && n.attrs.trainable !== false).map((n) => g.tensor(n.id));
}

/** Gradients of `loss` and SGD updates (with momentum and weight decay) for the params. */
export function sgd(loss: Tensor, opts: SgdOptions = {}): TrainStep {
  const g = loss.builder;
  const params = [...(opts.params ?? trainableParams(g))];
  if (params.length === 0) throw new WgflowError('sgd: the graph has no trainable parameters');
  const momentum = opts.momentum ?? 0.9;
  const wd = opts.weightDecay ?? 0;
  const lrName = opts.lrInput ?? 'lr';
  const lr = g.input(lrName, [], 'f32');
  const grads = grad(loss, params);
  const updates: Update[] = [];
  params.forEach((p, i) => {
    let gi = grads[i] as Tensor;
    const mult = opts.multipliers?.(p) ?? {};
    const decay = wd * (mult.decay ?? 1);
    const lrMult = mult.lr ?? 1;
    if (decay !== 0) gi = gi.add(p.mul(decay));
    if (momentum !== 0) {
      const buf = g.state(`${p.node.name}.momentum`, p.shape, init.zeros());
      const next = buf.mul(momentum).add(gi);
      updates.push({ target: buf, value: next });
      gi = next;
    }
    updates.push({ target: p, value: p.sub(gi.mul(lrMult === 1 ? lr : lr.mul(lrMult))) });
  });
  return { updates, params, grads, lrInput: lrName };
}
