/**
 * The wgflow CLI end to end, in child processes, on a tiny generated shapes dataset (6 train + 2 test
 * images of 64×80):
 * - `train` 2 iterations (checkpoint and loss curve);
 * - `detect` on the test images: a PNG per image with the image's size, the best detection's frame in
 *   its class colour at its box, and detections.json in COCO results format matching the images;
 * - `eval`: VOC (area and 11-point) and COCO tables;
 * - `compile`: frcnn-small with the checkpoint's weights (the artifact, loaded by the runtime alone,
 *   gives exactly the detections `detect` wrote), the training step with --no-gpu, a user model file
 *   (the artifact runs its SGD step), --target cuda (built with nvcc when there is one, else a clear
 *   error), torchvision weights that do not fit;
 * - bad arguments: exit code 1 and a message naming the problem, no stack trace; `bench` passes its
 *   arguments and exit code through to bench/run.ts.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNvcc } from '../compiler/cuda-artifact.js';
import { WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import { decodeImage } from '../data/image.js';
import { SHAPE_CLASSES } from '../data/shapes.js';
import { loadCocoResults } from '../eval/coco-results.js';
import { loadArtifact, readArtifactManifest } from '../runtime/artifact.js';
import { cudaProgramOf } from '../runtime/cuda/launch.js';
import { readCudaSection } from '../runtime/cuda/read.js';
import { closeDevice } from '../runtime/device.js';
import { readSafetensors, writeSafetensors } from '../runtime/safetensors.js';
import type { HostTensor } from '../runtime/session.js';
import { prepareImage } from '../train/feed.js';
import type { FrcnnRunConfig } from '../train/frcnn-config.js';
import { classColor } from '../viz/draw-detections.js';
import { REPO, runCli, STACK_LINE } from './cli-process.js';
import { makeTinyShapes } from './tiny-frcnn.js';

const root = mkdtempSync(join(tmpdir(), 'wgflow-cli-'));
const data = join(root, 'data');
const run = join(root, 'run');
const ckpt = join(run, 'checkpoint.safetensors');
let testImages: string[] = [];

afterAll(async () => {
  await closeDevice();
  rmSync(root, { recursive: true, force: true });
});

beforeAll(async () => {
  await makeTinyShapes(data, { train: 6, test: 2 });
  testImages = readFileSync(join(data, 'ImageSets/Main/test.txt'), 'utf8')
    .split('\n')
    .filter((s) => s)
    .map((id) => join(data, 'JPEGImages', `${id}.png`));
  const r = await runCli([
    'train',
    '--dataset',
    data,
    '--model',
    'frcnn-small',
    '--canvas',
    '64x80',
    '--iters',
    '2',
    '--checkpoint-every',
    '1',
    '--pretrain-steps',
    '3', // exercises the crop pre-training path (the default is 400 for frcnn-small)
    '--out',
    run,
  ]);
  if (r.code !== 0) throw new Error(`train failed (${r.code}):\n${r.stderr}`);
}, 900_000);

interface CocoResult {
  image_id: number;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
}

describe('wgflow train / detect / eval', () => {
  it('train wrote a checkpoint of iteration 2 and a loss curve', async () => {
    const { metadata, tensors } = await readSafetensors(ckpt);
    expect(metadata.iteration).toBe('2');
    expect(metadata.format).toBe('wgflow-checkpoint');
    expect((JSON.parse(metadata.config as string) as FrcnnRunConfig).canvas).toEqual([64, 80]);
    expect(tensors.size).toBeGreaterThan(20);
    const png = await decodeImage(join(run, 'loss.png'));
    expect(png.width).toBeGreaterThan(100);
  });

  it('detect: PNGs (small images enlarged ×5) with boxes in class colours, and COCO results JSON', async () => {
    const out = join(root, 'detect');
    const r = await runCli(['detect', ...testImages, '--checkpoint', ckpt, '--out', out, '--score', '0']);
    expect(r.code, r.stderr).toBe(0);
    // a fresh process: stderr holds wgflow's own lines only (Dawn's adapter warnings are filtered)
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(testImages.length + 1);
    for (const line of lines)
      expect(line).toMatch(/^(.+\.png: \d+ detections ≥ 0 \(\d+ in all\) → .+\.png|COCO results: .+detections\.json)$/);
    const results = JSON.parse(readFileSync(join(out, 'detections.json'), 'utf8')) as CocoResult[];
    expect(Array.isArray(results)).toBe(true);
    expect(results.length).toBeGreaterThan(0);
    const ids = testImages.map((p) => Number(p.slice(-10, -4)));
    // read as pycocotools' loadRes reads it: every entry belongs to an image, x2 = x + w
    const loaded = loadCocoResults(results, ids);
    expect(loaded).toHaveLength(results.length);
    for (const d of results) {
      expect(ids).toContain(d.image_id);
      expect(Number.isInteger(d.category_id) && d.category_id >= 1 && d.category_id <= SHAPE_CLASSES.length).toBe(true);
      expect(d.bbox).toHaveLength(4);
      expect(d.bbox.every(Number.isFinite)).toBe(true);
      expect(d.bbox[2]).toBeGreaterThan(0);
      expect(d.bbox[3]).toBeGreaterThan(0);
      expect(d.score >= 0 && d.score <= 1).toBe(true);
    }
    for (const [k, path] of testImages.entries()) {
      const src = await decodeImage(path);
      const drawn = await decodeImage(join(out, basename(path)));
      const z = Math.ceil(300 / 64); // detect draws images under 300 px enlarged by an integer factor
      expect([drawn.width, drawn.height]).toEqual([80 * z, 64 * z]);
      expect([src.width, src.height]).toEqual([80, 64]);
      // the best detection is drawn last (on top): its bottom edge carries its class colour
      const mine = results.filter((d) => d.image_id === ids[k]).sort((a, b) => b.score - a.score);
      // frcnn boxes are inclusive (x2 is the last covered column); COCO's w is x2 − x1
      const best = mine.find((d) => Math.round(d.bbox[0] + d.bbox[2]) >= Math.round(d.bbox[0]));
      if (!best) continue;
      const x1 = Math.max(0, Math.round(best.bbox[0]));
      const x2 = Math.min(79, Math.round(best.bbox[0] + best.bbox[2]));
      const y2 = Math.min(63, Math.round(best.bbox[1] + best.bbox[3]));
      const x = Math.floor((x1 * z + (x2 + 1) * z - 1) / 2);
      const y = (y2 + 1) * z - 1;
      const px = [...drawn.data.subarray(3 * (y * 80 * z + x), 3 * (y * 80 * z + x) + 3)];
      expect(px, `image ${ids[k]} pixel (${x}, ${y})`).toEqual([...classColor(best.category_id)]);
    }
    expect(results.some((d) => d.image_id === ids[0])).toBe(true);
  });

  it('eval prints the VOC tables (area and 11-point) and the COCO table', async () => {
    const r = await runCli(['eval', '--dataset', data, '--checkpoint', ckpt, '--split', 'test']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('AP: area under curve, IoU > 0.5');
    expect(r.stdout).toContain('AP: VOC07 11-point, IoU > 0.5');
    expect(r.stdout.match(/\| \*\*mAP\*\* \|/g)).toHaveLength(2);
    for (const c of SHAPE_CLASSES) expect(r.stdout).toMatch(new RegExp(`^\\| ${c} \\|`, 'm'));
    expect(r.stdout).toContain('| metric | IoU | area | maxDets | value |');
    expect(r.stdout.match(/^\| (AP|AR) \| /gm)).toHaveLength(12);
  });

  it('train --mode alternating: the 4 steps, one combined checkpoint that eval reads', async () => {
    const out = join(root, 'alt');
    const r = await runCli([
      'train',
      '--dataset',
      data,
      '--model',
      'frcnn-small',
      '--canvas',
      '64x80',
      '--iters',
      '1',
      '--pretrain-steps',
      '0',
      '--mode',
      'alternating',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    for (const k of [1, 2, 3, 4]) expect(r.stderr).toContain(`step ${k}/4:`);
    const alt = join(out, 'checkpoint.safetensors');
    const { tensors, metadata } = await readSafetensors(alt);
    expect(Number(metadata.iteration)).toBe(4);
    expect([...tensors.keys()].some((n) => n.startsWith('rpn.'))).toBe(true);
    expect([...tensors.keys()].some((n) => n.startsWith('fc6'))).toBe(true);
    const e = await runCli(['eval', '--dataset', data, '--checkpoint', alt, '--split', 'test']);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout.match(/\| \*\*mAP\*\* \|/g)).toHaveLength(2);
  });
});

describe('wgflow compile', () => {
  it('frcnn-small with --checkpoint: trained weights in the artifact, which detects as `detect` does', async () => {
    const dir = join(root, 'art-small');
    const r = await runCli(['compile', 'frcnn-small', '--checkpoint', ckpt, '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['manifest.json', 'weights.safetensors', 'constants.safetensors', 'frcnn-small.ts'])
      expect(existsSync(join(dir, f)), f).toBe(true);
    const manifest = await readArtifactManifest(dir);
    const wgsl = readdirSync(join(dir, 'kernels')).filter((f) => f.endsWith('.wgsl'));
    expect(wgsl.length).toBe(new Set(manifest.kernels.map((k) => k.file)).size);
    expect(manifest.weights.source).toBe('given');
    expect(manifest.metadata.classes).toEqual([...SHAPE_CLASSES]);
    const trained = (await readSafetensors(ckpt)).tensors;
    const weights = (await readSafetensors(join(dir, 'weights.safetensors'))).tensors;
    expect(weights.size).toBe(manifest.persistent.length);
    for (const [name, t] of weights) {
      const c = trained.get(name);
      expect(c, name).toBeDefined();
      expect(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(
          Buffer.from(c!.data.buffer, c!.data.byteOffset, c!.data.byteLength),
        ),
        name,
      ).toBe(true);
    }

    // the artifact, run by the runtime, gives exactly the detections `detect` wrote (same limits, same kernels)
    const detected = JSON.parse(readFileSync(join(root, 'detect', 'detections.json'), 'utf8')) as CocoResult[];
    const config = manifest.metadata.config as unknown as FrcnnRunConfig;
    const art = await loadArtifact(dir);
    try {
      for (const path of testImages) {
        const id = Number(path.slice(-10, -4));
        const prepared = prepareImage(await decodeImage(path), config);
        const out = await art.session.run({ image: prepared.data, im_info: prepared.imInfo });
        const n = (out.det_count as HostTensor).data[0] as number;
        const b = (out.det_boxes as HostTensor).data;
        const mine = Array.from({ length: n }, (_, d) => ({
          image_id: id,
          category_id: (out.det_classes as HostTensor).data[d] as number,
          bbox: [b[4 * d]!, b[4 * d + 1]!, b[4 * d + 2]! - b[4 * d]!, b[4 * d + 3]! - b[4 * d + 1]!],
          score: (out.det_scores as HostTensor).data[d] as number,
        }));
        const theirs = detected
          .filter((d) => d.image_id === id)
          .map(({ image_id, category_id, bbox, score }) => ({ image_id, category_id, bbox, score }));
        expect(mine).toEqual(theirs);
        // COCO's reader gets the model's corners back exactly (x2 = x + w)
        const corners = loadCocoResults(theirs, [id]).map((d) => d.corners);
        expect(corners).toEqual(Array.from({ length: n }, (_, d) => [...b.subarray(4 * d, 4 * d + 4)]));
      }
    } finally {
      art.session.destroy();
    }
  });

  it('frcnn-small --train: the training step', async () => {
    const dir = join(root, 'art-train');
    const r = await runCli(['compile', 'frcnn-small', '--train', '--classes', 'a,b,c', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    const m = await readArtifactManifest(dir);
    expect(m.name).toBe('frcnn-small-train');
    expect(m.inputs.map((t) => t.name)).toEqual(expect.arrayContaining(['image', 'im_info', 'gt_boxes', 'gt_labels']));
    expect(m.outputs.map((t) => t.name)).toEqual(expect.arrayContaining(['loss', 'rpn_cls_loss', 'cls_loss']));
    expect(m.persistent.some((p) => p.role === 'state')).toBe(true);
    expect(m.weights.source).toBe('initial');
    expect(m.metadata.classes).toEqual(['a', 'b', 'c']);
    // cls_score has K + 1 = 4 rows
    const cls = m.persistent.find((p) => p.name === 'cls_score.weight');
    expect(cls?.shape[0]).toBe(4);
    expect(m.persistent.find((p) => p.name === 'cls_score.weight.momentum')?.role).toBe('state');
  });

  it('a user model file (default export) with an SGD step, --no-gpu; --target cuda', async () => {
    const dir = join(root, 'user');
    mkdirSync(dir, { recursive: true });
    const model = join(dir, 'tiny-mlp.mts');
    writeFileSync(
      model,
      `import type { GraphBuilder } from ${JSON.stringify(join(REPO, 'compiler/tensor.js'))};
import { sgd } from ${JSON.stringify(join(REPO, 'compiler/optim.js'))};
export default function (g: GraphBuilder) {
  const x = g.input('x', [2, 3]);
  const w = g.param('w', [3, 2]);
  const y = x.matmul(w);
  const loss = y.mul(y).sum();
  return { outputs: { y, loss }, updates: sgd(loss, { momentum: 0 }).updates };
}
`,
    );
    const art = join(root, 'art-user');
    const r = await runCli(['compile', model, '--out', art, '--no-gpu']);
    expect(r.code, r.stderr).toBe(0);
    const m = await readArtifactManifest(art);
    expect(m.name).toBe('tiny-mlp');
    expect((m.compileOptions as { limits: unknown }).limits).toEqual(WEBGPU_DEFAULT_LIMITS);
    expect(m.inputs.map((t) => t.name)).toEqual(['x', 'lr']);
    expect(m.outputs.map((t) => t.name)).toEqual(['y', 'loss']);
    expect(existsSync(join(art, 'tiny-mlp.ts'))).toBe(true);
    // the artifact computes y = x·w and applies w −= lr·2·xᵀy
    const loaded = await loadArtifact(art);
    try {
      const w0 = (await loaded.session.read('w')).data;
      const x = [1, 2, 3, -1, 0.5, 2];
      const out = await loaded.session.run({ x, lr: [0.01] });
      const y = (out.y as HostTensor).data;
      const w1 = (await loaded.session.read('w')).data;
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++) {
          let s = 0;
          for (let k = 0; k < 3; k++) s += x[3 * i + k]! * w0[2 * k + j]!;
          expect(y[2 * i + j]).toBeCloseTo(s, 5);
        }
      for (let k = 0; k < 3; k++)
        for (let j = 0; j < 2; j++) {
          let gr = 0;
          for (let i = 0; i < 2; i++) gr += 2 * x[3 * i + k]! * y[2 * i + j]!;
          expect(w1[2 * k + j]).toBeCloseTo(w0[2 * k + j]! - 0.01 * gr, 5);
        }
    } finally {
      loaded.session.destroy();
    }

    // --target cuda: without nvcc a clear error; with it, CUDA C and PTX next to the WGSL
    const none = await runCli(['compile', model, '--out', join(root, 'art-cuda-none'), '--target', 'cuda'], {
      NVCC: join(root, 'no-such-nvcc'),
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/--target cuda: nvcc not found/);
    expect(none.stderr).not.toMatch(STACK_LINE);
    expect(existsSync(join(root, 'art-cuda-none'))).toBe(false);
    if (!findNvcc()) {
      console.warn('cli.test: no nvcc; the --target cuda build was not checked');
      return;
    }
    const cudaDir = join(root, 'art-cuda');
    const c = await runCli(['compile', model, '--out', cudaDir, '--target', 'cuda']);
    expect(c.code, c.stderr).toBe(0);
    const cm = await readArtifactManifest(cudaDir);
    expect(cm.metadata.targets).toEqual(['webgpu', 'cuda']);
    const files = readdirSync(join(cudaDir, 'kernels'));
    expect(files.filter((f) => f.endsWith('.cu')).length).toBeGreaterThan(0);
    expect(files.filter((f) => f.endsWith('.ptx')).length).toBeGreaterThan(0);
    expect(files).toContain(`${cm.program}.cuda.json`);
    expect(files.filter((f) => f.endsWith('.wgsl')).length).toBe(cm.kernels.length);
    // the CUDA kernels come from a compile with the CUDA tuning table: the section carries that
    // program, with the artifact program's inputs, outputs and params; its GEMMs take 256-thread
    // blocks where lavapipe's table takes 16 threads for this 2×3·3×2 matmul
    const loadedCuda = await loadArtifact(cudaDir);
    const wgslProgram = loadedCuda.session.spec;
    loadedCuda.session.destroy();
    const section = readCudaSection(cudaDir, cm.program);
    const own = cudaProgramOf(wgslProgram, section);
    expect(own).toBe(section.spec);
    expect(own.inputs).toEqual(wgslProgram.inputs.map((t) => ({ ...t, buffer: expect.any(Number) })));
    expect(own.kernels.every((k) => k.wgsl === '')).toBe(true);
    const gemmBlocks = (spec: typeof own) =>
      spec.kernels.filter((k) => /matmul/.test(k.name)).map((k) => k.workgroupSize[0]);
    expect(gemmBlocks(wgslProgram)).toEqual([16, 16]);
    expect(gemmBlocks(own)).toEqual([256, 256]);
    expect(section.kernels.map((k) => k.block[0])).toEqual(own.kernels.map((k) => k.workgroupSize[0]));
  });

  it('torchvision weights that do not fit frcnn-vgg16 are refused, naming the keys', async () => {
    const tv = join(root, 'vgg16-partial.safetensors');
    await writeSafetensors(tv, {
      'features.0.weight': { data: new Float32Array(64 * 3 * 9), shape: [64, 3, 3, 3], dtype: 'f32' },
    });
    const r = await runCli([
      'compile',
      'frcnn-vgg16',
      '--no-gpu',
      '--weights-torchvision',
      tv,
      '--out',
      join(root, 'vgg'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(tv);
    expect(r.stderr).toMatch(/features\.2\.weight/);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(existsSync(join(root, 'vgg'))).toBe(false);
  });
});

describe.concurrent('bad arguments: exit code 1, a message naming the problem, no stack trace', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'unknown model (train)',
      ['train', '--dataset', 'DATA', '--model', 'frcnn-huge'],
      /^wgflow: option '--model <name>' argument 'frcnn-huge' is invalid\. Allowed choices are frcnn-small, frcnn-zf, frcnn-vgg16\./,
    ],
    // choices are checked at parse time: before the (missing) dataset is looked at
    [
      'bad --mode (train), at parse time',
      ['train', '--dataset', 'NOWHERE', '--mode', 'bogus'],
      /^wgflow: option '--mode <mode>' argument 'bogus' is invalid\. Allowed choices are approximate-joint, joint, alternating\./,
    ],
    ['bad --pooling (train)', ['train', '--dataset', 'NOWHERE', '--pooling', 'max'], /argument 'max' is invalid/],
    [
      'bad --score (detect)',
      ['detect', 'IMG', '--checkpoint', 'CKPT', '--score', 'high'],
      /--score must be a number in \[0, 1\]/,
    ],
    ['missing --out (compile)', ['compile', 'frcnn-small'], /^wgflow: required option '--out <dir>' not specified/],
    ['unknown command', ['frob'], /^wgflow: unknown command 'frob'/],
    ['missing dataset folder', ['train', '--dataset', 'NOWHERE'], /dataset folder .*no-such-dir does not exist/],
    ['bad --canvas (train)', ['train', '--dataset', 'DATA', '--canvas', '64by80'], /--canvas must be HxW.*'64by80'/],
    ['unknown model (compile)', ['compile', 'resnet9000', '--out', 'OUT'], /unknown model 'resnet9000'/],
    [
      'bad --canvas (compile)',
      ['compile', 'frcnn-small', '--canvas', '64x', '--no-gpu', '--out', 'OUT'],
      /--canvas must be HxW/,
    ],
    ['missing checkpoint (detect)', ['detect', 'IMG', '--checkpoint', 'NOWHERE'], /no-such-dir/],
    [
      'bad --target',
      ['compile', 'frcnn-small', '--target', 'tpu', '--out', 'OUT'],
      /argument 'tpu' is invalid\. Allowed choices are webgpu, cuda/,
    ],
    [
      'missing dataset folder (eval)',
      ['eval', '--dataset', 'NOWHERE', '--checkpoint', 'CKPT'],
      /dataset folder .*no-such-dir does not exist/,
    ],
  ];
  it.each(cases)('%s', async (_name, args, message) => {
    const sub = (a: string) =>
      a === 'DATA'
        ? data
        : a === 'NOWHERE'
          ? join(root, 'no-such-dir')
          : a === 'OUT'
            ? join(root, 'bad-out')
            : a === 'IMG'
              ? (testImages[0] as string)
              : a === 'CKPT'
                ? ckpt
                : a;
    const r = await runCli(args.map(sub));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_LINE);
    // one line, wgflow's
    expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/^wgflow: /);
  });

  it('--version prints the package version; --help lists every command', async () => {
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(
      (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version,
    );
    const h = await runCli(['--help']);
    expect(h.code).toBe(0);
    for (const c of ['compile', 'train', 'detect', 'eval', 'setup-gpu', 'bench', 'demo']) expect(h.stdout).toContain(c);
    const b = await runCli(['bench', '--help']);
    expect(b.stdout).toMatch(/clone only/);
  });

  it('bench passes its arguments and exit code through (an unknown suite: the error of bench/run.ts)', async () => {
    const r = await runCli(['bench', 'no-such-suite', '--profile']);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/bench: unknown .*"no-such-suite"/);
  });

  it('a model file must default-export a function', async () => {
    const file = join(root, 'not-a-model.mts');
    writeFileSync(file, 'export const x = 1;\n');
    const r = await runCli(['compile', file, '--out', join(root, 'bad-out')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/must default-export a function/);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});
