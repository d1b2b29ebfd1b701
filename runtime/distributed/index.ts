/**
 * Distributed runs over MPI: `getCommunicator()` gives rank, size and the collectives that data-parallel
 * training (gradient allreduce, parameter broadcast) and sharded detection (gather at the root) need.
 * MPI is used only when the process runs under an MPI launcher (mpirun / mpiexec of Open MPI or MPICH),
 * or when asked; otherwise the communicator is rank 0 of 1 and every collective is an identity, so
 * callers need no branches. The MPI library is loaded through koffi, only then.
 *
 * ```ts
 * import { bcastJson, getCommunicator } from 'wgflow/runtime/distributed';
 * const comm = await getCommunicator();
 * const config = bcastJson(comm, comm.rank === 0 ? chooseConfig() : undefined);
 * comm.bcast(params);                                   // rank 0's initial parameters everywhere
 * comm.allreduceSum(grads);                             // then divide by comm.size for the mean
 * ```
 * `mpirun -np 4 node train.js` (Open MPI as root also needs --allow-run-as-root; more ranks than cores,
 * --oversubscribe). Collectives block Node's event loop while they wait (see Communicator).
 *
 * @module
 */
import { type Communicator, SingleProcessCommunicator } from './communicator.js';
import { detectMpiLaunch, type MpiMode, mpiModeFromEnv } from './launch.js';
import { MpiCommunicator } from './mpi-communicator.js';
import { DEFAULT_WATCHDOG_SECONDS, watchdogSecondsFromEnv } from './watchdog.js';

export {
  type Communicator,
  type CommunicatorKind,
  SingleProcessCommunicator,
} from './communicator.js';
export { bcastJson, gatherJson } from './json.js';
export { detectMpiLaunch, type MpiLaunch, type MpiLauncherFamily, type MpiMode } from './launch.js';
export { DEFAULT_WATCHDOG_SECONDS } from './watchdog.js';

export interface CommunicatorOptions {
  /**
   * `auto` (the default, unless $WGFLOW_MPI says otherwise): MPI when an MPI launcher started the process,
   * else a single process. `on`: MPI in any case (without a launcher, MPI_Init makes a job of 1).
   * `off`: a single process even under a launcher.
   */
  readonly mpi?: MpiMode;
  /** The MPI library file (default: $WGFLOW_MPI_LIBRARY, else probed: libmpi.so.40, libmpich.so.12, libmpi.so.12). */
  readonly library?: string;
  /**
   * The longest one blocking MPI call may take before this rank is killed, so that the launcher ends
   * the job instead of leaving it hung (default: $WGFLOW_MPI_TIMEOUT_S, else 1800 s; 0 = no limit).
   */
  readonly watchdogSeconds?: number;
  /** @internal The largest element count per MPI call (tests of the chunking). */
  readonly maxCountPerCall?: number;
}

let shared: Promise<Communicator> | undefined;

/**
 * The process's communicator, created (and MPI initialized) on the first call; later calls return the
 * same one, whatever their options. MPI_Finalize runs at exit if `finalize()` was not called.
 */
export function getCommunicator(opts: CommunicatorOptions = {}): Promise<Communicator> {
  shared ??= createCommunicator(opts);
  return shared;
}

async function createCommunicator(opts: CommunicatorOptions): Promise<Communicator> {
  const mode = opts.mpi ?? mpiModeFromEnv() ?? 'auto';
  const launch = detectMpiLaunch();
  if (mode === 'off' || (mode === 'auto' && !launch)) return new SingleProcessCommunicator();
  return MpiCommunicator.init({
    launch,
    library: opts.library,
    watchdogSeconds: opts.watchdogSeconds ?? watchdogSecondsFromEnv() ?? DEFAULT_WATCHDOG_SECONDS,
    maxCountPerCall: opts.maxCountPerCall,
  });
}
