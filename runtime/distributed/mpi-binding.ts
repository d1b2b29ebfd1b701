/**
 * The MPI C library through koffi: the dozen calls the communicator needs, with the handle values of
 * the MPI build in use. koffi is imported lazily, so nothing loads unless MPI is asked for.
 *
 * The two ABIs differ in what a handle is (MPI_Comm, MPI_Datatype, MPI_Op, MPI_Errhandler):
 * - Open MPI (libmpi.so.40): a pointer. mpi.h defines MPI_COMM_WORLD as `&ompi_mpi_comm_world` (through
 *   OMPI_PREDEFINED_GLOBAL), so each predefined handle is the address of a global symbol of libmpi, read
 *   here with `lib.symbol()`. MPI_IN_PLACE is `(void *) 1`.
 * - MPICH (libmpich.so.12; also its ABI-compatible derivatives): a 32-bit int constant fixed by the
 *   MPICH ABI. MPI_IN_PLACE is `(void *) -1`.
 * Every value below was checked against Debian bookworm's headers
 * (/usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h of Open MPI 4.1.4 and
 * /usr/include/x86_64-linux-gnu/mpich/mpi.h of MPICH 4.0.2); test/mpi.test.ts checks them again against
 * whichever of those headers is installed.
 */
import type * as Koffi from 'koffi';
import { WgflowError } from '../errors.js';
import type { MpiLaunch } from './launch.js';

/** The MPI ABI of a loaded library. */
export type MpiFamily = 'openmpi' | 'mpich';

/** A handle as the ABI passes it: an address (Open MPI) or an int (MPICH). */
export type MpiHandle = bigint | number;

/** The predefined handles the communicator uses. */
export interface MpiHandles {
  readonly commWorld: MpiHandle;
  readonly float: MpiHandle;
  readonly byte: MpiHandle;
  readonly opSum: MpiHandle;
  readonly errorsReturn: MpiHandle;
  /** MPI_IN_PLACE, a pointer value. */
  readonly inPlace: bigint;
}

/** Open MPI: the global symbols whose addresses are the handles (mpi.h: OMPI_PREDEFINED_GLOBAL(type, symbol)). */
export const OPENMPI_HANDLE_SYMBOLS = {
  commWorld: 'ompi_mpi_comm_world',
  float: 'ompi_mpi_float',
  byte: 'ompi_mpi_byte',
  opSum: 'ompi_mpi_op_sum',
  errorsReturn: 'ompi_mpi_errors_return',
} as const;

/** Open MPI's MPI_IN_PLACE (mpi.h: `#define MPI_IN_PLACE ((void *) 1)`). */
export const OPENMPI_IN_PLACE = 1n;

/** MPICH's handle constants (mpi.h: `#define MPI_COMM_WORLD ((MPI_Comm)0x44000000)` and so on). */
export const MPICH_HANDLES = {
  commWorld: 0x44000000,
  float: 0x4c00040a,
  byte: 0x4c00010d,
  opSum: 0x58000003,
  errorsReturn: 0x54000001,
} as const;

/** MPICH's MPI_IN_PLACE (mpi.h: `#define MPI_IN_PLACE (void *) -1`), as a 64-bit pointer. */
export const MPICH_IN_PLACE = 0xffff_ffff_ffff_ffffn;

/** MPI_THREAD_FUNNELED (1 in both headers): only the main thread calls MPI. */
export const MPI_THREAD_FUNNELED = 1;

/** The library names tried for each family, in order (Debian: libopenmpi3 and libmpich12 ship them). */
export const MPI_LIBRARIES: Readonly<Record<MpiFamily, readonly string[]>> = {
  openmpi: ['libmpi.so.40'],
  mpich: ['libmpich.so.12', 'libmpi.so.12'],
};

/** What to install, per family, for the message shown when the library is missing. */
const INSTALL_HINT: Record<MpiFamily, string> = {
  openmpi:
    'Open MPI (Debian/Ubuntu: apt-get install openmpi-bin, which brings libmpi.so.40; in a wgflow clone: bash scripts/setup-mpi.sh)',
  mpich:
    'MPICH (Debian/Ubuntu: apt-get install mpich, which brings libmpich.so.12; in a wgflow clone: bash scripts/setup-mpi.sh)',
};

