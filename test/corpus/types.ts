/**
 * The bad-input corpus: each case feeds wgflow one hostile or careless input and states what must
 * happen. The runner (test/corpus.test.ts) runs every case in a child process under a time and a memory
 * limit and checks: the expected error (class and message pattern), no native crash, no hang, no raw
 * stack trace or "internal" error, and no file changed that the case lists as protected.
 *
 * Case files are `test/corpus/<area>.cases.ts`, each exporting `cases: CorpusCase[]`. Importing a case
 * file must do no work (no GPU, no files): everything happens inside `setup` and `run`.
 */

/** Where a case's inputs go in. */
export type CorpusArea =
  | 'dsl'
  | 'eager'
  | 'feeds'
  | 'images'
  | 'voc'
  | 'coco'
  | 'checkpoints'
  | 'weights'
  | 'artifacts'
  | 'cli';

/** What a case gets: a fresh, empty temporary folder of its own. */
export interface CaseContext {
  readonly dir: string;
}

/** The outcome a case requires. */
export type CaseExpectation =
  /** A thrown error (library) or exit code 1 with one `wgflow: …` line on stderr (CLI). */
  | { readonly error: string; readonly message: RegExp }
  /** Success: a bad-looking input that is valid and must be accepted (e.g. an empty box list). */
  | { readonly ok: true };

interface CaseBase {
  /** Unique over the corpus, `<area>/<short-name>`. */
  readonly id: string;
  readonly area: CorpusArea;
  /** What the input is, in one line. */
  readonly what: string;
  readonly expect: CaseExpectation;
  /** Wall-clock limit of the case (setup included), ms. Default {@link DEFAULT_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  /** Limit on the growth of the resident set during the case, MiB. Default {@link DEFAULT_MEMORY_MB}. */
  readonly memoryMb?: number;
  /** Makes the case's files in `ctx.dir` (runs in the case's process, before the clock's check). */
  readonly setup?: (ctx: CaseContext) => void | Promise<void>;
  /** Files (absolute, or relative to ctx.dir) whose bytes must be the same after the case. */
  readonly unchanged?: (ctx: CaseContext) => readonly string[];
  /** Files (relative to ctx.dir) that must not exist after the case. */
  readonly absent?: (ctx: CaseContext) => readonly string[];
}

/** A case that calls the library in a child process. */
export interface LibraryCase extends CaseBase {
  readonly kind: 'library';
  readonly run: (ctx: CaseContext) => unknown;
}

/** A case that runs the `wgflow` command line in its own process (cwd: ctx.dir). */
export interface CliCase extends CaseBase {
  readonly kind: 'cli';
  readonly args: (ctx: CaseContext) => readonly string[];
  /** Exit code required with `{ ok: true }` (default 0). */
  readonly exitCode?: number;
}

export type CorpusCase = LibraryCase | CliCase;

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MEMORY_MB = 1024;

/** One case's result as the child process reports it. */
export interface CaseResult {
  readonly id: string;
  /** 'ok': returned (library) or exited (CLI); 'error': threw; 'timeout' | 'memory' | 'crash': killed or died. */
  readonly outcome: 'ok' | 'error' | 'timeout' | 'memory' | 'crash';
  readonly errorName?: string;
  readonly message?: string;
  readonly stack?: string;
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  readonly stdout?: string;
  readonly stderr?: string;
  readonly ms: number;
  readonly rssGrowthMb: number;
  /** Protected files whose bytes changed, and files that should be absent but exist. */
  readonly changed: readonly string[];
}
