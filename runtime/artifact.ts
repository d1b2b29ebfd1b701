/**
 * Loads an artifact directory (runtime/artifact-manifest.ts) into a Session with the runtime alone:
 * this file and everything it imports is runtime code (no compiler, ops or models), so a deployed
 * artifact runs without the compiler.
 *
 * Before any GPU work, everything is validated, each failure a WgflowError naming the file: the manifest
 * (format, version, structure), every kernel file (present, inside the directory, sha256 as recorded),
 * the device's limits against the manifest's `limits` (all shortfalls in one message), and the weights
 * (every persistent tensor present with the manifest's shape and dtype) and the constants.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import {
  ARTIFACT_LIMIT_NAMES,
  ARTIFACT_MANIFEST_FILE,
  type ArtifactLimits,
  type ArtifactManifest,
  type ParseManifestOptions,
  parseArtifactManifest,
} from './artifact-manifest.js';
import { type DeviceInfo, getDevice } from './device.js';
import { WgflowError } from './errors.js';
import { INPUT_LIMITS, readInputText } from './input-file.js';
import type { KernelSpec, ProgramSpec } from './program.js';
import { readSafetensors, type SafeTensor } from './safetensors.js';
import { Session, type TypedArray } from './session.js';

export interface LoadArtifactOptions {
  /** The device (default: the process's shared device). */
  readonly gpu?: DeviceInfo;
  /**
   * Another safetensors file to take the persistent tensors from instead of the artifact's
   * weights.safetensors (e.g. a checkpoint of the same program). It must hold every persistent tensor
   * with the same shape and dtype; tensors the program does not have are ignored (listed in `ignoredWeights`).
   */
  readonly weights?: string;
  /** Cap on the workgroups of one dispatch (default ARTIFACT_MAX_DISPATCH_WORKGROUPS, 2^24). */
  readonly maxDispatchWorkgroups?: number;
}

export interface LoadedArtifact {
  readonly dir: string;
  readonly manifest: ArtifactManifest;
  readonly session: Session;
  /** Tensors of an override weights file that the program does not have. */
  readonly ignoredWeights: readonly string[];
}

/** Reads and validates `dir/manifest.json`. */
export async function readArtifactManifest(dir: string, opts: ParseManifestOptions = {}): Promise<ArtifactManifest> {
  const path = join(dir, ARTIFACT_MANIFEST_FILE);
  if (!existsSync(path))
    throw new WgflowError(
      `artifact ${dir}: no ${ARTIFACT_MANIFEST_FILE} (not an artifact directory; make one with \`wgflow compile\`)`,
    );
  // a regular file within the text limit (never a pipe or a device)
  const text = await readInputText(path, { what: 'artifact manifest', maxBytes: INPUT_LIMITS.textBytes });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new WgflowError(`artifact ${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseArtifactManifest(raw, `artifact ${path}`, opts);
}

/** Every limit the device falls short of, as "name needs ≥ X, device has Y" lines (empty when it fits). */
export function artifactLimitShortfalls(need: ArtifactLimits, have: Readonly<Record<string, number>>): string[] {
  const out: string[] = [];
  for (const k of ARTIFACT_LIMIT_NAMES) {
    const h = have[k];
    if (h === undefined || need[k] > h) out.push(`${k} needs ≥ ${need[k]}, the device has ${h ?? 'no such limit'}`);
  }
  return out;
}

/** `dir/file` for a file the manifest names; an absolute path or one leading out of `dir` is an error. */
function insidePath(dir: string, file: string, what: string): string {
  const rel = normalize(file);
  if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`))
    throw new WgflowError(`artifact ${dir}: ${what} "${file}" is outside the artifact directory`);
  return join(dir, rel);
}

