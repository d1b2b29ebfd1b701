/**
 * Executes a ProgramSpec with its CUDA kernels (runtime/cuda/program.ts) through the driver API, with
 * the surface of the WebGPU Session: create / run / read / write / destroy. Buffers are allocated once
 * from the plan (zeroed, as WebGPU's are), params and state stay on the GPU, each run uploads the
 * inputs, launches every kernel in order on the default stream (device-to-device copies in between)
 * and reads back only the requested outputs. Loads no WebGPU code.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WgflowError } from '../errors.js';
import { elementCount, type Feed, type TypedArray, tensorPieces, toTyped } from '../host-data.js';
import { initialValues } from '../init.js';
import type { DTypeName, ProgramSpec, TensorSpec } from '../program.js';
import { feedValues, RunSizer, type ShapedFeed } from '../run-sizes.js';
import type { HostTensor, RunOptions } from '../session.js';
import {
  type CudaDriver,
  type CudaDriverOptions,
  type CuFunction,
  type CuModule,
  type DevicePtr,
  getCudaDriver,
  type KernelArgs,
} from './driver.js';
import { type CudaLaunch, checkCudaSection, chooseModules, cudaProgramOf, launchOf } from './launch.js';
import type { CudaProgramSection } from './program.js';

export interface CudaSessionOptions extends CudaDriverOptions {
  /** The program's CUDA section (kernels/<program>.cuda.json of the artifact). */
  readonly cuda: CudaProgramSection;
  /** Artifact directory the section's module files are relative to. */
  readonly dir?: string;
  /** Module images by file name (instead of reading them from `dir`). */
  readonly images?: ReadonlyMap<string, Uint8Array>;
  /** First values of params/state by name (default: their InitSpec). */
  readonly initial?: Readonly<Record<string, Feed>>;
  /** Wait after every launch, so that a kernel fault names its kernel (slow; for debugging). */
  readonly syncEachLaunch?: boolean;
  /** A driver to use (default: the shared one for library/device). */
  readonly driver?: CudaDriver;
}

function emptyOf(dtype: DTypeName, n: number): TypedArray {
  if (dtype === 'f32') return new Float32Array(n);
  if (dtype === 'i32') return new Int32Array(n);
  return new Uint32Array(n);
}

interface Prepared {
  readonly fn: CuFunction;
  readonly launch: CudaLaunch;
  readonly args: KernelArgs;
}

/** Bytes of one kernel's run-time sizes in the sizes buffer (u32 each, 16-byte aligned blocks). */
const sizeBlock = (n: number) => Math.ceil((n * 4) / 16) * 16;

export class CudaSession {
  private destroyed = false;
  private readonly sizer: RunSizer;
  private sizesWritten = '';

  private constructor(
    readonly spec: ProgramSpec,
    readonly driver: CudaDriver,
    private readonly buffers: readonly DevicePtr[],
    private readonly modules: readonly CuModule[],
    private readonly kernels: readonly Prepared[],
    private readonly syncEachLaunch: boolean,
    /** The kernels' run-time sizes, one block each (absent when no kernel reads any). */
    private readonly sizeBuffer:
      | { readonly ptr: DevicePtr; readonly bytes: number; readonly offsets: readonly (number | undefined)[] }
      | undefined,
  ) {
    this.sizer = new RunSizer(spec, 2147483647);
  }

