/**
 * Session checkpoints as safetensors files: every persistent tensor (params and optimizer state,
 * named as in spec.persistent, in that order) plus string metadata:
 *   format "wgflow-checkpoint", format_version "1", program (spec name), iteration (decimal),
 *   and, when given, rng_state and config (each JSON text).
 * Files are written atomically (runtime/atomic-file.ts), so an interrupted save keeps the previous one.
 */
import { existsSync } from 'node:fs';
import type { AtomicWriteOptions } from './atomic-file.js';
import { writeFileAtomic } from './atomic-file.js';
import { WgflowError } from './errors.js';
import { encodeSafetensors, readSafetensors, type TensorToWrite } from './safetensors.js';
import type { Session } from './session.js';

export const CHECKPOINT_FORMAT = 'wgflow-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;

export interface CheckpointInfo {
  /** Training iteration (a non-negative integer). */
  readonly iteration: number;
  /** Any JSON-serializable RNG state (e.g. a seed and a counter). */
  readonly rngState?: unknown;
  /** Any JSON-serializable training configuration. */
  readonly config?: unknown;
}

export interface LoadedCheckpoint extends CheckpointInfo {
  readonly formatVersion: number;
  /** The spec name of the program that saved it. */
  readonly program: string;
  /** All metadata strings as stored. */
  readonly metadata: Readonly<Record<string, string>>;
}

function toJson(value: unknown, what: string, path: string): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(value);
  } catch (e) {
    throw new WgflowError(`checkpoint ${path}: ${what} is not JSON-serializable (${(e as Error).message})`);
  }
  if (s === undefined) throw new WgflowError(`checkpoint ${path}: ${what} is not JSON-serializable`);
  return s;
}

/** A checkpoint was refused because a parameter or state tensor is NaN or infinite. */
export class NonFiniteStateError extends WgflowError {
  constructor(
    readonly tensor: string,
    readonly value: number,
    message: string,
  ) {
    super(message);
    this.name = 'NonFiniteStateError';
  }
}

/** A checkpoint was refused because a parameter exploded: its largest |w| is over the allowed bound. */
export class ExplodedStateError extends WgflowError {
  constructor(
    readonly tensor: string,
    readonly maxAbs: number,
    readonly bound: number,
    message: string,
  ) {
    super(message);
    this.name = 'ExplodedStateError';
  }
}

/**
 * The rule for replacing a checkpoint during training: the largest |w| of the parameters may grow at
 * most CHECKPOINT_GROWTH_LIMIT times over the previous checkpoint's (at least 1 counts as the previous
 * value, so small or zero weights may grow to 1000), and never past CHECKPOINT_MAX_ABS_WEIGHT.
 */
export const CHECKPOINT_GROWTH_LIMIT = 1e3;
export const CHECKPOINT_MAX_ABS_WEIGHT = 1e6;

/** The largest |w| the next checkpoint's parameters may hold, given the previous checkpoint's. */
export function checkpointWeightBound(previousMaxAbs: number | undefined): number {
  if (previousMaxAbs === undefined || !Number.isFinite(previousMaxAbs)) return CHECKPOINT_MAX_ABS_WEIGHT;
  return Math.min(CHECKPOINT_MAX_ABS_WEIGHT, CHECKPOINT_GROWTH_LIMIT * Math.max(previousMaxAbs, 1));
}

export interface SaveCheckpointOptions extends AtomicWriteOptions {
  /** Refuse (throw NonFiniteStateError, write nothing) when a float tensor holds NaN or ±Infinity. */
  readonly requireFinite?: boolean;
  /** Refuse (throw ExplodedStateError, write nothing) when a parameter holds a value with |w| over this. */
  readonly maxAbsWeight?: number;
}

/** What saveCheckpoint wrote. */
export interface SavedCheckpoint {
  /** Largest |w| over the float parameters (role 'param'); 0 when there are none. */
  readonly maxAbsWeight: number;
}

const kept = (path: string) =>
  existsSync(path) ? `the file already at ${path} is left as it was` : 'no checkpoint file was written';

/** Largest |w| of a float array (NaN when it holds a NaN). */
export function maxAbs(data: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Math.abs(data[i] as number);
    if (!(v <= m)) m = v;
  }
  return m;
}

/** Largest |w| over the session's float parameters. */
export async function sessionMaxAbsWeight(session: Session): Promise<number> {
  let m = 0;
  for (const p of session.spec.persistent) {
    if (p.role !== 'param' || p.dtype !== 'f32') continue;
    m = Math.max(m, maxAbs((await session.read(p.name)).data));
  }
  return m;
}

