/**
 * One training iteration of a conv stack: the small Faster R-CNN backbone (models/frcnn `frcnn-small`,
 * its current conv + ReLU + pool blocks) on a batch of 8 seeded 3×128×128 images, flattened → linear
 * (10 classes) → softmax cross-entropy (mean) → gradients → SGD with momentum 0.9 (lr 0.001), the loss
 * read back every step.
 * - wgflow: forward, backward and update in ONE compiled step (one command buffer; params and momentum
 *   stay on the GPU);
 * - TF.js: `optimizer.minimize` (tf.train.momentum(0.001, 0.9)) over variables on the same WebGPU device,
 *   the batch uploaded from the same host arrays each step, the loss read with data();
 * - onnxruntime-node: cannot train (see the row).
 * Both start from wgflow's initial parameters. Check: the losses of the first two steps (the second
 * depends on the first update, i.e. on every gradient) and the first conv's and the linear layer's
 * weights after those two steps.
 * GFLOP = 3 × the forward conv + matmul work (forward, data gradient, weight gradient).
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import { GraphBuilder, getDevice, init, limitsFrom, linear, quietly, sgd, softmaxCrossEntropy } from '../../index.js';
import { FRCNN_MODELS } from '../../models/frcnn/index.js';
import { seeded } from '../harness.js';
import { type ConvLayer, convMatmulGflop, walkStack } from './backbone-walk.js';
import { floatCheck } from './check.js';
import { tfStack, tfStackWeights } from './stack-peers.js';
import { batchNchwToNhwc, linearWeightForNhwc, loadTf, type Tf, tfFlush } from './tf.js';
import { registerTrainingGradients } from './tf-grads.js';
import type { Outputs, Prepared, Runner, Workload } from './types.js';
import { wgflowProgram } from './wgflow.js';

const B = 8;
const S = 128;
const CLASSES = 10;
const LR = 0.001;
const MOMENTUM = 0.9;

/** HWIO → OIHW (to compare TF.js filters with wgflow's). */
function hwioToOihw(x: ArrayLike<number>, o: number, i: number, kh: number, kw: number): Float32Array {
  const r = new Float32Array(o * i * kh * kw);
  for (let oo = 0; oo < o; oo++)
    for (let ii = 0; ii < i; ii++)
      for (let y = 0; y < kh; y++)
        for (let xx = 0; xx < kw; xx++)
          r[((oo * i + ii) * kh + y) * kw + xx] = x[((y * kw + xx) * i + ii) * o + oo] as number;
  return r;
}

