/**
 * The commands that run a script of the package in a child process.
 *
 * `wgflow setup-gpu`: scripts/setup-gpu.sh, shipped in the package.
 *
 * `wgflow bench [suite...]`: runs bench/run.ts (which runs its suites when loaded) in a child process
 * with the tsx loader, from the repository root (it writes bench/results/), passing the arguments
 * through. The benchmarks need a clone of the repository: they compare with TF.js and onnxruntime,
 * which are development dependencies, and bench/ is not in the published package.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { WgflowError } from '../compiler/errors.js';
import { PACKAGE_ROOT } from './package-root.js';

/** What `wgflow bench --help` and the error of an installed package say. */
export const BENCH_CLONE_ONLY =
  'clone only: the benchmarks and their peers (TF.js, onnxruntime) are not in the installed package; in a clone: npm ci && npm run bench';

/** Runs the benchmark suites; resolves with the child's exit code. */
export async function benchCommand(args: readonly string[]): Promise<number> {
  const entry = join(PACKAGE_ROOT, 'bench', 'run.ts');
  if (!existsSync(entry)) throw new WgflowError(`bench: ${BENCH_CLONE_ONLY}`);
  return runChild(process.execPath, ['--import', 'tsx', entry, ...args], 'bench');
}

/** Runs a child process with this process's stdio, forwarding SIGINT/SIGTERM; resolves with its exit code. */
export async function runChild(file: string, args: readonly string[], what: string): Promise<number> {
  const child = spawn(file, args, { cwd: PACKAGE_ROOT, stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await new Promise<number>((res, rej) => {
      child.on('error', (e) => rej(new WgflowError(`${what}: cannot start ${file}: ${e.message}`)));
      child.on('exit', (code, signal) => res(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
    });
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

/** `wgflow setup-gpu`: the shipped scripts/setup-gpu.sh (installs Mesa lavapipe when Dawn finds no adapter). */
export async function setupGpuCommand(): Promise<number> {
  const script = join(PACKAGE_ROOT, 'scripts', 'setup-gpu.sh');
  if (!existsSync(script)) throw new WgflowError(`setup-gpu: ${script} is missing from the package`);
  return runChild('bash', [script], 'setup-gpu');
}
