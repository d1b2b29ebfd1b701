/**
 * The CUDA runtime (runtime/cuda/):
 * - without libcuda.so.1 (no NVIDIA driver: CI, this machine), creating a CudaSession fails with a
 *   message that says what is missing and what to use instead;
 * - the FFI layer against a recording stand-in for libcuda (test/cuda-driver-stub.c, built with cc):
 *   every driver call the session makes goes through koffi with real pointers and buffers; the stub
 *   runs no kernel, so this checks marshalling, buffer setup, launch configuration and errors, NOT
 *   numerics;
 * - module choice and launch checks (pure);
 * - scripts/pack-gpu.sh --dry-run: the lent machine's archive holds node and linux-x64 native files only;
 * - where libcuda and nvcc are both present (the lent GPU machine, through scripts/run-on-gpu.sh), the
 *   op zoo, frcnn-small inference and frcnn-small gradients run on the GPU and are compared with the CPU
 *   interpreter (not yet run: no GPU was available when this was written).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type Compiled, compile } from '../compiler/compile.js';
import { cudaSection, findNvcc, renderCudaProgram, writeCudaArtifact } from '../compiler/cuda-artifact.js';
import { WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import { numel } from '../compiler/types.js';
import { CudaDriver } from '../runtime/cuda/driver.js';
import { checkCudaSection, chooseModules, cudaProgramOf, launchOf } from '../runtime/cuda/launch.js';
import type { CudaModuleSpec, CudaProgramSection } from '../runtime/cuda/program.js';
import { CudaSession } from '../runtime/cuda/session.js';
import { initialValues, uniformStream } from '../runtime/init.js';
import type { ProgramSpec } from '../runtime/program.js';
import type { Session } from '../runtime/session.js';
import {
  compareWithInterpreter,
  frcnnSmallGradients,
  frcnnSmallInference,
  opZoo,
  type TestProgram,
  testFeeds,
} from './cuda-programs.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'wgflow-cudart-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const hasLibcuda = (() => {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libcuda.so.1');
  } catch {
    return false;
  }
})();
const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version']).status === 0);
const nvcc = findNvcc();

/** CudaSession has the WebGPU Session's surface (checked by the type checker). */
type SessionSurface = Pick<Session, 'spec' | 'run' | 'read' | 'write' | 'destroy'>;
const asSession = (s: CudaSession): SessionSurface => s;

const PTX_MODULE: CudaModuleSpec = { file: 'kernels/p.0.sm_90.ptx', format: 'ptx', arch: 'sm_90', unit: 0 };

/** A section whose kernels all sit in one unit (no nvcc needed). */
/** The op zoo's graph compiled again with the CUDA target's tuning tables. */
function cudaTuned(p: TestProgram): Compiled {
  return compile(p.graph, {
    outputs: p.outputs,
    updates: p.updates,
    limits: WEBGPU_DEFAULT_LIMITS,
    name: p.name,
    target: 'cuda',
  });
}

function sectionOf(p: TestProgram, modules: readonly CudaModuleSpec[] = [PTX_MODULE]): CudaProgramSection {
  const src = renderCudaProgram(p.compiled, 1);
  return cudaSection(p.compiled, src, modules);
}

/** A PTX text with an .entry per function and one .u64 parameter per binding (what the stub reads). */
function fakePtx(section: CudaProgramSection): Uint8Array {
  const entries = [...new Map(section.kernels.map((k) => [k.function, k.params.length])).entries()].map(
    ([fn, n]) =>
      `.visible .entry ${fn}(\n${Array.from({ length: n }, (_, i) => `\t.param .u64 ${fn}_param_${i}`).join(',\n')}\n)\n{\n\tret;\n}\n`,
  );
  return Buffer.from(`.version 9.0\n.target sm_90\n.address_size 64\n\n${entries.join('\n')}`);
}

// ---------------------------------------------------------------- without a driver