  /**
   * Loads the modules, allocates and initializes the buffers, resolves every kernel function. Runs the
   * CUDA section's own program when it has one (`CudaProgramSection.spec`), else `artifactSpec`.
   */
  static async create(artifactSpec: ProgramSpec, opts: CudaSessionOptions): Promise<CudaSession> {
    if (artifactSpec.format !== 'wgflow-program' || artifactSpec.version !== 1)
      throw new WgflowError('CudaSession: not a wgflow program (format/version mismatch)');
    // the section's own program (compiled with the CUDA tuning) when it has one
    const spec = cudaProgramOf(artifactSpec, opts.cuda);
    checkCudaSection(spec, opts.cuda);
    const launches = spec.kernels.map(launchOf);
    const driver = opts.driver ?? (await getCudaDriver(opts));
    const picked = chooseModules(opts.cuda, driver.info.computeCapability);
    const image = (file: string): Uint8Array => {
      const given = opts.images?.get(file);
      if (given) return given;
      if (opts.dir === undefined) throw new WgflowError(`CudaSession: no image for ${file} (pass dir or images)`);
      try {
        return readFileSync(join(opts.dir, file));
      } catch (e) {
        throw new WgflowError(`CudaSession: cannot read module ${join(opts.dir, file)}: ${(e as Error).message}`);
      }
    };
    const modules: CuModule[] = [];
    const buffers: DevicePtr[] = [];
    const prepared: Prepared[] = [];
    let sizeBytes = 0;
    const sizeOffsets = spec.kernels.map((k) => {
      const n = k.sizes?.length ?? 0;
      if (n === 0) return undefined;
      const at = sizeBytes;
      sizeBytes += sizeBlock(n);
      return at;
    });
    let sizePtr: DevicePtr | undefined;
    const release = () => {
      for (const p of prepared) p.args.free();
      for (const b of buffers) driver.free(b);
      if (sizePtr !== undefined) driver.free(sizePtr);
      for (const m of modules) driver.unloadModule(m);
    };
    try {
      const byUnit = new Map<number, CuModule>();
      for (const [unit, m] of picked) {
        const mod = driver.loadModule(image(m.file), `${m.file} (program "${spec.name}", ${m.format} ${m.arch})`);
        modules.push(mod);
        byUnit.set(unit, mod);
      }
      for (const b of spec.buffers)
        buffers.push(driver.alloc(Math.max(4, Math.ceil(b.bytes / 4) * 4), `${b.role}${b.id}`));
      for (const b of spec.buffers) {
        if (b.data)
          driver.upload(
            buffers[b.id] as DevicePtr,
            toTyped(b.dtype, b.data, b.data.length, `const buffer ${b.id}`),
            `const buffer ${b.id}`,
          );
      }
      for (const p of spec.persistent) {
        const b = spec.buffers[p.buffer];
        const given = opts.initial?.[p.name];
        const values =
          given !== undefined
            ? toTyped(p.dtype, given, elementCount(p), `initial value of "${p.name}"`)
            : b?.init
              ? initialValues(b.init, elementCount(p))
              : undefined;
        if (values)
          for (const piece of tensorPieces(spec, p, values.length))
            driver.upload(
              buffers[piece.buffer] as DevicePtr,
              values.subarray(piece.offset, piece.offset + piece.elems),
              `initial value of "${p.name}"`,
            );
      }
      if (sizeBytes > 0) sizePtr = driver.alloc(sizeBytes, `sizes of program "${spec.name}"`);
      spec.kernels.forEach((k, i) => {
        const entry = opts.cuda.kernels[i] as CudaProgramSection['kernels'][number];
        const fn = driver.getFunction(
          byUnit.get(entry.unit) as CuModule,
          entry.function,
          `kernel ${k.name} of program "${spec.name}"`,
        );
        // a window of a split tensor is the buffer's pointer plus the window's offset
        const ptrs = k.bindings.map((b, j) => (buffers[b] as DevicePtr) + BigInt(k.windows?.[j]?.[0] ?? 0));
        const at = sizeOffsets[i];
        if (at !== undefined && sizePtr !== undefined) ptrs.push(sizePtr + BigInt(at));
        const args = driver.kernelArgs(ptrs);
        prepared.push({ fn, launch: launches[i] as CudaLaunch, args });
      });
    } catch (e) {
      release();
      throw e;
    }
    return new CudaSession(
      spec,
      driver,
      buffers,
      modules,
      prepared,
      opts.syncEachLaunch ?? false,
      sizePtr !== undefined ? { ptr: sizePtr, bytes: sizeBytes, offsets: sizeOffsets } : undefined,
    );
  }

  private tensor(name: string, list: readonly TensorSpec[], what: string): TensorSpec {
    const t = list.find((x) => x.name === name);
    if (!t)
      throw new WgflowError(
        `CudaSession "${this.spec.name}": no ${what} named "${name}" (has: ${list.map((x) => x.name).join(', ') || 'none'})`,
      );
    return t;
  }

  private live(what: string): void {
    if (this.destroyed) throw new WgflowError(`CudaSession "${this.spec.name}" was destroyed (${what})`);
  }

  private readBack(t: TensorSpec, shape: readonly number[] = t.shape): HostTensor {
    const data = emptyOf(
      t.dtype,
      shape.reduce((a, b) => a * b, 1),
    );
    for (const piece of tensorPieces(this.spec, t, data.length))
      if (piece.elems > 0)
        this.driver.download(
          data.subarray(piece.offset, piece.offset + piece.elems),
          this.buffers[piece.buffer] as DevicePtr,
          `read "${t.name}"`,
        );
    return { data, shape: [...shape], dtype: t.dtype };
  }

