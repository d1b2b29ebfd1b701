/**
 * Test seeds. Fixed by default (derived from a label, so each test has its own stream and a failure
 * reproduces); `WGFLOW_TEST_SEED=random` draws new ones each run (printed with the label), and
 * `WGFLOW_TEST_SEED=<n>` mixes n into every label's seed.
 */
import { uniformStream } from '../runtime/init.js';

function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The seed of a test, by label (see the file comment). */
export function testSeed(label: string): number {
  const env = process.env.WGFLOW_TEST_SEED;
  if (env === 'random') {
    const s = (Math.random() * 2 ** 31) >>> 0 || 1;
    console.log(`seed ${label}: ${s} (WGFLOW_TEST_SEED=random)`);
    return s;
  }
  const base = env !== undefined && env !== '' ? Number(env) >>> 0 : 0;
  return (hash(label) ^ Math.imul(base, 0x9e3779b1)) >>> 0 || 1;
}

/** A uniform [0, 1) stream for a test, by label. */
export function testRandom(label: string): () => number {
  return uniformStream(testSeed(label));
}
