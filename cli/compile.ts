/**
 * `wgflow compile <model> --out DIR`: compiles a model to an artifact directory (compiler/artifact.ts:
 * manifest.json, kernels/*.wgsl, weights.safetensors, constants.safetensors and the typed module), which
 * runtime/artifact.ts loads without the compiler. `<model>` is a registered name (frcnn-small, frcnn-zf,
 * frcnn-vgg16: the inference graph, or the training step with --train) or a user module (see
 * MODEL_MODULE_HELP). With --target cuda the graph is compiled a second time with the CUDA target's
 * tuning tables; that program's kernels are rendered to CUDA C and built with nvcc
 * (compiler/cuda-artifact.ts) into the same directory, the program itself in the CUDA section.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeArtifact } from '../compiler/artifact.js';
import { type Compiled, type CompileOptions, compile, type Update } from '../compiler/compile.js';
import { findNvcc, writeCudaArtifact } from '../compiler/cuda-artifact.js';
import { WgflowError } from '../compiler/errors.js';
import { type DeviceLimits, limitsFrom, WEBGPU_DEFAULT_LIMITS } from '../compiler/limits.js';
import { GraphBuilder, Tensor } from '../compiler/tensor.js';
import type { TargetName } from '../compiler/tuning.js';
import { IMAGENET_MEAN_RGB, IMAGENET_STD_RGB } from '../data/image.js';
import { SHAPE_CLASSES } from '../data/shapes.js';
import { VOC_CLASSES } from '../data/voc.js';
import { importTorchvisionVgg16 } from '../models/frcnn/import-torchvision.js';
import { buildFrcnnInference, type ParamMap } from '../models/frcnn/index.js';
import { buildFrcnnTraining } from '../models/frcnn/train.js';
import type { JsonValue } from '../runtime/artifact-manifest.js';
import { cudaSectionFile } from '../runtime/cuda/read.js';
import { getDevice } from '../runtime/device.js';
import type { ProgramSpec } from '../runtime/program.js';
import { readSafetensors } from '../runtime/safetensors.js';
import type { TypedArray } from '../runtime/session.js';
import { parseCheckpointConfig } from '../train/checkpoint-config.js';
import { type FrcnnRunConfig, inferenceOptions, trainingOptions } from '../train/frcnn-config.js';
import { FRCNN_MODEL_NAMES, type FrcnnModelName, runConfigFor } from '../train/run-config.js';

export const NAMED_MODELS = FRCNN_MODEL_NAMES;
export type NamedModel = FrcnnModelName;

/** The contract of a user model module (also the command's help text). */
export const MODEL_MODULE_HELP = `
A model file is an ES module (.mjs/.mts, or .js/.ts in a package with "type": "module"; TypeScript
needs a loader: NODE_OPTIONS='--import tsx' npx wgflow compile … after npm i -D tsx; a clone's
npm run wgflow has one) whose default export declares the graph on the GraphBuilder it is given and
returns the tensors to compute:

  import type { GraphBuilder, Tensor } from 'wgflow';       // in a clone: '<repo>/index.js'
  import type { Update } from 'wgflow';
  export default function (g: GraphBuilder): { outputs: Record<string, Tensor>; updates?: Update[] } {
    const x = g.input('x', [1, 16]);
    const w = g.param('w', [16, 4]);
    return { outputs: { y: x.matmul(w).relu() } };
  }

outputs: the program's outputs by name; updates (optional): { target, value } pairs applied at the
end of each run (a training step: e.g. sgd(loss).updates, sgd from 'wgflow'). The function may be
async. Use only the GraphBuilder passed in (its tensors); import op helpers from the same wgflow.`;

