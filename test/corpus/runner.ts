/**
 * Runs corpus cases in a pool of child processes (test/corpus/worker.ts). While a case runs, its
 * worker is watched: past the case's time limit or memory limit it is killed (SIGKILL) and replaced,
 * and the case is reported as 'timeout' or 'memory'; a worker that dies by itself reports 'crash'.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { rssMb } from './files.js';
import { type CaseResult, type CorpusCase, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_MS } from './types.js';
import type { CaseRequest, WorkerMessage } from './worker.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const WORKER = join(HERE, 'worker.ts');
/** A worker's own start (tsx, imports) is not the case's time: it gets this much on top. */
const START_GRACE_MS = 20_000;

export interface LoadedCase {
  readonly file: string;
  readonly case: CorpusCase;
}

/** Every case of test/corpus/*.cases.ts, in file order. Throws on a duplicate id. */
export async function loadCorpus(): Promise<LoadedCase[]> {
  const files = readdirSync(HERE)
    .filter((f) => f.endsWith('.cases.ts'))
    .sort();
  const out: LoadedCase[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    const file = join(HERE, f);
    const mod = (await import(pathToFileURL(file).href)) as { cases: readonly CorpusCase[] };
    for (const c of mod.cases) {
      if (seen.has(c.id)) throw new Error(`corpus: duplicate case id ${c.id} (${f})`);
      seen.add(c.id);
      out.push({ file, case: c });
    }
  }
  return out;
}

class Worker {
  private child: ChildProcess | undefined;
  private fresh(): ChildProcess {
    const child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx', '--max-old-space-size=4096'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    // The cases' own console output is not the corpus's: drain it.
    child.stdout?.resume();
    child.stderr?.resume();
    return child;
  }

  run(item: LoadedCase): Promise<CaseResult> {
    const c = item.case;
    const child = this.child ?? this.fresh();
    this.child = child;
    const dir = mkdtempSync(join(tmpdir(), 'wgflow-corpus-'));
    const timeoutMs = c.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const memoryMb = c.memoryMb ?? DEFAULT_MEMORY_MB;
    const sent = Date.now();
    return new Promise<CaseResult>((resolve) => {
      let base: number | undefined;
      let peak = 0;
      let began = 0;
      let done = false;
      const finish = (r: CaseResult, kill: boolean) => {
        if (done) return;
        done = true;
        clearInterval(poll);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (kill) {
          child.kill('SIGKILL');
          this.child = undefined;
        }
        rmSync(dir, { recursive: true, force: true });
        resolve(r);
      };
      const killed = (outcome: 'timeout' | 'memory') =>
        finish(
          {
            id: c.id,
            outcome,
            ms: Date.now() - (began || sent),
            rssGrowthMb: base === undefined ? 0 : peak - base,
            changed: [],
          },
          true,
        );
      const poll = setInterval(() => {
        const mb = child.pid === undefined ? undefined : rssMb(child.pid);
        if (mb !== undefined && base !== undefined && c.kind === 'library') {
          peak = Math.max(peak, mb);
          if (mb - base > memoryMb) return killed('memory');
        }
        const elapsed = began ? Date.now() - began : Date.now() - sent - START_GRACE_MS;
        // The worker enforces the CLI's limits itself; this is the backstop (a hung setup, say).
        const limit = c.kind === 'cli' ? timeoutMs + 10_000 : timeoutMs;
        if (elapsed > limit) killed('timeout');
      }, 50);
      const onMessage = (m: WorkerMessage) => {
        if (m.type === 'begin' && m.id === c.id) {
          base = m.rssMb;
          peak = m.rssMb;
          began = Date.now();
        } else if (m.type === 'result' && m.result.id === c.id) {
          finish(
            { ...m.result, rssGrowthMb: Math.max(m.result.rssGrowthMb, base === undefined ? 0 : peak - base) },
            false,
          );
        }
      };
      const onExit = (code: number | null, signal: string | null) => {
        this.child = undefined;
        finish(
          {
            id: c.id,
            outcome: 'crash',
            exitCode: code,
            signal,
            ms: Date.now() - (began || sent),
            rssGrowthMb: 0,
            changed: [],
          },
          false,
        );
      };
      child.on('message', onMessage);
      child.on('exit', onExit);
      child.send({ file: item.file, id: c.id, dir } satisfies CaseRequest);
    });
  }

  close(): void {
    this.child?.disconnect();
    this.child = undefined;
  }
}

/** Runs the cases on `parallel` workers; results in the cases' order. */
export async function runCorpus(items: readonly LoadedCase[], parallel = 2): Promise<CaseResult[]> {
  const results: CaseResult[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(parallel, items.length) }, async () => {
    const w = new Worker();
    try {
      while (next < items.length) {
        const i = next++;
        results[i] = await w.run(items[i] as LoadedCase);
      }
    } finally {
      w.close();
    }
  });
  await Promise.all(lanes);
  return results;
}
