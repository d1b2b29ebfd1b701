/**
 * The `peers` suite: every workload run by wgflow and, in the same process and on identical inputs, by
 * - TF.js 4.22 (tfjs-backend-webgpu) on wgflow's own Dawn GPUDevice (./tf.ts), and
 * - onnxruntime-node 1.30 on the CPU (models encoded in code: ./onnx-encode.ts, ./ort.ts).
 * Per workload: the outputs are cross-checked first (each workload says against what), then `warmup`
 * rounds and `runs` timed rounds, interleaved (wgflow, TF.js, ORT, wgflow, ...); medians and minima.
 * A peer that cannot run a workload gets a row entry with the reason. Each workload file documents
 * what one timed run covers for each library.
 */
import { frcnnWorkload } from './frcnn.js';
import { convWorkloadSmall, matmulWorkload, vggWorkload } from './kernels.js';
import { nmsWorkload } from './nms.js';
import { roiAlignWorkload } from './roi.js';
import { trainWorkload } from './train.js';
import {
  type Check,
  isUnavailable,
  type PeerResult,
  type Runner,
  type Timing,
  type Workload,
  type WorkloadRow,
} from './types.js';

export const PEER_WORKLOADS: readonly Workload[] = [
  matmulWorkload,
  convWorkloadSmall,
  vggWorkload,
  nmsWorkload,
  roiAlignWorkload,
  frcnnWorkload,
  trainWorkload,
];

export const PEER_NOTES: readonly string[] = [
  'TF.js 4.22 webgpu backend runs on the same Dawn GPUDevice (same lavapipe) as wgflow; every GPU wait of both goes through wgflow quietly() (a 1 ms timer instead of dawn.node setImmediate busy-polling)',
  'onnxruntime-node 1.30 runs on the CPU (default threads, no spinning); lavapipe is itself a CPU driver, so wgflow/ORT compares GPU-style kernels emulated on the CPU with native CPU kernels',
  'rounds interleaved wgflow, TF.js, ORT after the cross-checks and warm-up; ratio = wgflow median / peer median (< 1: wgflow faster), and the same ratio of the minima (other processes on the shared CPUs only add time, so the minima are the less disturbed figures)',
];

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const timing = (xs: readonly number[]): Timing => ({ medianMs: median(xs), minMs: Math.min(...xs), runs: xs.length });

/** Runs one workload: prepare, cross-check, warm up, time (interleaved). */
export async function runWorkload(w: Workload, log: (s: string) => void = () => {}): Promise<WorkloadRow> {
  const p = await w.prepare();
  const slots = [
    { key: 'wgflow', runner: p.wgflow as Runner | undefined },
    { key: 'tf', runner: isUnavailable(p.tf) ? undefined : p.tf.runner },
    { key: 'ort', runner: isUnavailable(p.ort) ? undefined : p.ort.runner },
  ];
  const active = slots.filter((s): s is { key: string; runner: Runner } => s.runner !== undefined);
  try {
    const ref = await p.wgflow.outputs();
    const wgCheck = p.wgflowCheck?.(ref);
    const checks: Record<string, Check> = {};
    for (const [key, slot] of [
      ['tf', p.tf],
      ['ort', p.ort],
    ] as const) {
      if (isUnavailable(slot)) continue;
      checks[key] = slot.check(ref, await slot.runner.outputs());
    }
    for (let i = 0; i < w.warmup; i++) for (const s of active) await s.runner.run();
    const times: Record<string, number[]> = Object.fromEntries(active.map((s) => [s.key, [] as number[]]));
    for (let i = 0; i < w.runs; i++)
      for (const s of active) {
        const t0 = performance.now();
        await s.runner.run();
        times[s.key]?.push(performance.now() - t0);
      }
    const wg = timing(times.wgflow as number[]);
    const peer = (key: 'tf' | 'ort'): PeerResult => {
      const slot = p[key];
      if (isUnavailable(slot)) return { unavailable: slot.unavailable };
      const c = checks[key];
      return { timing: timing(times[key] as number[]), ...(c ? { check: c } : {}) };
    };
    const tf = peer('tf');
    const ort = peer('ort');
    const gflop = p.gflop ?? w.gflop;
    const row: WorkloadRow = {
      id: w.id,
      workload: w.name,
      gflop: gflop ?? null,
      wgflow: { ...wg, gflops: gflop ? gflop / (wg.medianMs / 1000) : null, ...(wgCheck ? { check: wgCheck } : {}) },
      tf,
      ort,
      wgflowOverTf: tf.timing ? wg.medianMs / tf.timing.medianMs : null,
      wgflowOverOrt: ort.timing ? wg.medianMs / ort.timing.medianMs : null,
      wgflowOverTfMin: tf.timing ? wg.minMs / tf.timing.minMs : null,
      wgflowOverOrtMin: ort.timing ? wg.minMs / ort.timing.minMs : null,
      notes: p.notes ?? [],
    };
    log(
      `${w.name}: wgflow ${wg.medianMs.toFixed(1)} ms` +
        (tf.timing ? `, TF.js ${tf.timing.medianMs.toFixed(1)} ms (x${row.wgflowOverTf?.toFixed(2)})` : ', TF.js n/a') +
        (ort.timing ? `, ORT ${ort.timing.medianMs.toFixed(1)} ms (x${row.wgflowOverOrt?.toFixed(2)})` : ', ORT n/a') +
        [wgCheck, tf.check, ort.check]
          .filter((c): c is Check => c !== undefined)
          .map((c) => `; ${c.pass ? 'ok' : 'CHECK FAILED'} ${c.against}: ${c.result}`)
          .join(''),
    );
    return row;
  } finally {
    for (const s of active) s.runner.dispose();
  }
}

