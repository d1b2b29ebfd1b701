/**
 * The communicator over MPI_COMM_WORLD of a real MPI library (see mpi-binding.ts for the ABI).
 *
 * Lifetime: MPI_Init_thread (MPI_THREAD_FUNNELED) once per process, MPI_Finalize once, by `finalize()`
 * or at exit. The job must never hang because one rank failed, so this rank ends the whole job
 * (MPI_Abort, after printing why) when:
 * - an exception or promise rejection is uncaught (and the program installed no 'uncaughtException'
 *   listener of its own);
 * - the process exits with a non-zero status before MPI_Finalize (e.g. `process.exit(1)`);
 * - an MPI call fails: MPI_ERRORS_RETURN is set on MPI_COMM_WORLD, so a failure becomes a WgflowError
 *   naming the call and MPI's error text, which, uncaught, ends the job as above;
 * - one blocking call lasts longer than the watchdog's limit (watchdog.ts; it kills the rank instead).
 * Status 0 at exit means done: MPI_Finalize then (it waits for the other ranks to finalize too, so a
 * rank that leaves early with status 0 ends the job only through the watchdog).
 * A rank that dies (a signal, SIGKILL included) is the launcher's to report: Open MPI's mpirun and MPICH's
 * Hydra both kill the other ranks and exit non-zero (test/mpi.test.ts measures both).
 */
import { inspect } from 'node:util';
import { WgflowError } from '../errors.js';
import { type Communicator, checkBytes, checkFloat32, checkRoot, checkView, writeStderr } from './communicator.js';
import type { MpiLaunch } from './launch.js';
import { loadMpiLibrary, MPI_THREAD_FUNNELED, type MpiFamily, type MpiLibrary } from './mpi-binding.js';
import { Watchdog } from './watchdog.js';

/** The largest count one MPI call takes (its `int count`). */
export const MPI_MAX_COUNT = 2_147_483_647;

export interface MpiCommunicatorOptions {
  /** The launch that started this process (undefined: a singleton, MPI_Init without a launcher). */
  readonly launch?: MpiLaunch;
  /** A library file to load instead of probing. */
  readonly library?: string;
  /** The watchdog's limit for one blocking call, seconds; 0 = no watchdog. */
  readonly watchdogSeconds: number;
  /** The largest element count per MPI call (default 2³¹ − 1); smaller only to test the chunking. */
  readonly maxCountPerCall?: number;
}

const CALL_NAMES = [
  'MPI_Init_thread',
  'MPI_Allreduce',
  'MPI_Bcast',
  'MPI_Allgather',
  'MPI_Gatherv',
  'MPI_Barrier',
  'MPI_Finalize',
  'MPI_Abort',
] as const;
type CallName = (typeof CALL_NAMES)[number];

/** How long abort() waits after its message before MPI_Abort, for the launcher to forward the text. */
const ABORT_FLUSH_MS = 200;
const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};
const bytesOf = (v: ArrayBufferView): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** Rank `rank` of `size` ranks of an MPI job. */
export class MpiCommunicator implements Communicator {
  private finalized = false;
  private aborting = false;
  private readonly onExit = (code: number): void => this.exitHook(code);
  private readonly onUncaught = (error: unknown, origin: string): void => this.uncaughtHook(error, origin);

  private constructor(
    private readonly mpi: MpiLibrary,
    private readonly watchdog: Watchdog,
    readonly rank: number,
    readonly size: number,
    private readonly maxCount: number,
  ) {
    process.on('exit', this.onExit);
    process.on('uncaughtExceptionMonitor', this.onUncaught);
  }

  get kind(): MpiFamily {
    return this.mpi.family;
  }

  get description(): string {
    return this.mpi.version;
  }

