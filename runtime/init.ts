/** First values of persistent tensors from their InitSpec: deterministic, seeded, model-agnostic. */
import type { InitSpec } from './program.js';

/** A seeded stream of uniform numbers in [0, 1) (mulberry32). */
export function uniformStream(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function initialValues(spec: InitSpec, count: number): Float32Array {
  const out = new Float32Array(count);
  const u = uniformStream(spec.seed);
  const normal = (): number => {
    // Box-Muller; 1 - u avoids log(0)
    const a = 1 - u();
    const b = u();
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * b);
  };
  switch (spec.kind) {
    case 'zeros':
      return out;
    case 'constant':
      return out.fill(spec.value ?? 0);
    case 'normal': {
      const std = spec.std ?? 1;
      const mean = spec.mean ?? 0;
      for (let i = 0; i < count; i++) out[i] = mean + std * normal();
      return out;
    }
    case 'uniform': {
      const lo = spec.low ?? 0;
      const hi = spec.high ?? 1;
      for (let i = 0; i < count; i++) out[i] = lo + (hi - lo) * u();
      return out;
    }
    case 'he': {
      const std = Math.sqrt(2 / Math.max(1, spec.fanIn));
      for (let i = 0; i < count; i++) out[i] = std * normal();
      return out;
    }
    case 'xavier': {
      const limit = Math.sqrt(6 / Math.max(1, spec.fanIn + spec.fanOut));
      for (let i = 0; i < count; i++) out[i] = -limit + 2 * limit * u();
      return out;
    }
  }
}
