/**
 * Compiled artifacts (compiler/artifact.ts → runtime/artifact.ts):
 * - frcnn-small inference (64×80 canvas, 3 classes, seeded non-zero weights) written as an artifact,
 *   run in this process from the compiled spec and from the artifact, and run in a FRESH child process
 *   that imports only runtime/ (checked twice: every module URL the child resolved, recorded by a
 *   loader hook — nothing of compiler/, ops/, models/, ts-morph, sharp or @napi-rs/canvas — and a
 *   static scan of its import graph): all det_* / rois outputs bitwise identical,
 *   through the Session and through the generated typed module;
 * - the typed module type-checks with the TypeScript compiler, and wrongly shaped / typed inputs are
 *   type errors (the diagnostics asserted line by line);
 * - the manifest (files, limits, weights, constants) and every loader error: version, missing or
 *   modified kernel, device limits, weights of the wrong shape, typed signature mismatch, not an artifact;
 * - writeArtifact without weights (InitSpec values), its input checks, and requiredLimits on a hand-made spec.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredLimits, workgroupStorageBytes, writeArtifact } from '../compiler/artifact.js';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { sgd } from '../compiler/optim.js';
import { GraphBuilder, init } from '../compiler/tensor.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { generateAnchors } from '../ops/anchors.js';
import { softmaxCrossEntropy } from '../ops/losses.js';
import { loadArtifact, readArtifactManifest } from '../runtime/artifact.js';
import { type DeviceInfo, getDevice } from '../runtime/device.js';
import { initialValues } from '../runtime/init.js';
import type { ProgramSpec } from '../runtime/program.js';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../runtime/safetensors.js';
import { type HostTensor, Session, type TypedArray } from '../runtime/session.js';
import { loadTypedArtifact } from '../runtime/typed-artifact.js';
import { rand } from './helpers.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHILD = join(REPO, 'test/fixtures/artifact-child.ts');
const RECORDER = join(REPO, 'test/fixtures/record-imports.mjs');
const H = 64;
const W = 80;
const IM_INFO = [56, 72, 1];
const DET = ['det_boxes', 'det_scores', 'det_classes', 'det_count'] as const;

const root = mkdtempSync(join(tmpdir(), 'wgflow-artifact-'));
// The typed module is an ES module (as in any wgflow project, which is ESM).
writeFileSync(join(root, 'package.json'), '{ "type": "module" }\n');
const artDir = join(root, 'frcnn-small');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Seeded weights with a fan-in scaled uniform distribution (activations O(1), detections spread). */
function seededWeights(spec: ProgramSpec, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  spec.persistent.forEach((p, k) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const fanIn = p.shape.length > 1 ? n / (p.shape[0] as number) : 1;
    let a = p.shape.length === 1 ? 0.1 : Math.sqrt(6 / fanIn);
    if (p.name.includes('cls_score')) a *= 2;
    if (p.name.includes('bbox_pred')) a *= 0.3;
    out.set(p.name, Float32Array.from(rand(n, seed + 7919 * k, -a, a)));
  });
  return out;
}

function imageInput(seed: number): Float32Array {
  const img = Float32Array.from(rand([1, 3, H, W], seed));
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) if (y >= IM_INFO[0]! || x >= IM_INFO[1]!) img[(c * H + y) * W + x] = 0;
  return img;
}

const bytesOf = (t: { data: TypedArray }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** Every relative import reachable from `entry` (static scan of import/export ... from '...' and import('...')). */
function importGraph(entry: string): string[] {
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const file = stack.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1] as string;
      if (!spec.startsWith('.') && !spec.startsWith('/')) continue;
      let target = resolve(dirname(file), spec);
      if (!existsSync(target) && target.endsWith('.js')) target = `${target.slice(0, -3)}.ts`;
      if (existsSync(target)) stack.push(target);
    }
  }
  return [...seen];
}

