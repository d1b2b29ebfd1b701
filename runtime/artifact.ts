/**
 * Loads an artifact directory on Node (runtime/artifact-load.ts does the checks and the loading; this
 * file reads the folder's files). Files are read only when they are regular files, within size limits
 * (runtime/input-file.ts).
 */
import { join } from 'node:path';
import {
  type ArtifactSource,
  type LoadArtifactFromOptions,
  type LoadedArtifact,
  loadArtifactFrom,
  readManifestFrom,
} from './artifact-load.js';
import type { ArtifactManifest, ParseManifestOptions } from './artifact-manifest.js';
import { WgflowError } from './errors.js';
import { INPUT_LIMITS, readInputFile } from './input-file.js';

export interface LoadArtifactOptions extends Omit<LoadArtifactFromOptions, 'weights'> {
  /**
   * Another safetensors file to take the persistent tensors from instead of the artifact's
   * weights.safetensors (e.g. a checkpoint of the same program). It must hold every persistent tensor
   * with the same shape and dtype; tensors the program does not have are ignored (listed in `ignoredWeights`).
   */
  readonly weights?: string;
}

/** The files of an artifact folder. */
export function artifactDirSource(dir: string): ArtifactSource {
  return {
    location: dir,
    where: (file) => join(dir, file),
    read: async (file) => {
      const path = join(dir, file);
      try {
        return await readInputFile(path, { what: `artifact file ${file}`, maxBytes: INPUT_LIMITS.weightsBytes });
      } catch (e) {
        if (e instanceof WgflowError && / no such file$/.test(e.message)) return undefined;
        throw e;
      }
    },
  };
}

/** Reads and validates `dir/manifest.json`. */
export function readArtifactManifest(dir: string, opts: ParseManifestOptions = {}): Promise<ArtifactManifest> {
  return readManifestFrom(artifactDirSource(dir), opts);
}

/** Loads an artifact directory into a Session (see runtime/artifact-load.ts for what is checked). */
export async function loadArtifact(dir: string, opts: LoadArtifactOptions = {}): Promise<LoadedArtifact> {
  const { weights, ...rest } = opts;
  const bytes =
    weights === undefined
      ? undefined
      : await readInputFile(weights, { what: 'weights file', maxBytes: INPUT_LIMITS.weightsBytes });
  return loadArtifactFrom(artifactDirSource(dir), {
    ...rest,
    ...(weights !== undefined && bytes ? { weights: { bytes, where: weights } } : {}),
  });
}
