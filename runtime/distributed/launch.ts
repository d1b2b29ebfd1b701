/**
 * Whether this process was started by an MPI launcher, and by which family, read from the environment
 * the launcher sets for each rank. Nothing is loaded here: the answer decides whether MPI is loaded at all.
 *
 * What each launcher sets (checked with Debian bookworm's `mpirun.openmpi` 4.1.4 and `mpirun.mpich`
 * (Hydra) 4.0.2):
 * - Open MPI's mpirun/orterun: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE (and PMIX_RANK, PMIX_NAMESPACE).
 * - MPICH's Hydra mpiexec: PMI_RANK, PMI_SIZE, PMI_FD, MPI_LOCALNRANKS, MPI_LOCALRANKID, HYDI_CONTROL_FD.
 * - A PMIx launcher that is not Open MPI's (Slurm `srun --mpi=pmix`, PRRTE): PMIX_RANK, and no size.
 */
import { WgflowError } from '../errors.js';

/** The MPI family whose launcher started this process; 'pmix' when only PMIx variables say so. */
export type MpiLauncherFamily = 'openmpi' | 'mpich' | 'pmix';

/** What the environment says about the launch. */
export interface MpiLaunch {
  readonly family: MpiLauncherFamily;
  /** This process's rank, when the launcher says it. */
  readonly rank?: number;
  /** The number of ranks, when the launcher says it (PMIx alone does not). */
  readonly size?: number;
  /** The variables that identified the launcher, `NAME=value`, for messages. */
  readonly evidence: readonly string[];
}

/** Environment variables, as in process.env. */
type Env = Readonly<Record<string, string | undefined>>;

const intOf = (v: string | undefined): number | undefined => {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v.trim());
};

function evidenceOf(env: Env, names: readonly string[]): string[] {
  return names.filter((n) => env[n] !== undefined).map((n) => `${n}=${env[n]}`);
}

/**
 * The launch this environment describes, or undefined when no MPI launcher started the process.
 * OMPI_ALLOW_RUN_AS_ROOT and other OMPI_* settings a user may export do not count: only the per-rank
 * variables a launcher writes do.
 */
export function detectMpiLaunch(
  env: Readonly<Record<string, string | undefined>> = process.env,
): MpiLaunch | undefined {
  if (env.OMPI_COMM_WORLD_SIZE !== undefined || env.OMPI_COMM_WORLD_RANK !== undefined) {
    return {
      family: 'openmpi',
      rank: intOf(env.OMPI_COMM_WORLD_RANK),
      size: intOf(env.OMPI_COMM_WORLD_SIZE),
      evidence: evidenceOf(env, ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE']),
    };
  }
  const hydra = ['PMI_RANK', 'PMI_SIZE', 'PMI_FD', 'PMI_PORT', 'MPI_LOCALNRANKS', 'HYDI_CONTROL_FD'];
  if (hydra.some((n) => env[n] !== undefined)) {
    return {
      family: 'mpich',
      rank: intOf(env.PMI_RANK),
      size: intOf(env.PMI_SIZE),
      evidence: evidenceOf(
        env,
        env.PMI_RANK !== undefined || env.PMI_SIZE !== undefined ? ['PMI_RANK', 'PMI_SIZE'] : hydra,
      ),
    };
  }
  if (env.PMIX_RANK !== undefined) {
    return { family: 'pmix', rank: intOf(env.PMIX_RANK), evidence: evidenceOf(env, ['PMIX_RANK', 'PMIX_NAMESPACE']) };
  }
  return undefined;
}

/** How to decide whether to use MPI: `auto` = only under a launcher; `on` = always (a singleton without one); `off` = never. */
export type MpiMode = 'auto' | 'on' | 'off';

/** The mode from WGFLOW_MPI (`auto`, `1`/`on`/`true`, `0`/`off`/`false`); undefined when unset or empty; any other value is an error. */
export function mpiModeFromEnv(env: Env = process.env): MpiMode | undefined {
  const v = env.WGFLOW_MPI?.trim().toLowerCase();
  if (!v) return undefined;
  if (v === 'auto') return 'auto';
  if (v === '1' || v === 'on' || v === 'true' || v === 'yes') return 'on';
  if (v === '0' || v === 'off' || v === 'false' || v === 'no') return 'off';
  throw new WgflowError(`WGFLOW_MPI=${env.WGFLOW_MPI}: expected auto, on (1) or off (0)`);
}
