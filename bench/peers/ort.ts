/**
 * onnxruntime-node 1.30 on the CPU: loading, and a runner for a model encoded in code (./onnx-encode.ts).
 * A timed run is `session.run(feeds)` (outputs land in host memory). Idle pool threads do not spin
 * (allow_spinning 0): spinning would steal lavapipe's cores in the interleaved runs.
 */
import type * as Ort from 'onnxruntime-node';
import { encodeOnnxModel, type OnnxGraph } from './onnx-encode.js';
import type { Outputs, Runner } from './types.js';

export type OrtModule = typeof Ort;

let ortModule: Promise<OrtModule | string> | undefined;

/** The onnxruntime-node module, or the reason it could not be loaded. */
export function loadOrt(): Promise<OrtModule | string> {
  ortModule ??= (async () => {
    try {
      const m = (await import('onnxruntime-node')) as OrtModule & { default?: OrtModule };
      return m.InferenceSession ? m : (m.default as OrtModule);
    } catch (e) {
      return `onnxruntime-node not loaded: ${(e as Error).message.split('\n')[0]}`;
    }
  })();
  return ortModule;
}

export type OrtFeed = { dtype: 'float32'; data: Float32Array; shape: readonly number[] };

function toNumbers(t: Ort.Tensor): ArrayLike<number> {
  const d = t.data;
  if (d instanceof BigInt64Array) return Float64Array.from(d, (v) => Number(v));
  return d as ArrayLike<number>;
}

/** An ORT CPU session of `graph`, fed `feeds` on every run. */
export async function ortRunner(
  ort: OrtModule,
  graph: OnnxGraph,
  name: string,
  feeds: Readonly<Record<string, OrtFeed>>,
): Promise<Runner> {
  const session = await ort.InferenceSession.create(encodeOnnxModel(graph, name), {
    executionProviders: ['cpu'],
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  const ortFeeds: Record<string, Ort.Tensor> = {};
  for (const [k, f] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor(f.dtype, f.data, [...f.shape]);
  return {
    run: async () => {
      await session.run(ortFeeds);
    },
    outputs: async () => {
      const r = await session.run(ortFeeds);
      const o: Outputs = {};
      for (const [k, v] of Object.entries(r)) o[k] = toNumbers(v);
      return o;
    },
    dispose: () => {
      void session.release();
    },
  };
}
