/**
 * Eager execution for the torchvision-style API: a small graph is built per call signature, compiled
 * once (cached by key and input shapes/dtypes), and run on the shared GPU device. Inputs and outputs
 * are host tensors.
 */
import { compile } from '../compiler/compile.js';
import { WgflowError } from '../compiler/errors.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import type { DType } from '../compiler/types.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, Session, type TypedArray } from '../runtime/session.js';

/** A host tensor as users pass it: typed data plus a shape (dtype follows the array type). */
export interface HostInput {
  readonly data: TypedArray;
  readonly shape: readonly number[];
}

export function dtypeOf(t: HostInput): DType {
  if (t.data instanceof Float32Array) return 'f32';
  if (t.data instanceof Int32Array) return 'i32';
  if (t.data instanceof Uint32Array) return 'u32';
  throw new WgflowError('eager: data must be a Float32Array, Int32Array or Uint32Array');
}

const sessions = new Map<string, Promise<Session>>();

/**
 * Runs `build` on the GPU with `inputs` (declared as graph inputs of the same names, shapes and dtypes)
 * and returns its outputs. `key` names the computation and must encode every attribute that changes
 * the graph (thresholds, sizes...).
 */
export async function runEager(
  key: string,
  inputs: Readonly<Record<string, HostInput>>,
  build: (g: GraphBuilder, inputs: Record<string, Tensor>) => Record<string, Tensor>,
): Promise<Record<string, HostTensor>> {
  const sig = Object.entries(inputs)
    .map(([n, t]) => `${n}:${dtypeOf(t)}[${t.shape.join(',')}]`)
    .join(';');
  const cacheKey = `${key}|${sig}`;
  let s = sessions.get(cacheKey);
  if (!s) {
    s = (async () => {
      const dev = await getDevice();
      const g = new GraphBuilder();
      const ins: Record<string, Tensor> = {};
      for (const [n, t] of Object.entries(inputs)) {
        const expected = t.shape.reduce((a, b) => a * b, 1);
        if (t.data.length !== expected)
          throw new WgflowError(`${key}: input "${n}" has ${t.data.length} values for shape [${t.shape.join(',')}]`);
        ins[n] = g.input(n, t.shape, dtypeOf(t));
      }
      const outputs = build(g, ins);
      const { spec } = compile(g, { outputs, limits: limitsFrom(dev.limits), name: key });
      return Session.create(spec, { gpu: dev });
    })();
    sessions.set(cacheKey, s);
    s.catch(() => sessions.delete(cacheKey));
  }
  const session = await s;
  const feeds: Record<string, TypedArray> = {};
  for (const inp of session.spec.inputs) feeds[inp.name] = (inputs[inp.name] as HostInput).data;
  return session.run(feeds);
}

/** Drops cached eager programs (their GPU buffers are freed). */
export async function clearEagerCache(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  for (const p of all) (await p.catch(() => undefined))?.destroy();
}
