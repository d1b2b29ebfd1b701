/**
 * `npm run bench [-- suite...]`: runs the benchmark suites and prints Markdown tables; results are also
 * written to bench/results/<suite>.{md,json}. Suites: kernels, detection (default: all).
 */
import { closeDevice, getDevice } from '../index.js';
import { detectionNmsBench } from './detection-nms.js';
import { detectionRoiSuite } from './detection-roi.js';
import { type BenchRow, markdownTable, writeResults } from './harness.js';
import { kernelSuite } from './kernels.js';

const log = (s: string) => process.stderr.write(`  ${s}\n`);
const suites: Record<string, () => Promise<BenchRow[]>> = {
  kernels: () => kernelSuite({ runs: 5, warmup: 2 }, log),
  detection: async () => [
    await detectionNmsBench({ runs: 7, warmup: 2 }),
    ...(await detectionRoiSuite({ runs: 7, warmup: 2 }, log)),
  ],
};

const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const a of asked) {
  if (!suites[a]) {
    console.error(`bench: unknown suite "${a}" (known: ${Object.keys(suites).join(', ')})`);
    process.exit(2);
  }
}
const dev = await getDevice();
for (const name of asked.length > 0 ? asked : Object.keys(suites)) {
  process.stderr.write(`suite ${name} on ${dev.adapterName}\n`);
  const rows = await (suites[name] as () => Promise<BenchRow[]>)();
  console.log(markdownTable(dev.adapterName, rows));
  writeResults(`bench/results/${name}`, dev.adapterName, rows);
}
await closeDevice();