export interface CompileArgs {
  readonly out: string;
  /** Named models: compile the training step instead of inference. */
  readonly train?: boolean;
  /** Comma-separated class names (named models). */
  readonly classes?: string;
  readonly numClasses?: number;
  /** HxW (named models). */
  readonly canvas?: string;
  readonly pooling?: string;
  /** A training checkpoint (or any safetensors file) with the weights. */
  readonly checkpoint?: string;
  /** torchvision VGG16 state dict as safetensors (frcnn-vgg16). */
  readonly weightsTorchvision?: string;
  /** false (--no-gpu): plan for WebGPU's default limits instead of this machine's adapter. */
  readonly gpu: boolean;
  readonly target: string;
  /** nvcc -arch for --target cuda. */
  readonly arch?: string;
  /** Artifact name (default: the model name, or the file's stem). */
  readonly name?: string;
  /** false (--no-typed): no typed module. */
  readonly typed: boolean;
  /** Module specifier the typed module imports the runtime from. */
  readonly runtimeImport?: string;
}

/** What is compiled and written, whichever the model's source. */
interface BuiltProgram {
  readonly compiled: Compiled;
  /** The same graph compiled for another target's tuning tables (the CUDA section's own program). */
  readonly compileFor: (target: TargetName) => Compiled;
  readonly name: string;
  readonly inputs: Record<string, string>;
  readonly outputs: Record<string, string>;
  readonly weights?: Map<string, TypedArray>;
  readonly weightsFrom: string;
  readonly metadata: Record<string, JsonValue>;
  readonly compileOptions: JsonValue;
}

const ARTIFACT_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const MODULE_EXT = /\.(ts|mts|cts|js|mjs|cjs)$/;

/** True when `model` names a module file rather than a registered model. */
export function isModelFile(model: string): boolean {
  return MODULE_EXT.test(model) || model.includes('/') || model.includes('\\');
}

const asJson = (v: unknown): JsonValue => JSON.parse(JSON.stringify(v)) as JsonValue;
const only = <T>(notes: Record<string, T>, names: readonly { name: string }[]) =>
  Object.fromEntries(Object.entries(notes).filter(([k]) => names.some((t) => t.name === k)));

function classesFor(model: NamedModel, a: CompileArgs): string[] {
  if (a.classes !== undefined && a.numClasses !== undefined)
    throw new WgflowError('compile: give --classes or --num-classes, not both');
  if (a.classes !== undefined) {
    const names = a.classes.split(',').map((s) => s.trim());
    if (names.length === 0 || names.some((s) => s === ''))
      throw new WgflowError(`--classes must be comma-separated non-empty names, got '${a.classes}'`);
    if (new Set(names).size !== names.length) throw new WgflowError(`--classes has a repeated name: '${a.classes}'`);
    return names;
  }
  if (a.numClasses !== undefined) return Array.from({ length: a.numClasses }, (_, i) => `class${i + 1}`);
  return model === 'frcnn-small' ? [...SHAPE_CLASSES] : [...VOC_CLASSES];
}

/** The run configuration: the checkpoint's (when it has one), else the model's defaults and the options. */
async function namedConfig(model: NamedModel, a: CompileArgs): Promise<{ config: FrcnnRunConfig; from: string }> {
  if (a.checkpoint) {
    const { metadata } = await readSafetensors(a.checkpoint, { what: 'checkpoint' });
    const stored = parseCheckpointConfig(metadata.config, a.checkpoint);
    if (stored) {
      if (a.classes !== undefined || a.numClasses !== undefined)
        throw new WgflowError(
          `compile: the classes come from the checkpoint ${a.checkpoint}; drop --classes/--num-classes`,
        );
      let config = stored;
      if (config.model !== model)
        throw new WgflowError(`compile: ${a.checkpoint} is a ${config.model} checkpoint, not ${model}`);
      if (a.canvas || a.pooling) {
        const over = runConfigFor(
          { model, ...(a.canvas ? { canvas: a.canvas } : {}), ...(a.pooling ? { pooling: a.pooling } : {}) },
          config.classes,
        );
        config = { ...config, canvas: over.canvas, resize: over.resize, pooling: over.pooling };
      }
      return { config, from: `the configuration in ${a.checkpoint}` };
    }
  }
  const config = runConfigFor(
    { model, ...(a.canvas ? { canvas: a.canvas } : {}), ...(a.pooling ? { pooling: a.pooling } : {}) },
    classesFor(model, a),
  );
  return { config, from: 'defaults' };
}

