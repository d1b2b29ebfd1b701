/**
 * The `peers` suite (`npm run bench -- peers`): the kernel workloads (matmul 1024³, conv 3×3 64→64 at
 * 64×64 + bias + ReLU, VGG16's 13 conv layers at 224×224) run by wgflow and, in the same process and on
 * identical inputs, by
 * - TF.js 4.22 (tfjs-backend-webgpu) on wgflow's own Dawn GPUDevice: `navigator.gpu` is the object
 *   wgflow's `create()` returned, and the backend is registered around wgflow's GPUDevice;
 * - onnxruntime-node 1.30 on the CPU (models encoded in code by ./onnx-encode.ts; conv weights and biases
 *   are initializers, so ORT may pre-pack them; matmul's two operands are graph inputs).
 *
 * What one timed run covers (median of `runs` after `warmup`; runs are interleaved wgflow, TF.js, ORT,
 * wgflow, ...):
 * - wgflow: `session.run(feeds, { outputs: [] })`: inputs uploaded, every dispatch, wait for the GPU.
 * - TF.js: tensors made from the same host arrays (uploaded on first use), the ops, then the backend's
 *   command encoder is submitted and `queue.onSubmittedWorkDone()` awaited; no readback, tensors disposed.
 * - ORT: `session.run(feeds)` (CPU; outputs land in host memory).
 * Busy-polling: every GPU wait (wgflow's, and TF.js's onSubmittedWorkDone / data()) goes through
 * wgflow's `quietly()`, so neither library's wait spins a core through dawn.node's setImmediate loop.
 *
 * Outputs are cross-checked against wgflow's: max |peer − wgflow| / max |wgflow| over all outputs.
 */
import { writeFileSync } from 'node:fs';
import type * as TfCore from '@tensorflow/tfjs-core';
import type * as Ort from 'onnxruntime-node';
import { compile, GraphBuilder, getDevice, limitsFrom, quietly, Session, type Tensor } from '../../index.js';
import { getGpuInstance } from '../../runtime/device.js';
import { seeded } from '../harness.js';
import { VGG16_CONVS } from '../kernels.js';
import { encodeOnnxModel, type OnnxGraph, type OnnxNode } from './onnx-encode.js';

type Feeds = Record<string, Float32Array>;

interface Input {
  readonly name: string;
  readonly shape: readonly number[];
}

interface Workload {
  readonly name: string;
  readonly gflop: number;
  /** wgflow layout (NCHW / OIHW). Feeds are seeded 17 + k in this order, as bench/harness.ts does. */
  readonly inputs: readonly Input[];
  readonly build: (g: GraphBuilder, t: Record<string, Tensor>) => Record<string, Tensor>;
  /** TF.js: returns outputs in wgflow layout order (names as in build). */
  readonly tf: (tf: typeof TfCore, feeds: Feeds) => Record<string, TfCore.Tensor>;
  /** TF.js output (NHWC) → wgflow layout. */
  readonly tfOut?: (name: string, data: Float32Array, shape: readonly number[]) => Float32Array;
  readonly onnx: (feeds: Feeds) => { graph: OnnxGraph; feedNames: readonly string[] };
  readonly warmup: number;
  readonly runs: number;
}

interface Runner {
  readonly peer: string;
  run(): Promise<void>;
  outputs(): Promise<Record<string, Float32Array>>;
  dispose(): void;
}

