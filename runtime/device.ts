/// <reference types="@webgpu/types" preserve="true" />
/**
 * The Dawn device (npm `webgpu`), shared per process.
 * - The object `create()` returns is kept in a module-level variable: webgpu 0.6.2 crashes the
 *   process if it is garbage-collected while a device lives.
 * - The device asks for the adapter's own limits (never hard-coded ones).
 * - While a GPU promise is pending, dawn.node re-schedules its event processing through the global
 *   `setImmediate`, which spins a CPU core; `quietly()` swaps in a 1 ms timer for the duration of
 *   our waits, so lavapipe keeps every core (see bench/polling.ts for the measurement).
 * - closeDevice() destroys the device so the process can exit.
 * - Dawn's two adapter warnings about dynamic-buffer limits are filtered out of stderr
 *   (runtime/native-stderr.ts); nothing else Dawn prints is hidden.
 */
import { create, globals } from 'webgpu';
import { type DeviceInfo, openDeviceOn, SharedDevice } from './device-core.js';
import { WgflowError } from './errors.js';
import { withNativeStderrFiltered } from './native-stderr.js';

Object.assign(globalThis, globals);

/** Keep alive for the process lifetime (see above). */
let gpuInstance: GPU | undefined;
/** Dawn instance flags for create(); empty unless requestPreciseTimestamps() was called first. */
const dawnFlags: string[] = [];

/**
 * Asks Dawn not to quantize timestamp-query values (by default they are rounded down to 65.5 µs, a
 * browser timing-attack mitigation), for per-dispatch profiling. Affects nothing but timestamp
 * queries; must be called before the process's first getDevice() (throws afterwards).
 */
export function requestPreciseTimestamps(): void {
  const flag = 'disable-dawn-features=timestamp_quantization';
  if (gpuInstance && !dawnFlags.includes(flag))
    throw new WgflowError('requestPreciseTimestamps: call it before the first getDevice() of the process');
  if (!dawnFlags.includes(flag)) dawnFlags.push(flag);
}

export type { DeviceInfo } from './device-core.js';
export { checkDeviceHealth } from './device-core.js';

export const NO_ADAPTER_HELP =
  'No WebGPU adapter was found. wgflow runs on Dawn (npm "webgpu") over Vulkan; on a machine without a GPU, install Mesa lavapipe ' +
  '(mesa-vulkan-drivers >= 24, e.g. from Debian bookworm-backports) with: npx wgflow setup-gpu (in a clone of the repository: npm run setup-gpu)';

async function open(): Promise<DeviceInfo> {
  gpuInstance ??= create(dawnFlags);
  const gpu = gpuInstance;
  // Dawn enumerates the adapters synchronously inside requestAdapter(), printing its limit warnings then
  // (boxed, so awaiting the filter does not also await the adapter outside quietly())
  const pending = await withNativeStderrFiltered(() => ({
    adapter: gpu.requestAdapter({ powerPreference: 'high-performance' }),
  }));
  return openDeviceOn(await quietly(pending.adapter), {
    wait: quietly,
    onLost: (m) => process.stderr.write(`wgflow: ${m}\n`),
    noAdapter: NO_ADAPTER_HELP,
  });
}

const shared = new SharedDevice(open);

/** The process's shared device, created on first use. */
export function getDevice(): Promise<DeviceInfo> {
  return shared.get();
}

/**
 * The `create()` object behind the shared device (opened first), e.g. for `navigator.gpu` of a peer
 * library in benchmarks; it stays referenced here for the process lifetime.
 */
export async function getGpuInstance(): Promise<GPU> {
  await getDevice();
  return gpuInstance as GPU;
}

/** Destroys the shared device (the process can exit afterwards). */
export function closeDevice(): Promise<void> {
  return shared.close();
}

let waits = 0;
let realSetImmediate: typeof setImmediate | undefined;
let quietWaits = true;

/** Turns the timer-based waiting off (true: dawn.node's own busy re-scheduling). For measurements only. */
export function setBusyPolling(busy: boolean): void {
  quietWaits = !busy;
}

/**
 * Awaits a GPU promise without letting dawn.node busy-poll: its re-scheduling through setImmediate
 * becomes a 1 ms timer while any of our waits is pending.
 */
export async function quietly<T>(p: Promise<T>): Promise<T> {
  if (!quietWaits) return p;
  if (waits++ === 0) {
    realSetImmediate = globalThis.setImmediate;
    const timerImmediate = ((fn: (...a: unknown[]) => void, ...args: unknown[]) =>
      setTimeout(fn, 1, ...args)) as unknown as typeof setImmediate;
    globalThis.setImmediate = timerImmediate;
  }
  try {
    return await p;
  } finally {
    if (--waits === 0 && realSetImmediate) globalThis.setImmediate = realSetImmediate;
  }
}
