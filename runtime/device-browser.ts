/// <reference types="@webgpu/types" preserve="true" />
/**
 * The browser's device: `navigator.gpu`, shared per page. The browser bundle (scripts/build-browser.mjs)
 * puts this module in place of runtime/device.ts (Dawn on Node); it exports the same functions. There is
 * no busy polling to avoid in a browser, so `quietly` only awaits, and timestamp precision is the
 * browser's own.
 */
import { type DeviceInfo, openDeviceOn, SharedDevice } from './device-core.js';
import { WgflowError } from './errors.js';

export type { DeviceInfo } from './device-core.js';
export { checkDeviceHealth } from './device-core.js';

export const NO_ADAPTER_HELP =
  'No WebGPU adapter was found: this browser has no WebGPU (navigator.gpu), or it is turned off. WebGPU needs a secure ' +
  'context (https:// or http://127.0.0.1) and a browser that supports it (Chrome/Edge ≥ 113, Firefox ≥ 141, Safari ≥ 26).';

const gpuOf = (): GPU => {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new WgflowError(NO_ADAPTER_HELP);
  return gpu;
};

const shared = new SharedDevice(async () =>
  openDeviceOn(await gpuOf().requestAdapter({ powerPreference: 'high-performance' }), {
    wait: (p) => p,
    onLost: (m) => console.error(`wgflow: ${m}`),
    noAdapter: NO_ADAPTER_HELP,
  }),
);

/** The page's shared device, created on first use. */
export function getDevice(): Promise<DeviceInfo> {
  return shared.get();
}

/** `navigator.gpu` (the device opened first, as on Node). */
export async function getGpuInstance(): Promise<GPU> {
  await getDevice();
  return gpuOf();
}

/** Destroys the shared device. */
export function closeDevice(): Promise<void> {
  return shared.close();
}

/** Browsers quantize timestamps themselves; refused once a device is open, as on Node. */
export function requestPreciseTimestamps(): void {
  if (shared.opened)
    throw new WgflowError('requestPreciseTimestamps: call it before the first getDevice() of the page');
}

/** No busy polling in a browser: nothing to turn on or off. */
export function setBusyPolling(_busy: boolean): void {}

/** Awaits a GPU promise (the browser schedules its own waits). */
export function quietly<T>(p: Promise<T>): Promise<T> {
  return p;
}
