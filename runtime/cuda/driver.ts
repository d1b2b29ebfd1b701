/**
 * The CUDA driver API (libcuda.so.1, installed with the NVIDIA driver) through koffi: device,
 * primary context, modules (PTX is JIT-compiled by the driver, cubin loaded as is), memory, launches.
 * Every call's CUresult is checked and turned into an error naming the call, the error's name and
 * text, and what was being done. koffi is imported lazily, so nothing loads unless CUDA is asked for.
 *
 * The primary context (cuDevicePrimaryCtxRetain + cuCtxSetCurrent) is used instead of cuCtxCreate: it
 * is the context the CUDA runtime and other libraries share, and its creation API is the same in every
 * driver (cuCtxCreate changed signature in CUDA 13).
 */
import type * as Koffi from 'koffi';
import { WgflowError } from '../errors.js';

/** A device address (CUdeviceptr). */
export type DevicePtr = bigint;

/** Opaque handles returned by the driver (koffi pointer objects). */
export type CuModule = { readonly __brand: 'CUmodule' };
export type CuFunction = { readonly __brand: 'CUfunction' };

/** Kernel arguments prepared once (stable native memory): one device pointer per parameter. */
export interface KernelArgs {
  readonly count: number;
  /** void*[count], each pointing at one CUdeviceptr slot. */
  readonly pointer: unknown;
  /** Frees the native memory (after the last launch that uses it). */
  free(): void;
}

export interface CudaDeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  /** Compute capability, e.g. [9, 0] for an H100. */
  readonly computeCapability: readonly [number, number];
  readonly totalMemoryBytes: number;
  /** The driver's CUDA version, e.g. 13000 for 13.0. */
  readonly driverVersion: number;
}

export interface CudaDriverOptions {
  /** The driver library (default: $WGFLOW_LIBCUDA, else libcuda.so.1). */
  readonly library?: string;
  /** Device ordinal (default 0). */
  readonly device?: number;
}

export const NO_CUDA_HELP =
  'the CUDA runtime needs an NVIDIA GPU and its driver (libcuda.so.1, installed with the NVIDIA driver, not with the CUDA toolkit); ' +
  'on a machine without one, run the program with the WebGPU Session instead';

const CU_JIT_ERROR_LOG_BUFFER = 5;
const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
const LOG_BYTES = 16384;

type Fn = (...args: unknown[]) => number;

interface Api {
  cuInit: Fn;
  cuDriverGetVersion: Fn;
  cuDeviceGetCount: Fn;
  cuDeviceGet: Fn;
  cuDeviceGetName: Fn;
  cuDeviceGetAttribute: Fn;
  cuDeviceTotalMem: Fn;
  cuDevicePrimaryCtxRetain: Fn;
  cuDevicePrimaryCtxRelease: Fn;
  cuCtxSetCurrent: Fn;
  cuCtxSynchronize: Fn;
  cuModuleLoadDataEx: Fn;
  cuModuleUnload: Fn;
  cuModuleGetFunction: Fn;
  cuMemAlloc: Fn;
  cuMemFree: Fn;
  cuMemsetD8: Fn;
  cuMemcpyHtoD: Fn;
  cuMemcpyDtoH: Fn;
  cuMemcpyDtoD: Fn;
  cuLaunchKernel: Fn;
  cuGetErrorName: Fn;
  cuGetErrorString: Fn;
}

