/**
 * Training-loop pieces with no GPU in them: the step learning-rate policy, the deterministic visiting
 * order of the images, and the non-finite-loss check. Everything is a pure function of the iteration
 * number, so a run resumed from a checkpoint at iteration k continues exactly as the uninterrupted run.
 */
import { WgflowError } from '../../compiler/errors.js';
import { Rng } from '../../data/shapes.js';

/** Caffe's "step"/"multistep" policy: lr = base · gamma^(number of steps ≤ iteration). */
export interface StepSchedule {
  readonly base: number;
  /** Iterations (0-based) at which lr is multiplied by gamma, ascending. */
  readonly steps: readonly number[];
  /** Default 0.1 (PFR). */
  readonly gamma?: number;
  /** Linear warm-up from base·warmupFactor over the first warmupIters iterations (default none). */
  readonly warmupIters?: number;
  readonly warmupFactor?: number;
}

export function validateSchedule(s: StepSchedule): void {
  if (!(Number.isFinite(s.base) && s.base > 0)) throw new WgflowError(`learning rate must be > 0, got ${s.base}`);
  s.steps.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || (i > 0 && v <= (s.steps[i - 1] as number)))
      throw new WgflowError(`lr steps must be ascending non-negative integers, got [${s.steps.join(', ')}]`);
  });
}

export function learningRateAt(s: StepSchedule, iteration: number): number {
  const gamma = s.gamma ?? 0.1;
  let lr = s.base;
  for (const at of s.steps) if (iteration >= at) lr *= gamma;
  const warm = s.warmupIters ?? 0;
  if (iteration < warm) {
    const f = s.warmupFactor ?? 1 / 3;
    lr *= f + ((1 - f) * iteration) / warm;
  }
  return lr;
}

/** Which image an iteration trains on, and whether it is flipped horizontally. */
export interface Visit {
  readonly index: number;
  readonly flip: boolean;
  readonly epoch: number;
}

/**
 * Epoch e visits the n images in a random order (seeded by (seed, e)); flipped on odd epochs when
 * flips are on (PFR's TRAIN.USE_FLIPPED doubles the set the same way).
 */
export function visitAt(iteration: number, n: number, seed: number, flip: boolean): Visit {
  if (n <= 0) throw new WgflowError('the training set is empty');
  const epoch = Math.floor(iteration / n);
  const k = iteration % n;
  return { index: epochOrder(n, seed, epoch)[k] as number, flip: flip && epoch % 2 === 1, epoch };
}

const orderCache = new Map<string, Int32Array>();
function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const key = `${n}/${seed}/${epoch}`;
  let order = orderCache.get(key);
  if (!order) {
    order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const rng = new Rng(seed, epoch, 0x0de7);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(0, i);
      const t = order[i] as number;
      order[i] = order[j] as number;
      order[j] = t;
    }
    if (orderCache.size > 8) orderCache.clear();
    orderCache.set(key, order);
  }
  return order;
}

/** Training stopped because a loss term is NaN or infinite. */
export class NonFiniteLossError extends WgflowError {
  constructor(
    readonly iteration: number,
    readonly term: string,
    readonly value: number,
    lastCheckpoint?: string,
  ) {
    super(
      `training stopped: loss term '${term}' is ${value} at iteration ${iteration}` +
        (lastCheckpoint
          ? `; the last good checkpoint ${lastCheckpoint} is kept unchanged`
          : '; nothing was saved after it') +
        ' (lower the learning rate, or check the data of this iteration)',
    );
    this.name = 'NonFiniteLossError';
  }
}

/** Throws NonFiniteLossError naming the first non-finite term (total last). */
export function checkFinite(iteration: number, terms: Readonly<Record<string, number>>, lastCheckpoint?: string): void {
  const names = Object.keys(terms).sort((a, b) => (a === 'loss' ? 1 : b === 'loss' ? -1 : 0));
  for (const t of names) {
    const v = terms[t] as number;
    if (!Number.isFinite(v)) throw new NonFiniteLossError(iteration, t, v, lastCheckpoint);
  }
}
