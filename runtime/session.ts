/**
 * Executes a ProgramSpec on the device: buffers allocated once from the plan, pipelines cached by
 * WGSL text, bind groups made once, one command encoder per run, inputs uploaded, only the requested
 * outputs read back; params and state stay on the GPU across runs.
 */
import { checkDeviceHealth, type DeviceInfo, getDevice, quietly } from './device.js';
import { WgflowError } from './errors.js';
import { elementCount, type Feed, type TypedArray, tensorPieces, toTyped } from './host-data.js';
import { initialValues } from './init.js';
import { canProfile, DispatchProfiler, type StepProfile } from './profile.js';
import type { DTypeName, ProgramSpec, TensorSpec } from './program.js';
import { feedValues, RunSizer, type RunSizes, type ShapedFeed } from './run-sizes.js';

export type { Feed, TypedArray } from './host-data.js';
export type { ShapedFeed } from './run-sizes.js';

/** A tensor's readback: staging buffers of its pieces (one per chunk). */
interface Staged {
  readonly parts: readonly { readonly staging: GPUBuffer; readonly piece: { offset: number; elems: number } }[];
  readonly count: number;
}

/** Writes a tensor's values into its buffer (or across its chunks). */
function uploadTensor(
  device: GPUDevice,
  buffers: readonly GPUBuffer[],
  spec: ProgramSpec,
  t: TensorSpec,
  values: TypedArray,
): void {
  for (const piece of tensorPieces(spec, t, values.length))
    device.queue.writeBuffer(
      buffers[piece.buffer] as GPUBuffer,
      0,
      values.subarray(piece.offset, piece.offset + piece.elems),
    );
}

/** Bytes of one kernel's block of run-time sizes in the sizes uniform buffer (offsets are 256-aligned). */
const sizeBlockBytes = (n: number) => Math.ceil((Math.ceil(n / 4) * 16) / 256) * 256;

export interface HostTensor {
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly dtype: DTypeName;
}

export interface RunOptions {
  /** Outputs to read back (default: all). Pass [] to run without reading anything. */
  readonly outputs?: readonly string[];
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();
let pipelinesCreated = 0;

/** Compute pipelines created by every Session so far (pipelines are cached per device by WGSL text). */
export function pipelineCount(): number {
  return pipelinesCreated;
}

function fromBytes(dtype: DTypeName, bytes: ArrayBuffer): TypedArray {
  if (dtype === 'f32') return new Float32Array(bytes);
  if (dtype === 'i32') return new Int32Array(bytes);
  return new Uint32Array(bytes);
}

export class Session {
  private readonly buffers: GPUBuffer[];
  private readonly bindGroups: GPUBindGroup[];
  private readonly pipelines: GPUComputePipeline[];
  private readonly staging = new Map<number, GPUBuffer>();
  private destroyed = false;
  /** Set when created with `profile: true` (see runtime/profile.ts). */
  private readonly profiler: DispatchProfiler | undefined;
  private lastProfile: StepProfile | undefined;
  private readonly sizer: RunSizer;
  /** Run-time sizes of every kernel that reads some, one 256-aligned block each (absent when none). */
  private readonly sizeBuffer: GPUBuffer | undefined;
  private readonly sizeOffsets: (number | undefined)[];
  private sizesWritten = '';

