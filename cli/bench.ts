/**
 * `wgflow bench [suite...]`: runs bench/run.ts (which runs its suites when loaded) in a child process
 * with the tsx loader, from the repository root (it writes bench/results/), passing the arguments
 * through. The benchmarks are part of a clone, not of the published package.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WgflowError } from '../compiler/errors.js';

/** The repository root (the folder above cli/). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Runs the benchmark suites; resolves with the child's exit code. */
export async function benchCommand(args: readonly string[]): Promise<number> {
  const entry = join(ROOT, 'bench', 'run.ts');
  if (!existsSync(entry))
    throw new WgflowError(
      `bench: ${entry} not found; the benchmarks run from a clone of the repository (npm run bench), not the installed package`,
    );
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: ROOT, stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await new Promise<number>((res, rej) => {
      child.on('error', (e) => rej(new WgflowError(`bench: cannot start ${process.execPath}: ${e.message}`)));
      child.on('exit', (code, signal) => res(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
    });
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}
