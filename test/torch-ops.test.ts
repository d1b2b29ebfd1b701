/**
 * The ops torchvision's ResNet-FPN and MobileNetV3-FPN models need, against PyTorch itself
 * (python3-torch 1.13, CPU, float32) on the same seeded inputs, forward and backward:
 * - relu6, hardsigmoid and hardswish, the kinks (−3, 0, 3, 6) included, where the gradient's side
 *   is PyTorch's convention (the kinks sit in the first vector of aten's vectorized loop: at x = 3
 *   its scalar tail gives hardswish another gradient, see ops/elementwise.ts);
 * - F.interpolate(mode='nearest') to a given size (2×, odd, down, and 2 → 82, where float32's
 *   rounding of 2/82 decides the source row);
 * - F.max_pool2d(x, 1, 2, 0) (LastLevelMaxPool) and F.adaptive_avg_pool2d(x, 1) (squeeze-excitation);
 * - torchvision.ops.FrozenBatchNorm2d and nn.BatchNorm2d in eval mode, as models/torchvision/layers.ts
 *   builds them (a per-channel affine after the conv, fused into the conv's epilogue).
 * Runs on the GPU (lavapipe). Skipped, saying so, without python3-torch.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff.js';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { upsampleNearest } from '../index.js';
import { batchNorm2d, frozenBatchNorm2d } from '../models/torchvision/layers.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import { Session } from '../runtime/session.js';
import { freshSeed, rand, relError } from './helpers.js';
import { hasTorch, NO_TORCH_MESSAGE, PYTHON } from './torch-fixtures.js';

const HAS_TORCH = hasTorch();
if (!HAS_TORCH) console.warn(`torch-ops.test.ts: ${NO_TORCH_MESSAGE}`);
afterAll(closeDevice);

const ORACLE = String.raw`
import json, sys, torch
import torch.nn.functional as F
from torchvision.ops.misc import FrozenBatchNorm2d
q = json.load(sys.stdin)
t = lambda v, shape: torch.tensor(v, dtype=torch.float32).reshape(shape)
out = {}
def fwd_bwd(name, f, x, r):
    x = x.clone().requires_grad_(True)
    y = f(x)
    (y * r).sum().backward()
    out[name] = {'y': y.detach().flatten().tolist(), 'dx': x.grad.flatten().tolist()}
a = q['act']
for name, f in (('relu6', F.relu6), ('hardsigmoid', F.hardsigmoid), ('hardswish', F.hardswish)):
    fwd_bwd(name, f, t(a['x'], [-1]), t(a['r'], [-1]))
for k, c in enumerate(q['up']):
    fwd_bwd('up%d' % k, lambda x: F.interpolate(x, size=tuple(c['size']), mode='nearest'), t(c['x'], c['shape']), t(c['r'], c['out']))
p = q['pool']
fwd_bwd('maxpool', lambda x: F.max_pool2d(x, 1, 2, 0), t(p['x'], p['shape']), t(p['r_max'], p['out_max']))
fwd_bwd('avgpool', lambda x: F.adaptive_avg_pool2d(x, 1), t(p['x'], p['shape']), t(p['r_avg'], p['out_avg']))
b = q['bn']
C = b['C']
conv = lambda x: F.conv2d(x, t(b['w'], [C, b['shape'][1], 3, 3]), padding=1)
fbn = FrozenBatchNorm2d(C)
bn = torch.nn.BatchNorm2d(C, eps=b['eps'])
for m in (fbn, bn):
    m.weight.data = t(b['gamma'], [C]); m.bias.data = t(b['beta'], [C])
    m.running_mean.data = t(b['mean'], [C]); m.running_var.data = t(b['var'], [C])
bn.eval()
x = t(b['x'], b['shape'])
with torch.no_grad():
    out['frozen_bn'] = fbn(conv(x)).flatten().tolist()
    out['bn_eval'] = bn(conv(x)).flatten().tolist()
json.dump(out, sys.stdout)
`;

interface Pair {
  y: number[];
  dx: number[];
}
type Oracle = Record<string, Pair> & { frozen_bn: number[]; bn_eval: number[] };

const seed = freshSeed();
const KINKS = [-3, 0, 3, 6];
const act = {
  x: [...KINKS, ...KINKS.map((k) => k + 1e-3), ...KINKS.map((k) => k - 1e-3), ...rand(41, seed, -6, 9)],
  r: rand(53, seed + 1, 0.5, 1.5),
};
const UP = [
  { shape: [1, 2, 5, 7], size: [10, 14] },
  { shape: [2, 1, 3, 5], size: [7, 13] },
  { shape: [1, 2, 9, 11], size: [4, 5] },
  { shape: [1, 1, 2, 3], size: [82, 7] },
].map((c, k) => {
  const out = [c.shape[0] as number, c.shape[1] as number, ...c.size];
  const n = (s: number[]) => s.reduce((p, v) => p * v, 1);
  return { ...c, out, x: rand(n(c.shape), seed + 10 + k), r: rand(n(out), seed + 20 + k, 0.5, 1.5) };
});
const POOL_SHAPE = [2, 3, 7, 10];
const pool = {
  shape: POOL_SHAPE,
  x: rand(2 * 3 * 7 * 10, seed + 30),
  out_max: [2, 3, 4, 5],
  r_max: rand(2 * 3 * 4 * 5, seed + 31, 0.5, 1.5),
  out_avg: [2, 3, 1, 1],
  r_avg: rand(6, seed + 32, 0.5, 1.5),
};
const C = 5;
const bn = {
  C,
  eps: 1e-5,
  shape: [2, 3, 6, 7],
  x: rand(2 * 3 * 6 * 7, seed + 40),
  w: rand(C * 3 * 9, seed + 41, -0.5, 0.5),
  gamma: rand(C, seed + 42, 0.5, 1.5),
  beta: rand(C, seed + 43, -0.5, 0.5),
  mean: rand(C, seed + 44, -0.3, 0.3),
  var: rand(C, seed + 45, 0.2, 2),
};

let oracle: Oracle;
let session: (
  outs: Record<string, Tensor>,
  g: GraphBuilder,
  feeds: Record<string, number[]>,
) => Promise<Record<string, Float32Array>>;

describe.skipIf(!HAS_TORCH)(`ops against PyTorch 1.13 (seed ${seed})`, () => {
  beforeAll(async () => {
    const r = spawnSync(PYTHON, ['-c', ORACLE], {
      input: JSON.stringify({ act, up: UP, pool, bn }),
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw new Error(`torch oracle failed: ${r.stderr}`);
    oracle = JSON.parse(r.stdout) as Oracle;
    const dev = await getDevice();
    session = async (outs, g, feeds) => {
      const { spec } = compile(g, { outputs: outs, limits: limitsFrom(dev.limits) });
      const s = await Session.create(spec, { gpu: dev, initial: feeds });
      try {
        const inputs: Record<string, number[]> = {};
        for (const i of spec.inputs) inputs[i.name] = feeds[i.name] as number[];
        const got = await s.run(inputs);
        return Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v.data as Float32Array]));
      } finally {
        s.destroy();
      }
    };
  }, 120_000);

  /** y = f(x) and dx of Σ y·r on the GPU. */
  const forwardBackward = async (
    shape: number[],
    outShape: number[],
    f: (x: Tensor) => Tensor,
    x: number[],
    r: number[],
  ) => {
    const g = new GraphBuilder();
    const tx = g.input('x', shape);
    const y = f(tx);
    const [dx] = grad(y.mul(g.input('r', outShape)).sum(), [tx]);
    return session({ y, dx: dx as Tensor }, g, { x, r });
  };

  it('relu6, hardsigmoid, hardswish: values and gradients, kinks included', async () => {
    for (const name of ['relu6', 'hardsigmoid', 'hardswish'] as const) {
      const got = await forwardBackward([act.x.length], [act.x.length], (x) => x[name](), act.x, act.r);
      const want = oracle[name] as Pair;
      expect(relError(got.y as Float32Array, want.y), `${name} forward`).toBeLessThan(1e-6);
      // the gradient at each kink is PyTorch's side, exactly
      expect(Array.from(got.dx as Float32Array).slice(0, 12), `${name} gradient at the kinks`).toEqual(
        want.dx.slice(0, 12).map(Math.fround),
      );
      expect(relError(got.dx as Float32Array, want.dx), `${name} gradient`).toBeLessThan(1e-6);
    }
  });

  it('nearest upsampling to a size: the same source rows and summed gradients', async () => {
    for (const [k, c] of UP.entries()) {
      const got = await forwardBackward(
        c.shape,
        c.out,
        (x) => upsampleNearest(x, [c.size[0] as number, c.size[1] as number]),
        c.x,
        c.r,
      );
      const want = oracle[`up${k}`] as Pair;
      expect(Array.from(got.y as Float32Array), `${c.shape} → ${c.size}`).toEqual(want.y.map(Math.fround));
      expect(relError(got.dx as Float32Array, want.dx), `${c.shape} → ${c.size} gradient`).toBeLessThan(1e-6);
    }
  });

  it('max_pool2d(1, 2) and adaptive_avg_pool2d(1), forward and backward', async () => {
    const mp = await forwardBackward(
      pool.shape,
      pool.out_max,
      (x) => x.maxPool2d({ kernel: 1, stride: 2 }),
      pool.x,
      pool.r_max,
    );
    expect(Array.from(mp.y as Float32Array)).toEqual((oracle.maxpool as Pair).y.map(Math.fround));
    expect(Array.from(mp.dx as Float32Array)).toEqual((oracle.maxpool as Pair).dx.map(Math.fround));
    const ap = await forwardBackward(pool.shape, pool.out_avg, (x) => x.mean([2, 3], true), pool.x, pool.r_avg);
    expect(relError(ap.y as Float32Array, (oracle.avgpool as Pair).y)).toBeLessThan(1e-6);
    expect(relError(ap.dx as Float32Array, (oracle.avgpool as Pair).dx)).toBeLessThan(1e-6);
  });

  it('FrozenBatchNorm2d and eval-mode BatchNorm2d after a conv (fused into its epilogue)', async () => {
    for (const [which, make, want] of [
      ['frozen', frozenBatchNorm2d, oracle.frozen_bn],
      ['eval', batchNorm2d, oracle.bn_eval],
    ] as const) {
      const g = new GraphBuilder();
      const x = g.input('x', bn.shape);
      const y = make(x.conv2d(g.param('conv.weight', [C, 3, 3, 3]), { padding: [1, 1] }), 'bn', C, bn.eps);
      const { spec } = compile(g, { outputs: { y }, limits: limitsFrom((await getDevice()).limits) });
      // the affine runs inside the conv's kernel: no kernel reads the conv's output back
      expect(spec.kernels.filter((k) => /conv2d/.test(k.name)).length, which).toBeGreaterThan(0);
      expect(
        spec.kernels.some((k) => /conv2d.*(mul|add)|(mul|add).*conv2d/.test(k.name)),
        which,
      ).toBe(true);
      const got = await session({ y }, g, {
        x: bn.x,
        'conv.weight': bn.w,
        'bn.weight': bn.gamma,
        'bn.bias': bn.beta,
        'bn.running_mean': bn.mean,
        'bn.running_var': bn.var,
      });
      expect(relError(got.y as Float32Array, want), which).toBeLessThan(1e-5);
    }
  });
});
