/**
 * One rank of the MPI tests (test/mpi.test.ts starts it under mpirun, as `node --import tsx`, so that the
 * process mpirun watches is the rank itself). Usage: mpi-rank.ts <scenario> <family> <seed>.
 *
 * - collectives: every collective on seeded random data; each rank regenerates every other rank's data
 *   from the seed and checks what it received against sums computed here in float64. Prints
 *   `ok rank R/N checks=K` on stdout when all K checks passed; any failure throws (and so aborts the job).
 *   MPI_TEST_CHUNK sets the per-call element limit (to test the chunking); MPI_TEST_IMPLICIT_FINALIZE=1
 *   leaves MPI_Finalize to the exit hook.
 * - kill: allreduces in a loop; the last rank kills itself with SIGKILL at iteration 20 (printing the time).
 * - throw: the same loop; rank 1 throws at iteration 10 (uncaught).
 * - exit3 / exit0: the same loop; rank 1 calls process.exit(3) / process.exit(0) at iteration 10.
 * - hang: the same loop; rank 1 blocks for 60 s at iteration 10 without calling MPI (a hung GPU, say).
 * - hello: prints rank, size, kind and description as JSON (mismatch and singleton tests).
 */
import { writeSync } from 'node:fs';
import { bcastJson, type Communicator, gatherJson, getCommunicator } from '../runtime/distributed/index.js';
import { WgflowError } from '../runtime/errors.js';
import { uniformStream } from '../runtime/init.js';

const [scenario = '', family = '', seedText = '1'] = process.argv.slice(2);
const seed = Number(seedText) >>> 0;
const chunk = Number(process.env.MPI_TEST_CHUNK) || undefined;
const comm = await getCommunicator({ maxCountPerCall: chunk });
const { rank, size } = comm;

let checks = 0;
function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`rank ${rank}/${size}: check failed: ${what}`);
  checks++;
}

