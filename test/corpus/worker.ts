/**
 * The corpus's child process. It takes one case at a time over IPC ({ file, id, dir }), runs its setup,
 * records the protected files, runs the case (a library call here, or the CLI in a grandchild process
 * watched for time and memory), and answers with a CaseResult. The parent watches this process for
 * time and memory while a library case runs, and replaces it when it has to kill it.
 */
import '../../index.js';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fileDigest, resolveIn, rssMb } from './files.js';
import {
  type CaseContext,
  type CaseResult,
  type CliCase,
  type CorpusCase,
  DEFAULT_MEMORY_MB,
  DEFAULT_TIMEOUT_MS,
} from './types.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'cli', 'wgflow.ts');
/** tsx's loader by absolute URL: the CLI runs with cwd in the case's folder, outside the repository. */
const TSX = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export interface CaseRequest {
  readonly file: string;
  readonly id: string;
  readonly dir: string;
}

/** Messages to the parent: 'begin' (the case's clock and memory baseline start), then 'result'. */
export type WorkerMessage =
  | { readonly type: 'begin'; readonly id: string; readonly rssMb: number }
  | { readonly type: 'result'; readonly result: CaseResult };

const send = (m: WorkerMessage) => process.send?.(m);

async function findCase(file: string, id: string): Promise<CorpusCase> {
  const mod = (await import(pathToFileURL(file).href)) as { cases: readonly CorpusCase[] };
  const c = mod.cases.find((x) => x.id === id);
  if (!c) throw new Error(`corpus: no case ${id} in ${file}`);
  return c;
}

interface CliOutcome {
  readonly outcome: CaseResult['outcome'];
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly peakMb: number;
}

/** Runs the CLI with the case's arguments in ctx.dir, killing it past the time or memory limit. */
function runCli(c: CliCase, ctx: CaseContext, deadline: number): Promise<CliOutcome> {
  const limitMb = c.memoryMb ?? DEFAULT_MEMORY_MB;
  return new Promise((res) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...c.args(ctx)], {
      cwd: ctx.dir,
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let peakMb = 0;
    let killed: 'timeout' | 'memory' | undefined;
    child.stdout.on('data', (b: Buffer) => {
      if (stdout.length < 1 << 20) stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 1 << 20) stderr += b.toString();
    });
    const poll = setInterval(() => {
      const mb = child.pid === undefined ? undefined : rssMb(child.pid);
      if (mb !== undefined) peakMb = Math.max(peakMb, mb);
      const over = mb !== undefined && mb > limitMb ? 'memory' : Date.now() > deadline ? 'timeout' : undefined;
      if (over && !killed) {
        killed = over;
        child.kill('SIGKILL');
      }
    }, 50);
    child.on('close', (code, signal) => {
      clearInterval(poll);
      const outcome = killed ?? (signal ? 'crash' : code === 0 ? 'ok' : 'error');
      res({ outcome, exitCode: code, signal, stdout, stderr, peakMb });
    });
  });
}

async function runCase(req: CaseRequest): Promise<CaseResult> {
  const c = await findCase(req.file, req.id);
  const ctx: CaseContext = { dir: req.dir };
  const start = Date.now();
  const deadline = start + (c.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  await c.setup?.(ctx);
  const protectedFiles = (c.unchanged?.(ctx) ?? []).map((p) => resolveIn(ctx.dir, p));
  const before = protectedFiles.map(fileDigest);
  const base = rssMb(process.pid) ?? 0;
  send({ type: 'begin', id: c.id, rssMb: base });
  let partial: Omit<CaseResult, 'id' | 'ms' | 'changed'>;
  if (c.kind === 'cli') {
    const r = await runCli(c, ctx, deadline);
    partial = {
      outcome: r.outcome,
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: r.stdout,
      stderr: r.stderr,
      rssGrowthMb: r.peakMb,
    };
  } else {
    try {
      await c.run(ctx);
      partial = { outcome: 'ok', rssGrowthMb: Math.max(0, (rssMb(process.pid) ?? 0) - base) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(`non-Error thrown: ${String(e)}`);
      partial = {
        outcome: 'error',
        errorName: e instanceof Error ? err.name : typeof e,
        message: err.message,
        stack: err.stack,
        rssGrowthMb: Math.max(0, (rssMb(process.pid) ?? 0) - base),
      };
    }
  }
  const changed = protectedFiles.filter((p, i) => fileDigest(p) !== before[i]);
  for (const p of c.absent?.(ctx) ?? []) if (existsSync(resolveIn(ctx.dir, p))) changed.push(`${p} (exists)`);
  return { id: c.id, ...partial, ms: Date.now() - start, changed };
}

process.on('message', (req: CaseRequest) => {
  runCase(req).then(
    (result) => send({ type: 'result', result }),
    (e: unknown) =>
      send({
        type: 'result',
        result: {
          id: req.id,
          outcome: 'crash',
          message: `corpus worker: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
          ms: 0,
          rssGrowthMb: 0,
          changed: [],
        },
      }),
  );
});
// The GPU device (if a case opened one) must not keep the process alive once the parent disconnects.
process.on('disconnect', () => process.exit(0));