const COMPILER_DIRS = ['compiler', 'ops', 'models'].map((d) => `${join(REPO, d)}/`);
/** Packages a runtime-only process must not load: ts-morph (typed modules), sharp (images), canvas (pictures). */
const HEAVY_PACKAGES = /\/node_modules\/(ts-morph|@ts-morph|sharp|@img|@napi-rs)\//;

describe('artifact: frcnn-small, written, loaded in-process and in a fresh runtime-only process', () => {
  let spec: ProgramSpec;
  let weights: Map<string, Float32Array>;
  let dev: DeviceInfo;
  let reference: Record<string, HostTensor>;
  const image = imageInput(5);

  beforeAll(async () => {
    dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const model = {
      backbone: 'frcnn-small',
      numClasses: 3,
      canvas: [H, W] as [number, number],
      limits,
      baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2, 4]),
      proposals: { minSize: 4, preNmsTopN: 300, postNmsTopN: 50 },
    };
    const inf = buildFrcnnInference(g, model);
    spec = compile(g, { outputs: inf.outputs, limits, name: 'frcnn-infer', seed: 3 }).spec;
    weights = seededWeights(spec, 11);
    await writeArtifact(artDir, {
      spec,
      name: 'frcnn-small',
      weights,
      runtimeImport: relative(artDir, join(REPO, 'runtime/index.js')),
      inputs: { image: 'RGB, normalized, zero-padded canvas', im_info: '(valid height, valid width, scale)' },
      outputs: { det_boxes: 'x1, y1, x2, y2 (inclusive pixels)' },
      compileOptions: { model: 'frcnn-small', canvas: [H, W], numClasses: 3, seed: 3 },
      metadata: { classes: ['__background__', 'circle', 'square', 'triangle'] },
    });
    const s = await Session.create(spec, { gpu: dev, initial: Object.fromEntries(weights) });
    reference = await s.run({ image, im_info: IM_INFO });
    s.destroy();
  });

  it('writes the manifest, one WGSL file per distinct kernel, the weights, the constants and the typed module', async () => {
    const m = await readArtifactManifest(artDir);
    expect([m.format, m.version, m.name, m.program]).toEqual(['wgflow-artifact', 2, 'frcnn-small', 'frcnn-infer']);
    expect(m.inputs.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ['image', 'f32', [1, 3, H, W]],
      ['im_info', 'f32', [3]],
    ]);
    expect(m.inputs[0]?.description).toBe('RGB, normalized, zero-padded canvas');
    expect(m.outputs.map((t) => t.name)).toEqual([...DET, 'rois', 'roi_count']);
    expect(m.kernels).toHaveLength(spec.kernels.length);
    expect(m.steps).toEqual(spec.steps);
    const files = readdirSync(join(artDir, 'kernels'));
    expect(files).toHaveLength(spec.stats.kernels);
    for (const f of files) expect(f).toMatch(/^\d{3}-[A-Za-z0-9_-]+\.wgsl$/);
    m.kernels.forEach((k, i) => {
      expect(readFileSync(join(artDir, k.file), 'utf8')).toBe(spec.kernels[i]?.wgsl);
    });
    expect(m.limits).toEqual(requiredLimits(spec));
    expect(m.limits.maxStorageBufferBindingSize).toBe(spec.stats.maxBindingBytes);
    expect(m.limits.maxStorageBuffersPerShaderStage).toBe(spec.stats.maxBindingsPerKernel);
    expect(m.limits.maxComputeWorkgroupStorageSize).toBeGreaterThan(0); // the tiled kernels use workgroup memory
    for (const [k, v] of Object.entries(m.limits)) expect(v, k).toBeLessThanOrEqual(dev.limits[k] as number);
    expect(m.weights).toMatchObject({ file: 'weights.safetensors', tensors: spec.persistent.length, source: 'given' });
    const w = await readSafetensors(join(artDir, 'weights.safetensors'));
    expect([...w.tensors.keys()]).toEqual(spec.persistent.map((p) => p.name));
    for (const [name, v] of weights) expect(bytesOf(w.tensors.get(name)!).equals(bytesOf({ data: v }))).toBe(true);
    expect(w.metadata).toEqual({ format: 'wgflow-artifact-weights', artifact: 'frcnn-small', program: 'frcnn-infer' });
    const c = await readSafetensors(join(artDir, 'constants.safetensors'));
    const consts = spec.buffers.filter((b) => b.data);
    expect(c.tensors.size).toBe(consts.length);
    for (const b of consts) expect([...(c.tensors.get(`buffer.${b.id}`)?.data ?? [])]).toEqual(b.data);
    expect(m.buffers.some((b) => 'data' in b)).toBe(false);
    expect(m.typedModule).toBe('frcnn-small.ts');
    expect(m.compileOptions).toEqual({ model: 'frcnn-small', canvas: [H, W], numClasses: 3, seed: 3 });
    expect(m.metadata.classes).toEqual(['__background__', 'circle', 'square', 'triangle']);
  });

  it('the loaded artifact gives bitwise the outputs of the compiled program (with detections to compare)', async () => {
    const count = reference.det_count?.data[0] as number;
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThanOrEqual(100);
    const { session, ignoredWeights } = await loadArtifact(artDir, { gpu: dev });
    expect(ignoredWeights).toEqual([]);
    const out = await session.run({ image, im_info: IM_INFO });
    session.destroy();
    for (const k of [...DET, 'rois', 'roi_count'])
      expect(bytesOf(out[k]!).equals(bytesOf(reference[k]!)), `output ${k}`).toBe(true);
  });

  it('a fresh process importing only runtime/ gets bitwise-identical detections (Session and typed module)', async () => {
    const inputs = join(root, 'inputs.safetensors');
    const outPath = join(root, 'child-out.safetensors');
    const log = join(root, 'imports.log');
    await writeSafetensors(inputs, [
      ['image', { data: image, shape: [1, 3, H, W], dtype: 'f32' }],
      ['im_info', { data: Float32Array.from(IM_INFO), shape: [3], dtype: 'f32' }],
    ]);
    await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--import', pathToFileURL(RECORDER).href, CHILD, artDir, inputs, outPath],
      { cwd: REPO, env: { ...process.env, WGFLOW_IMPORT_LOG: log }, timeout: 300_000 },
    );
    const child = (await readSafetensors(outPath)).tensors;
    for (const via of ['session', 'typed'])
      for (const k of [...DET, 'rois', 'roi_count']) {
        const t = child.get(`${via}/${k}`);
        expect(t, `${via}/${k}`).toBeDefined();
        expect(bytesOf(t!).equals(bytesOf(reference[k]!)), `${via}/${k}`).toBe(true);
      }
    // What the child resolved: the runtime and the typed module, nothing of the compiler.
    const urls = readFileSync(log, 'utf8').trim().split('\n');
    const files = urls.filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u));
    expect(files).toContain(join(REPO, 'runtime/artifact.ts'));
    expect(files).toContain(join(artDir, 'frcnn-small.ts'));
    expect(files.filter((f) => COMPILER_DIRS.some((d) => f.startsWith(d)))).toEqual([]);
    // ... nor the compiler's and the pictures' packages (the typed-module generator, image decoding, drawing)
    expect(files.filter((f) => HEAVY_PACKAGES.test(f))).toEqual([]);
    // The static import graph of the child and of the typed module agrees.
    const graph = [...importGraph(CHILD), ...importGraph(join(artDir, 'frcnn-small.ts'))];
    expect(graph).toContain(join(REPO, 'runtime/safetensors.ts'));
    expect(graph.filter((f) => COMPILER_DIRS.some((d) => f.startsWith(d)))).toEqual([]);
    // ... and the scan does find compiler code where there is some
    expect(importGraph(join(REPO, 'compiler/artifact.ts')).some((f) => f.startsWith(COMPILER_DIRS[0]!))).toBe(true);
  });

  it('the typed module type-checks; wrongly shaped or typed inputs are type errors', () => {
    const rt = relative(artDir, join(REPO, 'runtime/index.js'));
    const ok = join(artDir, 'use-ok.ts');
    const bad = join(artDir, 'use-bad.ts');
    const head = [
      `import { type FrcnnSmallInputs, type FrcnnSmallOutputs, input, load } from './frcnn-small.js';`,
      `import { typedTensor } from '${rt}';`,
      'const model = await load();',
      "const imInfo = typedTensor('f32', [3], [56, 72, 1]);",
    ];
    writeFileSync(
      ok,
      [
        ...head,
        `const out: FrcnnSmallOutputs = await model.run({ image: input.image(new Float32Array(${3 * H * W})), im_info: imInfo });`,
        'const boxes: Float32Array = out.det_boxes.data;',
        'const shape: readonly [100, 4] = out.det_boxes.shape;',
        'const classes: Int32Array = out.det_classes.data;',
        `const direct: FrcnnSmallInputs['image'] = typedTensor('f32', [1, 3, ${H}, ${W}], new Float32Array(${3 * H * W}));`,
        'console.log(boxes, shape, classes, direct);',
        '',
      ].join('\n'),
    );
    const badLines = [
      `await model.run({ image: typedTensor('f32', [1, 3, ${H}, ${H}], new Float32Array(${3 * H * H})), im_info: imInfo });`,
      `await model.run({ image: input.image(new Float32Array(${3 * H * W})), im_info: typedTensor('i32', [3], [56, 72, 1]) });`,
      `await model.run({ image: new Float32Array(${3 * H * W}), im_info: imInfo });`,
      'await model.run({ im_info: imInfo });',
      `const wrongOut: readonly [100, 5] = (await model.run({ image: input.image([]), im_info: imInfo })).det_boxes.shape;`,
    ];
    writeFileSync(bad, [...head, ...badLines, 'console.log(wrongOut);', ''].join('\n'));
    const program = ts.createProgram([ok, bad], {
      strict: true,
      noUncheckedIndexedAccess: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts'], // as tsconfig.json (no DOM)
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ['node', '@webgpu/types'],
      typeRoots: [join(REPO, 'node_modules/@types'), join(REPO, 'node_modules')],
    });
    const diags = ts.getPreEmitDiagnostics(program);
    const text = (d: ts.Diagnostic) => ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const where = (d: ts.Diagnostic) =>
      d.file ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '(global)';
    const notBad = diags.filter((d) => d.file?.fileName !== bad);
    expect(notBad.map((d) => `${where(d)} ${text(d)}`)).toEqual([]);
    const byLine = new Map<number, string[]>();
    for (const d of diags.filter((x) => x.file?.fileName === bad)) {
      const line = d.file!.getLineAndCharacterOfPosition(d.start ?? 0).line + 1 - head.length;
      byLine.set(line, [...(byLine.get(line) ?? []), text(d)]);
    }
    expect([...byLine.keys()].sort()).toEqual([1, 2, 3, 4, 5]); // one error on every bad line, none elsewhere
    expect(byLine.get(1)?.join('\n')).toMatch(
      /readonly \[1, 3, 64, 64\].*\n?.*not assignable.*readonly \[1, 3, 64, 80\]/s,
    );
    expect(byLine.get(2)?.join('\n')).toMatch(
      /TypedTensor<"i32", readonly \[3\]>.*not assignable.*TypedTensor<"f32", readonly \[3\]>/s,
    );
    expect(byLine.get(3)?.join('\n')).toMatch(
      /Float32Array.* is missing the following properties from type 'TypedTensor<"f32", readonly \[1, 3, 64, 80\]>'/,
    );
    expect(byLine.get(4)?.join('\n')).toMatch(/Property 'image' is missing/);
    expect(byLine.get(5)?.join('\n')).toMatch(/readonly \[100, 4\].*not assignable.*readonly \[100, 5\]/s);
  });

  it('loader errors: version, missing or modified kernel, device limits, weights, signature, not an artifact', async () => {
    const variant = (name: string, edit: (dir: string) => void) => {
      const d = join(root, name);
      cpSync(artDir, d, { recursive: true });
      edit(d);
      return d;
    };
    const manifestPath = (d: string) => join(d, 'manifest.json');
    const editManifest = (d: string, f: (m: Record<string, unknown>) => void) => {
      const m = JSON.parse(readFileSync(manifestPath(d), 'utf8'));
      f(m);
      writeFileSync(manifestPath(d), JSON.stringify(m));
    };
    const newer = variant('v-newer', (d) => editManifest(d, (m) => (m.version = 7)));
    await expect(loadArtifact(newer)).rejects.toThrow(
      `artifact ${manifestPath(newer)}: artifact format version 7 is newer than this runtime reads (2); update wgflow`,
    );
    const m = await readArtifactManifest(artDir);
    const k3 = m.kernels[3]!.file;
    const gone = variant('v-gone', (d) => rmSync(join(d, k3)));
    await expect(loadArtifact(gone)).rejects.toThrow(`artifact ${gone}: 1 kernel file is missing: ${k3}`);
    const edited = variant('v-edited', (d) => writeFileSync(join(d, k3), `${readFileSync(join(d, k3), 'utf8')}\n// x`));
    await expect(loadArtifact(edited)).rejects.toThrow(new RegExp(`kernel file ${k3} .* was modified or is corrupt`));
    const outside = variant('v-escape', (d) =>
      editManifest(d, (mm) => {
        (mm.kernels as { file: string }[])[0]!.file = '../../etc/passwd';
      }),
    );
    await expect(loadArtifact(outside)).rejects.toThrow(
      /kernel file "..\/..\/etc\/passwd" is outside the artifact directory/,
    );
    const small: DeviceInfo = {
      ...dev,
      limits: { ...dev.limits, maxComputeWorkgroupStorageSize: 1024, maxStorageBuffersPerShaderStage: 4 },
    };
    await expect(loadArtifact(artDir, { gpu: small })).rejects.toThrow(
      new RegExp(
        `cannot run on this device .*\\n  maxStorageBuffersPerShaderStage needs ≥ ${m.limits.maxStorageBuffersPerShaderStage}, the device has 4\\n  maxComputeWorkgroupStorageSize needs ≥ ${m.limits.maxComputeWorkgroupStorageSize}, the device has 1024`,
      ),
    );
    const reshaped = variant('v-weights', (d) => {
      const w = decodeSafetensors(readFileSync(join(d, 'weights.safetensors')));
      const t = w.tensors.get('fc7.weight')!;
      w.tensors.set('fc7.weight', { ...t, shape: [t.shape[1]!, t.shape[0]!, 1] });
      w.tensors.delete('cls_score.bias');
      writeFileSync(join(d, 'weights.safetensors'), encodeSafetensors(w.tensors));
    });
    const fc7 = m.persistent.find((p) => p.name === 'fc7.weight')!.shape;
    await expect(loadArtifact(reshaped)).rejects.toThrow(
      `weights ${join(reshaped, 'weights.safetensors')} do not fit artifact "frcnn-small":\n` +
        `  missing tensor "cls_score.bias"\n` +
        `  tensor "fc7.weight": shape [${fc7[1]}, ${fc7[0]}, 1], the program expects [${fc7.join(', ')}]`,
    );
    const sig = {
      name: 'frcnn-small',
      program: 'frcnn-infer',
      inputs: {
        image: { dtype: 'f32' as const, shape: [1, 3, 64, 64] },
        im_info: { dtype: 'f32' as const, shape: [3] },
      },
      outputs: {},
    };
    await expect(loadTypedArtifact(artDir, sig, { gpu: dev })).rejects.toThrow(
      /does not match the typed module of "frcnn-small":\n {2}input "image": the module expects f32 \[1, 3, 64, 64\], the artifact has f32 \[1, 3, 64, 80\]\n {2}output "det_boxes" f32 \[100, 4\] is not in the module/,
    );
    await expect(loadArtifact(root)).rejects.toThrow(`artifact ${root}: no manifest.json (not an artifact directory`);
    const garbled = variant('v-json', (d) => writeFileSync(manifestPath(d), '{"format": "wgflow-artifact",'));
    await expect(loadArtifact(garbled)).rejects.toThrow(`artifact ${manifestPath(garbled)}: not valid JSON`);
    const badStep = variant('v-step', (d) =>
      editManifest(d, (mm) => {
        (mm.steps as unknown[]).push({ kind: 'dispatch', kernel: 9999 });
      }),
    );
    await expect(loadArtifact(badStep)).rejects.toThrow(/steps\[\d+\] is not a dispatch of a kernel < \d+/);
    // a checkpoint-style override file: extra tensors are ignored (and listed)
    const override = join(root, 'override.safetensors');
    await writeSafetensors(override, [
      ...spec.persistent.map((p) => [p.name, { data: weights.get(p.name)!, shape: p.shape, dtype: p.dtype }] as const),
      ['momentum.fc7.weight', { data: new Float32Array(1), shape: [1], dtype: 'f32' as const }],
    ]);
    const loaded = await loadArtifact(artDir, { gpu: dev, weights: override });
    expect(loaded.ignoredWeights).toEqual(['momentum.fc7.weight']);
    loaded.session.destroy();
  });
});

