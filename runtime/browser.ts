/**
 * The runtime's browser entry (`wgflow/runtime` under the `browser` condition; built into one ES module
 * by scripts/build-browser.mjs, where runtime/device-browser.ts replaces runtime/device.ts). It runs
 * compiled artifacts on `navigator.gpu`, loaded from URLs. Nothing here reads files or imports `node:`
 * modules; checkpoints, files and Dawn stay in the Node entry (runtime/index.ts).
 */
export * from './portable.js';
