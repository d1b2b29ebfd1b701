/**
 * torchvision VGG16 → frcnn-vgg16 weight import (models/frcnn/import-torchvision.ts).
 *
 * Coverage (a full VGG16 file is 528 MB, so none is written):
 * - the REAL frcnn-vgg16 ParamMap (graph declared, not compiled): exactly torchvision's 30 feature /
 *   classifier.0 / classifier.3 keys with torchvision's shapes; fc6 split into 4 row blocks; the error
 *   paths (all keys missing, wrong shape, wrong dtype, vgg16_bn, prefixed keys) and a partial import
 *   (strict: false) with real-shaped tensors for a few keys, an F16 one converted, classifier.6 and
 *   unknown keys ignored with warnings;
 * - the row split on a reduced ParamMap entry (same code path as fc6's 4 parts, small sizes);
 * - the LAYOUT claim: a small RoI head declared with torchvision names, fed imported weights, computed
 *   by the CPU interpreter, equals torch's `classifier(torch.flatten(pooled, 1))` computed by hand.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { interpret } from '../compiler/interpreter.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { roiHead } from '../models/frcnn/head.js';
import { importTorchvisionVgg16, mapTorchvisionVgg16 } from '../models/frcnn/import-torchvision.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { ParamMap } from '../models/frcnn/layers.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsContents,
  type TensorToWrite,
  writeSafetensors,
} from '../runtime/safetensors.js';
import { rand } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-tv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** torchvision.models.vgg16().state_dict() keys and shapes, minus classifier.6 (the ImageNet classifier). */
const TV_CONVS: [number, number, number][] = [
  [0, 3, 64],
  [2, 64, 64],
  [5, 64, 128],
  [7, 128, 128],
  [10, 128, 256],
  [12, 256, 256],
  [14, 256, 256],
  [17, 256, 512],
  [19, 512, 512],
  [21, 512, 512],
  [24, 512, 512],
  [26, 512, 512],
  [28, 512, 512],
];
const TV_SHAPES = new Map<string, number[]>([
  ...TV_CONVS.flatMap(([i, cin, cout]): [string, number[]][] => [
    [`features.${i}.weight`, [cout, cin, 3, 3]],
    [`features.${i}.bias`, [cout]],
  ]),
  ['classifier.0.weight', [4096, 25088]],
  ['classifier.0.bias', [4096]],
  ['classifier.3.weight', [4096, 4096]],
  ['classifier.3.bias', [4096]],
]);

function vggParamMap(): ParamMap {
  const g = new GraphBuilder();
  return buildFrcnnInference(g, { backbone: 'frcnn-vgg16', numClasses: 20, canvas: [128, 128] }).paramMap;
}

const f32 = (shape: number[], seed: number): TensorToWrite => ({
  data: Float32Array.from(rand(shape, seed)),
  shape,
  dtype: 'f32',
});
const contents = (tensors: Record<string, TensorToWrite>): SafetensorsContents =>
  decodeSafetensors(encodeSafetensors(tensors), 'fake-vgg16.safetensors');

