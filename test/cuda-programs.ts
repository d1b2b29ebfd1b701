/**
 * Compiled programs the CUDA tests render and build: Faster R-CNN frcnn-small (inference and one
 * training step with SGD), frcnn-vgg16 at 600×1000 (inference and training), and an "op zoo" with the
 * kernel families the Faster R-CNN graphs do not use (RoIAlign forward and both gradients, top-k,
 * batched NMS, max-pool backward, softmax, argmax, gather, pow/tanh/exp/log/sqrt/abs/sign/floor, SGD).
 * Training graphs use lavapipe's 16 storage buffers per stage (their anchor-target kernel binds 9).
 */
import { grad } from '../compiler/autodiff.js';
import { type Compiled, compile, type Update } from '../compiler/compile.js';
import { interpret } from '../compiler/interpreter.js';
import { type DeviceLimits, limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import { sgd } from '../compiler/optim.js';
import type { RefTensor } from '../compiler/registry.js';
import { GraphBuilder, init, type Tensor } from '../compiler/tensor.js';
import { numel } from '../compiler/types.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { buildFrcnnTraining } from '../models/frcnn/train.js';
import { generateAnchors } from '../ops/anchors.js';
import { batchedNms } from '../ops/nms.js';
import { roiAlign } from '../ops/roi-align.js';
import { topk } from '../ops/sort.js';
import { uniformStream } from '../runtime/init.js';
import '../ops/index.js';

/** lavapipe's limits as the training tests see them: 128 MiB bindings, 16 storage buffers. */
export const LAVAPIPE_LIMITS: DeviceLimits = limitsFrom({ maxStorageBuffersPerShaderStage: 16 });

export interface TestProgram {
  readonly name: string;
  readonly graph: GraphBuilder;
  readonly compiled: Compiled;
  readonly outputs: Readonly<Record<string, Tensor>>;
  readonly updates: readonly Update[];
}

function program(
  name: string,
  build: (g: GraphBuilder) => { outputs: Record<string, Tensor>; updates?: readonly Update[] },
  limits: DeviceLimits,
): TestProgram {
  const g = new GraphBuilder();
  const { outputs, updates } = build(g);
  const compiled = compile(g, { outputs, updates, limits, name });
  return { name, graph: g, compiled, outputs, updates: updates ?? [] };
}

export function frcnnSmallInference(): TestProgram {
  return program(
    'frcnn-small-infer',
    (g) => ({
      outputs: buildFrcnnInference(g, { backbone: 'frcnn-small', numClasses: 4, canvas: [128, 160] }).outputs,
    }),
    WEBGPU_DEFAULT_LIMITS,
  );
}

export function frcnnSmallTraining(): TestProgram {
  return program(
    'frcnn-small-train',
    (g) => {
      const m = buildFrcnnTraining(g, {
        backbone: 'frcnn-small',
        numClasses: 3,
        canvas: [64, 96],
        maxGt: 3,
        baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2]),
        proposals: { minSize: 4, preNmsTopN: 200, postNmsTopN: 64 },
        anchorTargets: { batchSize: 64 },
        proposalTargets: { batchSize: 32 },
      });
      return { outputs: { ...m.outputs }, updates: m.updates };
    },
    LAVAPIPE_LIMITS,
  );
}

/** frcnn-small's training losses and the gradient of every trainable param (no dropout, no update). */
export function frcnnSmallGradients(): TestProgram {
  return program(
    'frcnn-small-grads',
    (g) => {
      const m = buildFrcnnTraining(g, {
        backbone: 'frcnn-small',
        numClasses: 3,
        canvas: [64, 96],
        maxGt: 3,
        baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2]),
        proposals: { minSize: 4, preNmsTopN: 200, postNmsTopN: 64 },
        anchorTargets: { batchSize: 64 },
        proposalTargets: { batchSize: 32 },
        dropout: false,
      });
      const outputs: Record<string, Tensor> = { ...m.outputs };
      m.params.forEach((p, i) => {
        outputs[`grad:${p.node.name}`] = m.grads[i] as Tensor;
      });
      return { outputs };
    },
    LAVAPIPE_LIMITS,
  );
}

export function frcnnVgg16Inference(): TestProgram {
  return program(
    'frcnn-vgg16-infer',
    (g) => ({
      outputs: buildFrcnnInference(g, { backbone: 'frcnn-vgg16', numClasses: 20, canvas: [600, 1000] }).outputs,
    }),
    WEBGPU_DEFAULT_LIMITS,
  );
}

export function frcnnVgg16Training(): TestProgram {
  return program(
    'frcnn-vgg16-train',
    (g) => {
      const m = buildFrcnnTraining(g, { backbone: 'frcnn-vgg16', numClasses: 20, canvas: [600, 1000], maxGt: 20 });
      return { outputs: { ...m.outputs }, updates: m.updates };
    },
    LAVAPIPE_LIMITS,
  );
}

/** Grids folded into 2-D: a 16-workgroups-per-dimension limit makes most kernels read wg_linear. */
export function foldedGrids(): TestProgram {
  return program(
    'folded',
    (g) => {
      const x = g.input('x', [64, 300]);
      const w = g.param('w', [300, 40], init.xavier());
      return {
        outputs: {
          y: x.exp().add(1).log().sum(1),
          z: x.relu(),
          s: x.softmax(1),
          mm: x.matmul(w).add(1),
          t: x.transpose([1, 0]).mul(2),
        },
      };
    },
    limitsFrom({ maxComputeWorkgroupsPerDimension: 16 }),
  );
}

