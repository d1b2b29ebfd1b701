/**
 * The artifact directory format (written by compiler/artifact.ts, read by runtime/artifact.ts):
 *
 *   manifest.json           this file's ArtifactManifest (JSON)
 *   kernels/NNN-name.wgsl   one WGSL file per distinct kernel text (NNN = index of its first kernel)
 *   weights.safetensors     every persistent tensor (params and state) by name
 *   constants.safetensors   the values of the program's const buffers, as "buffer.<id>" (exact, NaN/±∞ included)
 *   <name>.ts               optional typed TypeScript module (literal shapes; see runtime/typed-tensor.ts)
 *
 * The manifest holds the program's buffers, the dispatch schedule (kernels with their file, sha256,
 * workgroup size, grid and bindings; steps in order), the inputs/outputs/persistent tensors with shapes
 * and dtypes, the device limits the program needs, and the caller's compile options and metadata.
 * Nothing here imports the compiler.
 */
import type { DimJson, SymbolSpec } from './dims.js';
import { WgflowError } from './errors.js';
import { checkDim, checkKernelSizes, checkSymbols, checkTensorSizes, isCount, isObj } from './manifest-sizes.js';
import type { BufferSpec, DTypeName, GridJson, ProgramStats, StepSpec, ValueRange } from './program.js';

export const ARTIFACT_FORMAT = 'wgflow-artifact';
/**
 * 2: kernels keep their run-time grid, size slots, binding windows and stage; tensors their run-time
 * dims, chunk buffers and value ranges; the manifest its size symbols. Version 1 (none of these) is
 * still read.
 */
export const ARTIFACT_VERSION = 2;
const READABLE_VERSIONS: readonly number[] = [1, 2];
export const ARTIFACT_MANIFEST_FILE = 'manifest.json';
export const ARTIFACT_WEIGHTS_FILE = 'weights.safetensors';
export const ARTIFACT_CONSTANTS_FILE = 'constants.safetensors';
export const ARTIFACT_KERNEL_DIR = 'kernels';

export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** The device limits a program needs (each: the largest value any buffer or kernel uses). */
export interface ArtifactLimits {
  /** Largest buffer any kernel binds (bytes, rounded up to 4). */
  readonly maxStorageBufferBindingSize: number;
  /** Largest buffer the program allocates (bytes, rounded up to 4). */
  readonly maxBufferSize: number;
  /** Most storage buffers one kernel binds. */
  readonly maxStorageBuffersPerShaderStage: number;
  /** Most `var<workgroup>` bytes one kernel declares. */
  readonly maxComputeWorkgroupStorageSize: number;
  /** Largest workgroup (x·y·z invocations). */
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupSizeY: number;
  readonly maxComputeWorkgroupSizeZ: number;
  /** Largest grid dimension of any dispatch. */
  readonly maxComputeWorkgroupsPerDimension: number;
}

export const ARTIFACT_LIMIT_NAMES: readonly (keyof ArtifactLimits)[] = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
];

export interface ArtifactTensor {
  readonly name: string;
  readonly dtype: DTypeName;
  readonly shape: readonly number[];
  readonly buffer: number;
  readonly description?: string;
  /** Every axis as a size expression, when some axis is a run-time size (`shape` is the upper bound). */
  readonly dims?: readonly DimJson[];
  /** A tensor over maxBufferSize: its buffers in order (`buffer` is the first). */
  readonly chunks?: readonly number[];
  /** The values an index input may hold (checked on the host before upload). */
  readonly valueRange?: ValueRange;
}

export interface ArtifactPersistent extends ArtifactTensor {
  readonly role: 'param' | 'state';
  readonly trainable: boolean;
}

export interface ArtifactKernel {
  readonly name: string;
  /** Path relative to the artifact directory, e.g. "kernels/003-conv2d.wgsl". */
  readonly file: string;
  /** sha256 (hex) of the file's bytes. */
  readonly sha256: string;
  readonly workgroupSize: readonly [number, number, number];
  readonly dispatch: readonly [number, number, number];
  readonly bindings: readonly number[];
  readonly writes: readonly boolean[];
  /** The grid from run-time sizes (`dispatch` is then its upper bound). */
  readonly grid?: GridJson;
  /** Run-time sizes the kernel reads, in slot order. */
  readonly sizes?: readonly DimJson[];
  /** Per binding, [offset, bytes] of the part of the buffer bound (absent: whole buffers). */
  readonly windows?: readonly (readonly [number, number])[];
  /** The model stage of the kernel (GraphBuilder.stage). */
  readonly stage?: string;
}