describe('torchvision VGG16 import: the real frcnn-vgg16 name map', () => {
  const map = vggParamMap();

  it('maps exactly torchvision’s 30 keys with torchvision’s shapes, one parameter each', () => {
    const tv = map.entries.filter((e) => e.torchvision !== null);
    expect(new Map(tv.map((e) => [e.torchvision, [...e.shape]]))).toEqual(TV_SHAPES);
    const fc6 = tv.find((e) => e.torchvision === 'classifier.0.weight');
    expect(fc6?.param).toBe('classifier.0.weight');
    const fc7 = tv.find((e) => e.torchvision === 'classifier.3.weight');
    expect(fc7?.param).toBe('classifier.3.weight');
    // our conv params carry torchvision's names
    for (const [i] of TV_CONVS)
      expect(tv.find((e) => e.torchvision === `features.${i}.weight`)?.param).toBe(`features.${i}.weight`);
  });

  it('an empty file lists all 30 missing keys', () => {
    const err = (() => {
      try {
        mapTorchvisionVgg16(contents({}), map, { file: 'empty.safetensors' });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toMatch(
      /torchvision VGG16 weights empty\.safetensors do not fit the model:\n {2}missing keys: /,
    );
    for (const k of TV_SHAPES.keys()) expect(err?.message).toContain(k);
  });

  it('partial import (strict: false) of real-shaped tensors from a file: values, F16 conversion, ignored keys', async () => {
    const path = join(dir, 'partial.safetensors');
    const w0 = f32([64, 3, 3, 3], 1);
    const w2 = f32([64, 64, 3, 3], 2);
    await writeSafetensors(path, [
      ['features.0.weight', w0],
      ['features.0.bias', f32([64], 3)],
      ['features.2.weight', { ...w2, storeAs: 'F16' }],
      ['classifier.6.weight', f32([1000, 4096], 4)],
      ['classifier.6.bias', f32([1000], 5)],
      ['num_batches_seen', { data: Int32Array.from([7]), shape: [1], dtype: 'i32' }],
    ]);
    const r = await importTorchvisionVgg16(path, map, { strict: false });
    expect([...r.params.keys()]).toEqual(['features.0.weight', 'features.0.bias', 'features.2.weight']);
    expect(r.params.get('features.0.weight')).toEqual(w0.data);
    const half = r.params.get('features.2.weight') as Float32Array;
    const w2d = w2.data as Float32Array;
    for (let i = 0; i < half.length; i++) expect(Math.abs((half[i] as number) - (w2d[i] as number))).toBeLessThan(1e-3);
    expect(r.imported).toEqual(['features.0.weight', 'features.0.bias', 'features.2.weight']);
    expect(r.missing).toHaveLength(27);
    expect(r.missing).toContain('classifier.0.weight');
    expect(r.unused).toEqual(['classifier.6.weight', 'classifier.6.bias', 'num_batches_seen']);
    const notes = r.warnings.join('\n');
    expect(notes).toContain('"features.2.weight": F16 converted to f32');
    expect(notes).toMatch(
      /ignored classifier\.6\.weight, classifier\.6\.bias: torchvision's 1000-class ImageNet classifier/,
    );
    expect(notes).toMatch(/ignored 1 key\(s\) the model does not use: num_batches_seen/);
    expect(notes).toContain('IMAGENET_MEAN_RGB');
  });

  it('wrong shapes and dtypes are listed together, naming key, expected and found', () => {
    const file = contents({
      'features.0.weight': f32([64, 3, 3, 3], 1),
      'features.0.bias': { data: new Int32Array(64), shape: [64], dtype: 'i32' },
      'features.5.weight': f32([128, 64, 3, 2], 2),
      'classifier.3.bias': f32([4095], 3),
    });
    expect(() => mapTorchvisionVgg16(file, map, { strict: false, file: 'bad.safetensors' })).toThrow(
      'torchvision VGG16 weights bad.safetensors do not fit the model:\n' +
        '  wrong shape: "features.5.weight": expected [128, 64, 3, 3], got [128, 64, 3, 2]; ' +
        '"classifier.3.bias": expected [4096], got [4095]\n' +
        '  wrong dtype: "features.0.bias": I32, expected a floating-point tensor (F32; F16, BF16, F64 are converted)',
    );
  });

  it('hints: vgg16_bn statistics, prefixed keys (and the prefix option reads them)', () => {
    const bn = contents({ 'features.1.running_mean': f32([64], 1) });
    expect(() => mapTorchvisionVgg16(bn, map)).toThrow(/vgg16_bn is not supported/);
    const prefixed = contents({
      'module.features.0.weight': f32([64, 3, 3, 3], 1),
      'module.features.0.bias': f32([64], 2),
    });
    expect(() => mapTorchvisionVgg16(prefixed, map)).toThrow(/keys look prefixed: pass \{ prefix: "module\." \}/);
    const r = mapTorchvisionVgg16(prefixed, map, { prefix: 'module.', strict: false });
    expect(r.imported).toEqual(['module.features.0.weight', 'module.features.0.bias']);
    expect(r.params.has('features.0.weight')).toBe(true);
  });

  it('a model without torchvision names (frcnn-small) is refused', () => {
    const g = new GraphBuilder();
    const small = buildFrcnnInference(g, { backbone: 'frcnn-small', numClasses: 2, canvas: [64, 64] }).paramMap;
    expect(() => mapTorchvisionVgg16(contents({}), small)).toThrow(/only frcnn-vgg16 does/);
  });
});

describe('torchvision VGG16 import: the flatten layout', () => {
  it('our RoI head with imported fc6/fc7 computes torch’s classifier(flatten(pooled, 1)) (C-major flatten)', () => {
    const C = 4;
    const P = 2;
    const Hd = 6;
    const K = 2;
    const R = 3;
    const g = new GraphBuilder();
    const features = g.input('features', [1, C, 8, 8]);
    const rois = g.input('rois', [R, 5]);
    const map = new ParamMap();
    const head = roiHead(
      g,
      features,
      rois,
      {
        head: {
          pooled: P,
          hidden: Hd,
          fc6: { name: 'classifier.0', caffe: 'fc6', torchvision: 'classifier.0' },
          fc7: { name: 'classifier.3', caffe: 'fc7', torchvision: 'classifier.3' },
          dropout: 0.5,
        },
        inChannels: C,
        numClasses: K,
        stride: 1,
      },
      map,
    );
    const tv = {
      'classifier.0.weight': f32([Hd, C * P * P], 11),
      'classifier.0.bias': f32([Hd], 12),
      'classifier.3.weight': f32([Hd, Hd], 13),
      'classifier.3.bias': f32([Hd], 14),
    };
    const imported = mapTorchvisionVgg16(contents(tv), map);
    expect(imported.imported).toHaveLength(4);
    const feeds: Record<string, ArrayLike<number>> = {
      features: rand([1, C, 8, 8], 21),
      rois: [0, 0, 0, 5, 5, 0, 2, 1, 7, 6, 0, 1, 3, 4, 7],
      'cls_score.weight': rand([K + 1, Hd], 22),
      'cls_score.bias': rand([K + 1], 23),
      'bbox_pred.weight': rand([4 * (K + 1), Hd], 24),
      'bbox_pred.bias': rand([4 * (K + 1)], 25),
    };
    for (const [k, v] of imported.params) feeds[k] = v;
    const [pooled, cls] = interpret(g.graph, feeds, [head.pooled.id, head.clsScore.id]);
    // torch: x = pooled.flatten(1) (index c·P·P + y·P + x), Linear = x·Wᵀ + b, ReLU
    const lin = (x: number[], w: ArrayLike<number>, b: ArrayLike<number>, relu: boolean) =>
      Array.from({ length: b.length }, (_, o) => {
        let s = b[o] as number;
        for (let i = 0; i < x.length; i++) s += (w[o * x.length + i] as number) * (x[i] as number);
        return relu ? Math.max(0, s) : s;
      });
    const data = (t: TensorToWrite) => t.data;
    for (let r = 0; r < R; r++) {
      const x = Array.from(pooled!.data.subarray(r * C * P * P, (r + 1) * C * P * P));
      const h6 = lin(x, data(tv['classifier.0.weight']), data(tv['classifier.0.bias']), true);
      const h7 = lin(h6, data(tv['classifier.3.weight']), data(tv['classifier.3.bias']), true);
      const want = lin(h7, feeds['cls_score.weight']!, feeds['cls_score.bias']!, false);
      const got = Array.from(cls!.data.subarray(r * (K + 1), (r + 1) * (K + 1)));
      for (let j = 0; j <= K; j++) expect(got[j]).toBeCloseTo(want[j] as number, 10);
    }
    // the check can fail: a transposed (H, W, C) flatten gives other scores
    const x0 = Array.from(pooled!.data.subarray(0, C * P * P));
    const hwc = x0.map((_, i) => x0[(i % C) * P * P + Math.floor(i / C)] as number);
    const h6 = lin(hwc, data(tv['classifier.0.weight']), data(tv['classifier.0.bias']), true);
    const other = lin(
      lin(h6, data(tv['classifier.3.weight']), data(tv['classifier.3.bias']), true),
      feeds['cls_score.weight']!,
      feeds['cls_score.bias']!,
      false,
    );
    expect(Math.abs((other[0] as number) - (cls!.data[0] as number))).toBeGreaterThan(1e-6);
  });
});
