/**
 * runtime/distributed against the real MPI builds of Debian: Open MPI 4.1 (mpirun.openmpi,
 * libmpi.so.40) and MPICH 4.0 (mpirun.mpich, libmpich.so.12). Each family's jobs run test/mpi-rank.ts
 * under its own mpirun: the collectives on seeded random data (2 and 3 ranks, with and without chunked
 * calls), then the failures that must end the job instead of hanging it: a rank killed with SIGKILL, an
 * uncaught error, a non-zero exit before MPI_Finalize, a rank that hangs outside MPI (the watchdog).
 * A family whose mpirun is missing is skipped with a message (.ci/run installs both, scripts/setup-mpi.sh).
 * Without any MPI, the launch detection, the single-process communicator and the missing-library
 * message are still tested, and the handle constants are checked against whichever mpi.h is installed.
 */
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  bcastJson,
  detectMpiLaunch,
  gatherJson,
  getCommunicator,
  SingleProcessCommunicator,
} from '../runtime/distributed/index.js';
import { mpiModeFromEnv } from '../runtime/distributed/launch.js';
import {
  loadMpiLibrary,
  MPI_THREAD_FUNNELED,
  MPICH_HANDLES,
  MPICH_IN_PLACE,
  OPENMPI_HANDLE_SYMBOLS,
  OPENMPI_IN_PLACE,
} from '../runtime/distributed/mpi-binding.js';
import { watchdogSecondsFromEnv } from '../runtime/distributed/watchdog.js';
import { WgflowError } from '../runtime/errors.js';
import { REPO } from './cli-process.js';
import { testRandom, testSeed } from './seeds.js';

type Family = 'openmpi' | 'mpich';
const RANK_SCRIPT = join(REPO, 'test', 'mpi-rank.ts');
const SEED = testSeed('mpi');
/** A job that outlives this is hung: it is killed and the test fails. */
const HANG_MS = 90_000;
/** The bound of the acceptance criterion: a job with a dead rank ends within this. */
const END_WITHIN_MS = 60_000;

const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** The family's launcher: Debian's mpirun.<family>, else a plain `mpirun` that says it is that family. */
function launcherOf(family: Family): string | undefined {
  if (onPath(`mpirun.${family}`)) return `mpirun.${family}`;
  if (!onPath('mpirun')) return undefined;
  const v = spawnSync('mpirun', ['--version'], { encoding: 'utf8', timeout: 20_000 });
  const text = `${v.stdout}${v.stderr}`;
  return (family === 'openmpi' ? /Open MPI|OpenRTE/ : /HYDRA|MPICH/).test(text) ? 'mpirun' : undefined;
}

const NAMES: Record<Family, string> = { openmpi: 'Open MPI', mpich: 'MPICH' };
const PACKAGES: Record<Family, string> = { openmpi: 'openmpi-bin', mpich: 'mpich' };
const LAUNCHERS: Record<Family, string | undefined> = { openmpi: launcherOf('openmpi'), mpich: launcherOf('mpich') };
for (const family of ['openmpi', 'mpich'] as const)
  if (!LAUNCHERS[family])
    console.warn(
      `mpi.test.ts: skipped the ${NAMES[family]} jobs: no mpirun.${family} (apt-get install ${PACKAGES[family]}; .ci/run does, through scripts/setup-mpi.sh)`,
    );

interface JobResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  /** When the job ended (Date.now()). */
  readonly endedAt: number;
  readonly hung: boolean;
}

/** Waits for a process (in its own process group, killed whole after HANG_MS). Never rejects. */
function waitFor(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<JobResult> {
  const t0 = performance.now();
  const opts: SpawnOptions = {
    cwd: REPO,
    env: { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  };
  return new Promise((resolve) => {
    const child = spawn(cmd, args, opts);
    let stdout = '';
    let stderr = '';
    let hung = false;
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      hung = true;
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, HANG_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0, endedAt: Date.now(), hung });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderr: `${stderr}${e.message}`, ms: 0, endedAt: Date.now(), hung });
    });
  });
}

