/**
 * The run-time half of a generated typed module (compiler/typed-module.ts): loads the artifact, checks
 * that it has exactly the inputs and outputs (names, dtypes, shapes) the module was generated for, and
 * runs it with typed tensors in and out. The compile-time half is the module's interfaces.
 */

import { type LoadArtifactOptions, loadArtifact } from './artifact.js';
import type { ArtifactManifest, ArtifactTensor } from './artifact-manifest.js';
import { WgflowError } from './errors.js';
import type { DTypeName } from './program.js';
import type { Session } from './session.js';
import { type AnyTypedTensor, isTypedTensor, typedTensor } from './typed-tensor.js';

export interface SignatureTensor {
  readonly dtype: DTypeName;
  readonly shape: readonly number[];
}

/** What a typed module was generated for. */
export interface ArtifactSignature {
  readonly name: string;
  readonly program: string;
  readonly inputs: { readonly [name: string]: SignatureTensor };
  readonly outputs: { readonly [name: string]: SignatureTensor };
}

/** A record of typed tensors (the generated Inputs/Outputs interfaces satisfy it). */
export type TypedTensorRecord<T> = { readonly [K in keyof T]: AnyTypedTensor };

export interface TypedArtifact<I extends TypedTensorRecord<I>, O extends TypedTensorRecord<O>> {
  readonly manifest: ArtifactManifest;
  readonly session: Session;
  /** One run: every input, every output read back. */
  run(inputs: I): Promise<O>;
  destroy(): void;
}

const fmt = (t: SignatureTensor) => `${t.dtype} [${t.shape.join(', ')}]`;
const same = (a: SignatureTensor, b: SignatureTensor) =>
  a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

function compare(
  kind: string,
  want: { readonly [name: string]: SignatureTensor },
  have: readonly ArtifactTensor[],
): string[] {
  const out: string[] = [];
  const byName = new Map(have.map((t) => [t.name, t]));
  for (const [name, w] of Object.entries(want)) {
    const h = byName.get(name);
    if (!h) out.push(`${kind} "${name}" ${fmt(w)} is not in the artifact`);
    else if (!same(w, h)) out.push(`${kind} "${name}": the module expects ${fmt(w)}, the artifact has ${fmt(h)}`);
  }
  for (const h of have) if (!(h.name in want)) out.push(`${kind} "${h.name}" ${fmt(h)} is not in the module`);
  return out;
}

/** Loads `dir` and checks it against `signature` (the generated module's constant). */
export async function loadTypedArtifact<I extends TypedTensorRecord<I>, O extends TypedTensorRecord<O>>(
  dir: string,
  signature: ArtifactSignature,
  opts: LoadArtifactOptions = {},
): Promise<TypedArtifact<I, O>> {
  const { manifest, session } = await loadArtifact(dir, opts);
  const problems = [
    ...compare('input', signature.inputs, manifest.inputs),
    ...compare('output', signature.outputs, manifest.outputs),
  ];
  if (problems.length > 0) {
    session.destroy();
    throw new WgflowError(
      `artifact ${dir} ("${manifest.name}") does not match the typed module of "${signature.name}":\n  ${problems.join('\n  ')}`,
    );
  }
  const outputNames = Object.keys(signature.outputs);
  return {
    manifest,
    session,
    async run(inputs: I): Promise<O> {
      const feeds: Record<string, AnyTypedTensor['data']> = {};
      for (const [name, want] of Object.entries(signature.inputs)) {
        const v: unknown = (inputs as Record<string, unknown>)[name];
        if (!isTypedTensor(v))
          throw new WgflowError(
            `${signature.name}.run: input "${name}" is not a typed tensor (make it with typedTensor)`,
          );
        if (!same(v, want))
          throw new WgflowError(`${signature.name}.run: input "${name}" is ${fmt(v)}, expected ${fmt(want)}`);
        feeds[name] = v.data;
      }
      const out = await session.run(feeds, { outputs: outputNames });
      const typed: Record<string, AnyTypedTensor> = {};
      for (const name of outputNames) {
        const s = signature.outputs[name] as SignatureTensor;
        typed[name] = typedTensor(s.dtype, s.shape, (out[name] as { data: AnyTypedTensor['data'] }).data);
      }
      return typed as unknown as O;
    },
    destroy: () => session.destroy(),
  };
}