/** The data rank `r` contributes to test `label` (same on every rank). */
function stream(label: string, r: number): () => number {
  let h = seed ^ 0x9e3779b9;
  for (const c of `${label}#${r}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return uniformStream(h);
}

function ints(label: string, r: number, n: number): Float32Array {
  const u = stream(label, r);
  return Float32Array.from({ length: n }, () => Math.floor(u() * 2001) - 1000);
}

function floats(label: string, r: number, n: number): Float32Array {
  const u = stream(label, r);
  return Float32Array.from({ length: n }, () => u() * 2 - 1);
}

function bytes(label: string, r: number, n: number): Uint8Array {
  const u = stream(label, r);
  return Uint8Array.from({ length: n }, () => Math.floor(u() * 256));
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function collectives(c: Communicator): void {
  const envRank = process.env.OMPI_COMM_WORLD_RANK ?? process.env.PMI_RANK;
  const envSize = process.env.OMPI_COMM_WORLD_SIZE ?? process.env.PMI_SIZE;
  check(
    String(rank) === envRank && String(size) === envSize,
    `rank/size ${rank}/${size} vs launcher ${envRank}/${envSize}`,
  );
  check(c.kind === family, `kind ${c.kind}, expected ${family}`);

  // Allreduce of integer-valued floats: exact (all partial sums stay far below 2^24).
  for (const n of [1, 7, 1000, 4099, 100_003]) {
    const mine = ints(`int${n}`, rank, n);
    c.allreduceSum(mine);
    const want = new Float64Array(n);
    for (let r = 0; r < size; r++) ints(`int${n}`, r, n).forEach((v, i) => (want[i] = (want[i] ?? 0) + v));
    check(
      mine.every((v, i) => v === want[i]),
      `allreduceSum of ${n} integer-valued floats is exact`,
    );
  }

  // Allreduce of floats in [-1, 1): within float rounding of the float64 sum, and the same bits everywhere.
  const n = 65_537;
  const sums = floats('float', rank, n);
  c.allreduceSum(sums);
  const want = new Float64Array(n);
  for (let r = 0; r < size; r++) floats('float', r, n).forEach((v, i) => (want[i] = (want[i] ?? 0) + v));
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs((sums[i] ?? 0) - (want[i] ?? 0)));
  check(worst <= 1e-6 * size, `allreduceSum of floats within ${1e-6 * size} (worst ${worst})`);
  const everyone = c.gatherv(new Uint8Array(sums.buffer), 0);
  if (rank === 0) {
    check(everyone?.length === size, 'gatherv gives root one array per rank');
    check(
      everyone?.every((b) => sameBytes(b, new Uint8Array(sums.buffer))) ?? false,
      'every rank holds the same sums, bit for bit',
    );
  } else check(everyone === undefined, 'gatherv gives undefined off the root');

  // In place on a view: only the view's elements change, at the view's offset.
  const whole = ints('view', rank, 1009);
  const viewWant = new Float64Array(1009);
  for (let r = 0; r < size; r++) ints('view', r, 1009).forEach((v, i) => (viewWant[i] = (viewWant[i] ?? 0) + v));
  const before = whole.slice();
  c.allreduceSum(whole.subarray(3, 1000));
  check(
    whole.every((v, i) => (i < 3 || i >= 1000 ? v === before[i] : v === viewWant[i])),
    'allreduceSum of a subarray reduces exactly its elements, in place',
  );
  c.allreduceSum(new Float32Array(0));
  check(true, 'allreduceSum of an empty array returns');

  // Bcast from the last rank (bytes, odd length) and from rank 0 (floats, from a view).
  const last = size - 1;
  const payload = rank === last ? bytes('bcast', last, 12_345) : new Uint8Array(12_345);
  c.bcast(payload, last);
  check(sameBytes(payload, bytes('bcast', last, 12_345)), `bcast of 12345 bytes from rank ${last}`);
  const fl = rank === 0 ? floats('bcastf', 0, 777) : new Float32Array(777).fill(Number.NaN);
  c.bcast(fl, 0);
  const flWant = floats('bcastf', 0, 777);
  check(
    fl.every((v, i) => v === flWant[i]),
    'bcast of 777 floats from rank 0',
  );

  // Gatherv of different lengths (rank 1 sends nothing), at root 0 and at the last rank.
  const lengthOf = (r: number) => (r === 1 ? 0 : 5 + 37 * r);
  for (const root of [0, last]) {
    const got = c.gatherv(bytes(`gv${root}`, rank, lengthOf(rank)), root);
    if (rank === root) {
      check(got?.length === size, `gatherv at ${root}: one part per rank`);
      for (let r = 0; r < size; r++)
        check(
          sameBytes(got?.[r] ?? new Uint8Array(1), bytes(`gv${root}`, r, lengthOf(r))),
          `gatherv at ${root}: rank ${r}'s bytes`,
        );
    } else check(got === undefined, `gatherv at ${root}: undefined off the root`);
  }

  // Barrier: no rank leaves it before the last one arrived (the others arrive 300 ms after rank 0;
  // one machine, one clock).
  if (rank !== 0) sleepMs(300);
  const arrived = performance.timeOrigin + performance.now();
  c.barrier();
  const left = performance.timeOrigin + performance.now();
  const times = gatherJson(c, { arrived, left }, 0);
  if (rank === 0) {
    const lastArrival = Math.max(...(times ?? []).map((t) => t.arrived));
    const firstExit = Math.min(...(times ?? []).map((t) => t.left));
    check(firstExit >= lastArrival, `barrier: first exit ${firstExit} before the last arrival ${lastArrival}`);
  }

  // JSON helpers.
  const config = bcastJson(c, rank === 0 ? { lr: 0.01, sizes: [3, 5], name: 'résumé', seed } : undefined);
  check(JSON.stringify(config) === JSON.stringify({ lr: 0.01, sizes: [3, 5], name: 'résumé', seed }), 'bcastJson');
  const gathered = gatherJson(c, { rank, text: 'x'.repeat(rank * 3) }, last);
  if (rank === last)
    check(
      JSON.stringify(gathered) ===
        JSON.stringify(Array.from({ length: size }, (_, r) => ({ rank: r, text: 'x'.repeat(r * 3) }))),
      'gatherJson at the last rank',
    );
  else check(gathered === undefined, 'gatherJson off the root');

  // Bad arguments are refused on every rank before any MPI call, so the job goes on.
  const refused = (fn: () => unknown, pattern: RegExp): boolean => {
    try {
      fn();
      return false;
    } catch (e) {
      return e instanceof WgflowError && pattern.test(e.message);
    }
  };
  check(
    refused(() => c.bcast(new Uint8Array(4), size), /bcast: root \d+ is not a rank/),
    'bcast refuses a root out of range',
  );
  check(
    refused(() => c.gatherv(new Uint8Array(4), -1), /gatherv: root -1 is not a rank/),
    'gatherv refuses a negative root',
  );
  check(
    refused(
      () => c.allreduceSum(new Float64Array(4) as unknown as Float32Array),
      /allreduceSum takes a Float32Array, not Float64Array/,
    ),
    'allreduceSum refuses a Float64Array',
  );

  // V8's WebAssembly bounds checks (SIGSEGV traps) still work after MPI_Init (UCX replaces the handler otherwise).
  // (module (memory 1) (func (export "ld") (param i32) (result i32) local.get 0 i32.load))
  const wasm = new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 3, 2, 1, 0, 5, 3, 1, 0, 1, 7, 6, 1, 2, 108, 100, 0, 0, 10,
    9, 1, 7, 0, 32, 0, 40, 2, 0, 11,
  ]);
  const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  const ld = new WA.Instance(new WA.Module(wasm)).exports.ld as (a: number) => number;
  let trapped = false;
  try {
    ld(1 << 30);
  } catch (e) {
    trapped = e instanceof WA.RuntimeError;
  }
  check(trapped, 'an out-of-bounds WebAssembly load throws a RuntimeError');
}