  /** Loads the library and initializes MPI; call once per process (getCommunicator does). */
  static async init(opts: MpiCommunicatorOptions): Promise<MpiCommunicator> {
    const maxCount = opts.maxCountPerCall ?? MPI_MAX_COUNT;
    if (!Number.isInteger(maxCount) || maxCount < 1 || maxCount > MPI_MAX_COUNT)
      throw new WgflowError(`distributed: maxCountPerCall ${maxCount} is not in 1 … ${MPI_MAX_COUNT}`);
    const mpi = await loadMpiLibrary({ library: opts.library, launch: opts.launch });
    const { calls, handles } = mpi;
    const flag = [0];
    if (calls.initialized(flag) === 0 && flag[0])
      throw new WgflowError(
        `distributed: MPI is already initialized in this process (by another copy of wgflow or another library); ` +
          'getCommunicator() must be the only one to initialize it',
      );
    const watchdog = new Watchdog(opts.watchdogSeconds, CALL_NAMES);
    const provided = [0];
    const rc = watchdog.timed('MPI_Init_thread', () => calls.initThread(null, null, MPI_THREAD_FUNNELED, provided));
    if (rc !== 0) {
      watchdog.stop();
      throw new WgflowError(`distributed: MPI_Init_thread failed with ${mpi.describe(rc)} (${mpi.path})`);
    }
    const rank = [0];
    const size = [0];
    const check = (code: number, call: string) => {
      if (code !== 0) throw new WgflowError(`distributed: ${call} failed: ${mpi.describe(code)}`);
    };
    check(calls.commSetErrhandler(handles.commWorld, handles.errorsReturn), 'MPI_Comm_set_errhandler');
    check(calls.commRank(handles.commWorld, rank), 'MPI_Comm_rank');
    check(calls.commSize(handles.commWorld, size), 'MPI_Comm_size');
    const r = rank[0] ?? 0;
    const n = size[0] ?? 1;
    watchdog.setRank(r, n);
    const comm = new MpiCommunicator(mpi, watchdog, r, n, maxCount);
    const launch = opts.launch;
    if (launch?.size !== undefined && (launch.size !== n || (launch.rank !== undefined && launch.rank !== r))) {
      // Each process initialized MPI on its own (a singleton): the launcher and the library differ.
      comm.finalize();
      throw new WgflowError(
        `distributed: the launcher started rank ${launch.rank ?? '?'} of ${launch.size} (${launch.evidence.join(', ')}), ` +
          `but ${mpi.path} (${mpi.version}) reports rank ${r} of ${n}: the library does not belong to the launcher's MPI ` +
          '(use the mpirun of the same MPI, e.g. mpirun.openmpi with libmpi.so.40 or mpirun.mpich with libmpich.so.12, or set WGFLOW_MPI_LIBRARY)',
      );
    }
    return comm;
  }

  private who(): string {
    return `rank ${this.rank} of ${this.size}`;
  }

  private alive(op: string): void {
    if (this.finalized) throw new WgflowError(`distributed: ${op} after finalize()`);
  }

  private call(name: CallName, what: string, fn: () => number): void {
    const code = this.watchdog.timed(name, fn);
    if (code !== 0)
      throw new WgflowError(`distributed: ${this.who()}: ${name} (${what}) failed: ${this.mpi.describe(code)}`);
  }

  allreduceSum(buf: Float32Array): void {
    this.alive('allreduceSum');
    checkFloat32('allreduceSum', buf);
    const { handles, calls } = this.mpi;
    let offset = 0;
    do {
      const part = buf.subarray(offset, Math.min(buf.length, offset + this.maxCount));
      this.call('MPI_Allreduce', `${part.length} floats at element ${offset} of ${buf.length}`, () =>
        calls.allreduce(handles.inPlace, part, part.length, handles.float, handles.opSum, handles.commWorld),
      );
      offset += part.length;
    } while (offset < buf.length);
  }

  bcast(buf: ArrayBufferView, root = 0): void {
    this.alive('bcast');
    checkView('bcast', buf);
    checkRoot('bcast', root, this.size);
    const { handles, calls } = this.mpi;
    const bytes = bytesOf(buf);
    let offset = 0;
    do {
      const part = bytes.subarray(offset, Math.min(bytes.length, offset + this.maxCount));
      this.call('MPI_Bcast', `${part.length} bytes at byte ${offset} of ${bytes.length}, root ${root}`, () =>
        calls.bcast(part, part.length, handles.byte, root, handles.commWorld),
      );
      offset += part.length;
    } while (offset < bytes.length);
  }

