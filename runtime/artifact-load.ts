/**
 * Loads an artifact (runtime/artifact-manifest.ts) into a Session with the runtime alone, from any
 * source of its files: a folder on Node (runtime/artifact.ts) or URLs in a browser
 * (runtime/artifact-url.ts). This file and everything it imports is runtime code (no compiler, ops or
 * models, no `node:` modules), so a deployed artifact runs without the compiler, in Node or a page.
 *
 * Before any GPU work, everything is validated, each failure a WgflowError naming the file: the manifest
 * (format, version, structure), every kernel file (present, inside the directory, sha256 as recorded),
 * the device's limits against the manifest's `limits` (all shortfalls in one message), and the weights
 * (every persistent tensor present with the manifest's shape and dtype) and the constants.
 */
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
import { kernelSizeFields, tensorSizeFields } from './manifest-sizes.js';
import type { KernelSpec, ProgramSpec } from './program.js';
import { decodeSafetensors, type SafeTensor } from './safetensors-codec.js';
import { Session, type TypedArray } from './session.js';

/**
 * Where an artifact's files come from. Names are the manifest's, relative to the artifact (checked by
 * {@link artifactFileName} before they reach the source).
 */
export interface ArtifactSource {
  /** The artifact's folder or URL, for messages and for `LoadedArtifact.dir`. */
  readonly location: string;
  /** The path or URL of one of its files, for messages. */
  where(file: string): string;
  /** A file's bytes, or undefined when it does not exist. Other failures throw a WgflowError naming it. */
  read(file: string): Promise<Uint8Array | undefined>;
}

export interface LoadArtifactFromOptions {
  /** The device (default: the shared device of the process or page). */
  readonly gpu?: DeviceInfo;
  /** Persistent tensors from other safetensors bytes than the artifact's weights file (see LoadArtifactOptions). */
  readonly weights?: { readonly bytes: Uint8Array; readonly where: string };
  /** Cap on the workgroups of one dispatch (default ARTIFACT_MAX_DISPATCH_WORKGROUPS, 2^24). */
  readonly maxDispatchWorkgroups?: number;
  /**
   * Time every dispatch with timestamp queries (Session `profile`; needs the device's 'timestamp-query'
   * feature): `session.lastRunProfile` then has per-kernel times, `stageTimes` sums them by stage.
   */
  readonly profile?: boolean;
}

export interface LoadedArtifact {
  /** The artifact's folder (Node) or base URL (browser). */
  readonly dir: string;
  readonly manifest: ArtifactManifest;
  readonly session: Session;
  /** Tensors of an override weights file that the program does not have. */
  readonly ignoredWeights: readonly string[];
}

/** Reads and validates the manifest of an artifact source. */
export async function readManifestFrom(
  src: ArtifactSource,
  opts: ParseManifestOptions = {},
): Promise<ArtifactManifest> {
  const path = src.where(ARTIFACT_MANIFEST_FILE);
  const bytes = await src.read(ARTIFACT_MANIFEST_FILE);
  if (!bytes)
    throw new WgflowError(
      `artifact ${src.location}: no ${ARTIFACT_MANIFEST_FILE} (not an artifact directory; make one with \`wgflow compile\`)`,
    );
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
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

/**
 * A file name from the manifest, checked to stay inside the artifact: relative, with no `..`, `.` or
 * empty segment, no backslash and no drive letter (the same rule on Node and for URLs).
 */
export function artifactFileName(location: string, file: string, what: string): string {
  const segments = file.split('/');
  if (
    file === '' ||
    file.includes('\\') ||
    /^[A-Za-z]:/.test(file) ||
    segments.some((p) => p === '' || p === '.' || p === '..')
  )
    throw new WgflowError(`artifact ${location}: ${what} "${file}" is outside the artifact directory`);
  return file;
}

const hex = (b: ArrayBuffer) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');

/** sha256 through WebCrypto (globalThis.crypto: Node ≥ 19 and every browser in a secure context). */
async function sha256(bytes: Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
}

async function readKernels(src: ArtifactSource, m: ArtifactManifest): Promise<KernelSpec[]> {
  const dir = src.location;
  const texts = new Map<string, string>();
  const missing: string[] = [];
  for (const k of m.kernels) {
    if (texts.has(k.file)) continue;
    const bytes = await src.read(artifactFileName(dir, k.file, 'kernel file'));
    if (!bytes) {
      missing.push(k.file);
      continue;
    }
    const sha = await sha256(bytes);
    if (sha !== k.sha256)
      throw new WgflowError(
        `artifact ${dir}: kernel file ${k.file} (kernel "${k.name}") was modified or is corrupt: sha256 ${sha}, the manifest records ${k.sha256}`,
      );
    texts.set(k.file, new TextDecoder().decode(bytes));
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
    ...kernelSizeFields(k),
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
async function readConstants(src: ArtifactSource, m: ArtifactManifest): Promise<Map<number, number[]>> {
  const path = src.where(m.constants.file);
  const { tensors } = await readTensorsFrom(src, m.constants.file, 'constants file');
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
  const tensor = (t: ArtifactManifest['inputs'][number]) => ({
    name: t.name,
    buffer: t.buffer,
    dtype: t.dtype,
    shape: t.shape,
    ...tensorSizeFields(t),
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
    ...(m.symbols ? { symbols: m.symbols } : {}),
    stats: m.stats,
  };
}

/** A safetensors file of the artifact, decoded (missing: an error naming it). */
async function readTensorsFrom(src: ArtifactSource, file: string, what: string) {
  const bytes = await src.read(artifactFileName(src.location, file, what));
  if (!bytes) throw new WgflowError(`artifact ${src.location}: the ${what} ${src.where(file)} is missing`);
  return decodeSafetensors(bytes, src.where(file));
}

/** Loads an artifact from a source into a Session (see the file comment for what is checked). */
export async function loadArtifactFrom(
  src: ArtifactSource,
  opts: LoadArtifactFromOptions = {},
): Promise<LoadedArtifact> {
  const dir = src.location;
  const manifest = await readManifestFrom(
    src,
    opts.maxDispatchWorkgroups !== undefined ? { maxDispatchWorkgroups: opts.maxDispatchWorkgroups } : {},
  );
  const kernels = await readKernels(src, manifest);
  const constants = await readConstants(src, manifest);
  const gpu = opts.gpu ?? (await getDevice());
  const short = artifactLimitShortfalls(manifest.limits, gpu.limits);
  if (short.length > 0)
    throw new WgflowError(
      `artifact ${dir} ("${manifest.name}") cannot run on this device (${gpu.adapterName}):\n  ${short.join('\n  ')}`,
    );
  const weightsPath = opts.weights?.where ?? src.where(manifest.weights.file);
  const { tensors } = opts.weights
    ? decodeSafetensors(opts.weights.bytes, opts.weights.where)
    : await readTensorsFrom(src, manifest.weights.file, 'weights file');
  const { initial, ignored } = matchWeights(manifest, tensors, weightsPath, opts.weights !== undefined);
  const session = await Session.create(programOf(manifest, kernels, constants), {
    gpu,
    initial,
    ...(opts.profile ? { profile: true } : {}),
  });
  return { dir, manifest, session, ignoredWeights: ignored };
}