export interface ArtifactManifest {
  readonly format: typeof ARTIFACT_FORMAT;
  readonly version: number;
  /** Artifact (model) name, e.g. "frcnn-small"; also the typed module's file stem. */
  readonly name: string;
  /** The ProgramSpec's name. */
  readonly program: string;
  readonly inputs: readonly ArtifactTensor[];
  readonly outputs: readonly ArtifactTensor[];
  readonly persistent: readonly ArtifactPersistent[];
  /** The memory plan: every physical buffer (without `data`: const values are in the constants file). */
  readonly buffers: readonly Omit<BufferSpec, 'data'>[];
  readonly kernels: readonly ArtifactKernel[];
  /** The run-time size symbols (absent: every size is static). */
  readonly symbols?: readonly SymbolSpec[];
  /** The dispatch schedule: kernel dispatches and buffer copies, in order. */
  readonly steps: readonly StepSpec[];
  readonly limits: ArtifactLimits;
  readonly stats: ProgramStats;
  readonly weights: {
    readonly file: string;
    readonly tensors: number;
    readonly bytes: number;
    /** Where the values came from: all given, all initial (the InitSpecs), or some of each. */
    readonly source: 'given' | 'initial' | 'mixed';
  };
  /** The const buffers' values: tensor "buffer.<id>" for each buffer of role "const". */
  readonly constants: { readonly file: string; readonly tensors: number };
  /** The typed module's file name, or null when none was generated. */
  readonly typedModule: string | null;
  /** The options the program was compiled with (as the caller passed them). */
  readonly compileOptions: JsonValue;
  /** Free-form metadata of the caller (e.g. class names, pixel normalization). */
  readonly metadata: { readonly [k: string]: JsonValue };
}

const DTYPES = new Set(['f32', 'i32', 'u32']);
const ROLES = new Set(['input', 'param', 'state', 'const', 'temp']);

const isCountList = (v: unknown, n?: number): v is number[] =>
  Array.isArray(v) && (n === undefined || v.length === n) && v.every(isCount);

/**
 * Validates a parsed manifest: format and version, field types, and internal consistency (buffer ids,
 * kernel indices, tensor buffers). `where` names the file in every error.
 */
/**
 * Default cap on the workgroups of one dispatch (x·y·z) that an artifact may plan: 2^24 = 16 777 216
 * (with 64 invocations per workgroup about 10^9 invocations, far above any wgflow model's largest,
 * while a tampered [65535, 65535, 64] would run for hours). Raise it with `maxDispatchWorkgroups`.
 */
export const ARTIFACT_MAX_DISPATCH_WORKGROUPS = 2 ** 24;

export interface ParseManifestOptions {
  /** Cap on x·y·z workgroups of any one dispatch (default {@link ARTIFACT_MAX_DISPATCH_WORKGROUPS}). */
  readonly maxDispatchWorkgroups?: number;
}

