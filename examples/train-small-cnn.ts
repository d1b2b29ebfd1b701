/** The main job for now: trains the small CNN on the GPU and reports loss and held-out accuracy. */
import { closeDevice, getDevice } from '../index.js';
import { trainSmallCnn } from './small-cnn.js';

const dev = await getDevice();
console.log(`adapter: ${dev.adapterName}`);
const r = await trainSmallCnn({ log: (l) => console.log(l) });
const first = r.losses.slice(0, 10).reduce((a, b) => a + b, 0) / 10;
const last = r.losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
console.log(
  `trained ${r.losses.length} steps in ${r.seconds.toFixed(1)} s (${r.dispatchesPerStep} dispatches per step)`,
);
console.log(
  `loss ${first.toFixed(4)} -> ${last.toFixed(4)} (${(first / last).toFixed(1)}x lower); held-out accuracy ${(100 * r.accuracy).toFixed(1)} %`,
);
await closeDevice();
