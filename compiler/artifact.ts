/**
 * Writes a compiled program as an artifact directory (format: runtime/artifact-manifest.ts) that
 * runtime/artifact.ts loads without the compiler: manifest.json, kernels/NNN-name.wgsl (one file per
 * distinct WGSL text), weights.safetensors (every persistent tensor: the given values, else the values
 * the runtime would initialize from the InitSpec), constants.safetensors (const buffers, exact) and
 * optionally the typed module `<name>.ts`.
 *
 * The directory is built next to `dir` and moved into place at the end, so a failed write leaves the
 * previous artifact (if any) intact. An existing `dir` is replaced only if it is empty or an artifact.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  ARTIFACT_CONSTANTS_FILE,
  ARTIFACT_FORMAT,
  ARTIFACT_KERNEL_DIR,
  ARTIFACT_MANIFEST_FILE,
  ARTIFACT_VERSION,
  ARTIFACT_WEIGHTS_FILE,
  type ArtifactKernel,
  type ArtifactLimits,
  type ArtifactManifest,
  type JsonValue,
} from '../runtime/artifact-manifest.js';
import { initialValues } from '../runtime/init.js';
import { kernelSizeFields, tensorSizeFields } from '../runtime/manifest-sizes.js';
import type { DTypeName, ProgramSpec, TensorSpec } from '../runtime/program.js';
import { type TensorToWrite, writeSafetensors } from '../runtime/safetensors.js';
import type { TypedArray } from '../runtime/session.js';
import { WgflowError } from './errors.js';
import { generateTypedModule } from './typed-module.js';

export interface WriteArtifactOptions {
  readonly spec: ProgramSpec;
  /** Artifact name: letters, digits, '-' and '_', starting with a letter (e.g. "frcnn-small"). */
  readonly name: string;
  /** Descriptions of inputs / outputs by name (optional; copied to the manifest and the typed module). */
  readonly inputs?: Readonly<Record<string, string>>;
  readonly outputs?: Readonly<Record<string, string>>;
  /**
   * Values of persistent tensors by name (f32: Float32Array, i32: Int32Array, u32: Uint32Array).
   * Tensors not given get their initial values (the runtime's initialValues of their InitSpec).
   */
  readonly weights?: ReadonlyMap<string, TypedArray>;
  /** Generate the typed module `<name>.ts` (default true). */
  readonly typed?: boolean;
  /** Module specifier the typed module imports the runtime from (default "wgflow/runtime"). */
  readonly runtimeImport?: string;
  /** The options the program was compiled with (recorded as given). */
  readonly compileOptions?: JsonValue;
  /** Free-form metadata (e.g. class names, pixel normalization). */
  readonly metadata?: Readonly<Record<string, JsonValue>>;
}

export interface WrittenArtifact {
  /** Absolute path of the artifact directory. */
  readonly dir: string;
  readonly manifest: ArtifactManifest;
  /** Absolute path of the typed module, or null. */
  readonly typedModule: string | null;
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const ARRAY_OF: Readonly<Record<DTypeName, Float32ArrayConstructor | Int32ArrayConstructor | Uint32ArrayConstructor>> =
  {
    f32: Float32Array,
    i32: Int32Array,
    u32: Uint32Array,
  };

const count = (t: TensorSpec) => t.shape.reduce((a, b) => a * b, 1);

/** Bytes of one `var<workgroup>` element type (scalars and vectors of 32-bit scalars). */
function wgslTypeBytes(type: string, kernel: string): number {
  const t = type.replace(/\s+/g, '');
  if (/^(f32|i32|u32|bool)$/.test(t)) return 4;
  const vec = /^vec([234])<(f32|i32|u32)>$/.exec(t);
  if (vec) return vec[1] === '3' ? 16 : 4 * Number(vec[1]);
  throw new WgflowError(`artifact: kernel ${kernel}: cannot size workgroup type "${type}"`);
}

/** Bytes of `var<workgroup>` storage a WGSL kernel declares (arrays of scalars/vectors, or single values). */
export function workgroupStorageBytes(wgsl: string, kernel = 'kernel'): number {
  const decl =
    /var<workgroup>\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(array<\s*([^,>]+(?:<[^>]*>)?)\s*,\s*(\d+)u?\s*>|[^;]+)\s*;/g;
  let bytes = 0;
  let found = 0;
  for (const m of wgsl.matchAll(decl)) {
    found++;
    if (m[3] !== undefined && m[4] !== undefined) bytes += wgslTypeBytes(m[3], kernel) * Number(m[4]);
    else bytes += wgslTypeBytes(m[2] as string, kernel);
  }
  const declared = wgsl.split('var<workgroup>').length - 1;
  if (found !== declared)
    throw new WgflowError(`artifact: kernel ${kernel}: could not size ${declared - found} var<workgroup> declarations`);
  return bytes;
}

/** The device limits `spec` needs: the largest value any of its buffers or kernels uses. */
export function requiredLimits(spec: ProgramSpec): ArtifactLimits {
  const bufferBytes = spec.buffers.map((b) => Math.max(4, Math.ceil(b.bytes / 4) * 4));
  const maxOf = (xs: number[]) => xs.reduce((a, b) => Math.max(a, b), 0);
  const bindingBytes = spec.kernels.flatMap((k) =>
    k.bindings.map((id, j) => k.windows?.[j]?.[1] ?? bufferBytes[id] ?? 0),
  );
  return {
    maxStorageBufferBindingSize: maxOf(bindingBytes),
    maxBufferSize: maxOf(bufferBytes),
    maxStorageBuffersPerShaderStage: maxOf(spec.kernels.map((k) => k.bindings.length)),
    maxComputeWorkgroupStorageSize: maxOf(spec.kernels.map((k) => workgroupStorageBytes(k.wgsl, k.name))),
    maxComputeInvocationsPerWorkgroup: maxOf(
      spec.kernels.map((k) => k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2]),
    ),
    maxComputeWorkgroupSizeX: maxOf(spec.kernels.map((k) => k.workgroupSize[0])),
    maxComputeWorkgroupSizeY: maxOf(spec.kernels.map((k) => k.workgroupSize[1])),
    maxComputeWorkgroupSizeZ: maxOf(spec.kernels.map((k) => k.workgroupSize[2])),
    maxComputeWorkgroupsPerDimension: maxOf(spec.kernels.flatMap((k) => [...k.dispatch])),
  };
}