export function parseArtifactManifest(raw: unknown, where: string, opts: ParseManifestOptions = {}): ArtifactManifest {
  function bad(what: string): never {
    throw new WgflowError(`${where}: ${what}`);
  }
  if (!isObj(raw)) return bad('not a JSON object');
  if (raw.format !== ARTIFACT_FORMAT)
    return bad(
      `not a wgflow artifact manifest (format is ${JSON.stringify(raw.format)}, expected "${ARTIFACT_FORMAT}")`,
    );
  if (!READABLE_VERSIONS.includes(raw.version as number))
    return bad(
      typeof raw.version === 'number' && raw.version > ARTIFACT_VERSION
        ? `artifact format version ${raw.version} is newer than this runtime reads (${ARTIFACT_VERSION}); update wgflow`
        : `artifact format version ${JSON.stringify(raw.version)} is not supported (this runtime reads ${ARTIFACT_VERSION})`,
    );
  for (const k of ['name', 'program'] as const) if (typeof raw[k] !== 'string') bad(`"${k}" is not a string`);
  for (const k of ['inputs', 'outputs', 'persistent', 'buffers', 'kernels', 'steps'] as const)
    if (!Array.isArray(raw[k])) bad(`"${k}" is not a list`);
  const buffers = raw.buffers as unknown[];
  buffers.forEach((b, i) => {
    if (!isObj(b) || b.id !== i || !isCount(b.bytes) || !ROLES.has(b.role as string) || !DTYPES.has(b.dtype as string))
      bad(`buffers[${i}] is not {id: ${i}, bytes, role (${[...ROLES].join('|')}), dtype}`);
    if ('data' in b) bad(`buffers[${i}] has inline data (const values belong in the constants file)`);
  });
  const nb = buffers.length;
  const bufferBytes = (buffers as { bytes: number }[]).map((b) => b.bytes);
  const symbols = new Set(checkSymbols(raw.symbols, bad).map((s) => s.name));
  const tensorList = (key: 'inputs' | 'outputs' | 'persistent') =>
    (raw[key] as unknown[]).forEach((t, i) => {
      if (
        !isObj(t) ||
        typeof t.name !== 'string' ||
        !DTYPES.has(t.dtype as string) ||
        !isCountList(t.shape) ||
        !isCount(t.buffer) ||
        t.buffer >= nb
      )
        bad(`${key}[${i}] is not {name, dtype (f32|i32|u32), shape, buffer < ${nb}}`);
      checkTensorSizes(t, `${key}[${i}]`, symbols, nb, bad);
    });
  tensorList('inputs');
  tensorList('outputs');
  tensorList('persistent');
  const kernels = raw.kernels as unknown[];
  kernels.forEach((k, i) => {
    if (
      !isObj(k) ||
      typeof k.name !== 'string' ||
      typeof k.file !== 'string' ||
      typeof k.sha256 !== 'string' ||
      !isCountList(k.workgroupSize, 3) ||
      !isCountList(k.dispatch, 3) ||
      !isCountList(k.bindings) ||
      !(k.bindings as number[]).every((b) => b < nb) ||
      !Array.isArray(k.writes) ||
      k.writes.length !== (k.bindings as number[]).length
    )
      bad(`kernels[${i}] is not {name, file, sha256, workgroupSize, dispatch, bindings (< ${nb}), writes}`);
    checkKernelSizes(k, `kernels[${i}]`, symbols, bufferBytes, bad);
  });
  (raw.steps as unknown[]).forEach((s, i) => {
    const ok =
      isObj(s) &&
      ((s.kind === 'dispatch' && isCount(s.kernel) && s.kernel < kernels.length) ||
        (s.kind === 'copy' && isCount(s.src) && isCount(s.dst) && s.src < nb && s.dst < nb && isCount(s.bytes)));
    if (!ok) bad(`steps[${i}] is not a dispatch of a kernel < ${kernels.length} or a copy between buffers < ${nb}`);
    if (isObj(s) && s.kind === 'copy' && s.bytesDim !== undefined)
      checkDim(s.bytesDim, symbols, `steps[${i}].bytesDim`, bad);
  });
  if (!isObj(raw.limits)) bad('"limits" is not an object');
  for (const k of ARTIFACT_LIMIT_NAMES)
    if (!isCount((raw.limits as Record<string, unknown>)[k])) bad(`limits.${k} is not a non-negative integer`);
  // the planned grid and workgroup sizes must be within the limits the manifest records (which the
  // loader checks against the device), and each dispatch's workgroups under the cap
  const limits = raw.limits as unknown as ArtifactLimits;
  const cap = opts.maxDispatchWorkgroups ?? ARTIFACT_MAX_DISPATCH_WORKGROUPS;
  (kernels as ArtifactKernel[]).forEach((k, i) => {
    const at = `kernels[${i}] ("${k.name}")`;
    const d = k.dispatch;
    if (d.some((n) => n > limits.maxComputeWorkgroupsPerDimension))
      bad(
        `${at}: dispatch [${d.join(', ')}] exceeds limits.maxComputeWorkgroupsPerDimension ${limits.maxComputeWorkgroupsPerDimension}`,
      );
    const total = d[0] * d[1] * d[2];
    if (total > cap)
      bad(
        `${at}: dispatch [${d.join(', ')}] is ${total} workgroups, over the cap of ${cap} per dispatch (corrupt or tampered; raise it with the loader's maxDispatchWorkgroups option)`,
      );
    const [x, y, z] = k.workgroupSize;
    if (
      x > limits.maxComputeWorkgroupSizeX ||
      y > limits.maxComputeWorkgroupSizeY ||
      z > limits.maxComputeWorkgroupSizeZ ||
      x * y * z > limits.maxComputeInvocationsPerWorkgroup ||
      x * y * z === 0
    )
      bad(`${at}: workgroupSize [${x}, ${y}, ${z}] is empty or exceeds the workgroup limits the manifest records`);
    if (k.bindings.length > limits.maxStorageBuffersPerShaderStage)
      bad(
        `${at}: ${k.bindings.length} bindings exceed limits.maxStorageBuffersPerShaderStage ${limits.maxStorageBuffersPerShaderStage}`,
      );
  });
  if (!isObj(raw.stats)) bad('"stats" is not an object');
  if (!isObj(raw.weights) || typeof raw.weights.file !== 'string') bad('"weights" is not {file, ...}');
  if (!isObj(raw.constants) || typeof raw.constants.file !== 'string') bad('"constants" is not {file, tensors}');
  if (raw.typedModule !== null && typeof raw.typedModule !== 'string') bad('"typedModule" is not a string or null');
  if (!isObj(raw.metadata)) bad('"metadata" is not an object');
  return raw as unknown as ArtifactManifest;
}