/** The little of the WebAssembly API used above (tsconfig's lib has no WebAssembly types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
  RuntimeError: new () => Error;
}

function loop(c: Communicator, failAt: (i: number) => void): void {
  const buf = new Float32Array(1000);
  for (let i = 0; i < 1_000_000; i++) {
    failAt(i);
    buf.fill(1);
    c.allreduceSum(buf);
    if (buf[0] !== size) throw new Error(`rank ${rank}: allreduce gave ${buf[0]}, expected ${size}`);
  }
  console.log(`rank ${rank}: the loop ended without the failure stopping the job`);
}

switch (scenario) {
  case 'collectives':
    collectives(comm);
    console.log(`ok rank ${rank}/${size} checks=${checks}`);
    if (process.env.MPI_TEST_IMPLICIT_FINALIZE !== '1') {
      comm.finalize();
      let after = '';
      try {
        comm.barrier();
      } catch (e) {
        after = (e as Error).message;
      }
      if (!/barrier after finalize/.test(after)) throw new Error(`barrier after finalize: ${after || 'no error'}`);
    }
    break;
  case 'kill':
    loop(comm, (i) => {
      if (rank === size - 1 && i === 20) {
        // The time of the kill, for the test to measure how long the launcher takes to end the job.
        writeSync(2, `mpi-rank: rank ${rank} sends itself SIGKILL at ${Date.now()}\n`);
        process.kill(process.pid, 'SIGKILL');
      }
    });
    break;
  case 'throw':
    loop(comm, (i) => {
      if (rank === 1 && i === 10) throw new Error('deliberate failure on rank 1');
    });
    break;
  case 'exit3':
  case 'exit0':
    loop(comm, (i) => {
      if (rank === 1 && i === 10) process.exit(scenario === 'exit3' ? 3 : 0);
    });
    break;
  case 'hang':
    loop(comm, (i) => {
      if (rank === 1 && i === 10) sleepMs(60_000);
    });
    break;
  case 'hello':
    console.log(JSON.stringify({ rank, size, kind: comm.kind, description: comm.description }));
    break;
  default:
    throw new Error(`mpi-rank.ts: unknown scenario ${scenario}`);
}
