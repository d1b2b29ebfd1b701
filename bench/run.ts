/**
 * `npm run bench [-- suite...]`: runs the benchmark suites and prints Markdown tables; results are also
 * written to bench/results/<suite>.{md,json}. Suites: kernels, detection (default: both), and peers
 * (only when asked: wgflow vs TF.js WebGPU and onnxruntime-node, see bench/peers/index.ts).
 */
import { closeDevice, getDevice } from '../index.js';
import { detectionNmsBench } from './detection-nms.js';
import { detectionRoiSuite } from './detection-roi.js';
import { type BenchRow, markdownTable, writeResults } from './harness.js';
import { kernelSuite } from './kernels.js';
import { peerSuite } from './peers/index.js';

const log = (s: string) => process.stderr.write(`  ${s}\n`);
const suites: Record<string, () => Promise<BenchRow[]>> = {
  kernels: () => kernelSuite({ runs: 5, warmup: 2 }, log),
  detection: async () => [
    await detectionNmsBench({ runs: 7, warmup: 2 }),
    ...(await detectionRoiSuite({ runs: 7, warmup: 2 }, log)),
  ],
};

/** Suites that print and write their own tables; run only when named. */
const ownTable: Record<string, () => Promise<string>> = {
  peers: () => peerSuite(log),
};

const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const a of asked) {
  if (!suites[a] && !ownTable[a]) {
    console.error(
      `bench: unknown suite "${a}" (known: ${[...Object.keys(suites), ...Object.keys(ownTable)].join(', ')})`,
    );
    process.exit(2);
  }
}
const dev = await getDevice();
for (const name of asked.length > 0 ? asked : Object.keys(suites)) {
  process.stderr.write(`suite ${name} on ${dev.adapterName}\n`);
  const own = ownTable[name];
  if (own) {
    console.log(await own());
    continue;
  }
  const rows = await (suites[name] as () => Promise<BenchRow[]>)();
  console.log(markdownTable(dev.adapterName, rows));
  writeResults(`bench/results/${name}`, dev.adapterName, rows);
}
await closeDevice();
