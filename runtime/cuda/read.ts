/** Reads a program's CUDA section (kernels/<program>.cuda.json) from an artifact directory. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WgflowError } from '../errors.js';
import type { CudaProgramSection } from './program.js';

/** The section file of `program` (its ProgramSpec name) under `dir`. */
export function cudaSectionFile(program: string): string {
  return `kernels/${program.replace(/[^A-Za-z0-9._-]/g, '_')}.cuda.json`;
}

export function readCudaSection(dir: string, program: string): CudaProgramSection {
  const file = join(dir, cudaSectionFile(program));
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new WgflowError(
      `CUDA: no CUDA kernels for program "${program}" in ${dir} (${(e as Error).message}); build them with --target cuda`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new WgflowError(`CUDA: ${file} is not JSON: ${(e as Error).message}`);
  }
  const s = parsed as Partial<CudaProgramSection>;
  if (s.format !== 'wgflow-cuda' || s.version !== 1 || !Array.isArray(s.kernels) || !Array.isArray(s.modules))
    throw new WgflowError(`CUDA: ${file} is not a wgflow CUDA section (format "wgflow-cuda", version 1)`);
  return s as CudaProgramSection;
}
