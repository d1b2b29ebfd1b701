#!/usr/bin/env node
/**
 * The `wgflow` command line: compile, train, detect, eval, serve, setup-gpu, bench, demo. `npx wgflow …` where
 * the package is installed; `npm run wgflow -- <command> …` in a clone.
 *
 * Every bad argument ends the process with exit code 1 and one line `wgflow: <what is wrong>` on stderr
 * (commander's parse errors included: choices are declared, so a wrong one fails before any work).
 */
import '../ops/index.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { WgflowError } from '../compiler/errors.js';
import { TV_DETECTION_MODELS } from '../models/torchvision/detector.js';
import { closeDevice } from '../runtime/device.js';
import { FRCNN_MODEL_NAMES, ROI_POOLINGS, TRAINING_MODES } from '../train/run-config.js';
import { detectCommand, evalCommand, trainCommand } from './commands.js';
import { compileCommand, MODEL_MODULE_HELP } from './compile.js';
import { PACKAGE_VERSION } from './package-root.js';
import { BENCH_CLONE_ONLY, benchCommand, setupGpuCommand } from './scripts.js';

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};
const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0)) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};
const unitInterval = (name: string) => (v: string) => {
  const n = Number(v);
  if (!(v.trim() !== '' && n >= 0 && n <= 1)) throw new InvalidArgumentError(`${name} must be a number in [0, 1]`);
  return n;
};
const portNumber = (v: string) => {
  const n = Number(v);
  if (!(v.trim() !== '' && Number.isInteger(n) && n >= 0 && n <= 65535))
    throw new InvalidArgumentError('--port must be an integer in 0..65535 (0: any free port)');
  return n;
};
const choice = (flags: string, description: string, choices: readonly string[]) =>
  new Option(flags, description).choices(choices);

const program = new Command()
  .name('wgflow')
  .description('Compile, train and run Faster R-CNN (and other DSL models) on WebGPU from Node')
  .version(PACKAGE_VERSION, '-V, --version', 'print the version')
  .showSuggestionAfterError()
  .configureOutput({
    // one line: `wgflow: <commander's message>`, a pointer to the help in the same line
    outputError: (str, write) => {
      const msg = str.trim().replace(/^error: /, '');
      write(`wgflow: ${msg}${/--help/.test(msg) ? '' : ' (see wgflow --help)'}\n`);
    },
  });

program
  .command('compile')
  .description(
    'compile a model to an artifact folder: manifest.json, kernels/*.wgsl, weights.safetensors, typed module',
  )
  .argument('<model>', `${FRCNN_MODEL_NAMES.join(' | ')}, or a model file (e.g. ./model.mjs, see below)`)
  .requiredOption('--out <dir>', 'artifact folder (replaced when it holds an artifact)')
  .option('--train', 'named models: compile the training step (losses + SGD updates) instead of inference')
  .option(
    '--classes <a,b,c>',
    'named models: class names (default: the 6 shapes classes for frcnn-small, the 20 VOC classes otherwise)',
  )
  .option('--num-classes <n>', 'named models: K classes named class1..classK', int('--num-classes'))
  .option('--canvas <HxW>', 'named models: input canvas (default 128x160 small, 600x1000 VGG16/ZF)')
  .addOption(choice('--pooling <kind>', 'named models: RoI pooling', ROI_POOLINGS))
  .option('--checkpoint <file>', 'weights from a checkpoint written by train (its configuration too)')
  .option(
    '--weights-torchvision <file>',
    'frcnn-vgg16: ImageNet VGG16 weights, a torchvision state dict saved as safetensors',
  )
  .option('--no-gpu', "plan for WebGPU's default limits instead of this machine's adapter (no GPU needed)")
  .addOption(
    choice('--target <target>', 'cuda: also CUDA C kernels built to PTX with nvcc', ['webgpu', 'cuda']).default(
      'webgpu',
    ),
  )
  .option('--arch <sm>', '--target cuda: nvcc architecture', 'sm_90')
  .option('--name <name>', 'artifact name (default: the model name, or the file name)')
  .option('--no-typed', 'do not generate the typed TypeScript module')
  .option('--runtime-import <specifier>', 'where the typed module imports the runtime from', 'wgflow/runtime')
  .addHelpText('after', MODEL_MODULE_HELP)
  .action(async (model: string, o) => {
    await compileCommand(model, o);
  });

program
  .command('train')
  .description('train a Faster R-CNN on a PASCAL VOC folder (or COCO JSON), with checkpoints and a loss curve')
  .requiredOption(
    '--dataset <dir>',
    'VOC root (Annotations/, JPEGImages/, ImageSets/Main/), or the image folder with --coco',
  )
  .addOption(choice('--model <name>', 'the model', FRCNN_MODEL_NAMES).default('frcnn-small'))
  .option('--split <name>', 'VOC image set', 'train')
  .option('--coco <file>', 'COCO instances JSON (images under --dataset)')
  .option('--iters <n>', 'iterations (default: the model recipe: 4000 small, 70000 VGG16)', int('--iters'))
  .option('--lr <x>', 'base learning rate (default: the model recipe)', positive('--lr'))
  .option('--resume <checkpoint>', 'continue a run from its checkpoint (same results as uninterrupted)')
  .option('--out <dir>', 'output folder (checkpoint.safetensors, loss.png)', './runs/train')
  .option('--checkpoint-every <n>', 'iterations between checkpoints', int('--checkpoint-every'), 500)
  .option('--canvas <HxW>', 'fixed input canvas (default: the model recipe: 128x160 small, 600x1000 VGG16)')
  .addOption(
    choice(
      '--mode <mode>',
      'approximate-joint (default) | joint (non-approximate, needs --pooling roi_align) | alternating (4 steps of --iters each)',
      TRAINING_MODES,
    ),
  )
  .addOption(choice('--pooling <kind>', 'RoI pooling (default roi_pool)', ROI_POOLINGS))
  .option(
    '--batch <n>',
    'images per training step, 1–8 (default 1; the losses average over the batch, --iters counts steps)',
    (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 8)
        throw new InvalidArgumentError('--batch must be an integer in [1, 8]');
      return n;
    },
  )
  .option('--skip-bad', 'skip bad images/objects with a warning instead of stopping')
  .option(
    '--pretrain-steps <n>',
    'crop-classification pre-training steps before detection training (default 400 for frcnn-small, 0 otherwise; ignored with --resume)',
    (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--pretrain-steps must be an integer ≥ 0');
      return n;
    },
  )
  .action(async (o) => {
    await trainCommand(o);
  });

