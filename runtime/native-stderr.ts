/**
 * Filters what native code writes to the process's stderr (file descriptor 2) during one synchronous
 * call. Dawn's Vulkan backend prints two warnings to fd 2 while it enumerates adapters on drivers that
 * report very large dynamic-buffer limits (lavapipe reports 1,000,000):
 *   Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 …
 *   Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 …
 * They come from the adapter itself (a plain `requestAdapter()` prints them, whatever limits the
 * device later asks for), say nothing the user can act on, and would be the first lines of every
 * command. Node cannot redirect a file descriptor, so this uses libc's dup/dup2 through koffi (already a
 * dependency, for the CUDA driver): fd 2 points at a temporary file during the call, then every line that
 * is not one of those warnings is written back to stderr. Only on Linux (where Dawn uses Vulkan); set
 * WGFLOW_DAWN_LOG=1 to see Dawn's output unfiltered.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Dawn's adapter-enumeration warnings that wgflow drops. */
export const DAWN_LIMIT_WARNING =
  /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

interface Libc {
  dup(fd: number): number;
  dup2(fd: number, to: number): number;
  close(fd: number): number;
}

let libc: Promise<Libc | null> | undefined;

async function loadLibc(): Promise<Libc | null> {
  if (process.platform !== 'linux' || process.env.WGFLOW_DAWN_LOG === '1') return null;
  try {
    const koffi = await import('koffi');
    const lib = koffi.load('libc.so.6');
    return {
      dup: lib.func('int dup(int)') as (fd: number) => number,
      dup2: lib.func('int dup2(int, int)') as (fd: number, to: number) => number,
      close: lib.func('int close(int)') as (fd: number) => number,
    };
  } catch {
    return null; // no koffi or no glibc: leave stderr alone
  }
}

/**
 * Calls `fn` with fd 2 captured and writes the captured lines back to stderr, except those matching
 * `drop`. `fn` must be synchronous in what it prints (e.g. the synchronous part of an async API call);
 * what JavaScript writes to process.stderr meanwhile is captured and written back too.
 */
export async function withNativeStderrFiltered<T>(fn: () => T, drop: RegExp = DAWN_LIMIT_WARNING): Promise<T> {
  libc ??= loadLibc();
  const c = await libc;
  if (!c) return fn();
  let dir: string;
  let fd: number;
  try {
    dir = mkdtempSync(join(tmpdir(), 'wgflow-stderr-'));
    fd = openSync(join(dir, 'stderr.txt'), 'w+');
  } catch {
    return fn();
  }
  const saved = c.dup(2);
  if (saved < 0 || c.dup2(fd, 2) < 0) {
    if (saved >= 0) c.close(saved);
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    return fn();
  }
  try {
    return fn();
  } finally {
    c.dup2(saved, 2);
    c.close(saved);
    closeSync(fd);
    const text = readFileSync(join(dir, 'stderr.txt'), 'utf8');
    rmSync(dir, { recursive: true, force: true });
    const kept = text.split('\n').filter((line, i, all) => !(i === all.length - 1 && line === '') && !drop.test(line));
    if (kept.length > 0) process.stderr.write(`${kept.join('\n')}\n`);
  }
}