/** Reads every persistent tensor from the session and writes them with the metadata, atomically. */
export async function saveCheckpoint(
  session: Session,
  path: string,
  info: CheckpointInfo,
  opts: SaveCheckpointOptions = {},
): Promise<SavedCheckpoint> {
  if (!Number.isSafeInteger(info.iteration) || info.iteration < 0)
    throw new WgflowError(`checkpoint ${path}: iteration must be a non-negative integer, got ${info.iteration}`);
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: String(CHECKPOINT_FORMAT_VERSION),
    program: session.spec.name,
    iteration: String(info.iteration),
  };
  if (info.rngState !== undefined) metadata.rng_state = toJson(info.rngState, 'rngState', path);
  if (info.config !== undefined) metadata.config = toJson(info.config, 'config', path);
  const tensors: [string, TensorToWrite][] = [];
  let maxAbsWeight = 0;
  for (const p of session.spec.persistent) {
    const t = await session.read(p.name);
    if (opts.requireFinite && t.data instanceof Float32Array) {
      const bad = t.data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0)
        throw new NonFiniteStateError(
          p.name,
          t.data[bad] as number,
          `checkpoint ${path} NOT written: tensor "${p.name}" holds ${t.data[bad]} (element ${bad}) after iteration ${info.iteration}; ${kept(path)}`,
        );
    }
    if (p.role === 'param' && t.data instanceof Float32Array) {
      const m = maxAbs(t.data);
      maxAbsWeight = Math.max(maxAbsWeight, m);
      if (opts.maxAbsWeight !== undefined && !(m <= opts.maxAbsWeight))
        throw new ExplodedStateError(
          p.name,
          m,
          opts.maxAbsWeight,
          `checkpoint ${path} NOT written: parameter "${p.name}" reaches |w| = ${m.toExponential(2)} after iteration ${info.iteration}, over the bound ${opts.maxAbsWeight.toExponential(2)} (the weights exploded: a checkpoint may grow max |w| at most ${CHECKPOINT_GROWTH_LIMIT}× over the previous one, and never past ${CHECKPOINT_MAX_ABS_WEIGHT.toExponential(0)}); ${kept(path)} (lower the learning rate)`,
        );
    }
    tensors.push([p.name, t]);
  }
  try {
    await writeFileAtomic(path, encodeSafetensors(tensors, metadata), opts);
  } catch (e) {
    if (e instanceof WgflowError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new WgflowError(
      `checkpoint ${path} NOT written: ${code ? `${code} ` : ''}(${(e as Error).message}); ${kept(path)}`,
      { cause: e },
    );
  }
  return { maxAbsWeight };
}

function parseJson(text: string | undefined, key: string, path: string): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WgflowError(`checkpoint ${path}: metadata "${key}" is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Loads a checkpoint into the session. Everything is validated before anything is written: the file
 * must be a wgflow checkpoint of a version this code reads, hold exactly the session's persistent
 * tensors (none missing, none extra), each with the same shape and dtype. F16/BF16/F64 tensors are
 * accepted for f32 tensors and I64 for i32 (converted by the safetensors reader).
 */
export async function loadCheckpoint(session: Session, path: string): Promise<LoadedCheckpoint> {
  const { tensors, metadata } = await readSafetensors(path);
  const where = `checkpoint ${path}`;
  if (metadata.format !== CHECKPOINT_FORMAT)
    throw new WgflowError(
      `${where}: not a wgflow checkpoint (metadata "format" is ${metadata.format === undefined ? 'missing' : JSON.stringify(metadata.format)})`,
    );
  const formatVersion = Number(metadata.format_version);
  if (!Number.isInteger(formatVersion) || formatVersion < 1 || formatVersion > CHECKPOINT_FORMAT_VERSION)
    throw new WgflowError(
      `${where}: format_version ${JSON.stringify(metadata.format_version)} is not supported (this code reads 1..${CHECKPOINT_FORMAT_VERSION})`,
    );
  const iteration = Number(metadata.iteration);
  if (metadata.iteration === undefined || !Number.isSafeInteger(iteration) || iteration < 0)
    throw new WgflowError(`${where}: metadata "iteration" ${JSON.stringify(metadata.iteration)} is not an integer ≥ 0`);
  const spec = session.spec;
  const missing = spec.persistent.filter((p) => !tensors.has(p.name)).map((p) => p.name);
  if (missing.length > 0)
    throw new WgflowError(
      `${where}: missing tensor${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} needed by program "${spec.name}"`,
    );
  const known = new Set(spec.persistent.map((p) => p.name));
  const extra = [...tensors.keys()].filter((k) => !known.has(k));
  if (extra.length > 0)
    throw new WgflowError(
      `${where}: tensor${extra.length > 1 ? 's' : ''} ${extra.map((m) => `"${m}"`).join(', ')} not in program "${spec.name}" (saved by program "${metadata.program ?? '?'}")`,
    );
  for (const p of spec.persistent) {
    const t = tensors.get(p.name);
    if (!t) continue;
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
      throw new WgflowError(
        `${where}: tensor "${p.name}" has shape [${t.shape.join(',')}], program "${spec.name}" expects [${p.shape.join(',')}]`,
      );
    if (t.dtype !== p.dtype)
      throw new WgflowError(
        `${where}: tensor "${p.name}" has dtype ${t.stored} (${t.dtype}), program "${spec.name}" expects ${p.dtype}`,
      );
  }
  for (const p of spec.persistent) {
    const t = tensors.get(p.name);
    if (t) session.write(p.name, t.data);
  }
  const rngState = parseJson(metadata.rng_state, 'rng_state', path);
  const config = parseJson(metadata.config, 'config', path);
  return {
    iteration,
    formatVersion,
    program: metadata.program ?? '',
    metadata,
    ...(rngState !== undefined ? { rngState } : {}),
    ...(config !== undefined ? { config } : {}),
  };
}