  private constructor(
    readonly spec: ProgramSpec,
    readonly gpu: DeviceInfo,
    buffers: GPUBuffer[],
    pipelines: GPUComputePipeline[],
    profile = false,
  ) {
    this.buffers = buffers;
    this.pipelines = pipelines;
    const device = gpu.device;
    this.sizer = new RunSizer(spec, gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535);
    let sizeBytes = 0;
    this.sizeOffsets = spec.kernels.map((k) => {
      const n = k.sizes?.length ?? 0;
      if (n === 0) return undefined;
      const at = sizeBytes;
      sizeBytes += sizeBlockBytes(n);
      return at;
    });
    this.sizeBuffer =
      sizeBytes > 0
        ? device.createBuffer({
            label: `${spec.name} sizes`,
            size: sizeBytes,
            usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          })
        : undefined;
    if (profile) {
      const dispatches: [number, string][] = [];
      for (const st of spec.steps)
        if (st.kind === 'dispatch') dispatches.push([st.kernel, spec.kernels[st.kernel]?.name ?? `kernel${st.kernel}`]);
      this.profiler = new DispatchProfiler(device, dispatches, spec.name);
    }
    this.bindGroups = spec.kernels.map((k, i) => {
      const entries: GPUBindGroupEntry[] = k.bindings.map((b, j) => {
        const w = k.windows?.[j];
        const buffer = buffers[b] as GPUBuffer;
        return { binding: j, resource: w ? { buffer, offset: w[0], size: w[1] } : { buffer } };
      });
      const at = this.sizeOffsets[i];
      if (at !== undefined && this.sizeBuffer)
        entries.push({
          binding: k.bindings.length,
          resource: { buffer: this.sizeBuffer, offset: at, size: sizeBlockBytes(k.sizes?.length ?? 0) },
        });
      return device.createBindGroup({
        label: k.name,
        layout: (pipelines[i] as GPUComputePipeline).getBindGroupLayout(0),
        entries,
      });
    });
  }

  /** Writes the kernels' run-time sizes when they differ from the last run's. */
  private writeSizes(sizes: RunSizes): void {
    if (!this.sizeBuffer || this.sizesWritten === sizes.key) return;
    const all = new Uint32Array(this.sizeBuffer.size / 4);
    sizes.sizes.forEach((v, i) => {
      const at = this.sizeOffsets[i];
      if (at !== undefined) all.set(v, at / 4);
    });
    this.gpu.device.queue.writeBuffer(this.sizeBuffer, 0, all);
    this.sizesWritten = sizes.key;
  }