/** Runs the workloads in order (all by default, or those whose id is listed). */
export async function peerSuite(
  log: (s: string) => void = () => {},
  only: readonly string[] = [],
): Promise<WorkloadRow[]> {
  const rows: WorkloadRow[] = [];
  for (const w of PEER_WORKLOADS) {
    if (only.length > 0 && !only.includes(w.id)) continue;
    rows.push(await runWorkload(w, log));
  }
  return rows;
}

const ms = (t: Timing | undefined) => (t ? `${t.medianMs.toFixed(1)} / ${t.minMs.toFixed(1)}` : '–');
const ratio = (r: number | null, rMin: number | null, peer: PeerResult) =>
  r !== null ? `${r.toFixed(2)}; ${rMin?.toFixed(2)}` : `n/a: ${peer.unavailable ?? 'not run'}`;
const checkCell = (c: Check | undefined) => (c ? `${c.pass ? 'ok' : '**FAILED**'}: ${c.against}: ${c.result}` : '–');

/** The peer table as Markdown. */
export function peersMarkdown(rows: readonly WorkloadRow[]): string {
  return [
    '| workload | GFLOP | wgflow ms (median / min) | wgflow GFLOP/s | TF.js WebGPU ms (median / min) | ORT CPU ms (median / min) | wgflow/TF.js (medians; minima) | wgflow/ORT (medians; minima) | TF.js/wgflow speedup (medians) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows
      .map((r) =>
        [
          r.workload,
          r.gflop !== null ? r.gflop.toFixed(3) : '–',
          ms(r.wgflow),
          r.wgflow.gflops !== null ? r.wgflow.gflops.toFixed(2) : '–',
          ms(r.tf.timing),
          ms(r.ort.timing),
          ratio(r.wgflowOverTf, r.wgflowOverTfMin, r.tf),
          ratio(r.wgflowOverOrt, r.wgflowOverOrtMin, r.ort),
          r.wgflowOverTf !== null ? `${(1 / r.wgflowOverTf).toFixed(2)}x` : '–',
        ].join(' | '),
      )
      .map((l) => `| ${l} |`),
    '',
    '| workload | wgflow check | TF.js check | ORT check |',
    '|---|---|---|---|',
    ...rows.map(
      (r) => `| ${r.workload} | ${checkCell(r.wgflow.check)} | ${checkCell(r.tf.check)} | ${checkCell(r.ort.check)} |`,
    ),
  ].join('\n');
}