async function readKernels(dir: string, m: ArtifactManifest): Promise<KernelSpec[]> {
  const texts = new Map<string, string>();
  const missing: string[] = [];
  for (const k of m.kernels) {
    if (texts.has(k.file)) continue;
    const path = insidePath(dir, k.file, 'kernel file');
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch {
      missing.push(k.file);
      continue;
    }
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== k.sha256)
      throw new WgflowError(
        `artifact ${dir}: kernel file ${k.file} (kernel "${k.name}") was modified or is corrupt: sha256 ${sha}, the manifest records ${k.sha256}`,
      );
    texts.set(k.file, bytes.toString('utf8'));
  }
  if (missing.length > 0)
    throw new WgflowError(
      `artifact ${dir}: ${missing.length} kernel file${missing.length > 1 ? 's are' : ' is'} missing: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`,
    );
  return m.kernels.map((k) => ({
    name: k.name,
    wgsl: texts.get(k.file) as string,
    workgroupSize: k.workgroupSize,
    dispatch: k.dispatch,
    bindings: k.bindings,
    writes: k.writes,
  }));
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Checks a weights file against the manifest's persistent tensors; returns the values by name. */
function matchWeights(
  m: ArtifactManifest,
  tensors: ReadonlyMap<string, SafeTensor>,
  path: string,
  allowExtra: boolean,
): { initial: Record<string, TypedArray>; ignored: string[] } {
  const problems: string[] = [];
  const initial: Record<string, TypedArray> = {};
  const missing = m.persistent.filter((p) => !tensors.has(p.name)).map((p) => `"${p.name}"`);
  if (missing.length > 0) problems.push(`missing tensor${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  for (const p of m.persistent) {
    const t = tensors.get(p.name);
    if (!t) continue;
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
      problems.push(`tensor "${p.name}": shape ${shapeText(t.shape)}, the program expects ${shapeText(p.shape)}`);
    else if (t.dtype !== p.dtype)
      problems.push(`tensor "${p.name}": dtype ${t.stored} (${t.dtype}), the program expects ${p.dtype}`);
    else initial[p.name] = t.data;
  }
  const known = new Set(m.persistent.map((p) => p.name));
  const extra = [...tensors.keys()].filter((k) => !known.has(k));
  if (extra.length > 0 && !allowExtra)
    problems.push(`tensor${extra.length > 1 ? 's' : ''} not in program "${m.program}": ${extra.join(', ')}`);
  if (problems.length > 0)
    throw new WgflowError(`weights ${path} do not fit artifact "${m.name}":\n  ${problems.join('\n  ')}`);
  return { initial, ignored: extra };
}

/** The const buffers' values from the constants file, checked against the buffers' roles and sizes. */
async function readConstants(dir: string, m: ArtifactManifest): Promise<Map<number, number[]>> {
  const path = insidePath(dir, m.constants.file, 'constants file');
  const { tensors } = await readSafetensors(path);
  const out = new Map<number, number[]>();
  for (const b of m.buffers) {
    const t = tensors.get(`buffer.${b.id}`);
    if (b.role !== 'const') {
      if (t) throw new WgflowError(`constants ${path}: "buffer.${b.id}" but buffer ${b.id} is a ${b.role} buffer`);
      continue;
    }
    if (!t) throw new WgflowError(`constants ${path}: no values for const buffer ${b.id} ("buffer.${b.id}")`);
    if (t.dtype !== b.dtype || t.data.length * 4 !== b.bytes)
      throw new WgflowError(
        `constants ${path}: "buffer.${b.id}" is ${t.dtype} × ${t.data.length}, buffer ${b.id} is ${b.dtype} of ${b.bytes} bytes`,
      );
    out.set(b.id, Array.from(t.data));
  }
  if (tensors.size !== out.size)
    throw new WgflowError(`constants ${path}: ${tensors.size - out.size} tensors name no const buffer of the manifest`);
  return out;
}

/** Rebuilds the ProgramSpec the runtime executes from a manifest, its kernel texts and its constants. */
function programOf(m: ArtifactManifest, kernels: KernelSpec[], constants: Map<number, number[]>): ProgramSpec {
  const tensor = ({ name, buffer, dtype, shape }: ArtifactManifest['inputs'][number]) => ({
    name,
    buffer,
    dtype,
    shape,
  });
  return {
    format: 'wgflow-program',
    version: 1,
    name: m.program,
    buffers: m.buffers.map((b) => {
      const data = constants.get(b.id);
      return data ? { ...b, data } : b;
    }),
    kernels,
    steps: m.steps,
    inputs: m.inputs.map(tensor),
    outputs: m.outputs.map(tensor),
    persistent: m.persistent.map((p) => ({ ...tensor(p), role: p.role, trainable: p.trainable })),
    stats: m.stats,
  };
}

/** Loads an artifact directory into a Session (see the file comment for what is checked). */
export async function loadArtifact(dir: string, opts: LoadArtifactOptions = {}): Promise<LoadedArtifact> {
  const manifest = await readArtifactManifest(
    dir,
    opts.maxDispatchWorkgroups !== undefined ? { maxDispatchWorkgroups: opts.maxDispatchWorkgroups } : {},
  );
  const kernels = await readKernels(dir, manifest);
  const constants = await readConstants(dir, manifest);
  const gpu = opts.gpu ?? (await getDevice());
  const short = artifactLimitShortfalls(manifest.limits, gpu.limits);
  if (short.length > 0)
    throw new WgflowError(
      `artifact ${dir} ("${manifest.name}") cannot run on this device (${gpu.adapterName}):\n  ${short.join('\n  ')}`,
    );
  const weightsPath = opts.weights ?? insidePath(dir, manifest.weights.file, 'weights file');
  const { tensors } = await readSafetensors(weightsPath);
  const { initial, ignored } = matchWeights(manifest, tensors, weightsPath, opts.weights !== undefined);
  const session = await Session.create(programOf(manifest, kernels, constants), { gpu, initial });
  return { dir, manifest, session, ignoredWeights: ignored };
}