  /**
   * Creates buffers (params/state initialized from their specs, or from `initial`) and pipelines.
   * `profile: true` times every dispatch of every run with timestamp queries (one compute pass per
   * dispatch; see runtime/profile.ts and `lastRunProfile`); it throws when the device lacks the
   * 'timestamp-query' feature. Off by default (one pass for consecutive dispatches, no queries).
   */
  static async create(
    spec: ProgramSpec,
    opts: { gpu?: DeviceInfo; initial?: Readonly<Record<string, Feed>>; profile?: boolean } = {},
  ): Promise<Session> {
    if (spec.format !== 'wgflow-program' || spec.version !== 1)
      throw new WgflowError('Session: not a wgflow program (format/version mismatch)');
    const gpu = opts.gpu ?? (await getDevice());
    const device = gpu.device;
    if (opts.profile && !canProfile(device))
      throw new WgflowError(
        `Session "${spec.name}": profile needs the 'timestamp-query' feature, which this device lacks`,
      );
    for (const [key, need] of [
      ['maxStorageBufferBindingSize', spec.stats.maxBindingBytes],
      ['maxBufferSize', spec.stats.maxBufferBytes ?? spec.stats.maxBindingBytes],
      ['maxStorageBuffersPerShaderStage', spec.stats.maxBindingsPerKernel],
    ] as const) {
      const have = gpu.limits[key] ?? 0;
      if (need > have)
        throw new WgflowError(`Session: program "${spec.name}" needs ${key} ≥ ${need}; this device has ${have}`);
    }
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    const buffers = spec.buffers.map((b) =>
      device.createBuffer({
        label: `${b.role}${b.id}`,
        size: Math.ceil(b.bytes / 4) * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      }),
    );
    const oom = await quietly(device.popErrorScope());
    const bad = await quietly(device.popErrorScope());
    if (oom || bad) throw new WgflowError(`Session: could not allocate buffers: ${(oom ?? bad)?.message}`);
    for (const b of spec.buffers) {
      if (b.data)
        device.queue.writeBuffer(
          buffers[b.id] as GPUBuffer,
          0,
          toTyped(b.dtype, b.data, b.data.length, `const buffer ${b.id}`),
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
      if (values) uploadTensor(device, buffers, spec, p, values);
    }
    let cache = pipelineCache.get(device);
    if (!cache) {
      cache = new Map();
      pipelineCache.set(device, cache);
    }
    const pipelines: GPUComputePipeline[] = [];
    for (const k of spec.kernels) {
      let p = cache.get(k.wgsl);
      if (!p) {
        device.pushErrorScope('validation');
        const module = device.createShaderModule({ label: k.name, code: k.wgsl });
        p = device.createComputePipeline({ label: k.name, layout: 'auto', compute: { module, entryPoint: 'main' } });
        pipelinesCreated++;
        const err = await quietly(device.popErrorScope());
        if (err) {
          const info = await quietly(module.getCompilationInfo());
          const msgs = info.messages.map((m) => `${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`).join('\n');
          throw new WgflowError(
            `kernel ${k.name} failed to compile: ${err.message}${msgs ? `\n${msgs}` : ''}\n--- WGSL ---\n${k.wgsl}`,
          );
        }
        cache.set(k.wgsl, p);
      }
      pipelines.push(p);
    }
    device.pushErrorScope('validation');
    const session = new Session(spec, gpu, buffers, pipelines, opts.profile ?? false);
    const err = await quietly(device.popErrorScope());
    if (err) throw new WgflowError(`Session: binding buffers failed: ${err.message}`);
    return session;
  }

  private tensor(name: string, list: readonly TensorSpec[], what: string): TensorSpec {
    const t = list.find((x) => x.name === name);
    if (!t)
      throw new WgflowError(
        `Session "${this.spec.name}": no ${what} named "${name}" (has: ${list.map((x) => x.name).join(', ') || 'none'})`,
      );
    return t;
  }

  /** Overwrites a param or state tensor. */
  write(name: string, values: Feed): void {
    const t = this.tensor(name, this.spec.persistent, 'param/state');
    uploadTensor(
      this.gpu.device,
      this.buffers,
      this.spec,
      t,
      toTyped(t.dtype, values, elementCount(t), `write "${name}"`),
    );
  }

  /** Per-dispatch GPU times of the last run (sessions created with `profile: true`; otherwise undefined). */
  get lastRunProfile(): StepProfile | undefined {
    return this.lastProfile;
  }

  /** Reads a param or state tensor back. */
  async read(name: string): Promise<HostTensor> {
    const t = this.tensor(name, this.spec.persistent, 'param/state');
    const encoder = this.gpu.device.createCommandEncoder();
    const staging = this.stagingFor(t, encoder);
    this.gpu.device.queue.submit([encoder.finish()]);
    return { data: await this.mapOut(t, staging), shape: t.shape, dtype: t.dtype };
  }

  /** Copies the first `count` elements of a tensor into staging buffers (one per chunk). */
  private stagingFor(t: TensorSpec, encoder: GPUCommandEncoder, count = elementCount(t)): Staged {
    const parts = tensorPieces(this.spec, t, count).map((piece) => {
      const bytes = Math.max(4, piece.elems * 4);
      let s = this.staging.get(piece.buffer);
      if (!s || s.size < bytes) {
        s?.destroy();
        s = this.gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        this.staging.set(piece.buffer, s);
      }
      encoder.copyBufferToBuffer(this.buffers[piece.buffer] as GPUBuffer, 0, s, 0, bytes);
      return { staging: s, piece };
    });
    return { parts, count };
  }

  private async mapOut(t: TensorSpec, staged: Staged): Promise<TypedArray> {
    const out = new ArrayBuffer(staged.count * 4);
    const bytes = new Uint8Array(out);
    for (const { staging, piece } of staged.parts) {
      await quietly(staging.mapAsync(GPUMapMode.READ, 0, Math.max(4, piece.elems * 4)));
      bytes.set(
        new Uint8Array(staging.getMappedRange(0, Math.max(4, piece.elems * 4)), 0, piece.elems * 4),
        piece.offset * 4,
      );
      staging.unmap();
    }
    return fromBytes(t.dtype, out);
  }

  /**
   * One step: upload inputs, run every dispatch in order, read back the requested outputs. Inputs with
   * run-time sizes are fed as `{ data, shape }`; outputs then come back with their run-time shapes.
   */
  async run(
    feeds: Readonly<Record<string, Feed | ShapedFeed>> = {},
    opts: RunOptions = {},
  ): Promise<Record<string, HostTensor>> {
    if (this.destroyed) throw new WgflowError(`Session "${this.spec.name}" was destroyed`);
    checkDeviceHealth(this.gpu.device, `run "${this.spec.name}"`);
    const device = this.gpu.device;
    if (typeof feeds !== 'object' || feeds === null || Array.isArray(feeds) || ArrayBuffer.isView(feeds))
      throw new WgflowError(
        `run "${this.spec.name}": feeds must be an object { inputName: values }, got ${feeds === null ? 'null' : Array.isArray(feeds) ? 'an array' : typeof feeds}`,
      );
    for (const name of Object.keys(feeds)) this.tensor(name, this.spec.inputs, 'input');
    for (const inp of this.spec.inputs)
      if (feeds[inp.name] === undefined)
        throw new WgflowError(
          `run "${this.spec.name}": missing input "${inp.name}" ${inp.dtype}[${inp.shape.join(',')}]`,
        );
    const sizes = this.sizer.sizesFor(feeds);
    for (const inp of this.spec.inputs) {
      const f = feeds[inp.name] as Feed | ShapedFeed;
      const shape = sizes.shapeOf(inp);
      const count = shape.reduce((a, b) => a * b, 1);
      const data = feedValues(this.spec.name, inp, f, shape);
      if (count > 0) uploadTensor(device, this.buffers, this.spec, inp, data);
    }
    this.writeSizes(sizes);
    const wanted = (opts.outputs ?? this.spec.outputs.map((o) => o.name)).map((n) =>
      this.tensor(n, this.spec.outputs, 'output'),
    );
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder({ label: this.spec.name });
    let pass: GPUComputePassEncoder | undefined;
    const prof = this.profiler;
    let dispatchIndex = 0;
    for (const [si, step] of this.spec.steps.entries()) {
      if (step.kind === 'dispatch') {
        const wg = sizes.dispatch[step.kernel] as readonly [number, number, number];
        if (!prof && (wg[0] === 0 || wg[1] === 0 || wg[2] === 0)) continue; // nothing to do at these sizes
        if (prof) {
          // profiling: one pass per dispatch, its beginning and end timestamped
          pass?.end();
          pass = encoder.beginComputePass({ timestampWrites: prof.passWrites(dispatchIndex++) });
        } else pass ??= encoder.beginComputePass();
        const k = this.spec.kernels[step.kernel];
        if (!k) throw new WgflowError(`run: step refers to missing kernel ${step.kernel}`);
        pass.setPipeline(this.pipelines[step.kernel] as GPUComputePipeline);
        pass.setBindGroup(0, this.bindGroups[step.kernel] as GPUBindGroup);
        pass.dispatchWorkgroups(wg[0], wg[1], wg[2]);
      } else {
        pass?.end();
        pass = undefined;
        const bytes = sizes.copyBytes[si] as number;
        if (bytes > 0)
          encoder.copyBufferToBuffer(
            this.buffers[step.src] as GPUBuffer,
            0,
            this.buffers[step.dst] as GPUBuffer,
            0,
            Math.ceil(bytes / 4) * 4,
          );
      }
    }
    pass?.end();
    prof?.resolve(encoder);
    const shapes = wanted.map((t) => sizes.shapeOf(t));
    const counts = shapes.map((sh) => sh.reduce((a, b) => a * b, 1));
    const stagings = wanted.map((t, i) => this.stagingFor(t, encoder, counts[i]));
    device.queue.submit([encoder.finish()]);
    const err = await quietly(device.popErrorScope());
    if (err) throw new WgflowError(`run "${this.spec.name}": ${err.message}`);
    const out: Record<string, HostTensor> = {};
    for (let i = 0; i < wanted.length; i++) {
      const t = wanted[i] as TensorSpec;
      out[t.name] = {
        data: await this.mapOut(t, stagings[i] as Staged),
        shape: shapes[i] as number[],
        dtype: t.dtype,
      };
    }
    if (wanted.length === 0) await quietly(device.queue.onSubmittedWorkDone());
    if (prof) this.lastProfile = await prof.read();
    checkDeviceHealth(this.gpu.device, `run "${this.spec.name}"`);
    return out;
  }

  /** Frees this session's buffers (the shared device stays). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.buffers) b.destroy();
    for (const s of this.staging.values()) s.destroy();
    this.sizeBuffer?.destroy();
    this.profiler?.destroy();
  }
}