/** Prototypes (symbol names as libcuda exports them: the _v2 ABI where one exists). */
const PROTOTYPES: Record<keyof Api, string> = {
  cuInit: 'int cuInit(unsigned int flags)',
  cuDriverGetVersion: 'int cuDriverGetVersion(_Out_ int *version)',
  cuDeviceGetCount: 'int cuDeviceGetCount(_Out_ int *count)',
  cuDeviceGet: 'int cuDeviceGet(_Out_ int *device, int ordinal)',
  cuDeviceGetName: 'int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)',
  cuDeviceGetAttribute: 'int cuDeviceGetAttribute(_Out_ int *value, int attrib, int dev)',
  cuDeviceTotalMem: 'int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int dev)',
  cuDevicePrimaryCtxRetain: 'int cuDevicePrimaryCtxRetain(_Out_ CUcontext *pctx, int dev)',
  cuDevicePrimaryCtxRelease: 'int cuDevicePrimaryCtxRelease_v2(int dev)',
  cuCtxSetCurrent: 'int cuCtxSetCurrent(CUcontext ctx)',
  cuCtxSynchronize: 'int cuCtxSynchronize()',
  cuModuleLoadDataEx:
    'int cuModuleLoadDataEx(_Out_ CUmodule *module, const void *image, unsigned int numOptions, const int *options, void *optionValues)',
  cuModuleUnload: 'int cuModuleUnload(CUmodule hmod)',
  cuModuleGetFunction: 'int cuModuleGetFunction(_Out_ CUfunction *hfunc, CUmodule hmod, const char *name)',
  cuMemAlloc: 'int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytes)',
  cuMemFree: 'int cuMemFree_v2(uint64_t dptr)',
  cuMemsetD8: 'int cuMemsetD8_v2(uint64_t dptr, uint8_t value, size_t count)',
  cuMemcpyHtoD: 'int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes)',
  cuMemcpyDtoH: 'int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes)',
  cuMemcpyDtoD: 'int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t bytes)',
  cuLaunchKernel:
    'int cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int sharedMemBytes, CUstream stream, void *kernelParams, void *extra)',
  cuGetErrorName: 'int cuGetErrorName(int error, _Out_ const char **name)',
  cuGetErrorString: 'int cuGetErrorString(int error, _Out_ const char **text)',
};

let koffiModule: typeof Koffi | undefined;
let typesDeclared = false;

async function loadKoffi(): Promise<typeof Koffi> {
  if (!koffiModule) {
    try {
      koffiModule = await import('koffi');
    } catch (e) {
      throw new WgflowError(`CUDA: the FFI package koffi could not be loaded (${(e as Error).message})`);
    }
  }
  if (!typesDeclared) {
    for (const t of ['CUcontext', 'CUmodule', 'CUfunction', 'CUstream'])
      koffiModule.pointer(t, koffiModule.opaque(`${t}_st`));
    typesDeclared = true;
  }
  return koffiModule;
}

const toBig = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt(v as number));

/** One device and its primary context, opened through libcuda. */
export class CudaDriver {
  private closed = false;

  private constructor(
    private readonly koffi: typeof Koffi,
    private readonly api: Api,
    /** Kept referenced: koffi unloads a library once nothing refers to it. */
    readonly lib: Koffi.LibraryHandle,
    readonly info: CudaDeviceInfo,
    readonly library: string,
  ) {}

