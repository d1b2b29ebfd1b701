/**
 * The CUDA target of an artifact: renders every kernel of a compiled program to CUDA C
 * (compiler/kernel/cuda.ts), writes kernels/*.cu, and builds PTX and/or cubin with nvcc.
 *
 * Layout under the artifact directory:
 *   kernels/wgflow_cuda.h              helpers every kernel includes
 *   kernels/<function>.cu              one file per distinct kernel function (compilable alone)
 *   kernels/<program>.<u>.cu           translation unit u: #includes its share of the kernel files
 *   kernels/<program>.<u>.<arch>.ptx   nvcc -ptx of unit u (and/or .cubin)
 *   kernels/<program>.cuda.json        the CudaProgramSection (runtime/cuda/program.ts)
 * A program is compiled as a few translation units (one nvcc process each costs about a second of
 * start-up), so nvcc's messages name the kernel file and line directly; errors are rethrown naming the
 * kernel.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, join } from 'node:path';
import type { CudaKernelEntry, CudaModuleSpec, CudaProgramSection } from '../runtime/cuda/program.js';
import { cudaSectionFile } from '../runtime/cuda/read.js';
import type { ProgramSpec } from '../runtime/program.js';
import { WgflowError } from './errors.js';
import type { Kernel } from './kernel/ast.js';
import { CUDA_PRELUDE, type CudaKernel, renderCuda } from './kernel/cuda.js';

/** What compile() returns (`spec` and the kernels' ASTs, `compile(...).kernels`). */
export interface CompiledKernels {
  readonly spec: ProgramSpec;
  readonly kernels: readonly Kernel[];
}

export interface CudaSources {
  /** Parallel to spec.kernels. */
  readonly entries: readonly CudaKernel[];
  /** Distinct functions (identical kernels share one), in first-use order. */
  readonly functions: readonly CudaKernel[];
  /** Function names of each translation unit. */
  readonly units: readonly (readonly string[])[];
}

export interface CudaBuildOptions {
  /** nvcc -arch (default sm_90). */
  readonly arch?: string;
  /** What nvcc builds per unit (default ['ptx']). A cubin is built from the unit's PTX when both are asked. */
  readonly formats?: readonly ('ptx' | 'cubin')[];
  /** Translation units per program (default: 1 per 64 functions, at most the cores). */
  readonly units?: number;
  /** The nvcc executable (default: $NVCC, else nvcc on PATH). */
  readonly nvcc?: string;
  /** Extra nvcc flags. */
  readonly flags?: readonly string[];
  /**
   * The input was compiled for the CUDA target (`compile({ target: 'cuda' })`) separately from the
   * artifact's WGSL program: the section then carries its program (CudaProgramSection.spec).
   */
  readonly ownProgram?: boolean;
}

export interface CudaBuildResult {
  readonly section: CudaProgramSection;
  /** nvcc's warnings (empty when clean). */
  readonly warnings: readonly string[];
  /** Files written, relative to the artifact directory. */
  readonly files: readonly string[];
  /** Wall-clock seconds nvcc ran (all units). */
  readonly nvccSeconds: number;
}

/** A build error naming the kernel, its .cu file and nvcc's line. */
export class CudaBuildError extends WgflowError {
  override name = 'CudaBuildError';
}

