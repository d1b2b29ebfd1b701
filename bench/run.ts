/**
 * `npm run bench [-- name...] [--profile]`
 *
 * With no names: every benchmark once, in one process — the peer comparison (wgflow vs TF.js WebGPU vs
 * onnxruntime CPU: matmul, conv, VGG16 convs, NMS, RoIAlign, Faster R-CNN inference, a training step),
 * the wgflow-only detection rows that have no peer (RoIPool, the RoI backward kernels), the frcnn-small
 * suite (inference for an exact canvas vs one program for every size; training images/s at batch 1, 2
 * and 4), and the per-kernel profile of the small Faster R-CNN training step and inference — and writes the whole
 * report to bench/results/bench.{md,json}. The default run also takes the `kernels` suite's pairs (matmul
 * and conv compiled for their exact shape and as one program over run-time sizes, with the ratio); the
 * suite's VGG16 row and the NMS / RoIAlign forward rows of `detection` time the same graphs as the peer
 * comparison, so the default run does not repeat them.
 *
 * Names: suites `peers`, `kernels`, `detection`, `frcnn-small`, `profile`, or peer workload ids (matmul, conv, vgg,
 * nms, roialign, frcnn, train) to run only those peer rows. Each suite also writes
 * bench/results/<suite>.{md,json}. `--profile` adds the profile suite to the named ones.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { closeDevice, getDevice } from '../index.js';
import { requestPreciseTimestamps } from '../runtime/device.js';
import { detectionNmsBench } from './detection-nms.js';
import { benchRoiAlignBackward, benchRoiPool, benchRoiPoolBackward, detectionRoiSuite } from './detection-roi.js';
import { frcnnSmallSuite } from './frcnn-small.js';
import { type BenchRow, markdownTable, writeResults } from './harness.js';
import { kernelSuite } from './kernels.js';
import { PEER_NOTES, PEER_WORKLOADS, peerSuite, peersMarkdown } from './peers/index.js';
import type { WorkloadRow } from './peers/types.js';
import { type ProgramProfile, profileMarkdown, profileSuite } from './profile.js';

const t0 = performance.now();
const load0 = loadavg();
const log = (s: string) => process.stderr.write(`  ${s}\n`);
const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('-'));
const workloadIds = PEER_WORKLOADS.map((w) => w.id);
const suiteNames = ['peers', 'kernels', 'detection', 'frcnn-small', 'profile'];
for (const a of names)
  if (!suiteNames.includes(a) && !workloadIds.includes(a)) {
    console.error(
      `bench: unknown name "${a}" (suites: ${suiteNames.join(', ')}; peer workloads: ${workloadIds.join(', ')})`,
    );
    process.exit(2);
  }
const all = names.length === 0;
const onlyWorkloads = names.filter((n) => workloadIds.includes(n));
const runPeers = all || names.includes('peers') || onlyWorkloads.length > 0;
const runProfile = all || names.includes('profile') || args.includes('--profile');

// Dawn's 65.5 µs timestamp quantization off for the profile (affects timestamp queries only).
if (runProfile) requestPreciseTimestamps();
const dev = await getDevice();
mkdirSync('bench/results', { recursive: true });
process.stderr.write(
  `bench on ${dev.adapterName}, ${cpus().length} CPUs, load average ${load0.map((l) => l.toFixed(2)).join(' ')}\n`,
);

let peerRows: WorkloadRow[] = [];
const extraRows: BenchRow[] = [];
let profiles: ProgramProfile[] = [];

if (runPeers) {
  process.stderr.write('suite peers\n');
  peerRows = await peerSuite(log, names.includes('peers') ? [] : onlyWorkloads);
  const md = `adapter: ${dev.adapterName}\n\n${peersMarkdown(peerRows)}\n\n${notes(peerRows)}`;
  console.log(md);
  writeFileSync('bench/results/peers.md', `${md}\n`);
  writeFileSync(
    'bench/results/peers.json',
    `${JSON.stringify({ adapter: dev.adapterName, date: new Date().toISOString(), notes: PEER_NOTES, rows: peerRows }, null, 2)}\n`,
  );
}
if (all || names.includes('kernels')) {
  // the default run takes the exact / run-time-size pairs only (the peers time VGG16's convs already)
  process.stderr.write(all ? 'suite kernels (exact shape vs one program over run-time sizes)\n' : 'suite kernels\n');
  const rows = await kernelSuite({ runs: 5, warmup: 2 }, log, { vgg: !all });
  if (all) extraRows.push(...rows);
  else console.log(markdownTable(dev.adapterName, rows));
  writeResults('bench/results/kernels', dev.adapterName, rows);
}
if (names.includes('detection')) {
  process.stderr.write('suite detection\n');
  const rows = [
    await detectionNmsBench({ runs: 7, warmup: 2 }),
    ...(await detectionRoiSuite({ runs: 7, warmup: 2 }, log)),
  ];
  console.log(markdownTable(dev.adapterName, rows));
  writeResults('bench/results/detection', dev.adapterName, rows);
}
if (all) {
  process.stderr.write('suite detection (rows without a peer)\n');
  for (const f of [benchRoiPool, benchRoiAlignBackward, benchRoiPoolBackward]) {
    const r = await f({ runs: 5, warmup: 1 });
    log(`${r.workload}: ${r.medianMs.toFixed(1)} ms`);
    extraRows.push(r);
  }
}
if (all || names.includes('frcnn-small')) {
  process.stderr.write('suite frcnn-small\n');
  const rows = await frcnnSmallSuite({ runs: 5, warmup: 2 }, log);
  if (all) extraRows.push(...rows);
  else console.log(markdownTable(dev.adapterName, rows));
  writeResults('bench/results/frcnn-small', dev.adapterName, rows);
}
if (runProfile) {
  process.stderr.write('suite profile\n');
  profiles = await profileSuite(log);
  console.log(profileMarkdown(profiles));
}
const wallS = (performance.now() - t0) / 1000;
const load1 = loadavg();

function notes(rows: readonly WorkloadRow[]): string {
  const seen = new Set<string>();
  const all = [...PEER_NOTES, ...rows.flatMap((r) => r.notes)].filter((n) => !seen.has(n) && seen.add(n));
  return all.map((n) => `- ${n}`).join('\n');
}

if (all) {
  const header = [
    '# wgflow benchmark',
    '',
    `adapter: ${dev.adapterName}; ${cpus().length} CPUs; node ${process.version}; ${new Date().toISOString()}`,
    `wall time of the whole run: ${wallS.toFixed(0)} s; load average (1/5/15 min) at start ${load0.map((l) => l.toFixed(2)).join(' / ')}, at end ${load1.map((l) => l.toFixed(2)).join(' / ')} (other processes share the CPUs: compare ratios within this run only)`,
  ];
  const md = [
    ...header,
    '',
    '## wgflow vs TF.js WebGPU vs onnxruntime CPU',
    '',
    peersMarkdown(peerRows),
    '',
    notes(peerRows),
    '',
    '## wgflow only (no peer runs these)',
    '',
    markdownTable(dev.adapterName, extraRows),
    '',
    '## Per-kernel GPU time (timestamp queries)',
    '',
    profileMarkdown(profiles),
    '',
  ].join('\n');
  writeFileSync('bench/results/bench.md', md);
  writeFileSync(
    'bench/results/bench.json',
    `${JSON.stringify(
      {
        adapter: dev.adapterName,
        date: new Date().toISOString(),
        cpus: cpus().length,
        node: process.version,
        wallSeconds: wallS,
        loadAverage: { start: load0, end: load1 },
        notes: PEER_NOTES,
        rows: peerRows,
        wgflowOnly: extraRows,
        profile: profiles,
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`wrote bench/results/bench.md and bench.json (${wallS.toFixed(0)} s)\n`);
}
await closeDevice();