/** `mpirun -np <ranks> node --import tsx test/mpi-rank.ts <scenario> <family> <seed>`. */
function mpiJob(family: Family, ranks: number, scenario: string, env: NodeJS.ProcessEnv = {}): Promise<JobResult> {
  const launcher = LAUNCHERS[family] as string;
  const extra = family === 'openmpi' ? ['--oversubscribe'] : [];
  const rankCmd = [process.execPath, '--import', 'tsx', RANK_SCRIPT, scenario, family, String(SEED)];
  return waitFor(launcher, [...extra, '-np', String(ranks), ...rankCmd], env);
}

const show = (r: JobResult): string =>
  `exit ${r.code}${r.signal ? ` (${r.signal})` : ''} after ${(r.ms / 1000).toFixed(1)} s${r.hung ? ', HUNG (killed)' : ''}\n` +
  `--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** What each launcher prints when a rank dies by SIGKILL. */
const KILLED: Record<Family, RegExp> = {
  openmpi: /noticed that process rank \d+ with PID \d+ on node \S+ exited on signal 9 \(Killed\)/,
  mpich: /BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES[\s\S]*Killed \(signal 9\)/,
};

/** Asserts that the job failed, in bounded time, without being killed here. */
function expectEnded(r: JobResult): void {
  expect(r.hung, show(r)).toBe(false);
  expect(r.code !== 0, show(r)).toBe(true);
  expect(r.ms, show(r)).toBeLessThan(END_WITHIN_MS);
}

for (const family of ['openmpi', 'mpich'] as const) {
  describe.skipIf(!LAUNCHERS[family])(`${NAMES[family]} (${LAUNCHERS[family] ?? 'absent'})`, () => {
    const okLines = (r: JobResult, size: number) => {
      for (let rank = 0; rank < size; rank++)
        expect(r.stdout, show(r)).toMatch(new RegExp(`^ok rank ${rank}/${size} checks=(2\\d|[3-9]\\d)$`, 'm'));
    };

    it('collectives on 2 ranks: allreduce, bcast, gatherv, barrier, JSON helpers; explicit finalize', async () => {
      const r = await mpiJob(family, 2, 'collectives');
      expect(r.code, show(r)).toBe(0);
      okLines(r, 2);
      console.log(`${family}: collectives, 2 ranks: ${(r.ms / 1000).toFixed(1)} s`);
    });

    it('collectives on 3 ranks with calls chunked at 997 elements; MPI_Finalize by the exit hook', async () => {
      const r = await mpiJob(family, 3, 'collectives', { MPI_TEST_CHUNK: '997', MPI_TEST_IMPLICIT_FINALIZE: '1' });
      expect(r.code, show(r)).toBe(0);
      okLines(r, 3);
      console.log(`${family}: collectives, 3 ranks, chunked: ${(r.ms / 1000).toFixed(1)} s`);
    });

    it('a rank killed with SIGKILL in a loop of allreduces ends the job, with the launcher saying so', async () => {
      const r = await mpiJob(family, 3, 'kill');
      expectEnded(r);
      // Hydra prints its report on stdout, mpirun on stderr.
      expect(r.stdout + r.stderr, show(r)).toMatch(KILLED[family]);
      const killedAt = Number(/sends itself SIGKILL at (\d+)/.exec(r.stderr)?.[1]);
      expect(Number.isFinite(killedAt), show(r)).toBe(true);
      console.log(
        `${family}: SIGKILL of rank 2 of 3: the job ended ${r.endedAt - killedAt} ms after the kill ` +
          `(exit ${r.code}; ${(r.ms / 1000).toFixed(1)} s in all)`,
      );
    });

    it('an uncaught error on one rank aborts the job with that rank’s message', async () => {
      const r = await mpiJob(family, 2, 'throw');
      expectEnded(r);
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr, show(r)).toMatch(
        /wgflow distributed: rank 1 of 2 aborts the job \(code 1\): uncaught error on this rank/,
      );
      expect(r.stderr, show(r)).toMatch(/Error: deliberate failure on rank 1/);
    });

    it('a non-zero exit before MPI_Finalize aborts the job with that status', async () => {
      const r = await mpiJob(family, 2, 'exit3');
      expectEnded(r);
      expect(r.code, show(r)).toBe(3);
      expect(r.stderr, show(r)).toMatch(
        /rank 1 of 2 aborts the job \(code 3\): this rank is exiting with status 3 before MPI_Finalize/,
      );
    });

    it('a rank that hangs outside MPI: the watchdog of the waiting rank ends the job', async () => {
      const r = await mpiJob(family, 2, 'hang', { WGFLOW_MPI_TIMEOUT_S: '3' });
      expectEnded(r);
      expect(r.stderr, show(r)).toMatch(
        /wgflow distributed: rank 0 of 2 \(pid \d+\): MPI_Allreduce \(MPI call #\d+\) has not returned after \d+ s: a peer rank died, hangs/,
      );
      // Rank 1 sleeps 60 s: the job must end long before.
      expect(r.ms, show(r)).toBeLessThan(40_000);
      console.log(`${family}: hung rank, watchdog 3 s: the job ended after ${(r.ms / 1000).toFixed(1)} s`);
    });

    it('the other family’s library under this launcher is refused with a clear message', async () => {
      const other = family === 'openmpi' ? 'libmpich.so.12' : 'libmpi.so.40';
      const r = await mpiJob(family, 2, 'hello', { WGFLOW_MPI_LIBRARY: other });
      expectEnded(r);
      expect(r.stderr, show(r)).toMatch(/the library must come from the same MPI as the launcher/);
    });

    it('WGFLOW_MPI=on without a launcher: a real MPI job of one process', async () => {
      const lib = family === 'openmpi' ? 'libmpi.so.40' : 'libmpich.so.12';
      const r = await waitFor(process.execPath, ['--import', 'tsx', RANK_SCRIPT, 'hello', family, '1'], {
        WGFLOW_MPI: 'on',
        WGFLOW_MPI_LIBRARY: lib,
      });
      expect(r.code, show(r)).toBe(0);
      expect(JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}'), show(r)).toMatchObject({
        rank: 0,
        size: 1,
        kind: family,
      });
    });
  });
}

describe('launch detection', () => {
  it('recognizes each launcher from the variables it sets, and nothing else', () => {
    // As mpirun.openmpi 4.1.4 and mpirun.mpich 4.0.2 set them (among others).
    expect(
      detectMpiLaunch({
        OMPI_COMM_WORLD_RANK: '2',
        OMPI_COMM_WORLD_SIZE: '3',
        PMIX_RANK: '2',
        OMPI_MCA_ess: '^singleton',
      }),
    ).toEqual({ family: 'openmpi', rank: 2, size: 3, evidence: ['OMPI_COMM_WORLD_RANK=2', 'OMPI_COMM_WORLD_SIZE=3'] });
    expect(
      detectMpiLaunch({ PMI_RANK: '1', PMI_SIZE: '4', PMI_FD: '6', MPI_LOCALNRANKS: '4', HYDI_CONTROL_FD: '7' }),
    ).toEqual({
      family: 'mpich',
      rank: 1,
      size: 4,
      evidence: ['PMI_RANK=1', 'PMI_SIZE=4'],
    });
    expect(detectMpiLaunch({ MPI_LOCALNRANKS: '2' })?.family).toBe('mpich');
    expect(detectMpiLaunch({ PMIX_RANK: '5', PMIX_NAMESPACE: 'slurm.pmix.7.0' })).toMatchObject({
      family: 'pmix',
      rank: 5,
    });
    expect(detectMpiLaunch({ PMIX_RANK: '5' })?.size).toBeUndefined();
    // Settings a user exports are not a launch.
    expect(
      detectMpiLaunch({ OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_btl: 'self' }),
    ).toBeUndefined();
    expect(detectMpiLaunch({})).toBeUndefined();
  });

  it('reads WGFLOW_MPI and WGFLOW_MPI_TIMEOUT_S, refusing values it does not know', () => {
    expect(mpiModeFromEnv({})).toBeUndefined();
    expect(mpiModeFromEnv({ WGFLOW_MPI: 'auto' })).toBe('auto');
    expect(mpiModeFromEnv({ WGFLOW_MPI: '1' })).toBe('on');
    expect(mpiModeFromEnv({ WGFLOW_MPI: 'OFF' })).toBe('off');
    expect(() => mpiModeFromEnv({ WGFLOW_MPI: 'maybe' })).toThrow(
      /WGFLOW_MPI=maybe: expected auto, on \(1\) or off \(0\)/,
    );
    expect(watchdogSecondsFromEnv({ WGFLOW_MPI_TIMEOUT_S: '2.5' })).toBe(2.5);
    expect(watchdogSecondsFromEnv({ WGFLOW_MPI_TIMEOUT_S: '0' })).toBe(0);
    expect(() => watchdogSecondsFromEnv({ WGFLOW_MPI_TIMEOUT_S: '-1' })).toThrow(/expected a number of seconds >= 0/);
  });
});

describe('single process (no launcher)', () => {
  it.skipIf(detectMpiLaunch() !== undefined)('getCommunicator() is rank 0 of 1 and loads no MPI', async () => {
    const comm = await getCommunicator();
    expect(comm).toBeInstanceOf(SingleProcessCommunicator);
    expect([comm.kind, comm.rank, comm.size]).toEqual(['single', 0, 1]);
  });

  it('its collectives are identities with the same argument checks', () => {
    const comm = new SingleProcessCommunicator();
    const u = testRandom('mpi-single');
    const data = Float32Array.from({ length: 101 }, () => Math.floor(u() * 2001) - 1000);
    const copy = data.slice();
    comm.allreduceSum(data);
    expect(data).toEqual(copy);
    const bytes = Uint8Array.from({ length: 33 }, () => Math.floor(u() * 256));
    comm.bcast(bytes, 0);
    const gathered = comm.gatherv(bytes, 0);
    expect(gathered).toEqual([bytes]);
    expect(gathered?.[0]?.buffer).not.toBe(bytes.buffer);
    comm.barrier();
    expect(bcastJson(comm, { a: [1, 2], b: 'x', c: undefined })).toEqual({ a: [1, 2], b: 'x' });
    expect(gatherJson(comm, { rank: 0 })).toEqual([{ rank: 0 }]);
    expect(() => comm.bcast(bytes, 1)).toThrow(/bcast: root 1 is not a rank \(the job has 1\)/);
    expect(() => comm.allreduceSum(new Float64Array(2) as unknown as Float32Array)).toThrow(WgflowError);
    expect(() => bcastJson(comm, () => 1)).toThrow(/bcastJson: the value is not JSON \(function\)/);
    comm.finalize();
    expect(() => comm.barrier()).toThrow(/barrier after finalize/);
  });
});

describe('MPI library loading', () => {
  it('names what to install when the launcher’s library is missing', async () => {
    const openmpi = detectMpiLaunch({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' });
    await expect(loadMpiLibrary({ library: '/nonexistent/libmpi.so.40', launch: openmpi })).rejects.toThrow(
      /started by Open MPI's mpirun \(OMPI_COMM_WORLD_RANK=0, OMPI_COMM_WORLD_SIZE=2\), but no MPI library could be loaded \(\/nonexistent\/libmpi.so.40: .*\)\. Install Open MPI \(Debian\/Ubuntu: apt-get install openmpi-bin/,
    );
    const mpich = detectMpiLaunch({ PMI_RANK: '0', PMI_SIZE: '2' });
    await expect(loadMpiLibrary({ library: '/nonexistent/libmpich.so.12', launch: mpich })).rejects.toThrow(
      /started by MPICH's Hydra mpiexec .*Install MPICH \(Debian\/Ubuntu: apt-get install mpich/,
    );
    await expect(loadMpiLibrary({ library: '/nonexistent/libmpi.so.40' })).rejects.toThrow(
      /MPI was requested .*apt-get install openmpi-bin.*apt-get install mpich.*WGFLOW_MPI_LIBRARY/,
    );
  });
});

/** The first file matching <dir>/<any>/<rest> for each dir (the multiarch folder varies). */
function findHeader(dirs: readonly string[], rest: string): string | undefined {
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const sub of readdirSync(dir)) {
      const file = join(dir, sub, rest);
      if (existsSync(file)) return file;
    }
  }
  return undefined;
}

const MPICH_HEADER = findHeader(['/usr/include'], 'mpich/mpi.h');
const OPENMPI_HEADER = findHeader(['/usr/lib'], 'openmpi/include/mpi.h');
if (!MPICH_HEADER)
  console.warn('mpi.test.ts: skipped the MPICH mpi.h check: no */mpich/mpi.h (apt-get install libmpich-dev)');
if (!OPENMPI_HEADER)
  console.warn(
    'mpi.test.ts: skipped the Open MPI mpi.h check: no /usr/lib/*/openmpi/include/mpi.h (apt-get install libopenmpi-dev)',
  );

const MACROS: Record<keyof typeof MPICH_HANDLES, string> = {
  commWorld: 'MPI_COMM_WORLD',
  float: 'MPI_FLOAT',
  byte: 'MPI_BYTE',
  opSum: 'MPI_SUM',
  errorsReturn: 'MPI_ERRORS_RETURN',
};

/** The replacement text of `#define NAME …` in a header. */
function macro(header: string, name: string): string {
  const m = new RegExp(`^#define\\s+${name}\\s+(.+?)\\s*(?:/\\*.*)?$`, 'm').exec(header);
  if (!m?.[1]) throw new Error(`no #define ${name}`);
  return m[1];
}