  private upload(t: TensorSpec, data: TypedArray, what: string): void {
    for (const piece of tensorPieces(this.spec, t, data.length))
      if (piece.elems > 0)
        this.driver.upload(
          this.buffers[piece.buffer] as DevicePtr,
          data.subarray(piece.offset, piece.offset + piece.elems),
          what,
        );
  }

  /** Overwrites a param or state tensor. */
  write(name: string, values: Feed): void {
    this.live(`write "${name}"`);
    const t = this.tensor(name, this.spec.persistent, 'param/state');
    this.upload(t, toTyped(t.dtype, values, elementCount(t), `write "${name}"`), name);
  }

  /** Reads a param or state tensor back. */
  async read(name: string): Promise<HostTensor> {
    this.live(`read "${name}"`);
    return this.readBack(this.tensor(name, this.spec.persistent, 'param/state'));
  }

  /**
   * One step: upload inputs, launch every kernel in order, read back the requested outputs. Inputs with
   * run-time sizes are fed as `{ data, shape }` (as with the WebGPU Session).
   */
  async run(
    feeds: Readonly<Record<string, Feed | ShapedFeed>> = {},
    opts: RunOptions = {},
  ): Promise<Record<string, HostTensor>> {
    this.live('run');
    const d = this.driver;
    for (const name of Object.keys(feeds)) this.tensor(name, this.spec.inputs, 'input');
    const wanted = (opts.outputs ?? this.spec.outputs.map((o) => o.name)).map((n) =>
      this.tensor(n, this.spec.outputs, 'output'),
    );
    for (const inp of this.spec.inputs)
      if (feeds[inp.name] === undefined)
        throw new WgflowError(
          `run "${this.spec.name}": missing input "${inp.name}" ${inp.dtype}[${inp.shape.join(',')}]`,
        );
    const sizes = this.sizer.sizesFor(feeds);
    for (const inp of this.spec.inputs) {
      const f = feeds[inp.name] as Feed | ShapedFeed;
      const shape = sizes.shapeOf(inp);
      const data = feedValues(this.spec.name, inp, f, shape);
      this.upload(inp, data, `input "${inp.name}"`);
    }
    const sb = this.sizeBuffer;
    if (sb && this.sizesWritten !== sizes.key) {
      const all = new Uint32Array(sb.bytes / 4);
      sizes.sizes.forEach((v, i) => {
        const at = sb.offsets[i];
        if (at !== undefined) all.set(v, at / 4);
      });
      d.upload(sb.ptr, all, `sizes of run "${this.spec.name}"`);
      this.sizesWritten = sizes.key;
    }
    for (const [si, step] of this.spec.steps.entries()) {
      if (step.kind === 'dispatch') {
        const k = this.kernels[step.kernel];
        const ks = this.spec.kernels[step.kernel];
        if (!k || !ks) throw new WgflowError(`run: step refers to missing kernel ${step.kernel}`);
        const grid = ks.grid ? (sizes.dispatch[step.kernel] as readonly [number, number, number]) : k.launch.grid;
        if (grid.some((g) => g === 0)) continue; // WebGPU: an empty dispatch does nothing
        const what = `run "${this.spec.name}", kernel ${ks.name}`;
        d.launch(k.fn, grid, k.launch.block, k.args, what);
        if (this.syncEachLaunch) d.synchronize(what);
      } else {
        const bytes = sizes.copyBytes[si] as number;
        if (bytes > 0)
          d.copy(
            this.buffers[step.dst] as DevicePtr,
            this.buffers[step.src] as DevicePtr,
            bytes,
            `run "${this.spec.name}", copy of buffer ${step.src} to ${step.dst}`,
          );
      }
    }
    d.synchronize(`run "${this.spec.name}" (a kernel faulted; create with syncEachLaunch to name it)`);
    const out: Record<string, HostTensor> = {};
    for (const t of wanted) out[t.name] = this.readBack(t, sizes.shapeOf(t));
    return out;
  }

  /** Frees this session's buffers, argument blocks and modules (the shared driver stays). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const k of this.kernels) k.args.free();
    for (const b of this.buffers) this.driver.free(b);
    if (this.sizeBuffer) this.driver.free(this.sizeBuffer.ptr);
    for (const m of this.modules) this.driver.unloadModule(m);
  }
}
