#!/usr/bin/env node
// Tells whether Dawn (npm `webgpu`) finds a WebGPU adapter on this machine.
// Prints the adapter's info as one JSON line on stdout; exits 0 if one was found, 1 if not.
// Needs node_modules (run `npm ci` first); scripts/setup-gpu.sh falls back to a Mesa
// version check when it is missing.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
// Keep the GPU object alive for the whole run: if it were collected while a request is
// pending, Dawn's instance would go away underneath it.
const gpu = create([]);
// A driver that hangs must not hang CI: give up after 30 s.
setTimeout(() => {
  console.error('probe-adapter: timed out waiting for an adapter');
  process.exit(1);
}, 30_000).unref();

async function main() {
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    console.error('probe-adapter: no WebGPU adapter found');
    return 1;
  }
  const info = adapter.info ?? {};
  const device = await adapter.requestDevice();
  console.log(
    JSON.stringify({
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isFallbackAdapter: info.isFallbackAdapter,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    }),
  );
  device.destroy();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`probe-adapter: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
