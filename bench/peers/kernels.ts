/**
 * Kernel workloads: matmul 1024³, conv 3×3 64→64 at 64×64 (+ bias + ReLU), VGG16's 13 conv layers at
 * 224×224 (+ bias + ReLU), on identical seeded inputs (seed 17 + k for the k-th input, as
 * bench/harness.ts). No readback in a timed run (wgflow: upload + dispatches + wait; TF.js: tensors
 * from the same host arrays + ops + submit + wait; ORT: session.run). ORT gets conv weights and biases
 * as initializers (so it may pre-pack them); matmul's two operands are graph inputs.
 */
import { GraphBuilder, type Tensor } from '../../index.js';
import { seeded } from '../harness.js';
import { VGG16_CONVS } from '../kernels.js';
import { floatCheck } from './check.js';
import type { OnnxGraph, OnnxInitializer, OnnxNode } from './onnx-encode.js';
import { loadOrt, type OrtFeed, ortRunner } from './ort.js';
import { loadTf, nchwToNhwc, nhwcToNchw, oihwToHwio, tfRunner } from './tf.js';
import type { Outputs, Prepared, Workload } from './types.js';
import { wgflowProgram } from './wgflow.js';

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export const matmulWorkload: Workload = {
  id: 'matmul',
  name: 'matmul 1024x1024x1024',
  gflop: (2 * 1024 ** 3) / 1e9,
  warmup: 2,
  runs: 9,
  async prepare(): Promise<Prepared> {
    const n = 1024;
    const a = seeded(n * n, 17);
    const b = seeded(n * n, 18);
    const g = new GraphBuilder();
    const ta = g.input('a', [n, n]);
    const tb = g.input('b', [n, n]);
    const wg = await wgflowProgram(g, { c: ta.matmul(tb) }, () => ({ a, b }), { name: 'matmul' });
    const tf = await loadTf();
    const ort = await loadOrt();
    const graph: OnnxGraph = {
      inputs: [
        { name: 'a', shape: [n, n] },
        { name: 'b', shape: [n, n] },
      ],
      outputs: [{ name: 'c', shape: [n, n] }],
      nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
    };
    const check = (w: Outputs, p: Outputs) => floatCheck('C vs wgflow', w, p);
    return {
      wgflow: wg.runner,
      tf: {
        runner: tfRunner(tf, () => ({ c: tf.matMul(tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])) })),
        check,
      },
      ort:
        typeof ort === 'string'
          ? { unavailable: ort }
          : {
              runner: await ortRunner(ort, graph, 'matmul', {
                a: { dtype: 'float32', data: a, shape: [n, n] },
                b: { dtype: 'float32', data: b, shape: [n, n] },
              }),
              check,
            },
    };
  },
};

/** Independent conv layers [cin, cout, spatial] (3×3, pad 1) + bias + ReLU, batch 1. */
function convWorkload(
  id: string,
  name: string,
  layers: readonly (readonly [number, number, number])[],
  warmup: number,
  runs: number,
): Workload {
  return {
    id,
    name,
    gflop: layers.reduce((s, [cin, cout, hw]) => s + (2 * cin * cout * 9 * hw * hw) / 1e9, 0),
    warmup,
    runs,
    async prepare(): Promise<Prepared> {
      // inputs x_i, w_i, b_i seeded 17 + k in this order (as bench/kernels.ts's graphs)
      const feeds: Record<string, Float32Array> = {};
      let k = 0;
      layers.forEach(([cin, cout, hw], i) => {
        feeds[`x${i}`] = seeded(size([1, cin, hw, hw]), 17 + k++);
        feeds[`w${i}`] = seeded(size([cout, cin, 3, 3]), 17 + k++);
        feeds[`b${i}`] = seeded(cout, 17 + k++);
      });
      const g = new GraphBuilder();
      const outs: Record<string, Tensor> = {};
      layers.forEach(([cin, cout, hw], i) => {
        const x = g.input(`x${i}`, [1, cin, hw, hw]);
        const w = g.input(`w${i}`, [cout, cin, 3, 3]);
        const b = g.input(`b${i}`, [1, cout, 1, 1]);
        outs[`y${i}`] = x.conv2d(w, { padding: 1 }).add(b).relu();
      });
      const wg = await wgflowProgram(g, outs, () => feeds, { name: id });

      const tf = await loadTf();
      const tfFeeds = layers.map(([cin, cout, hw], i) => ({
        x: nchwToNhwc(feeds[`x${i}`] as Float32Array, cin, hw, hw),
        w: oihwToHwio(feeds[`w${i}`] as Float32Array, cout, cin, 3, 3),
        b: feeds[`b${i}`] as Float32Array,
      }));
      const tfFn = () => {
        const o: Record<string, ReturnType<typeof tf.fused.conv2d>> = {};
        layers.forEach(([cin, cout, hw], i) => {
          const f = tfFeeds[i] as (typeof tfFeeds)[number];
          o[`y${i}`] = tf.fused.conv2d({
            x: tf.tensor4d(f.x, [1, hw, hw, cin]),
            filter: tf.tensor4d(f.w, [3, 3, cin, cout]),
            bias: tf.tensor1d(f.b),
            strides: 1,
            pad: 'same',
            activation: 'relu',
          });
        });
        return o;
      };
      const toNchw = (_n: string, d: ArrayLike<number>, s: readonly number[]) =>
        nhwcToNchw(d, s[3] as number, s[1] as number, s[2] as number);

      const ort = await loadOrt();
      const nodes: OnnxNode[] = [];
      const initializers: OnnxInitializer[] = [];
      layers.forEach(([cin, cout], i) => {
        initializers.push({ name: `w${i}`, shape: [cout, cin, 3, 3], data: feeds[`w${i}`] as Float32Array });
        initializers.push({ name: `b${i}`, shape: [cout], data: feeds[`b${i}`] as Float32Array });
        nodes.push({
          op: 'Conv',
          inputs: [`x${i}`, `w${i}`, `b${i}`],
          outputs: [`c${i}`],
          ints: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] },
        });
        nodes.push({ op: 'Relu', inputs: [`c${i}`], outputs: [`y${i}`] });
      });
      const graph: OnnxGraph = {
        inputs: layers.map(([cin, , hw], i) => ({ name: `x${i}`, shape: [1, cin, hw, hw] })),
        outputs: layers.map(([, cout, hw], i) => ({ name: `y${i}`, shape: [1, cout, hw, hw] })),
        initializers,
        nodes,
      };
      const ortFeeds: Record<string, OrtFeed> = {};
      layers.forEach(([cin, , hw], i) => {
        ortFeeds[`x${i}`] = { dtype: 'float32', data: feeds[`x${i}`] as Float32Array, shape: [1, cin, hw, hw] };
      });
      const check = (w: Outputs, p: Outputs) => floatCheck('outputs vs wgflow', w, p);
      return {
        wgflow: wg.runner,
        tf: { runner: tfRunner(tf, tfFn, toNchw), check },
        ort:
          typeof ort === 'string' ? { unavailable: ort } : { runner: await ortRunner(ort, graph, id, ortFeeds), check },
      };
    },
  };
}

export const convWorkloadSmall = convWorkload('conv', 'conv 3x3 64->64 at 64x64 (+bias+ReLU)', [[64, 64, 64]], 3, 15);
export const vggWorkload = convWorkload('vgg', 'VGG16 13 conv layers at 224x224 (+bias+ReLU)', VGG16_CONVS, 1, 5);
