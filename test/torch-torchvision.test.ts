/**
 * A real torchvision model's weights through runtime/torch (skipped with a message when
 * /usr/bin/python3 cannot import torch and torchvision): make_state_dicts.py --torchvision saves the
 * seeded state dict of fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
 * (330 tensors, 78 MB; BatchNorm buffers seeded too) with torch.save in the zip and legacy formats and
 * as safetensors with torchvision's key names, and reports each tensor's sha256. Checked: every tensor
 * of every file equals torch's bytes; the three files give identical tensors; the state dict maps onto
 * the model's expected names and shapes (num_batches_tracked ignored); and the same weights give
 * identical outputs from the three files: the backbone's first block (conv 3×3/2 + BatchNorm +
 * Hardswish) computed by the CPU interpreter equals torchvision's own output on a seeded input.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interpret } from '../compiler/interpreter.js';
import { GraphBuilder } from '../compiler/tensor.js';
import '../ops/index.js';
import {
  type LoadedStateDict,
  loadStateDict,
  mapStateDict,
  type StateTensor,
  toFloat32,
} from '../runtime/torch/index.js';
import { relError } from './helpers.js';
import { hasTorch, makeStateDicts, NO_TORCH_MESSAGE } from './torch-fixtures.js';

const HAS_TORCH = hasTorch();
if (!HAS_TORCH) console.warn(`torch-torchvision.test.ts: ${NO_TORCH_MESSAGE}`);

interface FirstBlock {
  x: number[];
  x_shape: number[];
  y: number[];
  y_shape: number[];
  conv: { weight: string; stride: [number, number]; padding: [number, number] };
  bn: { prefix: string; eps: number };
  activation: string;
}

const dir = mkdtempSync(join(tmpdir(), 'wgflow-tv-pth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const seed = (Math.random() * 2 ** 31) >>> 0;
const FILES = ['tv.zip.pth', 'tv.legacy.pth', 'tv.safetensors'] as const;
const loaded = new Map<string, LoadedStateDict>();
let keys: [string, { dtype: string; shape: number[]; sha256: string }][] = [];
let block: FirstBlock;

const bytesOf = (t: StateTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

describe.skipIf(!HAS_TORCH)('torchvision fasterrcnn_mobilenet_v3_large_320_fpn weights', () => {
  beforeAll(async () => {
    const { report, seconds } = makeStateDicts(dir, seed, true);
    console.log(
      `make_state_dicts.py --torchvision (seed ${seed}): ${seconds.toFixed(1)} s wall, ${JSON.stringify(report)}`,
    );
    keys = JSON.parse(readFileSync(join(dir, 'tv.json'), 'utf8')).keys;
    block = JSON.parse(readFileSync(join(dir, 'tv-out.json'), 'utf8'));
    for (const f of FILES) {
      const t0 = performance.now();
      loaded.set(f, await loadStateDict(join(dir, f)));
      console.log(`loadStateDict ${f}: ${(performance.now() - t0).toFixed(0)} ms`);
    }
  });

  it('every tensor of every file is torch’s, bit for bit (order, dtype, shape, sha256)', () => {
    expect(keys.length).toBe(330);
    for (const f of FILES) {
      const sd = loaded.get(f)!;
      expect([...sd.tensors.keys()], f).toEqual(keys.map(([k]) => k));
      for (const [k, py] of keys) {
        const t = sd.tensors.get(k)!;
        const what = `${f} ${k} (seed ${seed})`;
        expect(t.dtype, what).toBe(py.dtype);
        expect(t.shape, what).toEqual(py.shape);
        expect(createHash('sha256').update(bytesOf(t)).digest('hex'), what).toBe(py.sha256);
      }
    }
  });

  it('the zip, legacy and safetensors files give identical tensors', () => {
    const [a, ...rest] = FILES.map((f) => loaded.get(f)!);
    for (const b of rest)
      for (const [k, t] of a!.tensors) {
        // (Buffer.equals: vitest's deep equality takes minutes on arrays of millions of bytes.)
        expect(b.tensors.get(k)!.shape, `${b.name} ${k}`).toEqual(t.shape);
        expect(bytesOf(b.tensors.get(k)!).equals(bytesOf(t)), `${b.name} ${k}`).toBe(true);
      }
  });

  it('maps onto the expected names and shapes; num_batches_tracked is ignored', () => {
    const expected = keys
      .filter(([k]) => !k.endsWith('num_batches_tracked'))
      .map(([name, t]) => ({ name, shape: t.shape }));
    expect(expected.length).toBeLessThan(keys.length);
    for (const f of FILES) {
      const m = mapStateDict(expected, loaded.get(f)!);
      expect([...m.keys()]).toEqual(expected.map((e) => e.name));
    }
    // A model whose names carry a prefix: renamed by a rule.
    const prefixed = expected.map((e) => ({ ...e, name: `detector.${e.name}` }));
    expect(mapStateDict(prefixed, loaded.get('tv.zip.pth')!, { rename: [{ from: '', to: 'detector.' }] }).size).toBe(
      expected.length,
    );
  });

  it(`the same weights give identical outputs from the three files, equal to torchvision’s (seed ${seed})`, () => {
    expect(block.activation).toBe('Hardswish');
    const w = loaded.get('tv.zip.pth')!.tensors.get(block.conv.weight)!;
    const [cout] = w.shape as [number];
    const g = new GraphBuilder();
    const x = g.input('x', block.x_shape);
    const per = (name: string) => g.param(`${block.bn.prefix}.${name}`, [cout]).reshape([1, cout, 1, 1]);
    const conv = x.conv2d(g.param(block.conv.weight, w.shape), {
      stride: block.conv.stride,
      padding: block.conv.padding,
    });
    const bn = conv
      .sub(per('running_mean'))
      .div(per('running_var').add(block.bn.eps).sqrt())
      .mul(per('weight'))
      .add(per('bias'));
    const y = bn.mul(bn.add(3).maximum(0).minimum(6)).div(6); // Hardswish
    const names = [
      block.conv.weight,
      ...['running_mean', 'running_var', 'weight', 'bias'].map((n) => `${block.bn.prefix}.${n}`),
    ];
    const outputs = FILES.map((f) => {
      const feeds: Record<string, ArrayLike<number>> = { x: block.x };
      for (const n of names) feeds[n] = toFloat32(loaded.get(f)!.tensors.get(n)!);
      const [out] = interpret(g.graph, feeds, [y.id]);
      return out!;
    });
    expect(outputs[0]!.shape).toEqual(block.y_shape);
    expect(outputs[1]!.data).toEqual(outputs[0]!.data);
    expect(outputs[2]!.data).toEqual(outputs[0]!.data);
    // float64 reference vs torch's float32 forward pass.
    expect(relError(outputs[0]!.data, block.y)).toBeLessThan(1e-5);
  });
});
