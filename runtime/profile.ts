/**
 * Per-dispatch GPU timing with timestamp queries (the 'timestamp-query' feature, which the shared
 * device requests whenever the adapter has it; lavapipe does). A profiled session runs every dispatch
 * in its own compute pass whose beginning and end write a timestamp; after the step the timestamps are
 * resolved, copied to a mappable buffer in the same command buffer, and read back with the outputs.
 *
 * What a time means: GPU time between the start and the end of that dispatch's pass as the driver
 * reports it (on lavapipe: CPU time of its worker threads running the dispatch). Buffer copies between
 * dispatches are not timed. One pass per dispatch adds a little overhead per dispatch, so a profiled
 * step is slower than an unprofiled one; use it to find the hot kernels, not to time the step.
 * Dawn quantizes timestamps to 65.5 µs unless the device was opened after
 * `requestPreciseTimestamps()` (runtime/device.ts).
 */
import { quietly } from './device.js';
import { WgflowError } from './errors.js';

/** WebGPU's maximum query count of one query set. */
const MAX_QUERIES_PER_SET = 4096;

export interface DispatchTiming {
  /** Index of the dispatch within the step (0-based, in schedule order). */
  readonly index: number;
  /** Kernel index in the program. */
  readonly kernel: number;
  /** Kernel name (the compiler's label). */
  readonly name: string;
  /** Milliseconds between the beginning and the end of the dispatch's pass (≥ 0). */
  readonly ms: number;
}

export interface StepProfile {
  readonly dispatches: readonly DispatchTiming[];
  /** Σ of the dispatch times. */
  readonly totalMs: number;
  /** From the first pass's beginning to the last pass's end (includes gaps and copies between passes). */
  readonly spanMs: number;
}

export interface KernelTotal {
  readonly name: string;
  readonly calls: number;
  readonly totalMs: number;
  readonly meanMs: number;
  /** Share of the summed dispatch time of all kernels (0–1). */
  readonly share: number;
}

/** True when the device can write timestamps at pass boundaries. */
export function canProfile(device: GPUDevice): boolean {
  return device.features.has('timestamp-query');
}

/** Timestamp query sets and buffers for the dispatches of one program; reused by every profiled step. */
export class DispatchProfiler {
  private readonly sets: GPUQuerySet[] = [];
  private readonly resolveBuf: GPUBuffer;
  private readonly readBuf: GPUBuffer;

  /** `dispatches[i]` = [kernel index, kernel name] of the i-th dispatch of a step. */
  constructor(
    device: GPUDevice,
    private readonly dispatches: readonly (readonly [number, string])[],
    programName: string,
  ) {
    if (!canProfile(device))
      throw new WgflowError(
        `profile "${programName}": the device has no 'timestamp-query' feature (the adapter does not offer it)`,
      );
    const queries = Math.max(2, 2 * dispatches.length);
    for (let q = 0; q < queries; q += MAX_QUERIES_PER_SET)
      this.sets.push(
        device.createQuerySet({
          label: `${programName}:timestamps${this.sets.length}`,
          type: 'timestamp',
          count: Math.min(MAX_QUERIES_PER_SET, queries - q),
        }),
      );
    this.resolveBuf = device.createBuffer({
      label: `${programName}:timestamps`,
      size: queries * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.readBuf = device.createBuffer({
      label: `${programName}:timestamps-read`,
      size: queries * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** The timestampWrites of dispatch i's pass. */
  passWrites(i: number): GPUComputePassTimestampWrites {
    const q = 2 * i;
    return {
      querySet: this.sets[Math.floor(q / MAX_QUERIES_PER_SET)] as GPUQuerySet,
      beginningOfPassWriteIndex: q % MAX_QUERIES_PER_SET,
      endOfPassWriteIndex: (q % MAX_QUERIES_PER_SET) + 1,
    };
  }

  /** Appends the resolve and the copy to the mappable buffer (after the step's last pass). */
  resolve(encoder: GPUCommandEncoder): void {
    this.sets.forEach((set, s) => {
      encoder.resolveQuerySet(set, 0, set.count, this.resolveBuf, s * MAX_QUERIES_PER_SET * 8);
    });
    encoder.copyBufferToBuffer(this.resolveBuf, 0, this.readBuf, 0, this.readBuf.size);
  }

  /** Reads the timestamps of the submitted step. */
  async read(): Promise<StepProfile> {
    await quietly(this.readBuf.mapAsync(GPUMapMode.READ));
    const ts = new BigUint64Array(this.readBuf.getMappedRange().slice(0));
    this.readBuf.unmap();
    const dispatches: DispatchTiming[] = this.dispatches.map(([kernel, name], i) => {
      const begin = ts[2 * i] as bigint;
      const end = ts[2 * i + 1] as bigint;
      // An end before its beginning (a driver reset of the counter) counts as 0.
      return { index: i, kernel, name, ms: end > begin ? Number(end - begin) / 1e6 : 0 };
    });
    const n = this.dispatches.length;
    const first = ts[0] as bigint;
    const last = ts[Math.max(1, 2 * n - 1)] as bigint;
    return {
      dispatches,
      totalMs: dispatches.reduce((a, d) => a + d.ms, 0),
      spanMs: n > 0 && last > first ? Number(last - first) / 1e6 : 0,
    };
  }

  destroy(): void {
    for (const s of this.sets) s.destroy();
    this.resolveBuf.destroy();
    this.readBuf.destroy();
  }
}

/** The op pattern of a compiler kernel name: "k12_conv2d_add_relu" → "conv2d_add_relu". */
export const kernelPattern = (name: string): string => name.replace(/^k\d+_/, '');

/**
 * Sums dispatch times over steps, grouped by `key` (default: the kernel name, i.e. per kernel; pass
 * `kernelPattern` to group kernels of the same op pattern); the `top` largest totals first.
 */
export function topKernels(
  profiles: readonly StepProfile[],
  top = Number.POSITIVE_INFINITY,
  key: (name: string) => string = (n) => n,
): KernelTotal[] {
  const by = new Map<string, { calls: number; totalMs: number }>();
  let all = 0;
  for (const p of profiles)
    for (const d of p.dispatches) {
      const k = key(d.name);
      const e = by.get(k) ?? { calls: 0, totalMs: 0 };
      e.calls++;
      e.totalMs += d.ms;
      by.set(k, e);
      all += d.ms;
    }
  return [...by.entries()]
    .map(([name, e]) => ({
      name,
      calls: e.calls,
      totalMs: e.totalMs,
      meanMs: e.totalMs / e.calls,
      share: all > 0 ? e.totalMs / all : 0,
    }))
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, top);
}

/** GPU time of one model stage in a profiled run (see GraphBuilder.stage). */
export interface StageTime {
  /** The stage's name; "other" for kernels of no declared stage. */
  readonly stage: string;
  readonly ms: number;
  readonly dispatches: number;
}

/**
 * Sums a run's dispatch times per model stage (`kernels`: the program's, e.g. session.spec.kernels, whose
 * `stage` the compiler took from GraphBuilder.stage), in the order the stages first run.
 */
export function stageTimes(profile: StepProfile, kernels: readonly { readonly stage?: string }[]): StageTime[] {
  const by = new Map<string, { ms: number; dispatches: number }>();
  for (const d of profile.dispatches) {
    const stage = kernels[d.kernel]?.stage ?? 'other';
    const e = by.get(stage) ?? { ms: 0, dispatches: 0 };
    e.ms += d.ms;
    e.dispatches++;
    by.set(stage, e);
  }
  return [...by.entries()].map(([stage, e]) => ({ stage, ...e }));
}
