/** Runs the wgflow CLI (cli/wgflow.ts through the tsx loader) in a child process, for end-to-end tests. */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(REPO, 'cli', 'wgflow.ts');

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `node --import tsx cli/wgflow.ts ...args`, waited for (never rejects). */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { cwd: REPO, env: { ...process.env, ...env }, maxBuffer: 64 * 2 ** 20 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        res({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** Starts the CLI without waiting (stdout/stderr collected in `output`). */
export function startCli(args: readonly string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (text += b.toString()));
  return { child, output: () => text };
}

/** A stack trace line ("    at fn (file:line:col)"): user errors must not print one. */
export const STACK_LINE = /^\s+at .+[:(]/m;