/** Every persistent tensor's values: `given` where present (checked), else the InitSpec's initial values. */
function persistentValues(
  spec: ProgramSpec,
  given: ReadonlyMap<string, TypedArray> | undefined,
): { tensors: [string, TensorToWrite][]; source: ArtifactManifest['weights']['source'] } {
  const known = new Set(spec.persistent.map((p) => p.name));
  const unknown = [...(given?.keys() ?? [])].filter((k) => !known.has(k));
  if (unknown.length > 0)
    throw new WgflowError(
      `writeArtifact: weight${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `"${u}"`).join(', ')} not in program "${spec.name}" (has: ${[...known].join(', ')})`,
    );
  const tensors: [string, TensorToWrite][] = [];
  let fromGiven = 0;
  for (const p of spec.persistent) {
    const n = count(p);
    const ctor = ARRAY_OF[p.dtype];
    const v = given?.get(p.name);
    let data: TypedArray;
    if (v !== undefined) {
      if (!(v instanceof ctor))
        throw new WgflowError(
          `writeArtifact: weight "${p.name}" is a ${v.constructor.name}, the program's ${p.dtype} tensor needs a ${ctor.name}`,
        );
      if (v.length !== n)
        throw new WgflowError(
          `writeArtifact: weight "${p.name}" has ${v.length} values, shape [${p.shape.join(', ')}] needs ${n}`,
        );
      data = v;
      fromGiven++;
    } else {
      const init = spec.buffers[p.buffer]?.init;
      const f = init ? initialValues(init, n) : new Float32Array(n);
      data = p.dtype === 'f32' ? f : ctor.from(f);
    }
    tensors.push([p.name, { data, shape: p.shape, dtype: p.dtype }]);
  }
  const source = fromGiven === 0 ? 'initial' : fromGiven === spec.persistent.length ? 'given' : 'mixed';
  return { tensors, source };
}