async function namedProgram(model: NamedModel, a: CompileArgs, limits: DeviceLimits): Promise<BuiltProgram> {
  let { config, from } = await namedConfig(model, a);
  if (a.weightsTorchvision) {
    if (model !== 'frcnn-vgg16')
      throw new WgflowError(`--weights-torchvision imports VGG16 weights: it needs frcnn-vgg16, not ${model}`);
    if (a.checkpoint) throw new WgflowError('compile: give --checkpoint or --weights-torchvision, not both');
    // torchvision's VGG16 was trained on RGB in [0, 1] normalized by the ImageNet mean and std
    config = { ...config, pixel: { order: 'rgb', scale: 1 / 255, mean: IMAGENET_MEAN_RGB, std: IMAGENET_STD_RGB } };
  }
  const g = new GraphBuilder();
  let compileOptions: CompileOptions;
  let paramMap: ParamMap;
  const [H, W] = config.canvas;
  const inputs: Record<string, string> = {
    image: `the resized image (${config.resize.shortSide}/${config.resize.maxSize} rule, pixels ${JSON.stringify(config.pixel)}) in the top-left corner of the ${H}×${W} canvas, zeros elsewhere`,
    im_info: '(validH, validW, scale): the resized image size on the canvas and the resize scale',
  };
  let outputs: Record<string, string>;
  if (a.train) {
    const m = buildFrcnnTraining(g, trainingOptions(config, limits));
    paramMap = m.paramMap;
    compileOptions = {
      outputs: { ...m.outputs, ...m.diagnostics },
      updates: m.updates,
      limits,
      name: `${model}-train`,
      seed: config.seed,
    };
    Object.assign(inputs, {
      gt_boxes: `ground-truth boxes (x1, y1, x2, y2) in canvas pixels, rows past gt_count ignored (at most ${config.maxGt})`,
      gt_labels: `ground-truth labels 1..${config.classes.length}`,
      gt_count: 'number of ground-truth rows used',
      seed: 'per-iteration sampling/dropout seed',
      [m.lrInput]: 'learning rate of this step',
    });
    outputs = {
      loss: 'total loss',
      rpn_cls_loss: 'RPN objectness loss',
      rpn_bbox_loss: 'RPN box regression loss',
      cls_loss: 'detector classification loss',
      bbox_loss: 'detector box regression loss',
      fg_anchors: 'foreground anchors sampled',
      fg_rois: 'foreground RoIs sampled',
      sampled_anchors: 'anchors sampled (the RPN losses average over them)',
      sampled_rois: 'RoIs sampled (the detector losses average over them)',
    };
  } else {
    const inf = buildFrcnnInference(g, inferenceOptions(config, limits));
    paramMap = inf.paramMap;
    compileOptions = { outputs: inf.outputs, limits, name: `${model}-infer`, seed: config.seed };
    outputs = {
      det_boxes: '(x1, y1, x2, y2) in original-image pixels; the first det_count rows are valid',
      det_scores: 'class scores of the detections',
      det_classes: `labels 1..${config.classes.length} (classes in metadata.classes)`,
      det_count: 'number of valid detections',
      rois: 'proposals (batch, x1, y1, x2, y2) in canvas pixels',
      roi_count: 'number of valid proposals',
    };
  }
  const compiled = compile(g, compileOptions);
  let weights: Map<string, TypedArray> | undefined;
  let weightsFrom = 'initial values (untrained)';
  if (a.checkpoint) {
    weights = await checkpointWeights(a.checkpoint, compiled.spec);
    weightsFrom = a.checkpoint;
  } else if (a.weightsTorchvision) {
    const imp = await importTorchvisionVgg16(a.weightsTorchvision, paramMap);
    printNotes(imp.warnings);
    weights = new Map(imp.params);
    weightsFrom = `${a.weightsTorchvision} (torchvision VGG16: ${imp.imported.length} tensors; the rest initial)`;
  }
  const spec = compiled.spec;
  return {
    compiled,
    compileFor: (target) => compile(g, { ...compileOptions, target }),
    name: a.name ?? (a.train ? `${model}-train` : model),
    inputs: only(inputs, spec.inputs),
    outputs: only(outputs, spec.outputs),
    ...(weights ? { weights } : {}),
    weightsFrom,
    metadata: {
      model,
      graph: a.train ? 'training' : 'inference',
      classes: [...config.classes],
      canvas: [H, W],
      resize: asJson(config.resize),
      pixel: asJson(config.pixel),
      config: asJson(config),
      configFrom: from,
      weightsFrom,
    },
    compileOptions: asJson({ model, train: a.train === true, limits, seed: config.seed }),
  };
}