export interface PeerRow {
  readonly workload: string;
  readonly gflop: number;
  readonly peer: string;
  readonly wgflowMedianMs: number;
  readonly peerMedianMs: number;
  /** wgflow median / peer median (> 1: wgflow is slower). */
  readonly ratio: number;
  /** peer median / wgflow median (> 1: wgflow is faster). */
  readonly speedup: number;
  readonly maxRelErr: number;
  readonly runs: number;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function nchwToNhwc(x: Float32Array, c: number, h: number, w: number): Float32Array {
  const o = new Float32Array(x.length);
  for (let ci = 0; ci < c; ci++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++) o[(y * w + xx) * c + ci] = x[(ci * h + y) * w + xx] as number;
  return o;
}
function nhwcToNchw(x: Float32Array, c: number, h: number, w: number): Float32Array {
  const o = new Float32Array(x.length);
  for (let ci = 0; ci < c; ci++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++) o[(ci * h + y) * w + xx] = x[(y * w + xx) * c + ci] as number;
  return o;
}
/** OIHW → HWIO (TF.js filter layout). */
function oihwToHwio(x: Float32Array, o: number, i: number, kh: number, kw: number): Float32Array {
  const r = new Float32Array(x.length);
  for (let oo = 0; oo < o; oo++)
    for (let ii = 0; ii < i; ii++)
      for (let y = 0; y < kh; y++)
        for (let xx = 0; xx < kw; xx++)
          r[((y * kw + xx) * i + ii) * o + oo] = x[((oo * i + ii) * kh + y) * kw + xx] as number;
  return r;
}

function convWorkload(
  name: string,
  layers: readonly (readonly [number, number, number])[],
  warmup: number,
  runs: number,
): Workload {
  const inputs: Input[] = [];
  layers.forEach(([cin, cout, hw], i) => {
    inputs.push({ name: `x${i}`, shape: [1, cin, hw, hw] });
    inputs.push({ name: `w${i}`, shape: [cout, cin, 3, 3] });
    inputs.push({ name: `b${i}`, shape: [1, cout, 1, 1] });
  });
  return {
    name,
    gflop: layers.reduce((a, [cin, cout, hw]) => a + (2 * cin * cout * 9 * hw * hw) / 1e9, 0),
    inputs,
    warmup,
    runs,
    build: (_g, t) => {
      const outs: Record<string, Tensor> = {};
      layers.forEach((_, i) => {
        const x = t[`x${i}`] as Tensor;
        outs[`y${i}`] = x
          .conv2d(t[`w${i}`] as Tensor, { padding: 1 })
          .add(t[`b${i}`] as Tensor)
          .relu();
      });
      return outs;
    },
    tf: (tf, f) => {
      const outs: Record<string, TfCore.Tensor> = {};
      layers.forEach(([cin, cout, hw], i) => {
        const x = tf.tensor4d(f[`x${i}`] as Float32Array, [1, hw, hw, cin]);
        const filter = tf.tensor4d(f[`w${i}`] as Float32Array, [3, 3, cin, cout]);
        const bias = tf.tensor1d(f[`b${i}`] as Float32Array);
        outs[`y${i}`] = tf.fused.conv2d({ x, filter, bias, strides: 1, pad: 'same', activation: 'relu' });
      });
      return outs;
    },
    tfOut: (_n, data, shape) => nhwcToNchw(data, shape[3] as number, shape[1] as number, shape[2] as number),
    onnx: (f) => {
      const nodes: OnnxNode[] = [];
      const initializers: { name: string; shape: readonly number[]; data: Float32Array }[] = [];
      layers.forEach(([cin, cout], i) => {
        initializers.push({ name: `w${i}`, shape: [cout, cin, 3, 3], data: f[`w${i}`] as Float32Array });
        initializers.push({ name: `b${i}`, shape: [cout], data: f[`b${i}`] as Float32Array });
        nodes.push({
          op: 'Conv',
          inputs: [`x${i}`, `w${i}`, `b${i}`],
          outputs: [`c${i}`],
          ints: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] },
        });
        nodes.push({ op: 'Relu', inputs: [`c${i}`], outputs: [`y${i}`] });
      });
      return {
        graph: {
          inputs: layers.map(([cin, , hw], i) => ({ name: `x${i}`, shape: [1, cin, hw, hw] })),
          outputs: layers.map(([, cout, hw], i) => ({ name: `y${i}`, shape: [1, cout, hw, hw] })),
          initializers,
          nodes,
        },
        feedNames: layers.map((_, i) => `x${i}`),
      };
    },
  };
}

const WORKLOADS: readonly Workload[] = [
  {
    name: 'matmul 1024x1024x1024',
    gflop: (2 * 1024 ** 3) / 1e9,
    inputs: [
      { name: 'a', shape: [1024, 1024] },
      { name: 'b', shape: [1024, 1024] },
    ],
    warmup: 2,
    runs: 7,
    build: (_g, t) => ({ c: (t.a as Tensor).matmul(t.b as Tensor) }),
    tf: (tf, f) => ({
      c: tf.matMul(tf.tensor2d(f.a as Float32Array, [1024, 1024]), tf.tensor2d(f.b as Float32Array, [1024, 1024])),
    }),
    onnx: () => ({
      graph: {
        inputs: [
          { name: 'a', shape: [1024, 1024] },
          { name: 'b', shape: [1024, 1024] },
        ],
        outputs: [{ name: 'c', shape: [1024, 1024] }],
        nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
      },
      feedNames: ['a', 'b'],
    }),
  },
  convWorkload('conv 3x3 64->64 at 64x64 (+bias+ReLU)', [[64, 64, 64]], 2, 7),
  convWorkload('VGG16 13 conv layers at 224x224 (+bias+ReLU)', VGG16_CONVS, 1, 5),
];