/** The raw calls; each returns the MPI error code (0 = MPI_SUCCESS). Buffers are passed without copies. */
export interface MpiCalls {
  initThread(argc: null, argv: null, required: number, provided: number[]): number;
  initialized(flag: number[]): number;
  finalized(flag: number[]): number;
  finalize(): number;
  commRank(comm: MpiHandle, rank: number[]): number;
  commSize(comm: MpiHandle, size: number[]): number;
  commSetErrhandler(comm: MpiHandle, errhandler: MpiHandle): number;
  allreduce(
    send: ArrayBufferView | bigint | null,
    recv: ArrayBufferView | null,
    count: number,
    datatype: MpiHandle,
    op: MpiHandle,
    comm: MpiHandle,
  ): number;
  bcast(buf: ArrayBufferView | null, count: number, datatype: MpiHandle, root: number, comm: MpiHandle): number;
  allgather(
    send: ArrayBufferView,
    sendCount: number,
    sendType: MpiHandle,
    recv: ArrayBufferView,
    recvCount: number,
    recvType: MpiHandle,
    comm: MpiHandle,
  ): number;
  gatherv(
    send: ArrayBufferView | null,
    sendCount: number,
    sendType: MpiHandle,
    recv: ArrayBufferView | null,
    recvCounts: Int32Array | null,
    displs: Int32Array | null,
    recvType: MpiHandle,
    root: number,
    comm: MpiHandle,
  ): number;
  barrier(comm: MpiHandle): number;
  abort(comm: MpiHandle, code: number): number;
  errorString(code: number, text: Buffer, length: number[]): number;
  libraryVersion(text: Buffer, length: number[]): number;
}

/** A loaded MPI library: its ABI, handles and calls. */
export interface MpiLibrary {
  readonly family: MpiFamily;
  /** The file that was loaded (as given to dlopen). */
  readonly path: string;
  /** The first line of MPI_Get_library_version, e.g. `Open MPI v4.1.4, …` or `MPICH Version: 4.0.2`. */
  readonly version: string;
  readonly handles: MpiHandles;
  readonly calls: MpiCalls;
  /** MPI_Error_string of a code, with the code. */
  describe(code: number): string;
}

/** C prototypes; `H` is the handle type of the ABI (`void *` for Open MPI, `int` for MPICH). */
function prototypes(H: string): Record<keyof MpiCalls, string> {
  return {
    initThread: 'int MPI_Init_thread(void *argc, void *argv, int required, _Out_ int *provided)',
    initialized: 'int MPI_Initialized(_Out_ int *flag)',
    finalized: 'int MPI_Finalized(_Out_ int *flag)',
    finalize: 'int MPI_Finalize()',
    commRank: `int MPI_Comm_rank(${H} comm, _Out_ int *rank)`,
    commSize: `int MPI_Comm_size(${H} comm, _Out_ int *size)`,
    commSetErrhandler: `int MPI_Comm_set_errhandler(${H} comm, ${H} errhandler)`,
    allreduce: `int MPI_Allreduce(void *sendbuf, void *recvbuf, int count, ${H} datatype, ${H} op, ${H} comm)`,
    bcast: `int MPI_Bcast(void *buffer, int count, ${H} datatype, int root, ${H} comm)`,
    allgather: `int MPI_Allgather(void *sendbuf, int sendcount, ${H} sendtype, void *recvbuf, int recvcount, ${H} recvtype, ${H} comm)`,
    gatherv: `int MPI_Gatherv(void *sendbuf, int sendcount, ${H} sendtype, void *recvbuf, void *recvcounts, void *displs, ${H} recvtype, int root, ${H} comm)`,
    barrier: `int MPI_Barrier(${H} comm)`,
    abort: `int MPI_Abort(${H} comm, int errorcode)`,
    errorString: 'int MPI_Error_string(int errorcode, _Out_ uint8_t *string, _Out_ int *resultlen)',
    libraryVersion: 'int MPI_Get_library_version(_Out_ uint8_t *version, _Out_ int *resultlen)',
  };
}

/** MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI 4.1 and 8192 in MPICH 4.0: room for the larger. */
const VERSION_BYTES = 8192;
/** MPI_MAX_ERROR_STRING is 256 (Open MPI) and 512 (MPICH). */
const ERROR_BYTES = 1024;

/** Versions of the MPICH ABI (MPICH and the libraries built on it keep its handle values). */
const MPICH_ABI = /MPICH|MVAPICH|Intel\(R\) MPI/;

export interface LoadMpiOptions {
  /** A library file to load instead of probing (also $WGFLOW_MPI_LIBRARY). */
  readonly library?: string;
  /** The launch this process is part of: its family decides which libraries are tried. */
  readonly launch?: MpiLaunch;
}

let koffiModule: typeof Koffi | undefined;

async function loadKoffi(): Promise<typeof Koffi> {
  if (!koffiModule) {
    try {
      koffiModule = await import('koffi');
    } catch (e) {
      throw new WgflowError(`distributed: the FFI package koffi could not be loaded (${(e as Error).message})`);
    }
  }
  return koffiModule;
}

const cString = (buf: Buffer, length: number): string =>
  buf.toString('utf8', 0, Math.max(0, Math.min(length, buf.length))).replace(/\0.*$/s, '');

/** The libraries to try, in order, and what a missing one means. */
function candidates(opts: LoadMpiOptions): { files: string[]; expect?: MpiFamily } {
  const override = opts.library ?? (process.env.WGFLOW_MPI_LIBRARY || undefined);
  const family = opts.launch?.family;
  const expect = family === 'openmpi' || family === 'mpich' ? family : undefined;
  if (override) return { files: [override], expect };
  if (expect) return { files: [...MPI_LIBRARIES[expect]], expect };
  return { files: [...MPI_LIBRARIES.openmpi, ...MPI_LIBRARIES.mpich] };
}

function launchText(launch: MpiLaunch | undefined): string {
  if (!launch) return 'MPI was requested (WGFLOW_MPI=on or { mpi: "on" })';
  const who =
    launch.family === 'openmpi'
      ? "Open MPI's mpirun"
      : launch.family === 'mpich'
        ? "MPICH's Hydra mpiexec"
        : 'a PMIx launcher';
  return `this process was started by ${who} (${launch.evidence.join(', ')})`;
}

/**
 * Loads the MPI library (RTLD_GLOBAL, so that the plugins Open MPI dlopens see libmpi's symbols),
 * tells its ABI from its symbols, and resolves the handles. Nothing is initialized yet.
 */
export async function loadMpiLibrary(opts: LoadMpiOptions = {}): Promise<MpiLibrary> {
  const koffi = await loadKoffi();
  const { files, expect } = candidates(opts);
  // UCX (under Debian's MPICH, and Open MPI's UCX components) installs its own SIGSEGV handler over
  // V8's, and V8 needs its own: WebAssembly bounds checks are SIGSEGV traps that V8 turns into
  // exceptions; under UCX's handler an out-of-bounds wasm access kills the process instead. UCX reads
  // its settings when libucs is loaded, so this must precede the dlopen. A value set by the user stays.
  if (process.env.UCX_ERROR_SIGNALS === undefined) process.env.UCX_ERROR_SIGNALS = '';
  // UCX's memory events (libucm patching mmap/munmap/brk and malloc while MPI_Init runs) race with the
  // threads Node already runs (V8's compiler and GC threads, libuv's pool): under load about one job in
  // 50 of Debian's MPICH (ch4:ucx) segfaulted in glibc's malloc inside MPI_Init_thread (measured here,
  // with a core dump; openucx/ucx#3831 is the same crash, gone with UCX_MEM_EVENTS=no). wgflow passes
  // host buffers of a few MB per call, so UCX's registration cache, which those events feed, is not
  // needed. A value set by the user stays (RDMA clusters may want the cache).
  if (process.env.UCX_MEM_EVENTS === undefined) process.env.UCX_MEM_EVENTS = 'no';
  const failures: string[] = [];
  for (const file of files) {
    let lib: Koffi.LibraryHandle;
    try {
      lib = koffi.load(file, { global: true });
    } catch (e) {
      failures.push(`${file}: ${(e as Error).message}`);
      continue;
    }
    return bind(lib, file, expect, opts.launch);
  }
  const install =
    expect !== undefined
      ? INSTALL_HINT[expect]
      : `${INSTALL_HINT.openmpi}, or ${INSTALL_HINT.mpich}; the library must match the mpirun that starts the job`;
  throw new WgflowError(
    `distributed: ${launchText(opts.launch)}, but no MPI library could be loaded (${failures.join('; ')}). ` +
      `Install ${install}, or set WGFLOW_MPI_LIBRARY to the library's path.`,
  );
}