/**
 * The model file must load as an ES module: a CommonJS copy of the compiler (tsx transpiles a .ts file
 * of a package without "type": "module" to CommonJS) would hold its own op registry and Tensor class.
 */
function checkEsm(path: string, file: string): void {
  const ext = extname(path);
  if (ext === '.mts' || ext === '.mjs') return;
  const why = `compile: ${file} would load as CommonJS; the model file must be an ES module`;
  if (ext === '.cts' || ext === '.cjs') throw new WgflowError(`${why} (rename it to .mts or .ts)`);
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      let type: unknown;
      try {
        type = (JSON.parse(readFileSync(pkg, 'utf8')) as { type?: unknown }).type;
      } catch (e) {
        throw new WgflowError(`compile: cannot read ${pkg}: ${(e as Error).message}`);
      }
      if (type === 'module') return;
      throw new WgflowError(`${why}: ${pkg} has no "type": "module" (add it, or name the file .mts)`);
    }
    if (dirname(dir) === dir)
      throw new WgflowError(`${why}: no package.json with "type": "module" above it (add one, or name the file .mts)`);
  }
}

/** The importer's notes, with the per-tensor dtype conversions collapsed to one line per dtype. */
function printNotes(notes: readonly string[]): void {
  const converted = new Map<string, number>();
  for (const n of notes) {
    const m = /^"[^"]+": (\w+) converted to f32$/.exec(n);
    if (m) converted.set(m[1] as string, (converted.get(m[1] as string) ?? 0) + 1);
    else console.error(`note: ${n}`);
  }
  for (const [dtype, count] of converted) console.error(`note: ${count} tensors stored as ${dtype} converted to f32`);
}