program
  .command('detect')
  .description('detect objects in images: PNGs with boxes, class names and scores, and COCO-format JSON')
  .argument('<images...>', 'image files (JPEG, PNG, …)')
  .option('--checkpoint <file>', 'a checkpoint written by train (wgflow models)')
  .option('--model <name>', `a torchvision model with --weights: ${TV_DETECTION_MODELS.join(', ')}`)
  .option('--weights <file>', "--model's weights: a .pth (zip or legacy) or .safetensors with torchvision's keys")
  .option('--min-size <n>', "--model: the transform's min_size (default: the model's, 800 or 320)", int('--min-size'))
  .option('--max-size <n>', "--model: the transform's max_size (default: the model's, 1333 or 640)", int('--max-size'))
  .option('--out <dir>', 'output folder', './runs/detect')
  .option(
    '--score <x>',
    'draw detections scoring at least this (all go to detections.json)',
    unitInterval('--score'),
    0.5,
  )
  .action(async (images: string[], o) => {
    await detectCommand(images, o);
  });

program
  .command('eval')
  .description('evaluate a checkpoint: VOC AP per class (area and 11-point) and the COCO table')
  .requiredOption('--dataset <dir>', 'VOC root, or the image folder with --coco')
  .requiredOption('--checkpoint <file>', 'a checkpoint written by train')
  .option('--split <name>', 'VOC image set', 'test')
  .option('--coco <file>', 'COCO instances JSON')
  .option('--skip-bad', 'skip bad images/objects with a warning')
  .action(async (o) => {
    await evalCommand(o);
  });

program
  .command('serve')
  .description('serve the detection page for a compiled detector artifact on 127.0.0.1 (open it in a WebGPU browser)')
  .argument('<artifact>', 'an artifact folder written by `wgflow compile`')
  .option('--port <n>', 'TCP port on 127.0.0.1', portNumber, 8080)
  .action(async (artifact: string, o: { port: number }) => {
    const { serveCommand } = await import('./serve.js');
    await serveCommand(artifact, o);
  });

program
  .command('setup-gpu')
  .description('make sure Dawn finds a WebGPU adapter: installs Mesa lavapipe (CPU Vulkan) with apt when it finds none')
  .action(async () => {
    process.exitCode = await setupGpuCommand();
  });

program
  .command('bench')
  .description(`run the benchmarks (${BENCH_CLONE_ONLY})`)
  .argument(
    '[names...]',
    'suites (peers, kernels, detection, profile) or peer workloads (matmul, conv, vgg, nms, roialign, frcnn, train); none: everything once; --profile adds the profile suite',
  )
  .allowUnknownOption()
  .action(async (names: string[]) => {
    process.exitCode = await benchCommand(names);
  });

program
  .command('demo')
  .description('the main job: generate shapes data, train frcnn-small on the GPU, evaluate, draw detections')
  .option('--iters <n>', 'training iterations', int('--iters'))
  .option('--images <n>', 'images to generate (80 % train, 20 % test)', int('--images'))
  .option('--data <dir>', 'dataset folder (generated when absent)')
  .option('--out <dir>', 'output folder')
  .option('--lr <x>', 'base learning rate', positive('--lr'))
  .addOption(choice('--mode <mode>', 'training mode', ['approximate-joint', 'joint']))
  .addOption(choice('--pooling <kind>', 'RoI pooling', ROI_POOLINGS))
  .action(async (o) => {
    const { runDemo } = await import('../train/demo.js');
    await runDemo({
      ...(o.iters !== undefined ? { iterations: o.iters } : {}),
      ...(o.images !== undefined ? { images: o.images } : {}),
      ...(o.data ? { data: o.data } : {}),
      ...(o.out ? { out: o.out } : {}),
      ...(o.lr !== undefined ? { lr: o.lr } : {}),
      ...(o.mode ? { mode: o.mode } : {}),
      ...(o.pooling ? { pooling: o.pooling } : {}),
    });
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // one line, never a stack trace (WGFLOW_DEBUG=1 prints it for a bug report)
  const oneLine = (m: string) => m.replace(/\s*\n\s*/g, '; ');
  if (e instanceof WgflowError || (e instanceof Error && e.name === 'DatasetError'))
    console.error(`wgflow: ${oneLine(e.message)}`);
  else if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    console.error(`wgflow: ${code ? `${code}: ` : ''}${oneLine(e.message)} (${e.name}; WGFLOW_DEBUG=1 shows where)`);
  } else console.error(`wgflow: ${String(e)}`);
  if (process.env.WGFLOW_DEBUG && e instanceof Error) console.error(e.stack);
  process.exitCode = 1;
} finally {
  await closeDevice();
}