  /** Loads libcuda, initializes it and makes the device's primary context current. */
  static async open(opts: CudaDriverOptions = {}): Promise<CudaDriver> {
    const library = opts.library ?? process.env.WGFLOW_LIBCUDA ?? 'libcuda.so.1';
    const koffi = await loadKoffi();
    let lib: Koffi.LibraryHandle;
    try {
      lib = koffi.load(library);
    } catch (e) {
      throw new WgflowError(`CUDA: cannot load ${library} (${(e as Error).message}); ${NO_CUDA_HELP}`);
    }
    const api = {} as Api;
    for (const [key, proto] of Object.entries(PROTOTYPES) as [keyof Api, string][]) {
      try {
        api[key] = lib.func(proto) as unknown as Fn;
      } catch (e) {
        throw new WgflowError(`CUDA: ${library} lacks ${proto} (${(e as Error).message}); is it an NVIDIA driver?`);
      }
    }
    const check = (code: number, call: string) => {
      if (code !== 0) throw new WgflowError(`CUDA: ${call} failed: ${describeError(api, code)}`);
    };
    check(api.cuInit(0), 'cuInit');
    const version = [0];
    check(api.cuDriverGetVersion(version), 'cuDriverGetVersion');
    const count = [0];
    check(api.cuDeviceGetCount(count), 'cuDeviceGetCount');
    const ordinal = opts.device ?? 0;
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= (count[0] as number))
      throw new WgflowError(`CUDA: device ${ordinal} requested, ${count[0]} device(s) present`);
    const dev = [0];
    check(api.cuDeviceGet(dev, ordinal), `cuDeviceGet(${ordinal})`);
    const d = dev[0] as number;
    const nameBuf = Buffer.alloc(256);
    check(api.cuDeviceGetName(nameBuf, nameBuf.length, d), 'cuDeviceGetName');
    const major = [0];
    const minor = [0];
    check(api.cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d), 'cuDeviceGetAttribute');
    check(api.cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d), 'cuDeviceGetAttribute');
    const mem = [0];
    check(api.cuDeviceTotalMem(mem, d), 'cuDeviceTotalMem');
    const ctx = [null];
    check(api.cuDevicePrimaryCtxRetain(ctx, d), 'cuDevicePrimaryCtxRetain');
    check(api.cuCtxSetCurrent(ctx[0]), 'cuCtxSetCurrent');
    const nul = nameBuf.indexOf(0);
    const info: CudaDeviceInfo = {
      ordinal: d,
      name: nameBuf.toString('utf8', 0, nul < 0 ? nameBuf.length : nul),
      computeCapability: [major[0] as number, minor[0] as number],
      totalMemoryBytes: Number(mem[0]),
      driverVersion: version[0] as number,
    };
    return new CudaDriver(koffi, api, lib, info, library);
  }

  private check(code: number, call: string, context?: string): void {
    if (code !== 0)
      throw new WgflowError(`CUDA: ${call} failed${context ? ` (${context})` : ''}: ${describeError(this.api, code)}`);
  }

  private alive(what: string): void {
    if (this.closed) throw new WgflowError(`CUDA: ${what} after the driver was closed`);
  }

  /** Loads a PTX (NUL-terminated here) or cubin image; JIT errors are reported with the driver's log. */
  loadModule(image: Uint8Array, what: string): CuModule {
    this.alive('loadModule');
    const k = this.koffi;
    const isElf = image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46;
    const data = isElf || image[image.length - 1] === 0 ? image : Buffer.concat([image, Buffer.alloc(1)]);
    const log = k.alloc('char', LOG_BYTES);
    const values = k.alloc('void *', 2);
    try {
      k.encode(values, 0, 'uint64_t', k.address(log));
      k.encode(values, 8, 'uint64_t', BigInt(LOG_BYTES));
      k.encode(log, 'char', 0);
      const options = Int32Array.of(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
      const mod = [null];
      const code = this.api.cuModuleLoadDataEx(mod, data, 2, options, values);
      if (code !== 0) {
        const text = String(k.decode(log, 'char', -1) ?? '').trim();
        throw new WgflowError(
          `CUDA: cuModuleLoadDataEx failed for ${what}: ${describeError(this.api, code)}${text ? `\n${text}` : ''}`,
        );
      }
      return mod[0] as unknown as CuModule;
    } finally {
      k.free(log);
      k.free(values);
    }
  }

  unloadModule(m: CuModule): void {
    if (!this.closed) this.check(this.api.cuModuleUnload(m), 'cuModuleUnload');
  }

  getFunction(m: CuModule, name: string, what: string): CuFunction {
    this.alive('getFunction');
    const f = [null];
    this.check(this.api.cuModuleGetFunction(f, m, name), `cuModuleGetFunction("${name}")`, what);
    return f[0] as unknown as CuFunction;
  }

  /** Allocates `bytes` of device memory, zeroed (as WebGPU buffers start). */
  alloc(bytes: number, what: string): DevicePtr {
    this.alive('alloc');
    const p = [0];
    this.check(this.api.cuMemAlloc(p, bytes), `cuMemAlloc(${bytes})`, what);
    const ptr = toBig(p[0]);
    this.check(this.api.cuMemsetD8(ptr, 0, bytes), 'cuMemsetD8', what);
    return ptr;
  }

  free(ptr: DevicePtr): void {
    if (!this.closed) this.check(this.api.cuMemFree(ptr), 'cuMemFree');
  }

  upload(dst: DevicePtr, src: ArrayBufferView, what: string): void {
    this.alive('upload');
    this.check(this.api.cuMemcpyHtoD(dst, src, src.byteLength), 'cuMemcpyHtoD', what);
  }

  /** Waits for the GPU's preceding work, then copies into `dst`. */
  download(dst: ArrayBufferView, src: DevicePtr, what: string): void {
    this.alive('download');
    this.check(this.api.cuMemcpyDtoH(dst, src, dst.byteLength), 'cuMemcpyDtoH', what);
  }

  copy(dst: DevicePtr, src: DevicePtr, bytes: number, what: string): void {
    this.alive('copy');
    this.check(this.api.cuMemcpyDtoD(dst, src, bytes), 'cuMemcpyDtoD', what);
  }

  /** Native argument block for cuLaunchKernel: one CUdeviceptr per pointer parameter. */
  kernelArgs(ptrs: readonly DevicePtr[]): KernelArgs {
    const k = this.koffi;
    const n = Math.max(1, ptrs.length);
    const slots = k.alloc('uint64_t', n);
    const table = k.alloc('void *', n);
    const base = k.address(slots);
    ptrs.forEach((p, i) => {
      k.encode(slots, 8 * i, 'uint64_t', p);
      k.encode(table, 8 * i, 'uint64_t', base + BigInt(8 * i));
    });
    let live = true;
    return {
      count: ptrs.length,
      pointer: table,
      free: () => {
        if (!live) return;
        live = false;
        k.free(slots);
        k.free(table);
      },
    };
  }

  launch(
    f: CuFunction,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    args: KernelArgs,
    what: string,
  ): void {
    this.alive('launch');
    const code = this.api.cuLaunchKernel(
      f,
      grid[0],
      grid[1],
      grid[2],
      block[0],
      block[1],
      block[2],
      0,
      null,
      args.pointer,
      null,
    );
    this.check(code, 'cuLaunchKernel', `${what}, grid [${grid.join(',')}], block [${block.join(',')}]`);
  }

  /** Waits for all launched work; a kernel fault surfaces here. */
  synchronize(what: string): void {
    this.alive('synchronize');
    this.check(this.api.cuCtxSynchronize(), 'cuCtxSynchronize', what);
  }

  /** Releases the primary context (its memory and modules go with it). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.api.cuDevicePrimaryCtxRelease(this.info.ordinal);
  }
}

const shared = new Map<string, Promise<CudaDriver>>();

/** The process's driver for a library and device, opened on first use (like getDevice for WebGPU). */
export function getCudaDriver(opts: CudaDriverOptions = {}): Promise<CudaDriver> {
  const key = `${opts.library ?? process.env.WGFLOW_LIBCUDA ?? 'libcuda.so.1'}#${opts.device ?? 0}`;
  let p = shared.get(key);
  if (!p) {
    p = CudaDriver.open(opts);
    p.catch(() => shared.delete(key));
    shared.set(key, p);
  }
  return p;
}

/** Closes every shared driver (sessions on them must be destroyed first). */
export async function closeCudaDrivers(): Promise<void> {
  const all = [...shared.values()];
  shared.clear();
  for (const p of all) {
    try {
      (await p).close();
    } catch {
      // it never opened: nothing to close
    }
  }
}

function describeError(api: Api, code: number): string {
  const name = [null];
  const text = [null];
  const okName = api.cuGetErrorName(code, name) === 0;
  const okText = api.cuGetErrorString(code, text) === 0;
  return `${okName ? name[0] : 'CUDA_ERROR'} (${code})${okText && text[0] ? `: ${text[0]}` : ''}`;
}