/** The user module's default export, called on a fresh GraphBuilder. */
async function userProgram(file: string, a: CompileArgs, limits: DeviceLimits): Promise<BuiltProgram> {
  const path = resolve(file);
  if (!existsSync(path) || !statSync(path).isFile())
    throw new WgflowError(`compile: model file ${file} does not exist (known model names: ${NAMED_MODELS.join(', ')})`);
  for (const [flag, set] of [
    ['--train', a.train],
    ['--classes', a.classes !== undefined],
    ['--num-classes', a.numClasses !== undefined],
    ['--canvas', a.canvas !== undefined],
    ['--pooling', a.pooling !== undefined],
    ['--weights-torchvision', a.weightsTorchvision !== undefined],
  ] as const)
    if (set) throw new WgflowError(`compile: ${flag} applies to the named Faster R-CNN models, not to a model file`);
  checkEsm(path, file);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (e) {
    const hint = /\.[mc]?ts$/.test(path)
      ? " (a .ts model needs a TypeScript loader: npm i -D tsx, then NODE_OPTIONS='--import tsx' npx wgflow compile …)"
      : '';
    throw new WgflowError(`compile: cannot load ${file}: ${(e as Error).message}${hint}`);
  }
  const fn = mod.default;
  if (typeof fn !== 'function')
    throw new WgflowError(
      `compile: ${file} must default-export a function (g: GraphBuilder) => { outputs, updates? }; it exports default: ${typeof fn}`,
    );
  const g = new GraphBuilder();
  const result = (await (fn as (g: GraphBuilder) => unknown)(g)) as
    | { outputs?: unknown; updates?: unknown }
    | undefined;
  const where = `compile: ${file}: the default export`;
  if (typeof result !== 'object' || result === null || typeof result.outputs !== 'object' || result.outputs === null)
    throw new WgflowError(`${where} must return { outputs: Record<string, Tensor>; updates?: Update[] }`);
  const outputs = result.outputs as Record<string, unknown>;
  if (Object.keys(outputs).length === 0) throw new WgflowError(`${where} returned no outputs`);
  const isOwnTensor = (t: unknown): t is Tensor => t instanceof Tensor && t.builder === g;
  for (const [k, t] of Object.entries(outputs))
    if (!isOwnTensor(t))
      throw new WgflowError(`${where}: outputs.${k} is not a Tensor of the GraphBuilder it was given`);
  let updates: Update[] = [];
  if (result.updates !== undefined) {
    if (!Array.isArray(result.updates))
      throw new WgflowError(`${where}: updates must be an array of { target, value }`);
    updates = result.updates as Update[];
    updates.forEach((u, i) => {
      if (!isOwnTensor(u?.target) || !isOwnTensor(u?.value))
        throw new WgflowError(
          `${where}: updates[${i}] must be { target: Tensor, value: Tensor } of the given GraphBuilder`,
        );
    });
  }
  const stem = basename(path, extname(path));
  const name = a.name ?? (ARTIFACT_NAME.test(stem) ? stem : `model-${stem.replace(/[^A-Za-z0-9_-]+/g, '_')}`);
  const compileOptions: CompileOptions = { outputs: outputs as Record<string, Tensor>, updates, limits, name };
  const compiled = compile(g, compileOptions);
  const weights = a.checkpoint ? await checkpointWeights(a.checkpoint, compiled.spec) : undefined;
  const weightsFrom = a.checkpoint ?? 'initial values';
  return {
    compiled,
    compileFor: (target) => compile(g, { ...compileOptions, target }),
    name,
    inputs: {},
    outputs: {},
    ...(weights ? { weights } : {}),
    weightsFrom,
    metadata: { model: basename(path), graph: updates.length > 0 ? 'training' : 'inference', weightsFrom },
    compileOptions: asJson({ model: basename(path), limits }),
  };
}

/** The program's persistent tensors from a safetensors file (extra tensors, e.g. momentum for inference, are ignored). */
async function checkpointWeights(path: string, spec: ProgramSpec): Promise<Map<string, TypedArray>> {
  const { tensors } = await readSafetensors(path);
  const out = new Map<string, TypedArray>();
  const missing: string[] = [];
  for (const p of spec.persistent) {
    const t = tensors.get(p.name);
    if (!t) {
      missing.push(p.name);
      continue;
    }
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
      throw new WgflowError(
        `--checkpoint ${path}: tensor "${p.name}" has shape [${t.shape.join(', ')}], program "${spec.name}" expects [${p.shape.join(', ')}]`,
      );
    if (t.dtype !== p.dtype)
      throw new WgflowError(
        `--checkpoint ${path}: tensor "${p.name}" is ${t.dtype}, program "${spec.name}" expects ${p.dtype}`,
      );
    out.set(p.name, t.data);
  }
  if (missing.length > 0)
    throw new WgflowError(
      `--checkpoint ${path}: missing ${missing.length} tensor(s) of program "${spec.name}": ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`,
    );
  return out;
}

async function deviceLimits(gpu: boolean): Promise<{ limits: DeviceLimits; from: string }> {
  if (!gpu) return { limits: WEBGPU_DEFAULT_LIMITS, from: 'WebGPU default limits (--no-gpu)' };
  const dev = await getDevice();
  return { limits: limitsFrom(dev.limits), from: `the limits of ${dev.adapterName}` };
}

