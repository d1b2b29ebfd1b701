/**
 * Launch configuration and module choice for a CUDA program: pure functions (no driver), shared by
 * the CUDA session and the tests.
 */
import { WgflowError } from '../errors.js';
import type { KernelSpec, ProgramSpec, TensorSpec } from '../program.js';
import type { CudaKernelEntry, CudaModuleSpec, CudaProgramSection } from './program.js';

export interface CudaLaunch {
  /** blockIdx range: the spec's dispatch (the 2-D folding the kernels read as wg_linear). */
  readonly grid: readonly [number, number, number];
  /** threadIdx range: the spec's workgroup size. */
  readonly block: readonly [number, number, number];
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** Checks that a CUDA section describes the program's kernels; throws naming the first mismatch. */
/** Name, dtype and shape of every tensor of a list, for comparing two programs' interfaces. */
function tensorsKey(list: readonly TensorSpec[]): string[] {
  return list.map(
    (t) => `${t.name}: ${t.dtype}[${t.shape.join(',')}]${t.dims ? ` dims ${JSON.stringify(t.dims)}` : ''}`,
  );
}

/**
 * The program a CUDA session runs: the section's own program (compiled with the CUDA tuning) when it
 * has one, after checking that it has the artifact program's inputs, outputs and params/state;
 * otherwise the artifact's program.
 */
export function cudaProgramOf(spec: ProgramSpec, cuda: CudaProgramSection): ProgramSpec {
  const own = cuda.spec;
  if (own === undefined) return spec;
  if (own.name !== spec.name)
    throw new WgflowError(`CUDA: the section's program is "${own.name}", the artifact's "${spec.name}"`);
  const parts = [
    ['inputs', own.inputs, spec.inputs],
    ['outputs', own.outputs, spec.outputs],
    ['params/state', own.persistent, spec.persistent],
  ] as const;
  for (const [what, a, b] of parts) {
    const ka = tensorsKey(a);
    const kb = tensorsKey(b);
    const i = Array.from({ length: Math.max(ka.length, kb.length) }, (_, j) => j).find((j) => ka[j] !== kb[j]);
    if (i !== undefined)
      throw new WgflowError(
        `CUDA: the ${what} of the section's program "${own.name}" differ from the artifact's: ${ka[i] ?? 'none'} against ${kb[i] ?? 'none'}; rebuild the artifact with --target cuda`,
      );
  }
  return own;
}

export function checkCudaSection(spec: ProgramSpec, cuda: CudaProgramSection): void {
  if (cuda.format !== 'wgflow-cuda' || cuda.version !== 1)
    throw new WgflowError('CUDA: not a wgflow CUDA section (format/version mismatch)');
  if (cuda.program !== spec.name)
    throw new WgflowError(`CUDA: the section is for program "${cuda.program}", not "${spec.name}"`);
  if (cuda.kernels.length !== spec.kernels.length)
    throw new WgflowError(
      `CUDA: program "${spec.name}" has ${spec.kernels.length} kernels, its CUDA section ${cuda.kernels.length}`,
    );
  spec.kernels.forEach((k, i) => {
    const c = cuda.kernels[i] as CudaKernelEntry;
    const bad = (why: string) => new WgflowError(`CUDA: kernel ${i} (${k.name}): ${why}`);
    if (c.name !== k.name) throw bad(`the CUDA section names it ${c.name}`);
    if (!same(c.block, k.workgroupSize))
      throw bad(`block [${c.block.join(',')}] differs from workgroup size [${k.workgroupSize.join(',')}]`);
    if (c.params.length !== k.bindings.length)
      throw bad(`${c.params.length} pointer parameters for ${k.bindings.length} bindings`);
    if ((c.sizes ?? 0) !== (k.sizes?.length ?? 0))
      throw bad(`${c.sizes ?? 0} run-time sizes in the CUDA section, ${k.sizes?.length ?? 0} in the program`);
    c.params.forEach((p, j) => {
      if (p.write !== k.writes[j]) throw bad(`parameter ${j} write=${p.write}, binding write=${k.writes[j]}`);
      const buf = spec.buffers[k.bindings[j] as number];
      if (!buf) throw bad(`binding ${j} refers to missing buffer ${k.bindings[j]}`);
    });
    if (!cuda.modules.some((m) => m.unit === c.unit)) throw bad(`no module holds its unit ${c.unit}`);
  });
}

/** Grid and block of one kernel, validated against CUDA's limits. */
export function launchOf(k: KernelSpec): CudaLaunch {
  const [bx, by, bz] = k.workgroupSize;
  const [gx, gy, gz] = k.dispatch;
  if (bx * by * bz > 1024 || bz > 64)
    throw new WgflowError(`CUDA: kernel ${k.name}: block [${bx},${by},${bz}] exceeds CUDA's limits`);
  if (gy > 65535 || gz > 65535 || gx > 2147483647)
    throw new WgflowError(`CUDA: kernel ${k.name}: grid [${gx},${gy},${gz}] exceeds CUDA's limits`);
  return { grid: [gx, gy, gz], block: [bx, by, bz] };
}

/** "sm_90" / "sm_90a" / "compute_90" → 90. */
function archNumber(arch: string): number {
  const m = /_(\d+)/.exec(arch);
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * For each unit, the module to load on a device of compute capability [major, minor]: a cubin built
 * for exactly that architecture, else PTX for it or an older one (the driver JIT-compiles PTX forward).
 */
export function chooseModules(cuda: CudaProgramSection, cc: readonly [number, number]): Map<number, CudaModuleSpec> {
  const dev = cc[0] * 10 + cc[1];
  const units = [...new Set(cuda.kernels.map((k) => k.unit))];
  const out = new Map<number, CudaModuleSpec>();
  for (const u of units) {
    const mods = cuda.modules.filter((m) => m.unit === u);
    const cubin = mods.find((m) => m.format === 'cubin' && archNumber(m.arch) === dev && !m.arch.endsWith('a'));
    const archA = mods.find((m) => m.format === 'cubin' && m.arch === `sm_${dev}a`);
    const ptx = mods
      .filter((m) => m.format === 'ptx' && archNumber(m.arch) <= dev)
      .sort((a, b) => archNumber(b.arch) - archNumber(a.arch))[0];
    const pick = cubin ?? archA ?? ptx;
    if (!pick)
      throw new WgflowError(
        `CUDA: program "${cuda.program}" unit ${u} has no module for this GPU (compute capability ${cc[0]}.${cc[1]}); ` +
          `it has ${mods.map((m) => `${m.format} ${m.arch}`).join(', ') || 'none'}; rebuild with --arch sm_${dev}`,
      );
    out.set(u, pick);
  }
  return out;
}