describe('handle values against the installed mpi.h', () => {
  it.skipIf(!MPICH_HEADER)('MPICH: integer constants', () => {
    const h = readFileSync(MPICH_HEADER as string, 'utf8');
    for (const [key, name] of Object.entries(MACROS) as [keyof typeof MACROS, string][]) {
      const hex = /0x[0-9a-fA-F]+/.exec(macro(h, name))?.[0];
      expect(Number(hex), name).toBe(MPICH_HANDLES[key]);
    }
    expect(macro(h, 'MPI_IN_PLACE').replace(/\s+/g, '')).toBe('(void*)-1');
    expect(MPICH_IN_PLACE).toBe(2n ** 64n - 1n);
    expect(Number(macro(h, 'MPI_THREAD_FUNNELED'))).toBe(MPI_THREAD_FUNNELED);
  });

  it.skipIf(!OPENMPI_HEADER)('Open MPI: addresses of global symbols', () => {
    const h = readFileSync(OPENMPI_HEADER as string, 'utf8');
    for (const [key, name] of Object.entries(MACROS) as [keyof typeof MACROS, string][]) {
      const symbol = /OMPI_PREDEFINED_GLOBAL\(\s*\w+\s*,\s*(\w+)\s*\)/.exec(macro(h, name))?.[1];
      expect(symbol, name).toBe(OPENMPI_HANDLE_SYMBOLS[key]);
      expect(h, `extern declaration of ${symbol}`).toMatch(new RegExp(`extern struct \\w+ ${symbol};`));
    }
    expect(macro(h, 'MPI_IN_PLACE').replace(/\s+/g, '')).toBe('((void*)1)');
    expect(OPENMPI_IN_PLACE).toBe(1n);
    // An enum: MPI_THREAD_SINGLE (0), MPI_THREAD_FUNNELED (1), …
    expect(h).toMatch(/enum\s*{\s*MPI_THREAD_SINGLE,\s*MPI_THREAD_FUNNELED,/);
    expect(MPI_THREAD_FUNNELED).toBe(1);
  });
});