  gatherv(send: Uint8Array, root = 0): Uint8Array[] | undefined {
    this.alive('gatherv');
    checkBytes('gatherv', send);
    checkRoot('gatherv', root, this.size);
    const { handles, calls } = this.mpi;
    // Every rank learns every length (as float64: exact), so that all of them agree on the checks below.
    const lengths = new Float64Array(this.size);
    const mine = Float64Array.of(send.length);
    this.call('MPI_Allgather', 'gatherv lengths', () =>
      calls.allgather(mine, 8, handles.byte, lengths, 8, handles.byte, handles.commWorld),
    );
    let total = 0;
    for (const l of lengths) total += l;
    if (total > MPI_MAX_COUNT)
      throw new WgflowError(
        `distributed: gatherv of ${total} bytes in all (${[...lengths].join(' + ')}): at most ${MPI_MAX_COUNT} bytes per gatherv`,
      );
    const isRoot = this.rank === root;
    const recv = isRoot ? new Uint8Array(total) : null;
    const counts = isRoot ? Int32Array.from(lengths) : null;
    const displs = isRoot ? new Int32Array(this.size) : null;
    if (displs) for (let i = 1; i < this.size; i++) displs[i] = (displs[i - 1] ?? 0) + (lengths[i - 1] ?? 0);
    this.call('MPI_Gatherv', `${send.length} bytes from ${this.who()}, root ${root}`, () =>
      calls.gatherv(send, send.length, handles.byte, recv, counts, displs, handles.byte, root, handles.commWorld),
    );
    if (!recv || !displs) return undefined;
    return [...lengths].map((l, i) => recv.subarray(displs[i] ?? 0, (displs[i] ?? 0) + l));
  }

  barrier(): void {
    this.alive('barrier');
    const { handles, calls } = this.mpi;
    this.call('MPI_Barrier', 'barrier', () => calls.barrier(handles.commWorld));
  }

  abort(code: number, message: string): never {
    this.aborting = true;
    writeStderr(`wgflow distributed: ${this.who()} aborts the job (code ${code}): ${message}`);
    if (!this.finalized) {
      // The launcher forwards a rank's stderr through its own process (Hydra's proxy, Open MPI's orted),
      // and MPI_Abort tears that down: text still on its way is lost. CI once saw MPICH drop the whole
      // message under load, so give the forwarder a moment first.
      sleepSync(ABORT_FLUSH_MS);
      const { handles, calls } = this.mpi;
      this.watchdog.timed('MPI_Abort', () => calls.abort(handles.commWorld, code));
    }
    // MPI_Abort does not return; if it ever does, leave anyway.
    process.exit(code);
  }

  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    process.off('exit', this.onExit);
    process.off('uncaughtExceptionMonitor', this.onUncaught);
    const code = this.watchdog.timed('MPI_Finalize', () => this.mpi.calls.finalize());
    this.watchdog.stop();
    if (code !== 0)
      throw new WgflowError(`distributed: ${this.who()}: MPI_Finalize failed: ${this.mpi.describe(code)}`);
  }

  private exitHook(code: number): void {
    if (this.finalized || this.aborting) return;
    if (code === 0) {
      try {
        this.finalize();
      } catch (e) {
        writeStderr(`wgflow distributed: ${this.who()}: ${(e as Error).message}`);
      }
      return;
    }
    this.abort(
      code,
      `this rank is exiting with status ${code} before MPI_Finalize; ending the job so that the other ranks do not wait for it`,
    );
  }

  private uncaughtHook(error: unknown, origin: string): void {
    // A program that handles uncaught exceptions itself keeps running: leave it alone.
    if (this.finalized || this.aborting || process.listenerCount('uncaughtException') > 0) return;
    this.abort(1, `uncaught error on this rank (${origin}):\n${inspect(error)}`);
  }
}