/** JSON with small values (≤ 120 characters) on one line and larger objects/lists expanded. */
export function prettyJson(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat === undefined || flat.length + indent.length <= 120 || typeof value !== 'object' || value === null)
    return flat ?? 'null';
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== 'object' || v === null)) {
      // long lists of scalars: wrapped, several per line
      const items = value.map((v) => JSON.stringify(v) ?? 'null');
      const lines: string[] = [];
      let line = '';
      for (const it of items) {
        if (line && line.length + it.length + inner.length > 100) {
          lines.push(line);
          line = '';
        }
        line += line ? ` ${it},` : `${it},`;
      }
      if (line) lines.push(line);
      const last = lines.length - 1;
      lines[last] = (lines[last] as string).slice(0, -1);
      return `[\n${lines.map((l) => inner + l).join('\n')}\n${indent}]`;
    }
    return `[\n${value.map((v) => inner + prettyJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${prettyJson(v, inner)}`).join(',\n')}\n${indent}}`;
}

/** "conv2d+relu/3" → "conv2d_relu_3" (at most 60 characters). */
const fileStem = (s: string) => s.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 60) || 'kernel';

async function replaceDir(tmp: string, dir: string): Promise<void> {
  if (existsSync(dir)) {
    const entries = await readdir(dir);
    if (entries.length > 0) {
      let isArtifact = false;
      try {
        isArtifact = JSON.parse(await readFile(join(dir, ARTIFACT_MANIFEST_FILE), 'utf8')).format === ARTIFACT_FORMAT;
      } catch {
        isArtifact = false;
      }
      if (!isArtifact)
        throw new WgflowError(
          `writeArtifact: ${dir} exists and is not a wgflow artifact directory (no ${ARTIFACT_MANIFEST_FILE} of format "${ARTIFACT_FORMAT}"); refusing to replace it`,
        );
    }
    const old = `${tmp}.old`;
    await rename(dir, old);
    await rename(tmp, dir);
    await rm(old, { recursive: true, force: true });
  } else await rename(tmp, dir);
}

/** Writes the artifact directory (see the file comment). */
export async function writeArtifact(dir: string, opts: WriteArtifactOptions): Promise<WrittenArtifact> {
  const { spec, name } = opts;
  if (!NAME.test(name))
    throw new WgflowError(
      `writeArtifact: name "${name}" must start with a letter and hold only letters, digits, '-' and '_'`,
    );
  const target = resolve(dir);
  const describe = (list: readonly TensorSpec[], notes: Readonly<Record<string, string>> | undefined, kind: string) => {
    for (const k of Object.keys(notes ?? {}))
      if (!list.some((t) => t.name === k))
        throw new WgflowError(
          `writeArtifact: description for ${kind} "${k}", which program "${spec.name}" does not have`,
        );
    return list.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      buffer: t.buffer,
      ...(notes?.[t.name] !== undefined ? { description: notes[t.name] } : {}),
      ...tensorSizeFields(t),
    }));
  };
  const inputs = describe(spec.inputs, opts.inputs, 'input');
  const outputs = describe(spec.outputs, opts.outputs, 'output');
  const limits = requiredLimits(spec);
  const { tensors, source } = persistentValues(spec, opts.weights);

  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(join(tmp, ARTIFACT_KERNEL_DIR), { recursive: true });
  try {
    const fileOf = new Map<string, { file: string; sha256: string }>();
    const width = Math.max(3, String(spec.kernels.length - 1).length);
    const kernels: ArtifactKernel[] = [];
    for (let i = 0; i < spec.kernels.length; i++) {
      const k = spec.kernels[i] as ProgramSpec['kernels'][number];
      let f = fileOf.get(k.wgsl);
      if (!f) {
        const file = `${ARTIFACT_KERNEL_DIR}/${String(i).padStart(width, '0')}-${fileStem(k.name)}.wgsl`;
        const bytes = Buffer.from(k.wgsl, 'utf8');
        await writeFile(join(tmp, file), bytes);
        f = { file, sha256: createHash('sha256').update(bytes).digest('hex') };
        fileOf.set(k.wgsl, f);
      }
      kernels.push({
        name: k.name,
        file: f.file,
        sha256: f.sha256,
        workgroupSize: k.workgroupSize,
        dispatch: k.dispatch,
        bindings: k.bindings,
        writes: k.writes,
        ...kernelSizeFields(k),
      });
    }
    const constants: [string, TensorToWrite][] = spec.buffers
      .filter((b) => b.data !== undefined)
      .map((b) => {
        const data = ARRAY_OF[b.dtype].from(b.data as readonly number[]);
        return [`buffer.${b.id}`, { data, shape: [data.length], dtype: b.dtype }];
      });
    await writeSafetensors(join(tmp, ARTIFACT_CONSTANTS_FILE), constants, { format: 'wgflow-artifact-constants' });
    await writeSafetensors(join(tmp, ARTIFACT_WEIGHTS_FILE), tensors, {
      format: 'wgflow-artifact-weights',
      artifact: name,
      program: spec.name,
    });
    const typed = opts.typed ?? true;
    const typedFile = typed ? `${name}.ts` : null;
    if (typedFile)
      await writeFile(
        join(tmp, typedFile),
        await generateTypedModule({
          name,
          program: spec.name,
          inputs,
          outputs,
          ...(opts.runtimeImport !== undefined ? { runtimeImport: opts.runtimeImport } : {}),
        }),
      );
    const manifest: ArtifactManifest = {
      format: ARTIFACT_FORMAT,
      version: ARTIFACT_VERSION,
      name,
      program: spec.name,
      inputs,
      outputs,
      persistent: spec.persistent.map((p) => ({
        name: p.name,
        dtype: p.dtype,
        shape: [...p.shape],
        buffer: p.buffer,
        role: p.role,
        trainable: p.trainable,
        ...tensorSizeFields(p),
      })),
      ...(spec.symbols && spec.symbols.length > 0 ? { symbols: spec.symbols } : {}),
      buffers: spec.buffers.map(({ data: _data, ...b }) => b),
      kernels,
      steps: spec.steps,
      limits,
      stats: spec.stats,
      weights: {
        file: ARTIFACT_WEIGHTS_FILE,
        tensors: tensors.length,
        bytes: tensors.reduce((n, [, t]) => n + t.data.byteLength, 0),
        source,
      },
      constants: { file: ARTIFACT_CONSTANTS_FILE, tensors: constants.length },
      typedModule: typedFile,
      compileOptions: opts.compileOptions ?? null,
      metadata: opts.metadata ?? {},
    };
    await writeFile(join(tmp, ARTIFACT_MANIFEST_FILE), `${prettyJson(manifest)}\n`);
    await replaceDir(tmp, target);
    return { dir: target, manifest, typedModule: typedFile ? join(target, typedFile) : null };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
