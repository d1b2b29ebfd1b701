#!/usr/bin/env node
// `npm run build` (and `prepare`, which npm runs on `npm pack`, `npm publish`, `npm ci` / `npm install` in a
// clone, and when a project installs wgflow from git, so every one of them has a fresh build):
// removes dist/ (no stale modules from renamed sources), compiles the library with
// tsconfig.build.json (JavaScript, .d.ts, source maps with their sources inlined, since the .ts
// files are not in the package), makes the CLI entry executable, and bundles the runtime's browser
// build (scripts/bundle-browser.mjs) and copies the detection page (examples/web → dist/web, which
// `wgflow serve` serves in an installed package).
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

if (!existsSync(tsc)) {
  console.error('build: typescript is not installed; run `npm ci` first');
  process.exit(2);
}
rmSync(dist, { recursive: true, force: true });
const run = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (run.status !== 0) {
  console.error(`build: tsc failed (exit ${run.status ?? run.signal})`);
  process.exit(1);
}
chmodSync(join(dist, 'cli', 'wgflow.js'), 0o755);
// The runtime's browser build (one ES module, no node: imports): dist/browser/wgflow-runtime.js
const { bundleBrowserRuntime } = await import('./bundle-browser.mjs');
const bundle = await bundleBrowserRuntime();
console.log(`build: browser runtime ${(bundle.bytes / 1024).toFixed(1)} KiB (${bundle.inputs.length} modules)`);
// The detection page `wgflow serve` serves (cli/serve.ts)
cpSync(join(root, 'examples', 'web'), join(dist, 'web'), { recursive: true });