/** nvcc from opts, $NVCC or PATH; undefined when there is none. */
export function findNvcc(given?: string): string | undefined {
  const name = given ?? process.env.NVCC ?? 'nvcc';
  if (name.includes('/')) return existsSync(name) ? name : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * Generated code declares values it may not use (WGSL allows it): nvcc's "declared but never
 * referenced" (177) and "set but never used" (550) are not worth a warning.
 */
const DEFAULT_FLAGS = ['-std=c++17', '-diag-suppress', '177,550'];

const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');

/** Renders every kernel; checks the ASTs belong to the spec (same names, same bindings). */
export function renderCudaProgram(input: CompiledKernels, units?: number): CudaSources {
  const { spec, kernels } = input;
  if (kernels.length !== spec.kernels.length)
    throw new WgflowError(
      `CUDA: program "${spec.name}" has ${spec.kernels.length} kernels but ${kernels.length} kernel ASTs (pass compile(...).kernels of the same compile)`,
    );
  const byFunction = new Map<string, CudaKernel>();
  const entries = kernels.map((k, i) => {
    const ks = spec.kernels[i] as ProgramSpec['kernels'][number];
    const c = renderCuda(k);
    if (k.name !== ks.name || c.params.length !== ks.bindings.length)
      throw new WgflowError(
        `CUDA: kernel AST ${i} (${k.name}, ${c.params.length} buffers) does not match spec kernel ${ks.name} (${ks.bindings.length} bindings)`,
      );
    const prev = byFunction.get(c.function);
    if (prev && prev.source !== c.source)
      throw new WgflowError(`CUDA: two different kernels render to the function name ${c.function}`);
    if (!prev) byFunction.set(c.function, c);
    return c;
  });
  const functions = [...byFunction.values()];
  const n = Math.max(
    1,
    Math.min(units ?? Math.min(Math.ceil(functions.length / 64), availableParallelism()), functions.length),
  );
  // contiguous chunks of about equal source size
  const total = functions.reduce((s, f) => s + f.source.length, 0);
  const out: string[][] = Array.from({ length: n }, () => []);
  let acc = 0;
  for (const f of functions) {
    const u = Math.min(n - 1, Math.floor((acc * n) / Math.max(1, total)));
    (out[u] as string[]).push(f.function);
    acc += f.source.length;
  }
  return { entries, functions, units: out.filter((u) => u.length > 0) };
}

interface ToolRun {
  readonly code: number;
  readonly stderr: string;
  readonly stdout: string;
}

function runTool(exe: string, args: readonly string[], cwd: string): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    execFile(exe, [...args], { cwd, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new CudaBuildError(`CUDA: ${exe} not found (install the CUDA toolkit, or set NVCC)`));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stderr: String(stderr), stdout: String(stdout) });
    });
  });
}

/** Turns nvcc/ptxas output into messages naming the kernel, its file and line. */
function explain(
  output: string,
  fileToKernel: ReadonlyMap<string, string>,
  fnToKernel: ReadonlyMap<string, string>,
  kernelsDir: string,
): string[] {
  const lines = output
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('Remark: The warnings can be suppressed'));
  return lines.map((l) => {
    const m = /^(?:.*\/)?([^/\s]+\.(?:cu|h))\((\d+)\): (.*)$/.exec(l);
    if (m) {
      const [, file, line, msg] = m as unknown as [string, string, string, string];
      const kernel = fileToKernel.get(file);
      let src = '';
      try {
        src = (readFileSync(join(kernelsDir, file), 'utf8').split('\n')[Number(line) - 1] ?? '').trim();
      } catch {
        // the file is gone: report without the line's text
      }
      return `${kernel ? `kernel ${kernel} ` : ''}(kernels/${file}:${line}): ${msg}${src ? `\n    ${src}` : ''}`;
    }
    for (const [fn, kernel] of fnToKernel) if (l.includes(fn)) return `kernel ${kernel}: ${l.trim()}`;
    return l;
  });
}

/**
 * Writes kernels/*.cu for the program and builds them with nvcc (see the file comment). Returns the
 * section the CUDA runtime loads; throws CudaBuildError naming the kernel and line when nvcc fails.
 */
