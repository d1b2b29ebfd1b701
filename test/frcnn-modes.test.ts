/**
 * Faster R-CNN training modes (models/frcnn/train.ts) and the solver pieces (compiler/optim.ts
 * multipliers, models/frcnn/schedule.ts):
 * - non-approximate joint training: the head's losses reach the RPN's regression branch through
 *   RoIAlign's box gradient (zero in approximate mode), the gradient matches central differences of the
 *   float64 interpreter, and the GPU step matches the CPU;
 * - 'rpn' / 'fast-rcnn' modes and freezeShared (alternating training) train the right parameter sets;
 * - biases learn at 2× lr with no weight decay; the step lr policy; the visiting order; the
 *   non-finite-loss error names the iteration and the term.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { limitsFrom } from '../compiler/limits.js';
import { CAFFE_BIAS_MULTIPLIERS, sgd } from '../compiler/optim.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, init, type Tensor } from '../compiler/tensor.js';
import { checkFinite, learningRateAt, NonFiniteLossError, visitAt } from '../models/frcnn/schedule.js';
import { buildFrcnnTraining, type FrcnnTrainingOptions } from '../models/frcnn/train.js';
import { generateAnchors } from '../ops/anchors.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session } from '../runtime/session.js';
import { fanInParamFeeds, rand, relError } from './helpers.js';

const K = 3;
const G = 3;
const H = 48;
const W = 64;
const BASE: FrcnnTrainingOptions = {
  backbone: 'frcnn-small',
  numClasses: K,
  canvas: [H, W],
  maxGt: G,
  baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2]),
  proposals: { minSize: 4, preNmsTopN: 120, postNmsTopN: 32 },
  anchorTargets: { batchSize: 64 },
  proposalTargets: { batchSize: 16 },
  dropout: false,
  pooling: 'roi_align',
};

function dataFeeds(seed: number): Record<string, number[]> {
  return {
    image: rand([1, 3, H, W], seed),
    im_info: [H, W, 1],
    gt_boxes: [4, 6, 26, 30, 30, 10, 60, 40, 14, 20, 44, 46],
    gt_labels: [1, 2, 3],
    gt_count: [3],
    seed: [777],
  };
}

const paramByName = (g: GraphBuilder, name: string): Tensor => {
  const n = g.graph.nodes.find((x) => x.op === 'param' && x.name === name);
  if (!n) throw new Error(`no param ${name}`);
  return g.tensor(n.id);
};

describe('non-approximate joint training (RoIAlign box gradient)', () => {
  it("the head classification loss's gradient reaches rpn.bbox_pred only in 'joint' mode, and matches central differences", () => {
    const headGrad = (mode: 'joint' | 'approximate-joint') => {
      const g = new GraphBuilder();
      const m = buildFrcnnTraining(g, { ...BASE, mode, optimizer: false });
      // cls_loss: it depends on the boxes only through RoIAlign (labels are discrete). bbox_loss also
      // depends on them through its regression targets, which the analytic gradient deliberately holds
      // constant (as torchvision does), so central differences would not match it.
      const headLoss = m.losses.cls as Tensor;
      const b = paramByName(g, 'rpn.bbox_pred.bias');
      const [gb] = grad(headLoss, [b]);
      return { g, headLoss, b, gb: gb as Tensor };
    };
    const joint = headGrad('joint');
    const approx = headGrad('approximate-joint');
    const f = { ...fanInParamFeeds(joint.g, 21), ...dataFeeds(5) };
    const [lj, gj] = interpret(joint.g.graph, f, [joint.headLoss.id, joint.gb.id]) as [RefTensor, RefTensor];
    const [, ga] = interpret(approx.g.graph, { ...fanInParamFeeds(approx.g, 21), ...dataFeeds(5) }, [
      approx.headLoss.id,
      approx.gb.id,
    ]) as [RefTensor, RefTensor];
    const norm = (a: ArrayLike<number>) => Math.hypot(...Array.from(a));
    expect(norm(ga.data)).toBe(0);
    expect(norm(gj.data)).toBeGreaterThan(1e-6);
    // central differences in float64 on the 4·A bias entries (the discrete choices stay fixed for ε = 1e-5)
    const eps = 1e-5;
    const base = f['rpn.bbox_pred.bias'] as number[];
    const fd = base.map((_, i) => {
      const at = (d: number) => {
        const p = base.slice();
        p[i] = (p[i] as number) + d;
        return (interpret(joint.g.graph, { ...f, 'rpn.bbox_pred.bias': p }, [joint.headLoss.id])[0] as RefTensor)
          .data[0] as number;
      };
      return (at(eps) - at(-eps)) / (2 * eps);
    });
    const e = relError(gj.data, fd);
    console.log(
      `joint: head loss ${(lj.data[0] as number).toFixed(4)}, |d head / d rpn.bbox_pred.bias| = ${norm(gj.data).toExponential(3)}, FD rel err ${e.toExponential(2)}`,
    );
    expect(e).toBeLessThanOrEqual(1e-4);
  }, 900_000);

  it("'joint' mode: one GPU training step's gradients match the CPU interpreter", async () => {
    const g = new GraphBuilder();
    const m = buildFrcnnTraining(g, { ...BASE, mode: 'joint' });
    const outs: Record<string, Tensor> = { ...m.outputs };
    m.params.forEach((p, i) => {
      outs[`grad:${p.node.name}`] = m.grads[i] as Tensor;
    });
    const feeds = { ...fanInParamFeeds(g, 31), ...dataFeeds(9) };
    const dev = await getDevice();
    const { spec } = compile(g, { outputs: outs, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev, initial: feeds });
    const inputs: Record<string, number[]> = {};
    for (const i of spec.inputs) inputs[i.name] = feeds[i.name] as number[];
    const gpu = await session.run(inputs);
    session.destroy();
    const names = Object.keys(outs);
    const cpu = interpret(
      g.graph,
      feeds,
      names.map((n) => (outs[n] as Tensor).id),
    );
    names.forEach((name, k) => {
      expect(relError((gpu[name] as HostTensor).data, (cpu[k] as RefTensor).data), name).toBeLessThanOrEqual(1e-3);
    });
  }, 900_000);

  it("'joint' needs RoIAlign", () => {
    expect(() => buildFrcnnTraining(new GraphBuilder(), { ...BASE, pooling: 'roi_pool', mode: 'joint' })).toThrow(
      /roi_align/,
    );
  });
});

describe('alternating-training modes', () => {
  it("'rpn' trains backbone + RPN on the RPN losses; 'fast-rcnn' with freezeShared trains only the head", async () => {
    const gr = new GraphBuilder();
    const rpn = buildFrcnnTraining(gr, { ...BASE, mode: 'rpn' });
    expect(Object.keys(rpn.outputs).sort()).toEqual(['loss', 'rpn_bbox_loss', 'rpn_cls_loss']);
    const rpnNames = rpn.params.map((p) => p.node.name as string);
    expect(rpnNames.some((n) => n.startsWith('features.'))).toBe(true);
    expect(rpnNames.every((n) => n.startsWith('features.') || n.startsWith('rpn.'))).toBe(true);

    const gf = new GraphBuilder();
    const fr = buildFrcnnTraining(gf, { ...BASE, mode: 'fast-rcnn', freezeShared: true, proposalCapacity: 12 });
    expect(Object.keys(fr.outputs).sort()).toEqual(['bbox_loss', 'cls_loss', 'loss']);
    const frNames = fr.params.map((p) => p.node.name as string);
    expect(frNames.length).toBe(8); // fc6, fc7, cls_score, bbox_pred: weight + bias
    expect(frNames.some((n) => n.startsWith('features.') || n.startsWith('rpn.'))).toBe(false);

    // the fast-rcnn step on given proposals: GPU losses match the CPU
    const feeds: Record<string, number[]> = {
      ...fanInParamFeeds(gf, 41),
      ...dataFeeds(13),
      proposals: rand([12, 4], 3, 0, 30).map((v, i) => (i % 4 >= 2 ? v + 12 : v)),
      proposal_count: [10],
    };
    const dev = await getDevice();
    const { spec } = compile(gf, { outputs: fr.outputs, limits: limitsFrom(dev.limits) });
    const session = await Session.create(spec, { gpu: dev, initial: feeds });
    const inputs: Record<string, number[]> = {};
    for (const i of spec.inputs) inputs[i.name] = feeds[i.name] as number[];
    const out = await session.run(inputs);
    session.destroy();
    const names = Object.keys(fr.outputs);
    const cpu = interpret(
      gf.graph,
      feeds,
      names.map((n) => (fr.outputs[n] as Tensor).id),
    );
    names.forEach((n, k) => {
      const v = (out[n] as HostTensor).data[0] as number;
      expect(v).toBeGreaterThan(0);
      expect(Math.abs(v - ((cpu[k] as RefTensor).data[0] as number))).toBeLessThanOrEqual(1e-4 * Math.max(1, v));
    });
  }, 900_000);
});

describe('solver', () => {
  it('biases: lr ×2 and no weight decay (CAFFE_BIAS_MULTIPLIERS); weights: lr, decay', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [5, 3]);
    const w = g.param('fc.weight', [2, 3], init.normal(0.5, 1));
    const b = g.param('fc.bias', [2], init.normal(0.5, 2));
    const y = x.matmul(w.transpose([1, 0])).add(b);
    const loss = y.mul(y).sum();
    const step = sgd(loss, { momentum: 0, weightDecay: 0.1, multipliers: CAFFE_BIAS_MULTIPLIERS });
    const feeds = { x: rand([5, 3], 1), 'fc.weight': rand([2, 3], 2), 'fc.bias': rand([2], 3), lr: [0.05] };
    const ids = [...step.updates.map((u) => u.value.id), ...step.grads.map((t) => t.id)];
    const r = interpret(g.graph, feeds, ids) as RefTensor[];
    const [wNew, bNew, gw, gb] = r as [RefTensor, RefTensor, RefTensor, RefTensor];
    feeds['fc.weight'].forEach((p, i) => {
      expect(wNew.data[i]).toBeCloseTo(p - 0.05 * ((gw.data[i] as number) + 0.1 * p), 10);
    });
    feeds['fc.bias'].forEach((p, i) => {
      expect(bNew.data[i]).toBeCloseTo(p - 0.1 * (gb.data[i] as number), 10);
    });
  });

  it('step lr policy with warm-up', () => {
    const s = { base: 0.02, steps: [100, 150], warmupIters: 10, warmupFactor: 0.1 };
    expect(learningRateAt(s, 0)).toBeCloseTo(0.002, 12);
    expect(learningRateAt(s, 5)).toBeCloseTo(0.02 * (0.1 + 0.9 * 0.5), 12);
    expect(learningRateAt(s, 10)).toBeCloseTo(0.02, 12);
    expect(learningRateAt(s, 99)).toBeCloseTo(0.02, 12);
    expect(learningRateAt(s, 100)).toBeCloseTo(0.002, 12);
    expect(learningRateAt(s, 150)).toBeCloseTo(0.0002, 12);
  });

  it('visiting order: each epoch a permutation, deterministic, flips on odd epochs', () => {
    const n = 17;
    for (let e = 0; e < 3; e++) {
      const seen = Array.from({ length: n }, (_, k) => visitAt(e * n + k, n, 3, true));
      expect(new Set(seen.map((v) => v.index)).size).toBe(n);
      expect(seen.every((v) => v.flip === (e % 2 === 1))).toBe(true);
    }
    const a = Array.from({ length: n }, (_, k) => visitAt(k, n, 3, false).index);
    const b = Array.from({ length: n }, (_, k) => visitAt(n + k, n, 3, false).index);
    expect(a).not.toEqual(b);
    expect(visitAt(40, n, 3, true)).toEqual(visitAt(40, n, 3, true));
  });

  it('a non-finite loss term stops training with the iteration and the term', () => {
    expect(() => checkFinite(7, { rpn_cls_loss: 0.3, loss: 0.5 })).not.toThrow();
    let err: unknown;
    try {
      checkFinite(1234, { rpn_cls_loss: 0.3, cls_loss: Number.NaN, loss: Number.NaN }, 'ckpt/last.safetensors');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect((err as Error).message).toMatch(/'cls_loss' is NaN at iteration 1234/);
    expect((err as Error).message).toMatch(/ckpt\/last\.safetensors/);
    expect(() => checkFinite(3, { bbox_loss: Number.POSITIVE_INFINITY, loss: 1 })).toThrow(/'bbox_loss' is Infinity/);
  });
});
