/// <reference types="@webgpu/types" preserve="true" />
/**
 * What Node's device (runtime/device.ts, Dawn) and the browser's (runtime/device-browser.ts,
 * `navigator.gpu`) share: the device info, the limits requested (the adapter's own, never hard-coded
 * ones), and the bookkeeping of lost devices and uncaptured errors.
 */
import { ARTIFACT_LIMIT_NAMES } from './artifact-manifest.js';
import { WgflowError } from './errors.js';

export interface DeviceInfo {
  readonly device: GPUDevice;
  readonly adapterName: string;
  readonly limits: Readonly<Record<string, number>>;
}

/** Why each device was lost (destroyed devices included). */
const lostReasons = new WeakMap<GPUDevice, string>();
const pendingErrors: string[] = [];

/** The limits a device is opened with and reports: the ones an artifact's manifest records. */
export const LIMIT_KEYS = ARTIFACT_LIMIT_NAMES;

export interface OpenDeviceHooks {
  /** Awaits a GPU promise (Node: without busy polling). */
  readonly wait: <T>(p: Promise<T>) => Promise<T>;
  /** Reports a device lost for another reason than destroy(). */
  readonly onLost: (message: string) => void;
  /** The message when there is no adapter. */
  readonly noAdapter: string;
}

/** Opens a device on `adapter` with the adapter's limits and timestamp queries where offered. */
export async function openDeviceOn(adapter: GPUAdapter | null, hooks: OpenDeviceHooks): Promise<DeviceInfo> {
  if (!adapter) throw new WgflowError(hooks.noAdapter);
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMIT_KEYS) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const features: GPUFeatureName[] = adapter.features.has('timestamp-query') ? ['timestamp-query'] : [];
  const device = await hooks.wait(adapter.requestDevice({ requiredLimits, requiredFeatures: features }));
  device.lost.then((info) => {
    lostReasons.set(device, `${info.reason}: ${info.message}`);
    if (info.reason !== 'destroyed') hooks.onLost(`the GPU device was lost (${info.reason}: ${info.message})`);
  });
  device.addEventListener('uncapturederror', (ev) => {
    pendingErrors.push((ev as GPUUncapturedErrorEvent).error.message);
  });
  const info = adapter.info;
  const adapterName =
    [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown adapter';
  const limits: Record<string, number> = {};
  for (const k of LIMIT_KEYS) limits[k] = (device.limits as unknown as Record<string, number>)[k] as number;
  return { device, adapterName, limits };
}

/** Throws when the device was lost (or destroyed) or reported an error outside an error scope. */
export function checkDeviceHealth(device: GPUDevice, context: string): void {
  const lost = lostReasons.get(device);
  if (lost !== undefined) {
    const why = lost.startsWith('destroyed') ? 'was destroyed (closeDevice was called)' : `was lost (${lost})`;
    throw new WgflowError(`${context}: the GPU device ${why}`);
  }
  if (pendingErrors.length > 0) {
    const msgs = pendingErrors.splice(0);
    throw new WgflowError(`${context}: GPU error: ${msgs.join('; ')}`);
  }
}

/** A shared device opened once (reopened after a failed open), and its closing. */
export class SharedDevice {
  private current: Promise<DeviceInfo> | undefined;
  constructor(private readonly open: () => Promise<DeviceInfo>) {}
  get(): Promise<DeviceInfo> {
    this.current ??= this.open().catch((e: unknown) => {
      this.current = undefined;
      throw e;
    });
    return this.current;
  }
  get opened(): boolean {
    return this.current !== undefined;
  }
  async close(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    if (!c) return;
    try {
      (await c).device.destroy();
    } catch {
      // opening failed: nothing to destroy
    }
  }
}
