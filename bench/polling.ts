/**
 * Measures how much CPU the main thread burns while waiting for the GPU: a plain `await` of a Dawn
 * promise (dawn.node re-schedules itself through setImmediate and spins) versus the runtime's
 * `quietly()` (a 1 ms timer). Same GPU work, interleaved, medians over 5 runs.
 * Run: npx tsx bench/polling.ts
 */
import { closeDevice, compile, GraphBuilder, getDevice, limitsFrom, Session } from '../index.js';
import { setBusyPolling } from '../runtime/device.js';

const dev = await getDevice();
const g = new GraphBuilder();
let h = g.input('x', [1 << 20]);
for (let i = 0; i < 60; i++) h = h.mul(1.0001).add(h.sum(undefined, true).mul(1e-9)); // 60 reductions: ~120 dispatches
const { spec } = compile(g, { outputs: { h }, limits: limitsFrom(dev.limits) });
const s = await Session.create(spec, { gpu: dev });
const x = new Float32Array(1 << 20).fill(1);

async function once(mode: 'plain' | 'quiet'): Promise<{ wall: number; cpu: number }> {
  // submit without waiting, then wait in the chosen way
  setBusyPolling(mode === 'plain');
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await s.run({ x }, { outputs: ['h'] });
  const c1 = process.cpuUsage(c0);
  setBusyPolling(false);
  return { wall: performance.now() - t0, cpu: (c1.user + c1.system) / 1000 };
}

const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)] as number;
const res: Record<string, { wall: number[]; cpu: number[] }> = {
  plain: { wall: [], cpu: [] },
  quiet: { wall: [], cpu: [] },
};
for (let i = 0; i < 6; i++) {
  for (const mode of ['plain', 'quiet'] as const) {
    const r = await once(mode);
    if (i > 0) {
      res[mode]?.wall.push(r.wall);
      res[mode]?.cpu.push(r.cpu);
    }
  }
}
console.log(`adapter: ${dev.adapterName}`);
console.log('| wait | median wall ms | median process CPU ms | CPU / wall |');
console.log('|---|---|---|---|');
for (const [mode, r] of Object.entries(res)) {
  console.log(
    `| ${mode} | ${med(r.wall).toFixed(1)} | ${med(r.cpu).toFixed(1)} | ${(med(r.cpu) / med(r.wall)).toFixed(2)} |`,
  );
}
console.log("(process CPU includes lavapipe's worker threads; the difference is the main thread spinning)");
s.destroy();
await closeDevice();