async function wgflowRunner(w: Workload, feeds: Feeds): Promise<Runner> {
  const dev = await getDevice();
  const g = new GraphBuilder();
  const t: Record<string, Tensor> = {};
  for (const i of w.inputs) t[i.name] = g.input(i.name, [...i.shape]);
  const outputs = w.build(g, t);
  const { spec } = compile(g, { outputs, limits: limitsFrom(dev.limits), name: w.name });
  const session = await Session.create(spec, { gpu: dev });
  return {
    peer: 'wgflow',
    run: async () => {
      await session.run(feeds, { outputs: [] });
    },
    outputs: async () => {
      const r = await session.run(feeds);
      return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
    },
    dispose: () => session.destroy(),
  };
}

interface TfBackendInternals {
  device: GPUDevice;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

let tfModule: Promise<typeof TfCore> | undefined;
/** TF.js with its WebGPU backend on wgflow's GPUDevice (`navigator.gpu` set before the backend loads). */
function loadTf(): Promise<typeof TfCore> {
  tfModule ??= (async () => {
    const dev = await getDevice();
    const gpu = await getGpuInstance();
    const nav = (globalThis as { navigator?: Record<string, unknown> }).navigator;
    if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    const tf = (await import('@tensorflow/tfjs-core')) as typeof TfCore;
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    const adapter = await quietly(gpu.requestAdapter({ powerPreference: 'high-performance' }));
    // Kernels are registered under the name 'webgpu': replace that backend's factory (which would open
    // its own GPUDevice) with one around wgflow's device.
    tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => new WebGPUBackend(dev.device, adapter?.info), 100);
    if (!(await tf.setBackend('webgpu'))) throw new Error('TF.js: the WebGPU backend did not start');
    await tf.ready();
    return tf;
  })();
  return tfModule;
}

async function tfRunner(w: Workload, feeds: Feeds): Promise<Runner> {
  const tf = await loadTf();
  // TF.js layouts (NHWC, HWIO, 1-D bias), converted once outside the timed region.
  const tfFeeds: Feeds = {};
  for (const i of w.inputs) {
    const x = feeds[i.name] as Float32Array;
    const [a, b, c, d] = i.shape as [number, number, number, number];
    if (i.name.startsWith('x')) tfFeeds[i.name] = nchwToNhwc(x, b, c, d);
    else if (i.name.startsWith('w') && i.shape.length === 4) tfFeeds[i.name] = oihwToHwio(x, a, b, c, d);
    else tfFeeds[i.name] = x;
  }
  const be = tf.backend() as unknown as TfBackendInternals;
  return {
    peer: 'TF.js webgpu',
    run: async () => {
      const outs = tf.tidy(() => w.tf(tf, tfFeeds));
      be.ensureCommandEncoderReady();
      be.endComputePassEncoder();
      be.submitQueue();
      await quietly(be.device.queue.onSubmittedWorkDone());
      tf.dispose(Object.values(outs));
    },
    outputs: async () => {
      const outs = tf.tidy(() => w.tf(tf, tfFeeds));
      const r: Record<string, Float32Array> = {};
      for (const [k, t] of Object.entries(outs)) {
        const data = (await quietly(t.data())) as Float32Array;
        r[k] = w.tfOut ? w.tfOut(k, data, t.shape) : data;
      }
      tf.dispose(Object.values(outs));
      return r;
    },
    dispose: () => {},
  };
}