function bind(
  lib: Koffi.LibraryHandle,
  path: string,
  expect: MpiFamily | undefined,
  launch: MpiLaunch | undefined,
): MpiLibrary {
  const symbol = (name: string): bigint | undefined => {
    try {
      const address = lib.symbol(name) as unknown;
      return typeof address === 'bigint' && address !== 0n ? address : undefined;
    } catch {
      return undefined;
    }
  };
  const family: MpiFamily | undefined = symbol(OPENMPI_HANDLE_SYMBOLS.commWorld) !== undefined ? 'openmpi' : undefined;
  const declare = (H: string): MpiCalls => {
    const calls = {} as Record<keyof MpiCalls, unknown>;
    for (const [key, proto] of Object.entries(prototypes(H)) as [keyof MpiCalls, string][]) {
      try {
        calls[key] = lib.func(proto);
      } catch (e) {
        throw new WgflowError(`distributed: ${path} lacks ${proto} (${(e as Error).message}); is it an MPI library?`);
      }
    }
    return calls as unknown as MpiCalls;
  };
  const calls = declare(family === 'openmpi' ? 'void *' : 'int');
  const versionBuf = Buffer.alloc(VERSION_BYTES);
  const versionLen = [0];
  // MPI-3 allows MPI_Get_library_version before MPI_Init.
  const versionText = calls.libraryVersion(versionBuf, versionLen) === 0 ? cString(versionBuf, versionLen[0] ?? 0) : '';
  const version = versionText.split('\n')[0]?.trim() ?? '';
  let abi: MpiFamily;
  let handles: MpiHandles;
  if (family === 'openmpi') {
    const resolved: Record<string, bigint> = {};
    for (const [key, name] of Object.entries(OPENMPI_HANDLE_SYMBOLS)) {
      const address = symbol(name);
      if (address === undefined) throw new WgflowError(`distributed: ${path} (Open MPI) lacks the symbol ${name}`);
      resolved[key] = address;
    }
    abi = 'openmpi';
    handles = { ...(resolved as Record<keyof typeof OPENMPI_HANDLE_SYMBOLS, bigint>), inPlace: OPENMPI_IN_PLACE };
  } else if (MPICH_ABI.test(versionText)) {
    abi = 'mpich';
    handles = { ...MPICH_HANDLES, inPlace: MPICH_IN_PLACE };
  } else {
    throw new WgflowError(
      `distributed: ${path} is neither Open MPI (no symbol ompi_mpi_comm_world) nor an MPICH-ABI library ` +
        `(its version: ${JSON.stringify(version || '(none)')}); wgflow supports those two`,
    );
  }
  if (expect !== undefined && abi !== expect)
    throw new WgflowError(
      `distributed: ${launchText(launch)}, but ${path} is ${abi === 'openmpi' ? 'Open MPI' : 'MPICH'}: ` +
        'the library must come from the same MPI as the launcher (set WGFLOW_MPI_LIBRARY accordingly, or use the matching mpirun)',
    );
  const describe = (code: number): string => {
    const text = Buffer.alloc(ERROR_BYTES);
    const len = [0];
    const ok = calls.errorString(code, text, len) === 0;
    return ok ? `${cString(text, len[0] ?? 0)} (error ${code})` : `MPI error ${code}`;
  };
  // koffi unloads a library once nothing refers to it; the declared functions refer to it.
  return { family: abi, path, version: version || `${abi} (${path})`, handles, calls, describe };
}
