/** The device limits the compiler plans against. Read them from the adapter; defaults are WebGPU's. */
export interface DeviceLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupSizeY: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBuffersPerShaderStage: number;
  /** Storage bindings start at multiples of this many bytes (windows of split tensors). */
  readonly minStorageBufferOffsetAlignment: number;
}

/** The WebGPU specification's default limits (what a device gets without asking for more). */
export const WEBGPU_DEFAULT_LIMITS: DeviceLimits = {
  maxStorageBufferBindingSize: 134217728,
  maxBufferSize: 268435456,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBuffersPerShaderStage: 8,
  minStorageBufferOffsetAlignment: 256,
};

export function limitsFrom(src: Partial<Record<keyof DeviceLimits, number>>): DeviceLimits {
  const out: Record<string, number> = {};
  for (const k of Object.keys(WEBGPU_DEFAULT_LIMITS) as (keyof DeviceLimits)[]) {
    out[k] = src[k] ?? WEBGPU_DEFAULT_LIMITS[k];
  }
  return out as unknown as DeviceLimits;
}