async function ortRunner(ort: typeof Ort, w: Workload, feeds: Feeds): Promise<Runner> {
  const { graph, feedNames } = w.onnx(feeds);
  const session = await ort.InferenceSession.create(encodeOnnxModel(graph, w.name), {
    executionProviders: ['cpu'],
    // No spin-waiting of ORT's idle pool threads: it would steal lavapipe's cores in the interleaved runs.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  const shapes = new Map(w.inputs.map((i) => [i.name, i.shape]));
  const ortFeeds: Record<string, Ort.Tensor> = {};
  for (const n of feedNames)
    ortFeeds[n] = new ort.Tensor('float32', feeds[n] as Float32Array, [...(shapes.get(n) ?? [])]);
  return {
    peer: 'onnxruntime-node cpu',
    run: async () => {
      await session.run(ortFeeds);
    },
    outputs: async () => {
      const r = await session.run(ortFeeds);
      return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
    },
    dispose: () => {
      void session.release();
    },
  };
}

function maxRelErr(ref: Record<string, Float32Array>, got: Record<string, Float32Array>): number {
  let maxRef = 0;
  let maxDiff = 0;
  for (const [k, r] of Object.entries(ref)) {
    const o = got[k];
    if (!o || o.length !== r.length) return Number.NaN;
    for (let i = 0; i < r.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(r[i] as number));
      const d = Math.abs((r[i] as number) - (o[i] as number));
      maxDiff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(maxDiff, d);
    }
  }
  return maxDiff / (maxRef || 1);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export function peersMarkdown(adapter: string, rows: readonly PeerRow[], notes: readonly string[]): string {
  return [
    `adapter: ${adapter}`,
    '',
    '| workload | GFLOP | peer | wgflow median ms | peer median ms | wgflow/peer | speedup (peer/wgflow) | max rel err vs wgflow | runs |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.workload} | ${r.gflop.toFixed(3)} | ${r.peer} | ${r.wgflowMedianMs.toFixed(1)} | ${r.peerMedianMs.toFixed(1)} | ${r.ratio.toFixed(2)} | ${r.speedup.toFixed(2)}x | ${r.maxRelErr.toExponential(1)} | ${r.runs} |`,
    ),
    '',
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
}

/** Runs every workload on wgflow and the peers (interleaved), prints and writes bench/results/peers.{md,json}. */
export async function peerSuite(log: (s: string) => void = () => {}, outPath = 'bench/results/peers'): Promise<string> {
  const dev = await getDevice();
  const notes: string[] = [
    'one timed run: wgflow = upload inputs + dispatches + wait (no readback); TF.js = tensors from the same host arrays + ops + submit + onSubmittedWorkDone (no readback); ORT = session.run on CPU (conv weights/bias as initializers)',
    'TF.js 4.22 webgpu backend runs on the same Dawn GPUDevice as wgflow; all GPU waits of both go through wgflow quietly() (no setImmediate busy-polling)',
    'runs interleaved wgflow, TF.js, ORT, wgflow, ... after warm-up; medians; max rel err = max|peer-wgflow| / max|wgflow|',
  ];
  let ort: typeof Ort | undefined;
  try {
    const m = (await import('onnxruntime-node')) as typeof Ort & { default?: typeof Ort };
    ort = m.InferenceSession ? m : m.default;
  } catch (e) {
    notes.push(`onnxruntime-node not loaded: ${(e as Error).message.split('\n')[0]}`);
  }
  const rows: PeerRow[] = [];
  for (const w of WORKLOADS) {
    const feeds: Feeds = {};
    w.inputs.forEach((i, k) => {
      feeds[i.name] = seeded(size(i.shape), 17 + k);
    });
    const runners: Runner[] = [await wgflowRunner(w, feeds), await tfRunner(w, feeds)];
    if (ort) runners.push(await ortRunner(ort, w, feeds));
    const ref = await (runners[0] as Runner).outputs();
    const errs = [0];
    for (const r of runners.slice(1)) errs.push(maxRelErr(ref, await r.outputs()));
    for (let i = 0; i < w.warmup; i++) for (const r of runners) await r.run();
    const times = runners.map(() => [] as number[]);
    for (let i = 0; i < w.runs; i++) {
      for (const [k, r] of runners.entries()) {
        const t0 = performance.now();
        await r.run();
        times[k]?.push(performance.now() - t0);
      }
    }
    const wg = median(times[0] as number[]);
    for (const [k, r] of runners.entries()) {
      if (k === 0) continue;
      const pm = median(times[k] as number[]);
      const row: PeerRow = {
        workload: w.name,
        gflop: w.gflop,
        peer: r.peer,
        wgflowMedianMs: wg,
        peerMedianMs: pm,
        ratio: wg / pm,
        speedup: pm / wg,
        maxRelErr: errs[k] as number,
        runs: w.runs,
      };
      rows.push(row);
      log(
        `${w.name}: wgflow ${wg.toFixed(1)} ms, ${r.peer} ${pm.toFixed(1)} ms (wgflow/peer ${row.ratio.toFixed(2)}), err ${row.maxRelErr.toExponential(1)}`,
      );
    }
    for (const r of runners) r.dispose();
  }
  const md = peersMarkdown(dev.adapterName, rows, notes);
  writeFileSync(
    `${outPath}.json`,
    `${JSON.stringify({ adapter: dev.adapterName, date: new Date().toISOString(), notes, rows }, null, 2)}\n`,
  );
  writeFileSync(`${outPath}.md`, `${md}\n`);
  return md;
}