export async function writeCudaArtifact(
  input: CompiledKernels,
  dir: string,
  opts: CudaBuildOptions = {},
): Promise<CudaBuildResult> {
  const arch = opts.arch ?? 'sm_90';
  if (!/^(sm|compute)_\d+[a-z]?$/.test(arch))
    throw new WgflowError(`CUDA: arch "${arch}" is not an nvcc architecture (e.g. sm_90, sm_80, sm_89)`);
  const formats = opts.formats ?? ['ptx'];
  if (formats.length === 0) throw new WgflowError('CUDA: formats is empty (ptx, cubin or both)');
  const nvcc = findNvcc(opts.nvcc);
  if (!nvcc)
    throw new CudaBuildError(
      `CUDA: nvcc not found (${opts.nvcc ?? process.env.NVCC ?? 'nvcc on PATH'}); install the CUDA toolkit or set NVCC`,
    );
  const src = renderCudaProgram(input, opts.units);
  const program = fileSafe(input.spec.name);
  const kdir = join(dir, 'kernels');
  mkdirSync(kdir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, text: string) => {
    writeFileSync(join(kdir, name), text);
    files.push(`kernels/${name}`);
  };
  put('wgflow_cuda.h', CUDA_PRELUDE);
  const fileToKernel = new Map<string, string>();
  const fnToKernel = new Map<string, string>();
  for (const f of src.functions) {
    put(`${f.function}.cu`, `#include "wgflow_cuda.h"\n\n${f.source}`);
    fileToKernel.set(`${f.function}.cu`, f.kernel);
    fnToKernel.set(f.function, f.kernel);
  }
  src.units.forEach((fns, u) => {
    put(
      `${program}.${u}.cu`,
      `// ${program}: translation unit ${u}\n${fns.map((fn) => `#include "${fn}.cu"`).join('\n')}\n`,
    );
  });

  const warnings: string[] = [];
  const modules: CudaModuleSpec[] = [];
  const t0 = performance.now();
  const buildUnit = async (u: number): Promise<void> => {
    const base = `${program}.${u}.${arch}`;
    const steps: { out: string; format: 'ptx' | 'cubin'; args: string[] }[] = [];
    if (formats.includes('ptx')) {
      steps.push({ out: `${base}.ptx`, format: 'ptx', args: ['-ptx', '-o', `${base}.ptx`, `${program}.${u}.cu`] });
      if (formats.includes('cubin'))
        steps.push({ out: `${base}.cubin`, format: 'cubin', args: ['-cubin', '-o', `${base}.cubin`, `${base}.ptx`] });
    } else {
      steps.push({
        out: `${base}.cubin`,
        format: 'cubin',
        args: ['-cubin', '-o', `${base}.cubin`, `${program}.${u}.cu`],
      });
    }
    for (const s of steps) {
      const r = await runTool(nvcc, [`-arch=${arch}`, ...DEFAULT_FLAGS, ...(opts.flags ?? []), ...s.args], kdir);
      const msgs = explain(`${r.stderr}\n${r.stdout}`, fileToKernel, fnToKernel, kdir);
      if (r.code !== 0) {
        const errs = msgs.filter((m) => /error/i.test(m));
        throw new CudaBuildError(
          `nvcc failed building ${s.format} of program "${input.spec.name}" unit ${u} (kernels/${program}.${u}.cu, -arch=${arch}):\n` +
            (errs.length > 0 ? errs : msgs).slice(0, 20).join('\n'),
        );
      }
      warnings.push(...msgs.filter((m) => /warning/i.test(m)));
      files.push(`kernels/${s.out}`);
      modules.push({ file: `kernels/${s.out}`, format: s.format, arch, unit: u });
    }
  };
  // at most as many nvcc processes as cores
  const queue = src.units.map((_, u) => u);
  const workers = Array.from({ length: Math.min(queue.length, availableParallelism()) }, async () => {
    for (let u = queue.shift(); u !== undefined; u = queue.shift()) await buildUnit(u);
  });
  await Promise.all(workers);
  const nvccSeconds = (performance.now() - t0) / 1000;
  modules.sort((a, b) => a.unit - b.unit || a.format.localeCompare(b.format));

  const section = cudaSection(input, src, modules, opts.ownProgram === true);
  put(cudaSectionFile(input.spec.name).slice('kernels/'.length), `${JSON.stringify(section, null, 1)}\n`);
  return { section, warnings, files, nvccSeconds };
}

/**
 * The CUDA section of a program (pure): kernel entries parallel to spec.kernels, and its modules;
 * with `ownProgram`, the program itself (its kernels without WGSL).
 */
export function cudaSection(
  input: CompiledKernels,
  src: CudaSources,
  modules: readonly CudaModuleSpec[],
  ownProgram = false,
): CudaProgramSection {
  const unitOf = new Map<string, number>();
  src.units.forEach((fns, u) => {
    for (const fn of fns) unitOf.set(fn, u);
  });
  const kernels: CudaKernelEntry[] = src.entries.map((c) => ({
    name: c.kernel,
    function: c.function,
    unit: unitOf.get(c.function) as number,
    block: c.block,
    params: c.params.map((p) => ({ t: p.t, write: p.write })),
    ...(c.sizes > 0 ? { sizes: c.sizes } : {}),
  }));
  const section: CudaProgramSection = {
    format: 'wgflow-cuda',
    version: 1,
    program: input.spec.name,
    modules: [...modules],
    kernels,
  };
  if (!ownProgram) return section;
  return { ...section, spec: { ...input.spec, kernels: input.spec.kernels.map((k) => ({ ...k, wgsl: '' })) } };
}
