/**
 * Every kernel of frcnn-small (inference + a training step), frcnn-vgg16 at 600×1000 (inference +
 * training) and the op zoo (test/cuda-programs.ts) rendered to CUDA C and compiled with nvcc -arch=sm_90,
 * a few translation units per program. The bulk check builds PTX with NVVM's optimizer off
 * (-Xcicc -O0: the front end checks syntax and types, code generation still runs, about 6× faster);
 * the op zoo is also built the way an artifact ships (optimized PTX, then cubin through ptxas). Each PTX must hold every function as an `.entry` with one .u64 parameter per binding.
 * nvcc error messages name the kernel and its file and line. Skipped, saying so, without nvcc.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CudaBuildError, findNvcc, writeCudaArtifact } from '../compiler/cuda-artifact.js';
import { KernelBuilder, u32 } from '../compiler/kernel/build.js';
import type { ProgramSpec } from '../runtime/program.js';
import {
  frcnnSmallInference,
  frcnnSmallTraining,
  frcnnVgg16Inference,
  frcnnVgg16Training,
  opZoo,
  type TestProgram,
} from './cuda-programs.js';

const nvcc = findNvcc();
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'wgflow-cuda-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** `.entry name(` → number of `.param` lines up to the closing parenthesis, for every entry. */
function ptxEntries(ptx: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of ptx.matchAll(/\.entry\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*)\)/g)) {
    out.set(m[1] as string, ((m[2] as string).match(/\.param\s+\.u64/g) ?? []).length);
  }
  return out;
}

async function buildAndCheck(p: TestProgram, opts: { optimized: boolean }) {
  const dir = tmp();
  const t0 = performance.now();
  const r = await writeCudaArtifact(p.compiled, dir, {
    arch: 'sm_90',
    formats: opts.optimized ? ['ptx', 'cubin'] : ['ptx'],
    flags: opts.optimized ? [] : ['-Xcicc', '-O0'],
  });
  const seconds = (performance.now() - t0) / 1000;
  const spec = p.compiled.spec;
  expect(r.warnings).toEqual([]);
  expect(r.section.kernels.length).toBe(spec.kernels.length);
  const entries = new Map<string, number>();
  for (const m of r.section.modules.filter((x) => x.format === 'ptx')) {
    for (const [fn, n] of ptxEntries(readFileSync(join(dir, m.file), 'utf8'))) entries.set(fn, n);
  }
  spec.kernels.forEach((k, i) => {
    const c = r.section.kernels[i] as (typeof r.section.kernels)[number];
    expect(entries.get(c.function), `${k.name}: .entry ${c.function} with one pointer per binding`).toBe(
      k.bindings.length,
    );
  });
  if (opts.optimized) {
    const cubins = r.section.modules.filter((m) => m.format === 'cubin');
    expect(cubins.length).toBe(new Set(r.section.kernels.map((k) => k.unit)).size);
    for (const m of cubins) expect(readFileSync(join(dir, m.file)).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  }
  const functions = new Set(r.section.kernels.map((k) => k.function)).size;
  const units = new Set(r.section.kernels.map((k) => k.unit)).size;
  console.log(
    `${p.name}: ${spec.kernels.length} kernels (${functions} distinct functions) in ${units} units, ` +
      `nvcc ${r.nvccSeconds.toFixed(1)} s, total ${seconds.toFixed(1)} s${opts.optimized ? ' (optimized PTX + cubin)' : ' (-Xcicc -O0 PTX)'}`,
  );
  return r;
}

describe.skipIf(!nvcc)('CUDA kernels compile with nvcc -arch=sm_90', () => {
  const programs: [string, () => TestProgram][] = [
    ['frcnn-small inference', frcnnSmallInference],
    ['frcnn-small training step', frcnnSmallTraining],
    ['frcnn-vgg16 inference at 600×1000', frcnnVgg16Inference],
    ['frcnn-vgg16 training at 600×1000', frcnnVgg16Training],
    ['op zoo (RoIAlign fwd/bwd, top-k, NMS, pooling, softmax, SGD)', opZoo],
  ];
  for (const [label, make] of programs) {
    it(`every kernel of ${label}`, async () => {
      await buildAndCheck(make(), { optimized: false });
    }, 120_000);
  }

  it('the op zoo as an artifact ships it: optimized PTX, then cubin through ptxas', async () => {
    await buildAndCheck(opZoo(), { optimized: true });
  }, 120_000);

  it('an nvcc error names the kernel, its .cu file and line', async () => {
    const kb = new KernelBuilder('k0_broken');
    const out = { name: 'out', t: 'u32' } as const;
    kb.store(out, u32(0), { k: 'var', t: 'u32', name: 'undeclared_1' });
    const k = kb.finish([64, 1, 1], { linear: 1 });
    const spec = {
      name: 'broken',
      kernels: [
        { name: 'k0_broken', wgsl: '', workgroupSize: [64, 1, 1], dispatch: [1, 1, 1], bindings: [0], writes: [true] },
      ],
    } as unknown as ProgramSpec;
    const err = await writeCudaArtifact({ spec, kernels: [k] }, tmp()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CudaBuildError);
    const msg = (err as Error).message;
    expect(msg).toMatch(
      /kernel k0_broken \(kernels\/k0_broken_[0-9a-f]{8}\.cu:\d+\): error: identifier "undeclared_1" is undefined/,
    );
    expect(msg).toContain('out[0u] = undeclared_1;');
  }, 60_000);

  it('rejects an arch that is not an nvcc architecture', async () => {
    const p = opZoo();
    await expect(writeCudaArtifact(p.compiled, tmp(), { arch: 'hopper' })).rejects.toThrow(/not an nvcc architecture/);
  });
});

describe.runIf(!nvcc)('without nvcc', () => {
  it('says why the nvcc tests are skipped', () => {
    console.log('cuda-nvcc: nvcc is not on PATH (and NVCC is not set): the CUDA compile checks are skipped');
    expect(findNvcc()).toBeUndefined();
  });
});
