/**
 * TF.js 4.22 with its WebGPU backend on wgflow's own Dawn GPUDevice, and a runner around it.
 *
 * `navigator.gpu` is the object wgflow's `create()` returned, and the backend registered under the name
 * 'webgpu' (whose kernels TF.js looks up by that name) is built around wgflow's GPUDevice, so both
 * libraries share one device, one queue and one lavapipe instance.
 *
 * A timed TF.js run: the workload's function (tensors made from host arrays, uploaded on first use;
 * the ops; any readbacks the library itself needs, e.g. the NMS's), then the backend's command encoder
 * is submitted and `queue.onSubmittedWorkDone()` awaited, then data() of the outputs the wgflow side
 * also reads back in its timed runs (none for the kernel workloads). Tensors made during a run are
 * disposed after it (an engine scope). The whole run is awaited through wgflow's `quietly()`, so dawn.node's
 * setImmediate busy-polling is replaced by a 1 ms timer for TF.js's waits exactly as for wgflow's.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import { getDevice, quietly } from '../../index.js';
import { getGpuInstance } from '../../runtime/device.js';
import type { Outputs, Runner } from './types.js';

export type Tf = typeof TfCore;

interface TfBackendInternals {
  device: GPUDevice;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

let tfModule: Promise<Tf> | undefined;

/** TF.js with its WebGPU backend on wgflow's GPUDevice (loaded once per process). */
export function loadTf(): Promise<Tf> {
  tfModule ??= (async () => {
    const dev = await getDevice();
    const gpu = await getGpuInstance();
    const nav = (globalThis as { navigator?: Record<string, unknown> }).navigator;
    if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    const tf = (await import('@tensorflow/tfjs-core')) as Tf;
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    const adapter = await quietly(gpu.requestAdapter({ powerPreference: 'high-performance' }));
    tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => new WebGPUBackend(dev.device, adapter?.info), 100);
    if (!(await tf.setBackend('webgpu'))) throw new Error('TF.js: the WebGPU backend did not start');
    await tf.ready();
    return tf;
  })();
  return tfModule;
}

/** Submits TF.js's pending commands and waits for the GPU. */
export async function tfFlush(tf: Tf): Promise<void> {
  const be = tf.backend() as unknown as TfBackendInternals;
  be.ensureCommandEncoderReady();
  be.endComputePassEncoder();
  be.submitQueue();
  await quietly(be.device.queue.onSubmittedWorkDone());
}

/**
 * A runner for a TF.js workload: `fn` returns named output tensors (it may await, e.g. for NMS);
 * `toHost` converts an output's data (default: as is) for the cross-checks. `readInRun` lists the
 * outputs a timed run reads back with data() (those the wgflow side reads back too; default none).
 */
export function tfRunner(
  tf: Tf,
  fn: () => Promise<Record<string, TfCore.Tensor>> | Record<string, TfCore.Tensor>,
  toHost: (name: string, data: ArrayLike<number>, shape: readonly number[]) => ArrayLike<number> = (_n, d) => d,
  dispose: () => void = () => {},
  readInRun: readonly string[] = [],
): Runner {
  const once = async (read: boolean): Promise<Outputs> => {
    tf.engine().startScope();
    try {
      const outs = await fn();
      await tfFlush(tf);
      const r: Outputs = {};
      for (const [k, t] of Object.entries(outs))
        if (read) r[k] = toHost(k, (await quietly(t.data())) as ArrayLike<number>, t.shape);
        else if (readInRun.includes(k)) await quietly(t.data());
      return r;
    } finally {
      tf.engine().endScope();
    }
  };
  return {
    run: async () => {
      await quietly(once(false));
    },
    outputs: () => quietly(once(true)),
    dispose,
  };
}

// ---------------------------------------------------------------- layouts

export function nchwToNhwc(x: ArrayLike<number>, c: number, h: number, w: number): Float32Array {
  const o = new Float32Array(c * h * w);
  for (let ci = 0; ci < c; ci++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++) o[(y * w + xx) * c + ci] = x[(ci * h + y) * w + xx] as number;
  return o;
}

export function nhwcToNchw(x: ArrayLike<number>, c: number, h: number, w: number): Float32Array {
  const o = new Float32Array(c * h * w);
  for (let ci = 0; ci < c; ci++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++) o[(ci * h + y) * w + xx] = x[(y * w + xx) * c + ci] as number;
  return o;
}

/** Batched NCHW → NHWC. */
export function batchNchwToNhwc(x: ArrayLike<number>, n: number, c: number, h: number, w: number): Float32Array {
  const o = new Float32Array(n * c * h * w);
  for (let b = 0; b < n; b++)
    for (let ci = 0; ci < c; ci++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++)
          o[((b * h + y) * w + xx) * c + ci] = x[((b * c + ci) * h + y) * w + xx] as number;
  return o;
}

/** Conv weight OIHW → HWIO (TF.js filter layout). */
export function oihwToHwio(x: ArrayLike<number>, o: number, i: number, kh: number, kw: number): Float32Array {
  const r = new Float32Array(o * i * kh * kw);
  for (let oo = 0; oo < o; oo++)
    for (let ii = 0; ii < i; ii++)
      for (let y = 0; y < kh; y++)
        for (let xx = 0; xx < kw; xx++)
          r[((y * kw + xx) * i + ii) * o + oo] = x[((oo * i + ii) * kh + y) * kw + xx] as number;
  return r;
}

/**
 * A linear weight [out, C·H·W] that multiplies an NCHW-flattened input → [H·W·C, out] for an
 * NHWC-flattened input (TF.js `matMul(x, w)`).
 */
export function linearWeightForNhwc(wt: ArrayLike<number>, out: number, c: number, h: number, w: number): Float32Array {
  const r = new Float32Array(out * c * h * w);
  const inF = c * h * w;
  for (let o = 0; o < out; o++)
    for (let ci = 0; ci < c; ci++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) r[((y * w + x) * c + ci) * out + o] = wt[o * inF + (ci * h + y) * w + x] as number;
  return r;
}

/** [out, in] → [in, out]. */
export function transpose2d(wt: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const r = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) r[j * rows + i] = wt[i * cols + j] as number;
  return r;
}
