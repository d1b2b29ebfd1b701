/**
 * A watchdog for blocking MPI calls. MPI has no timeouts: a collective whose peer died, hangs, or
 * called a different collective blocks forever, and while it blocks the main thread runs no
 * JavaScript (no timer can fire). The launchers end a job when a rank *dies* (Open MPI 4.1's mpirun
 * and MPICH 4.0's Hydra both kill the other ranks when one dies by a signal: measured in about 1 s and
 * 0.1 s), but not when a rank hangs outside MPI, or when a rank ends with status 0 in the middle of the
 * others' collectives: its MPI_Finalize at exit then waits for them as they wait for it (measured with
 * both; without the exit hook's MPI_Finalize, Hydra even ends such a 2-rank job with status 0).
 *
 * So a worker thread, with its own event loop, watches a shared word that the main thread sets before
 * each blocking call and clears after it. When one call has lasted longer than the limit, the worker
 * writes a message to file descriptor 2 (directly: process.stderr would go through the blocked main
 * thread) and kills its own process with SIGKILL, which both launchers turn into the end of the whole
 * job. It does not call MPI_Abort itself: with MPI_THREAD_FUNNELED only the main thread may call MPI.
 */
import { Worker } from 'node:worker_threads';
import { WgflowError } from '../errors.js';

/** The default limit for one blocking MPI call (WGFLOW_MPI_TIMEOUT_S overrides it; 0 turns the watchdog off). */
export const DEFAULT_WATCHDOG_SECONDS = 1800;

/** The limit from WGFLOW_MPI_TIMEOUT_S, or undefined when unset. */
export function watchdogSecondsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): number | undefined {
  const v = env.WGFLOW_MPI_TIMEOUT_S?.trim();
  if (!v) return undefined;
  const s = Number(v);
  if (!Number.isFinite(s) || s < 0)
    throw new WgflowError(`WGFLOW_MPI_TIMEOUT_S=${v}: expected a number of seconds >= 0 (0 turns the watchdog off)`);
  return s;
}

// Shared layout: Int32 [state (0 idle, 1 in a call), call index into the names, sequence number, rank, size],
// then Float64 [start of the call, ms since the epoch].
const STATE = 0;
const CALL = 1;
const SEQ = 2;
const RANK = 3;
const SIZE = 4;
const INTS = 6;
const START_BYTE = INTS * 4;

/** The worker's program (CommonJS, run with eval so that it needs no file next to the compiled module). */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const { sab, limitMs, pollMs, names, hint } = workerData;
const words = new Int32Array(sab, 0, ${INTS});
const start = new Float64Array(sab, ${START_BYTE}, 1);
setInterval(() => {
  if (Atomics.load(words, ${STATE}) !== 1) return;
  const elapsed = Date.now() - start[0];
  if (elapsed <= limitMs) return;
  const name = names[Atomics.load(words, ${CALL})] || 'an MPI call';
  const seq = Atomics.load(words, ${SEQ});
  const rank = Atomics.load(words, ${RANK});
  const who = rank >= 0 ? 'rank ' + rank + ' of ' + Atomics.load(words, ${SIZE}) + ' (pid ' + process.pid + ')' : 'pid ' + process.pid;
  writeSync(2, 'wgflow distributed: ' + who + ': ' + name + ' (MPI call #' + seq + ') has not returned after ' +
    Math.round(elapsed / 1000) + ' s: a peer rank died, hangs, or called a different collective. ' +
    'Killing this rank (SIGKILL) so that the launcher ends the job. ' + hint + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, pollMs);
`;

/** Times blocking calls; one per process. */
export class Watchdog {
  private readonly words: Int32Array;
  private readonly start: Float64Array;
  private readonly names: string[] = [];
  private worker: Worker | undefined;
  private seq = 0;

  /**
   * @param limitSeconds - the longest one call may block; 0 disables the watchdog (calls run untimed).
   * @param callNames - the names `timed` is called with (they are sent to the worker once).
   */
  constructor(
    readonly limitSeconds: number,
    callNames: readonly string[],
  ) {
    const sab = new SharedArrayBuffer(START_BYTE + 8);
    this.words = new Int32Array(sab, 0, INTS);
    this.start = new Float64Array(sab, START_BYTE, 1);
    this.words[RANK] = -1;
    this.names.push(...callNames);
    if (limitSeconds <= 0) return;
    const limitMs = limitSeconds * 1000;
    const hint =
      'If a peer legitimately needs longer between collectives, raise WGFLOW_MPI_TIMEOUT_S ' +
      `(now ${limitSeconds} s; 0 turns this watchdog off).`;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { sab, limitMs, pollMs: Math.min(1000, Math.max(50, limitMs / 10)), names: this.names, hint },
      stdout: false,
      stderr: false,
    });
    // The watchdog never keeps the process alive.
    this.worker.unref();
  }

  /** Names this process by its rank in the watchdog's message (once MPI_Init has returned). */
  setRank(rank: number, size: number): void {
    Atomics.store(this.words, SIZE, size);
    Atomics.store(this.words, RANK, rank);
  }

  /** Runs `fn` (one blocking MPI call named `name`, one of the names given to the constructor), timed. */
  timed<T>(name: string, fn: () => T): T {
    if (!this.worker) return fn();
    const index = this.names.indexOf(name);
    this.start[0] = Date.now();
    Atomics.store(this.words, CALL, index);
    Atomics.store(this.words, SEQ, ++this.seq);
    Atomics.store(this.words, STATE, 1);
    try {
      return fn();
    } finally {
      Atomics.store(this.words, STATE, 0);
    }
  }

  /** Stops the worker (after MPI_Finalize). */
  stop(): void {
    const w = this.worker;
    this.worker = undefined;
    if (w) void w.terminate();
  }
}
