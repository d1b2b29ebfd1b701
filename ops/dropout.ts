/**
 * Inverted dropout as an elementwise op (it fuses): y = x / (1 - p) where the element is kept, 0
 * where dropped. The mask is a stateless hash of (seed, flat output index), computed with the same
 * u32 arithmetic on the CPU and in the kernel, so both masks are bitwise identical.
 * An optional second input, a one-element u32 "step seed", is XORed into the seed at run time, so a
 * training program draws a new mask every step without recompiling (step seed 0 = the static mask).
 */
import { fail } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { Expr } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type RefTensor, registerOp } from '../compiler/registry.js';
import type { TensorType } from '../compiler/types.js';
import { numAttr } from './util.js';

const PCG_MUL = 747796405;
const PCG_INC = 2891336453;
const PCG_OUT = 277803737;

/** PCG-RXS-M-XS 32-bit hash (Jarzynski & Olano 2020) in emulated u32 arithmetic. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v, PCG_MUL) + PCG_INC) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, PCG_OUT) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The same hash as a kernel expression over a u32. */
function pcgExpr(v: Expr): Expr {
  const state = K.add(K.mul(v, K.u32(PCG_MUL)), K.u32(PCG_INC));
  const word = K.mul(K.bitXor(K.shr(state, K.add(K.shr(state, 28), K.u32(4))), state), K.u32(PCG_OUT));
  return K.bitXor(K.shr(word, 22), word);
}

interface DropoutParams {
  readonly p: number;
  readonly seed: number;
  /** Kept iff (hash >> 8) >= threshold, i.e. a 24-bit uniform in [0, 1) is >= p. */
  readonly threshold: number;
  readonly scale: number;
  /** pcgHash(seed), folded into the kernel as a literal. */
  readonly seedHash: number;
}

function params(attrs: Attrs): DropoutParams {
  const p = numAttr(attrs, 'p');
  const seed = numAttr(attrs, 'seed');
  if (!(p >= 0 && p <= 1)) fail(`p must lie in [0, 1], got ${p}`);
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff))
    fail(`seed must be an integer in [0, 2^32), got ${seed}`);
  return { p, seed, threshold: Math.ceil(p * 2 ** 24), scale: p < 1 ? 1 / (1 - p) : 0, seedHash: pcgHash(seed) };
}

/** Whether the element at flat index `i` is kept, for (seed, p). Exported for tests and tools. */
export function dropoutKeeps(i: number, seedHash: number, threshold: number): boolean {
  return pcgHash((pcgHash(i) ^ seedHash) >>> 0) >>> 8 >= threshold;
}

registerOp({
  name: 'dropout',
  kind: 'elementwise',
  dynamic: true,
  infer: (inputs, attrs) => {
    if (inputs.length !== 1 && inputs.length !== 2)
      fail(`takes x and an optional step seed, got ${inputs.length} inputs`);
    const x = inputs[0] as TensorType;
    if (x.dtype !== 'f32') fail(`needs f32, got ${x.dtype}`);
    const step = inputs[1];
    if (step && (step.dtype !== 'u32' || step.shape.length > x.shape.length || step.shape.some((d) => d !== 1))) {
      fail(
        `the step seed must be a one-element u32 tensor of rank ≤ ${x.shape.length}, got ${step.dtype}[${step.shape.join(',')}]`,
      );
    }
    params(attrs);
    return x;
  },
  cpu: ({ inputs, attrs }) => {
    const x = (inputs[0] as RefTensor).data;
    const q = params(attrs);
    if (q.p === 0) return x.slice();
    const step = inputs[1] ? ((inputs[1] as RefTensor).data[0] as number) : 0;
    const seedHash = pcgHash((q.seed ^ step) >>> 0);
    return x.map((v, i) => (dropoutKeeps(i, seedHash, q.threshold) ? v * q.scale : 0));
  },
  expr: ({ args, attrs, index }) => {
    const x = args[0] as Expr;
    const q = params(attrs);
    if (q.p === 0) return x;
    const seedHash = args[1] ? pcgExpr(K.bitXor(K.u32(q.seed), args[1])) : K.u32(q.seedHash);
    const h = pcgExpr(K.bitXor(pcgExpr(index), seedHash));
    return K.select(K.ge(K.shr(h, 8), K.u32(q.threshold)), K.mul(x, q.scale), K.f32(0));
  },
  grad: ({ attrs, dy, inputs }) => {
    const q = params(attrs);
    const step = inputs[1];
    return step ? [dy.dropout(q.p, q.seed, step), null] : [dy.dropout(q.p, q.seed)];
  },
});