/** Small shapes; every output depends on the kernel family it names. */
export function opZoo(): TestProgram {
  return program(
    'op-zoo',
    (g) => {
      const x = g.input('x', [1, 4, 12, 14]);
      const rois = g.input('rois', [5, 5]);
      const dy = g.input('dy', [5, 4, 3, 3]);
      const y = roiAlign(x, rois, { outputSize: 3, spatialScale: 0.5, samplingRatio: -1, aligned: true });
      const [dx, drois] = grad(y.mul(dy).sum(), [x, rois]) as [Tensor, Tensor];
      const scores = g.input('scores', [40]);
      const boxes = g.input('boxes', [40, 4]);
      const classes = g.input('classes', [40], 'i32');
      const kept = batchedNms(boxes, scores, classes, { iouThreshold: 0.5, maxOutput: 16 });
      const top = topk(scores, 7);
      const w = g.param('w', [6, 4, 3, 3], init.he());
      const c = x.conv2d(w, { padding: 1 }).maxPool2d({ kernel: 2 });
      const act = c
        .pow(2)
        .add(c.tanh())
        .add(c.abs().sqrt())
        .add(c.exp().add(1).log())
        .add(c.sigmoid())
        .dropout(0.25, 7);
      const loss = act
        .logSoftmax(1)
        .mul(c.softmax(1))
        .sum()
        .add(act.max([2, 3]).mean());
      const step = sgd(loss, { momentum: 0.9, weightDecay: 1e-4 });
      const gidx = g.input('gidx', [3], 'i32');
      return {
        outputs: {
          y,
          dx,
          drois,
          kept_indices: kept.indices,
          kept_count: kept.count,
          top_values: top.values,
          top_indices: top.indices,
          argmax: c.argmax(1),
          gathered: x.reshape([4, 168]).gather(gidx, 0),
          loss,
        },
        updates: step.updates,
      };
    },
    WEBGPU_DEFAULT_LIMITS,
  );
}

/** Seeded feeds for a program's inputs and params: fan-in scaled weights (activations stay O(1)),
 * RoIs and boxes that are valid boxes, image info that fits the canvas. */
export function testFeeds(p: TestProgram, seed: number): Record<string, number[]> {
  const r = uniformStream(seed);
  const feeds: Record<string, number[]> = {};
  for (const n of p.graph.graph.nodes) {
    if (n.op !== 'input' && n.op !== 'param' && n.op !== 'state') continue;
    const shape = n.type.shape;
    const len = numel(shape);
    const name = n.name as string;
    const uniform = (a: number) => Array.from({ length: len }, () => (r() * 2 - 1) * a);
    const fixed: Record<string, number[]> = {
      im_info: p.name.includes('small-infer') ? [100, 150, 1.25] : [60, 90, 1],
      gt_boxes: [4, 6, 30, 40, 40, 10, 85, 50, 20, 30, 58, 58],
      gt_labels: [1, 2, 3],
      gt_count: [3],
      seed: [12345],
      lr: [0.01],
    };
    const given = fixed[name];
    if (given && given.length === len) feeds[name] = given;
    else if (n.type.dtype !== 'f32') feeds[name] = Array.from({ length: len }, () => Math.floor(r() * 4));
    else if (name === 'rois') feeds[name] = Array.from({ length: len }, (_, i) => (i % 5 === 0 ? 0 : 1 + r() * 10));
    else if (name === 'boxes')
      feeds[name] = Array.from({ length: len / 4 }, () => {
        const x = r() * 50;
        const y = r() * 50;
        return [x, y, x + 5 + r() * 20, y + 5 + r() * 20];
      }).flat();
    else if (n.op === 'param' && shape.length >= 2)
      feeds[name] = uniform((Math.sqrt(3) * Math.SQRT2) / Math.sqrt(len / (shape[0] as number)));
    else feeds[name] = uniform(n.op === 'input' ? 1 : n.op === 'param' ? 0.1 : 0.05);
  }
  return feeds;
}

/** Worst |got − want| / max|want| of each f32 output; integer outputs must be equal. */
export function compareWithInterpreter(
  p: TestProgram,
  feeds: Readonly<Record<string, readonly number[]>>,
  got: Readonly<Record<string, ArrayLike<number>>>,
): { name: string; relError: number; mismatches: number }[] {
  const names = p.compiled.spec.outputs.map((o) => o.name);
  const cpu = interpret(
    p.graph.graph,
    feeds,
    names.map((n) => (p.outputs[n] as Tensor).id),
  );
  return names.map((name, k) => {
    const want = (cpu[k] as RefTensor).data;
    const have = got[name] as ArrayLike<number>;
    if (have.length !== want.length) return { name, relError: Number.POSITIVE_INFINITY, mismatches: want.length };
    if ((cpu[k] as RefTensor).dtype !== 'f32') {
      let mismatches = 0;
      for (let i = 0; i < want.length; i++) if (have[i] !== want[i]) mismatches++;
      return { name, relError: 0, mismatches };
    }
    let err = 0;
    let scale = 1e-6;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs((have[i] as number) - (want[i] as number));
      err = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(err, d);
      scale = Math.max(scale, Math.abs(want[i] as number));
    }
    return { name, relError: err / scale, mismatches: 0 };
  });
}