describe.skipIf(hasLibcuda)('without libcuda.so.1', () => {
  it('creating a CudaSession fails with a clear message', async () => {
    const p = opZoo();
    const err = await CudaSession.create(p.compiled.spec, { cuda: sectionOf(p), images: new Map() }).catch(
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^CUDA: cannot load libcuda\.so\.1 \(/);
    expect(msg).toContain('needs an NVIDIA GPU and its driver');
    expect(msg).toContain('run the program with the WebGPU Session instead');
  });

  it('a driver library that does not exist is named in the error', async () => {
    await expect(CudaDriver.open({ library: '/nonexistent/libcuda.so.1' })).rejects.toThrow(
      /cannot load \/nonexistent\/libcuda\.so\.1/,
    );
  });
});

// ---------------------------------------------------------------- pure checks

describe('CUDA sections and module choice', () => {
  it('a section must describe the program it runs', () => {
    const p = opZoo();
    const s = sectionOf(p);
    expect(() => checkCudaSection(p.compiled.spec, s)).not.toThrow();
    expect(() => checkCudaSection({ ...p.compiled.spec, name: 'other' }, s)).toThrow(/section is for program "op-zoo"/);
    const k0 = s.kernels[0] as CudaProgramSection['kernels'][number];
    const badBlock = { ...s, kernels: [{ ...k0, block: [1, 1, 1] as const }, ...s.kernels.slice(1)] };
    expect(() => checkCudaSection(p.compiled.spec, badBlock)).toThrow(/kernel 0 \(k\d+_\w+\): block \[1,1,1\] differs/);
    const badParams = { ...s, kernels: [{ ...k0, params: k0.params.slice(1) }, ...s.kernels.slice(1)] };
    expect(() => checkCudaSection(p.compiled.spec, badParams)).toThrow(/pointer parameters for \d+ bindings/);
    expect(() => checkCudaSection(p.compiled.spec, { ...s, modules: [] })).toThrow(/no module holds its unit 0/);
  });

  it('a section may carry its own program (the CUDA tuning), with the artifact program’s interface', () => {
    const p = opZoo();
    const own = cudaTuned(p);
    const s = cudaSection(own, renderCudaProgram(own, 1), [PTX_MODULE], true);
    expect(cudaProgramOf(p.compiled.spec, s)).toBe(s.spec);
    expect(cudaProgramOf(p.compiled.spec, sectionOf(p))).toBe(p.compiled.spec);
    expect(s.spec?.kernels.every((k) => k.wgsl === '')).toBe(true);
    expect(() => checkCudaSection(s.spec as ProgramSpec, s)).not.toThrow();
    const spec = s.spec as ProgramSpec;
    const renamedInput = {
      ...s,
      spec: { ...spec, inputs: spec.inputs.map((t, i) => (i === 0 ? { ...t, name: 'y' } : t)) },
    };
    expect(() => cudaProgramOf(p.compiled.spec, renamedInput)).toThrow(
      /the inputs of the section's program "op-zoo" differ from the artifact's: y: f32\[1,4,12,14\] against x: f32\[1,4,12,14\]; rebuild/,
    );
    const fewerParams = { ...s, spec: { ...spec, persistent: spec.persistent.slice(1) } };
    expect(() => cudaProgramOf(p.compiled.spec, fewerParams)).toThrow(/the params\/state of the section's program/);
    expect(() => cudaProgramOf({ ...p.compiled.spec, name: 'other' }, s)).toThrow(
      /the section's program is "op-zoo", the artifact's "other"/,
    );
  });

  it('picks a cubin of the exact architecture, else PTX of it or an older one; says what to rebuild', () => {
    const s = sectionOf(opZoo(), [
      { file: 'a.ptx', format: 'ptx', arch: 'sm_80', unit: 0 },
      { file: 'b.ptx', format: 'ptx', arch: 'sm_90', unit: 0 },
      { file: 'b.cubin', format: 'cubin', arch: 'sm_90', unit: 0 },
    ]);
    expect(chooseModules(s, [9, 0]).get(0)?.file).toBe('b.cubin');
    expect(chooseModules(s, [10, 0]).get(0)?.file).toBe('b.ptx');
    expect(chooseModules(s, [8, 6]).get(0)?.file).toBe('a.ptx');
    expect(() => chooseModules(s, [7, 5])).toThrow(/compute capability 7\.5.*rebuild with --arch sm_75/);
  });

  it('launches use the spec dispatch as grid and the workgroup size as block', () => {
    const spec = opZoo().compiled.spec;
    for (const k of spec.kernels) expect(launchOf(k)).toEqual({ grid: [...k.dispatch], block: [...k.workgroupSize] });
    const k = spec.kernels[0] as ProgramSpec['kernels'][number];
    expect(() => launchOf({ ...k, workgroupSize: [64, 32, 1] })).toThrow(/exceeds CUDA's limits/);
  });
});

// ---------------------------------------------------------------- FFI through the driver stub

describe.skipIf(!cc)('CudaSession through koffi against a recording libcuda stand-in (no kernel runs)', () => {
  const dir = tmp();
  const lib = join(dir, 'libcuda-stub.so');
  const logFile = join(dir, 'launches.log');
  if (cc) execFileSync(cc, ['-shared', '-fPIC', '-O1', '-o', lib, join(HERE, 'cuda-driver-stub.c')]);
  process.env.CUDA_STUB_LOG = logFile;

  it('creates, writes, reads, runs, and destroys with the launches the program describes', async () => {
    const p = opZoo();
    const spec = p.compiled.spec;
    const cuda = sectionOf(p);
    const images = new Map([[PTX_MODULE.file, fakePtx(cuda)]]);
    const driver = await CudaDriver.open({ library: lib });
    expect(driver.info).toEqual({
      ordinal: 0,
      name: 'wgflow driver stub',
      computeCapability: [9, 0],
      totalMemoryBytes: 80 * 2 ** 30,
      driverVersion: 13000,
    });
    writeFileSync(logFile, '');
    const s = asSession(await CudaSession.create(spec, { cuda, images, driver }));

    // params start from their InitSpec (host → device → host)
    for (const t of spec.persistent) {
      const b = spec.buffers[t.buffer];
      if (!b?.init) continue;
      expect(Array.from((await s.read(t.name)).data), t.name).toEqual(
        Array.from(initialValues(b.init, numel(t.shape))),
      );
    }
    // a write from a typed-array view at an offset reads back
    const w = spec.persistent.find((t) => t.name === 'w') as ProgramSpec['persistent'][number];
    const backing = new Float32Array(numel(w.shape) + 3).map((_, i) => i * 0.5);
    s.write('w', backing.subarray(3));
    expect(Array.from((await s.read('w')).data)).toEqual(Array.from(backing.subarray(3)));

    const r = uniformStream(9);
    const feeds: Record<string, number[]> = {};
    for (const inp of spec.inputs) {
      const n = numel(inp.shape);
      feeds[inp.name] = Array.from({ length: n }, () => (inp.dtype === 'f32' ? r() : Math.floor(r() * 4)));
    }
    const out = await s.run(feeds);
    // outputs come back zeroed: buffers start cleared (the stub fills allocations with 0xAB) and no kernel ran
    for (const o of spec.outputs) {
      expect(out[o.name]?.data.length, o.name).toBe(numel(o.shape));
      expect(
        Array.from(out[o.name]?.data ?? []).every((v) => v === 0),
        `${o.name} is the cleared buffer`,
      ).toBe(true);
    }
    // one launch per dispatch step, in order, with the spec's grid and block and the bound buffers
    const lines = readFileSync(logFile, 'utf8').trim().split('\n');
    const dispatches = spec.steps.filter((st) => st.kind === 'dispatch');
    expect(lines.length).toBe(dispatches.length);
    let base: number | undefined;
    dispatches.forEach((st, j) => {
      if (st.kind !== 'dispatch') return;
      const k = spec.kernels[st.kernel] as ProgramSpec['kernels'][number];
      const [tag, fn, ...nums] = (lines[j] as string).split(' ');
      expect(tag).toBe('launch');
      expect(fn).toBe(cuda.kernels[st.kernel]?.function);
      expect(nums.slice(0, 6).map(Number), k.name).toEqual([...k.dispatch, ...k.workgroupSize]);
      const allocs = nums.slice(6).map(Number);
      base ??= (allocs[0] as number) - (k.bindings[0] as number);
      expect(allocs, `${k.name}: parameters are its bound buffers`).toEqual(
        k.bindings.map((b) => (base as number) + b),
      );
    });
    await expect(s.run({})).rejects.toThrow(/missing input "x" f32\[1,4,12,14\]/);
    s.destroy();
    await expect(s.run(feeds)).rejects.toThrow(/was destroyed/);
    driver.close();
  });

  it("runs the section's own program (compiled with the CUDA tuning) when it carries one", async () => {
    const p = opZoo();
    const own = cudaTuned(p);
    const cuda = cudaSection(own, renderCudaProgram(own, 1), [PTX_MODULE], true);
    const driver = await CudaDriver.open({ library: lib });
    writeFileSync(logFile, '');
    const s = await CudaSession.create(p.compiled.spec, {
      cuda,
      images: new Map([[PTX_MODULE.file, fakePtx(cuda)]]),
      driver,
    });
    expect(s.spec).toBe(cuda.spec);
    const r = uniformStream(4);
    const feeds: Record<string, number[]> = {};
    for (const inp of p.compiled.spec.inputs)
      feeds[inp.name] = Array.from({ length: numel(inp.shape) }, () =>
        inp.dtype === 'f32' ? r() : Math.floor(r() * 4),
      );
    await s.run(feeds);
    const blocks = readFileSync(logFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => Number(l.split(' ')[5]));
    const ownBlocks = own.spec.steps.flatMap((st) =>
      st.kind === 'dispatch' ? [own.spec.kernels[st.kernel]?.workgroupSize[0]] : [],
    );
    const wgslBlocks = p.compiled.spec.steps.flatMap((st) =>
      st.kind === 'dispatch' ? [p.compiled.spec.kernels[st.kernel]?.workgroupSize[0]] : [],
    );
    expect(blocks).toEqual(ownBlocks);
    expect(blocks).not.toEqual(wgslBlocks); // the CUDA table's GEMM blocks, not lavapipe's
    s.destroy();
    driver.close();
  });

  it('module and function errors carry the driver log and name the kernel', async () => {
    const p = opZoo();
    const cuda = sectionOf(p);
    const driver = await CudaDriver.open({ library: lib });
    const notPtx = new Map([[PTX_MODULE.file, Buffer.from('this is not PTX')]]);
    await expect(CudaSession.create(p.compiled.spec, { cuda, images: notPtx, driver })).rejects.toThrow(
      /cuModuleLoadDataEx failed for kernels\/p\.0\.sm_90\.ptx .*CUDA_ERROR_INVALID_PTX \(218\): a PTX JIT compilation failed\nstub ptxas: no \.version directive/s,
    );
    const k0 = cuda.kernels[0] as CudaProgramSection['kernels'][number];
    const renamed = { ...cuda, kernels: [{ ...k0, function: 'missing_fn' }, ...cuda.kernels.slice(1)] };
    const images = new Map([[PTX_MODULE.file, fakePtx(cuda)]]);
    await expect(CudaSession.create(p.compiled.spec, { cuda: renamed, images, driver })).rejects.toThrow(
      `cuModuleGetFunction("missing_fn") failed (kernel ${k0.name} of program "op-zoo"): CUDA_ERROR_NOT_FOUND (500): named symbol not found`,
    );
    driver.close();
  });

  it('a GPU without a matching module is refused before anything is allocated', async () => {
    process.env.CUDA_STUB_CC = '75';
    try {
      const p = opZoo();
      const driver = await CudaDriver.open({ library: lib });
      await expect(
        CudaSession.create(p.compiled.spec, { cuda: sectionOf(p), images: new Map(), driver }),
      ).rejects.toThrow(/compute capability 7\.5.*rebuild with --arch sm_75/);
      driver.close();
    } finally {
      delete process.env.CUDA_STUB_CC;
    }
  });
});

// ---------------------------------------------------------------- the GPU machine's archive

describe('scripts/pack-gpu.sh', () => {
  it('--dry-run lists node and linux-x64 native files only', () => {
    const root = join(HERE, '..');
    const out = execFileSync('bash', [join(root, 'scripts/pack-gpu.sh'), '--dry-run'], {
      cwd: root,
      encoding: 'utf8',
    });
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^\.gpu-node\/bin\/node <- \//);
    expect(lines).toContain('node_modules/webgpu/dist/linux-x64/dawn.node');
    expect(lines).toContain('node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node');
    expect(lines).toContain('node_modules/vitest/vitest.mjs');
    expect(lines).toContain('node_modules/tsx/dist/cli.mjs');
    const natives = lines.filter((l) => /\.(node|dll|dylib)$|\.so(\.\d+)*$/.test(l));
    expect(natives.length).toBeGreaterThan(3);
    for (const n of natives) expect(n, 'a native file of another platform').not.toMatch(/darwin|win32|arm64|musl/);
    expect(lines.some((l) => l.startsWith('node_modules/@biomejs/'))).toBe(false);
    const summary = /node \((\d+) bytes\) \+ (\d+) files \((\d+) bytes\) uncompressed$/.exec(lines.at(-1) as string);
    expect(summary).not.toBeNull();
    // measured: node 99 MB + ~146 MB of files compress to ~55 MB with xz -9 (see the report)
    expect(Number(summary?.[1]) + Number(summary?.[3])).toBeLessThan(300e6);
  });

  // The full pack takes about 5 minutes of both cores here (xz -9 of ~245 MB): opt-in.
  it.runIf(process.env.WGFLOW_PACK_TEST === '1')(
    'packs an archive under 64 MiB (WGFLOW_PACK_TEST=1)',
    () => {
      const root = join(HERE, '..');
      const out = join(tmp(), 'pack.tar.xz');
      execFileSync('bash', [join(root, 'scripts/pack-gpu.sh'), '--out', out], { cwd: root, stdio: 'pipe' });
      const size = readFileSync(out).length;
      console.log(`pack-gpu: ${size} bytes`);
      expect(size).toBeLessThan(64 * 1024 * 1024);
    },
    1_200_000,
  );
});

// ---------------------------------------------------------------- numerics on a real GPU

describe.runIf(hasLibcuda && nvcc)('on an NVIDIA GPU: CUDA results match the CPU interpreter', () => {
  async function compare(p: TestProgram, seed: number) {
    const dir = tmp();
    const { section } = await writeCudaArtifact(p.compiled, dir, { formats: ['ptx'] });
    const feeds = testFeeds(p, seed);
    const s = await CudaSession.create(p.compiled.spec, { cuda: section, dir, initial: feeds, syncEachLaunch: true });
    const inputs: Record<string, number[]> = {};
    for (const i of p.compiled.spec.inputs) inputs[i.name] = feeds[i.name] as number[];
    const gpu = await s.run(inputs);
    s.destroy();
    const got: Record<string, ArrayLike<number>> = {};
    for (const [k, v] of Object.entries(gpu)) got[k] = v.data;
    for (const c of compareWithInterpreter(p, feeds, got)) {
      expect(c.relError, c.name).toBeLessThanOrEqual(1e-4);
      expect(c.mismatches, c.name).toBe(0);
    }
  }

  it('the op zoo', async () => compare(opZoo(), 3), 300_000);
  it('frcnn-small inference', async () => compare(frcnnSmallInference(), 5), 300_000);
  it('frcnn-small losses and every param gradient', async () => compare(frcnnSmallGradients(), 11), 300_000);
});