describe('writeArtifact without a GPU', () => {
  function tinySpec(): ProgramSpec {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3]);
    const w = g.param('w', [4, 3], init.normal(0.5));
    const b = g.param('b', [4], init.constant(0.25));
    const y = x.matmul(w, { transB: true }).add(b).relu();
    return compile(g, { outputs: { y }, name: 'tiny', seed: 9 }).spec;
  }

  it('stores the InitSpec values when no weights are given; replaces an old artifact; refuses other directories', async () => {
    const spec = tinySpec();
    const dir = join(root, 'tiny');
    const first = await writeArtifact(dir, { spec, name: 'tiny', typed: false });
    expect(first.typedModule).toBeNull();
    expect(first.manifest.weights.source).toBe('initial');
    const w = await readSafetensors(join(dir, 'weights.safetensors'));
    for (const p of spec.persistent) {
      const initSpec = spec.buffers[p.buffer]!.init!;
      const want = initialValues(
        initSpec,
        p.shape.reduce((a, b) => a * b, 1),
      );
      expect([...(w.tensors.get(p.name)?.data ?? [])]).toEqual([...want]);
    }
    expect([...(w.tensors.get('b')?.data ?? [])]).toEqual([0.25, 0.25, 0.25, 0.25]);
    const second = await writeArtifact(dir, { spec, name: 'tiny', weights: new Map([['b', new Float32Array(4)]]) });
    expect(second.manifest.weights.source).toBe('mixed');
    expect(existsSync(join(dir, 'tiny.ts'))).toBe(true);
    expect(readdirSync(root).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const other = join(root, 'not-an-artifact');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'keep me');
    await expect(writeArtifact(other, { spec, name: 'tiny' })).rejects.toThrow(/is not a wgflow artifact directory/);
    expect(readFileSync(join(other, 'notes.txt'), 'utf8')).toBe('keep me');
  });

  it('checks names and weights', async () => {
    const spec = tinySpec();
    const dir = join(root, 'tiny-bad');
    await expect(writeArtifact(dir, { spec, name: '9lives' })).rejects.toThrow(
      /name "9lives" must start with a letter/,
    );
    await expect(
      writeArtifact(dir, { spec, name: 't', weights: new Map([['v', new Float32Array(1)]]) }),
    ).rejects.toThrow(/weight "v" not in program "tiny" \(has: w, b\)/);
    await expect(
      writeArtifact(dir, { spec, name: 't', weights: new Map([['w', new Float32Array(5)]]) }),
    ).rejects.toThrow(/weight "w" has 5 values, shape \[4, 3\] needs 12/);
    await expect(
      writeArtifact(dir, { spec, name: 't', weights: new Map([['w', new Int32Array(12)]]) }),
    ).rejects.toThrow(/weight "w" is a Int32Array, the program's f32 tensor needs a Float32Array/);
    await expect(writeArtifact(dir, { spec, name: 't', inputs: { nope: 'x' } })).rejects.toThrow(
      /description for input "nope"/,
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('requiredLimits: the largest buffer, bindings, workgroup storage, invocations and grid any kernel uses', () => {
    const wgsl = (decls: string) => `${decls}\n@compute @workgroup_size(1) fn main() {}`;
    const kernel = (w: string, size: [number, number, number], grid: [number, number, number], bindings: number[]) => ({
      name: 'k',
      wgsl: w,
      workgroupSize: size,
      dispatch: grid,
      bindings,
      writes: bindings.map(() => false),
    });
    const spec = {
      buffers: [
        { id: 0, bytes: 10, role: 'temp', dtype: 'f32' },
        { id: 1, bytes: 4096, role: 'temp', dtype: 'f32' },
        { id: 2, bytes: 1 << 20, role: 'temp', dtype: 'f32' },
      ],
      kernels: [
        kernel(
          wgsl('var<workgroup> a: array<f32, 64>;\nvar<workgroup> b: array<u32, 16>;'),
          [8, 4, 2],
          [70000, 1, 1],
          [0, 1],
        ),
        kernel(wgsl('var<workgroup> t: array<vec4<f32>, 10>;'), [256, 1, 1], [3, 2, 9], [1]),
      ],
    } as unknown as ProgramSpec;
    expect(requiredLimits(spec)).toEqual({
      maxStorageBufferBindingSize: 4096, // buffer 2 is never bound
      maxBufferSize: 1 << 20,
      maxStorageBuffersPerShaderStage: 2,
      maxComputeWorkgroupStorageSize: 320, // 64·4 + 16·4 (vs 10·16 = 160)
      maxComputeInvocationsPerWorkgroup: 256,
      maxComputeWorkgroupSizeX: 256,
      maxComputeWorkgroupSizeY: 4,
      maxComputeWorkgroupSizeZ: 2,
      maxComputeWorkgroupsPerDimension: 70000,
    });
    expect(workgroupStorageBytes('var<workgroup> s: f32;\nvar<workgroup> v: vec3<f32>;')).toBe(20);
    expect(() => workgroupStorageBytes('var<workgroup> m: mat4x4<f32>;', 'k9')).toThrow(
      /kernel k9: cannot size workgroup type "mat4x4<f32>"/,
    );
  });
});

describe('artifact of a training program (updates, momentum state, copies)', () => {
  it('steps from the artifact update params and state exactly as the compiled program does', async () => {
    const dev = await getDevice();
    const g = new GraphBuilder();
    const x = g.input('x', [8, 5]);
    const labels = g.input('labels', [8], 'i32');
    const w = g.param('w', [3, 5], init.xavier());
    const b = g.param('b', [3], init.zeros());
    const loss = softmaxCrossEntropy(x.matmul(w, { transB: true }).add(b), labels);
    const step = sgd(loss, { momentum: 0.9, weightDecay: 1e-3 });
    const spec = compile(g, { outputs: { loss }, updates: step.updates, name: 'tiny-train', seed: 4 }).spec;
    expect(spec.persistent.some((p) => p.role === 'state')).toBe(true);
    const dir = join(root, 'tiny-train');
    await writeArtifact(dir, { spec, name: 'tiny-train' });
    const feeds = { x: rand([8, 5], 31), labels: [0, 1, 2, 0, 1, 2, 0, 1], [step.lrInput]: [0.1] };
    const direct = await Session.create(spec, { gpu: dev });
    const { session } = await loadArtifact(dir, { gpu: dev });
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await direct.run(feeds);
      const c = await session.run(feeds);
      expect(bytesOf(c.loss!).equals(bytesOf(a.loss!)), `loss at step ${i}`).toBe(true);
      losses.push(a.loss!.data[0] as number);
    }
    expect(losses[2]).toBeLessThan(losses[0]!); // the steps do train
    for (const p of spec.persistent)
      expect(bytesOf(await session.read(p.name)).equals(bytesOf(await direct.read(p.name))), p.name).toBe(true);
    direct.destroy();
    session.destroy();
  });
});