export const trainWorkload: Workload = {
  id: 'train',
  name: `training step: small backbone + linear + softmax CE, batch ${B}x3x${S}x${S}, SGD momentum`,
  warmup: 1,
  runs: 5,
  async prepare(): Promise<Prepared> {
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const backbone = FRCNN_MODELS['frcnn-small'];
    if (!backbone) throw new Error('train workload: no frcnn-small backbone');
    const g = new GraphBuilder();
    const x = g.input('x', [B, 3, S, S]);
    const y = g.input('y', [B], 'i32');
    const feat = backbone.build(g, x, { limits });
    const [, C, h, w] = feat.shape as [number, number, number, number];
    const F = C * h * w;
    const fcW = g.param('fc.weight', [CLASSES, F], init.xavier());
    const fcB = g.param('fc.bias', [CLASSES], init.zeros());
    const logits = linear(feat.reshape([B, F]), fcW, fcB);
    const loss = softmaxCrossEntropy(logits, y);
    const gflop = 3 * convMatmulGflop(g.graph);
    const layers = walkStack(g.graph, x.node.id, feat.node.id);
    const firstConv = layers.find((l): l is ConvLayer => l.kind === 'conv');
    if (!firstConv) throw new Error('train workload: the backbone has no conv');
    const step = sgd(loss, { momentum: MOMENTUM });
    const images = seeded(B * 3 * S * S, 17);
    const labels = Int32Array.from(seeded(B, 18), (v) => Math.min(CLASSES - 1, Math.floor(((v + 1) / 2) * CLASSES)));
    const feeds = { x: images, y: labels, [step.lrInput]: [LR] };
    const wg = await wgflowProgram(g, { loss }, () => feeds, {
      name: 'train-step',
      updates: step.updates,
      timedOutputs: ['loss'],
      seed: 2,
    });
    const params = new Map<string, Float32Array>();
    for (const p of wg.session.spec.persistent)
      if (p.role === 'param') params.set(p.name, (await wg.session.read(p.name)).data as Float32Array);
    const [fo, fi, fkh, fkw] = firstConv.shape;
    const wgTwoSteps = async (): Promise<Outputs> => {
      const l1 = (await wg.session.run(feeds, { outputs: ['loss'] })).loss?.data[0] as number;
      const l2 = (await wg.session.run(feeds, { outputs: ['loss'] })).loss?.data[0] as number;
      return {
        loss1: [l1],
        loss2: [l2],
        conv1: (await wg.session.read(firstConv.weight)).data,
        fc: (await wg.session.read('fc.weight')).data,
      };
    };

    const tf = await loadTf();
    const tfRun = tfTrainer(tf, layers, params, { C, h, w, F }, images, labels);
    const tfRunner: Runner = {
      run: async () => {
        await quietly(tfRun.step());
      },
      outputs: async () => {
        const l1 = await quietly(tfRun.step());
        const l2 = await quietly(tfRun.step());
        const conv = (await quietly(tfRun.filter(firstConv.weight).data())) as Float32Array;
        const fc = (await quietly(tfRun.fcWeight.data())) as Float32Array;
        // fc: [h·w·C, classes] for NHWC-flattened input → wgflow's [classes, C·h·w]
        const fcW = new Float32Array(CLASSES * F);
        for (let o = 0; o < CLASSES; o++)
          for (let ci = 0; ci < C; ci++)
            for (let yy = 0; yy < h; yy++)
              for (let xx = 0; xx < w; xx++)
                fcW[o * F + (ci * h + yy) * w + xx] = fc[((yy * w + xx) * C + ci) * CLASSES + o] as number;
        return { loss1: [l1], loss2: [l2], conv1: hwioToOihw(conv, fo, fi, fkh, fkw), fc: fcW };
      },
      dispose: () => tfRun.dispose(),
    };
    return {
      gflop,
      wgflow: { ...wg.runner, outputs: wgTwoSteps },
      tf: {
        runner: tfRunner,
        check: (wo, po) => {
          const parts = [
            floatCheck('loss step 1', wo, po, ['loss1'], 1e-4),
            floatCheck('loss step 2', wo, po, ['loss2'], 1e-4),
            floatCheck(`${firstConv.weight} after 2 steps`, wo, po, ['conv1'], 1e-4),
            floatCheck('fc.weight after 2 steps', wo, po, ['fc'], 1e-4),
          ];
          return {
            against: 'vs wgflow',
            result: `loss ${(wo.loss1 as number[])[0]?.toFixed(6)} / ${(po.loss1 as number[])[0]?.toFixed(6)}, step 2 ${(wo.loss2 as number[])[0]?.toFixed(6)} / ${(po.loss2 as number[])[0]?.toFixed(6)}; ${parts.map((c) => `${c.against}: ${c.result}`).join('; ')}`,
            value: Math.max(...parts.map((c) => c.value)),
            pass: parts.every((c) => c.pass),
          };
        },
      },
      ort: {
        unavailable:
          'onnxruntime-node 1.30 has inference sessions only (no training API; on-device training ships in separate onnxruntime-training builds), so it cannot run a training step',
      },
      notes: [
        `training step: ${layers.filter((l) => l.kind === 'conv').length} conv + ReLU layers and ${layers.filter((l) => l.kind === 'maxpool').length} max pools of frcnn-small + linear ${F}->${CLASSES} + softmax CE, batch ${B}x3x${S}x${S}; wgflow = forward + backward + SGD-momentum update in one compiled step, loss read back; TF.js = optimizer.minimize (momentum 0.9) on the same device, batch uploaded each step, loss read back; GFLOP = 3 x forward conv+matmul work`,
      ],
    };
  },
};

interface TfTrainer {
  step(): Promise<number>;
  filter(name: string): TfCore.Tensor;
  readonly fcWeight: TfCore.Tensor;
  dispose(): void;
}

function tfTrainer(
  tf: Tf,
  layers: ReturnType<typeof walkStack>,
  params: ReadonlyMap<string, Float32Array>,
  dims: { C: number; h: number; w: number; F: number },
  images: Float32Array,
  labels: Int32Array,
): TfTrainer {
  registerTrainingGradients(tf);
  const weights = tfStackWeights(tf, layers, params, true);
  const fcHost = params.get('fc.weight');
  const fcBias = params.get('fc.bias');
  if (!fcHost || !fcBias) throw new Error('train workload: fc params missing');
  const fcW = tf.variable(
    tf.tensor2d(linearWeightForNhwc(fcHost, CLASSES, dims.C, dims.h, dims.w), [dims.F, CLASSES]),
    true,
    `fc_weight_${Date.now()}`,
  );
  const fcB = tf.variable(tf.tensor1d(fcBias), true, `fc_bias_${Date.now()}`);
  const vars = [...(weights.all as TfCore.Variable[]), fcW, fcB];
  const opt = tf.train.momentum(LR, MOMENTUM);
  const xNhwc = batchNchwToNhwc(images, B, 3, S, S);
  return {
    step: async () => {
      const x = tf.tensor4d(xNhwc, [B, S, S, 3]);
      const y = tf.tensor1d(labels, 'int32');
      const oneHot = tf.oneHot(y, CLASSES);
      const cost = opt.minimize(
        () => {
          const feat = tfStack(tf, x, layers, weights);
          const logits = tf.add(tf.matMul(tf.reshape(feat, [B, dims.F]), fcW), fcB);
          return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), oneHot), 1))) as TfCore.Scalar;
        },
        true,
        vars,
      );
      tf.dispose([x, y, oneHot]);
      if (!cost) throw new Error('TF.js minimize returned no cost');
      await tfFlush(tf);
      const v = ((await cost.data()) as Float32Array)[0] as number;
      cost.dispose();
      return v;
    },
    filter: (name) => {
      const f = weights.filters.get(name);
      if (!f) throw new Error(`no TF.js filter ${name}`);
      return f;
    },
    fcWeight: fcW,
    dispose: () => {
      opt.dispose();
      tf.dispose(vars);
    },
  };
}