export async function compileCommand(model: string, a: CompileArgs): Promise<void> {
  if (a.target !== 'webgpu' && a.target !== 'cuda')
    throw new WgflowError(`--target must be webgpu or cuda, got '${a.target}'`);
  if (a.name !== undefined && !ARTIFACT_NAME.test(a.name))
    throw new WgflowError(`--name '${a.name}' must start with a letter and hold only letters, digits, '-' and '_'`);
  if (a.checkpoint && !existsSync(a.checkpoint)) throw new WgflowError(`--checkpoint ${a.checkpoint} does not exist`);
  if (a.weightsTorchvision && !existsSync(a.weightsTorchvision))
    throw new WgflowError(`--weights-torchvision ${a.weightsTorchvision} does not exist`);
  const named = (NAMED_MODELS as readonly string[]).includes(model);
  if (!named && !isModelFile(model))
    throw new WgflowError(
      `unknown model '${model}' (known: ${NAMED_MODELS.join(', ')}; or the path of a model file, e.g. ./model.ts)`,
    );
  // check the toolchain before the (long) compilation
  if (a.target === 'cuda' && !findNvcc())
    throw new WgflowError(
      `--target cuda: nvcc not found (${process.env.NVCC ?? 'nvcc on PATH'}); install the CUDA toolkit or set NVCC`,
    );
  const t0 = performance.now();
  const { limits, from } = await deviceLimits(a.gpu);
  const built = named ? await namedProgram(model as NamedModel, a, limits) : await userProgram(model, a, limits);
  const spec = built.compiled.spec;
  console.error(
    `compiled ${spec.name} for ${from}: ${spec.stats.kernels} kernels, ${spec.stats.dispatches} dispatches`,
  );

  const out = resolve(a.out);
  let staging: string | undefined;
  const metadata: Record<string, JsonValue> = {
    ...built.metadata,
    targets: a.target === 'cuda' ? ['webgpu', 'cuda'] : ['webgpu'],
  };
  let cudaFiles: readonly string[] = [];
  try {
    if (a.target === 'cuda') {
      // built next to the artifact first, so a failed nvcc build leaves the previous artifact as it was
      await mkdir(dirname(out), { recursive: true });
      staging = await mkdtemp(join(dirname(out), `.${basename(out)}.cuda-`));
      const arch = a.arch ?? 'sm_90';
      // the CUDA kernels come from a compile with the CUDA target's tuning tables, not the WebGPU one's
      const cudaCompiled = built.compileFor('cuda');
      const r = await writeCudaArtifact(cudaCompiled, staging, { arch, ownProgram: true });
      for (const w of r.warnings) console.error(`nvcc: ${w}`);
      cudaFiles = r.files;
      metadata.cuda = asJson({
        arch,
        section: cudaSectionFile(spec.name),
        modules: r.section.modules.map((m) => m.file),
        nvccSeconds: Number(r.nvccSeconds.toFixed(2)),
      });
      console.error(
        `CUDA: ${r.section.modules.length} module(s) for ${arch} built by nvcc in ${r.nvccSeconds.toFixed(1)} s`,
      );
    }
    const written = await writeArtifact(out, {
      spec,
      name: built.name,
      inputs: built.inputs,
      outputs: built.outputs,
      ...(built.weights ? { weights: built.weights } : {}),
      typed: a.typed,
      ...(a.runtimeImport ? { runtimeImport: a.runtimeImport } : {}),
      compileOptions: built.compileOptions,
      metadata,
    });
    if (staging) for (const f of cudaFiles) await copyFile(join(staging, f), join(out, f));
    const m = written.manifest;
    const files = new Set(m.kernels.map((k) => k.file)).size;
    console.log(`wrote ${written.dir}`);
    console.log(
      `  program   ${m.program}: ${m.kernels.length} kernels (${files} WGSL files), ${spec.stats.dispatches} dispatches`,
    );
    console.log(
      `  weights   ${m.weights.file}: ${m.weights.tensors} tensors, ${(m.weights.bytes / 2 ** 20).toFixed(1)} MiB, from ${built.weightsFrom}`,
    );
    if (written.typedModule) console.log(`  typed     ${basename(written.typedModule)}`);
    if (cudaFiles.length > 0)
      console.log(`  cuda      ${cudaFiles.length} files under kernels/ (${cudaSectionFile(spec.name)})`);
    console.log(`  took      ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    if (staging) await rm(staging, { recursive: true, force: true });
  }
}
