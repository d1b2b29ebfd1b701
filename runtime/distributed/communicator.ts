/**
 * The communicator interface of data-parallel training and sharded detection, and its single-process
 * implementation. Code written against `Communicator` runs unchanged in one process (rank 0 of 1) and
 * under mpirun (rank r of n): no branch on "is MPI there".
 *
 * Every call is collective over all ranks (MPI_COMM_WORLD): each rank must make the same calls in the
 * same order, with the same root and (allreduce, bcast) the same element count. The calls block the
 * calling thread, and with it Node's event loop, until the collective completes: no timer or I/O
 * callback runs meanwhile. That is the design: a training step's gradient allreduce has nothing else
 * to do while it waits. Only the main thread may call (MPI_THREAD_FUNNELED).
 */
import { writeSync } from 'node:fs';
import { WgflowError } from '../errors.js';

/** Which implementation a communicator is. */
export type CommunicatorKind = 'single' | 'openmpi' | 'mpich';

/** Collective operations over all the job's ranks. */
export interface Communicator {
  readonly kind: CommunicatorKind;
  /** This process's rank, 0 … size − 1. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  /** The MPI library's version line, or `single process` for the single-process communicator. */
  readonly description: string;
  /**
   * Element-wise sum over all ranks, in place (MPI_Allreduce with MPI_IN_PLACE, MPI_FLOAT, MPI_SUM): on
   * return every rank holds the same sums. Every rank passes the same length. The reduction order is
   * the library's, so sums of non-integers may differ from a sequential sum in the last bits (but are
   * the same on every rank). Arrays over 2³¹ − 1 elements go in several calls.
   */
  allreduceSum(buf: Float32Array): void;
  /** Copies root's bytes of `buf` into every other rank's `buf` (same byte length on every rank). */
  bcast(buf: ArrayBufferView, root?: number): void;
  /**
   * Gathers each rank's bytes at `root` (lengths may differ, 0 included): root gets one array per rank
   * (fresh memory, never aliasing `send`), the other ranks undefined. The total must stay under 2³¹ bytes.
   */
  gatherv(send: Uint8Array, root?: number): Uint8Array[] | undefined;
  /** Returns once every rank has called it. */
  barrier(): void;
  /**
   * Ends the whole job: prints `message` (with this rank) to stderr, then MPI_Abort with `code`. The
   * launcher kills the other ranks and exits non-zero. Never returns.
   */
  abort(code: number, message: string): never;
  /** MPI_Finalize (collective; done at exit when not called). Later calls of this communicator throw. */
  finalize(): void;
}

/** Checks a root argument. */
export function checkRoot(op: string, root: number, size: number): void {
  if (!Number.isInteger(root) || root < 0 || root >= size)
    throw new WgflowError(`distributed: ${op}: root ${root} is not a rank (the job has ${size})`);
}

/** Checks that `buf` is a Float32Array (callers may be untyped JavaScript). */
export function checkFloat32(op: string, buf: unknown): asserts buf is Float32Array {
  if (!(buf instanceof Float32Array))
    throw new WgflowError(`distributed: ${op} takes a Float32Array, not ${describeValue(buf)}`);
}

/** Checks that `buf` is a typed array or DataView. */
export function checkView(op: string, buf: unknown): asserts buf is ArrayBufferView {
  if (!ArrayBuffer.isView(buf))
    throw new WgflowError(`distributed: ${op} takes a typed array or DataView, not ${describeValue(buf)}`);
}

/** Checks that `buf` is a Uint8Array (a Buffer is one). */
export function checkBytes(op: string, buf: unknown): asserts buf is Uint8Array {
  if (!(buf instanceof Uint8Array))
    throw new WgflowError(`distributed: ${op} takes a Uint8Array, not ${describeValue(buf)}`);
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'an object';
}

/** Writes to file descriptor 2 synchronously, so the text is out before the process is killed. */
export function writeStderr(text: string): void {
  try {
    writeSync(2, text.endsWith('\n') ? text : `${text}\n`);
  } catch {
    // stderr closed: nothing more to do
  }
}

/** Rank 0 of 1: the collectives are identities, abort prints and exits. */
export class SingleProcessCommunicator implements Communicator {
  readonly kind = 'single' as const;
  readonly rank = 0;
  readonly size = 1;
  readonly description = 'single process';
  private finalized = false;

  private alive(op: string): void {
    if (this.finalized) throw new WgflowError(`distributed: ${op} after finalize()`);
  }

  allreduceSum(buf: Float32Array): void {
    this.alive('allreduceSum');
    checkFloat32('allreduceSum', buf);
  }

  bcast(buf: ArrayBufferView, root = 0): void {
    this.alive('bcast');
    checkView('bcast', buf);
    checkRoot('bcast', root, 1);
  }

  gatherv(send: Uint8Array, root = 0): Uint8Array[] | undefined {
    this.alive('gatherv');
    checkBytes('gatherv', send);
    checkRoot('gatherv', root, 1);
    return [send.slice()];
  }

  barrier(): void {
    this.alive('barrier');
  }

  abort(code: number, message: string): never {
    writeStderr(`wgflow distributed: abort (code ${code}): ${message}`);
    process.exit(code);
  }

  finalize(): void {
    this.finalized = true;
  }
}
