/**
 * The `profile` suite (`npm run bench -- profile`, or `--profile` with other suites): per-kernel GPU
 * times (timestamp queries around every dispatch, runtime/profile.ts) of
 * - the small Faster R-CNN TRAINING step of the shapes demo (train/frcnn-config.ts smallShapesConfig:
 *   128×160, 6 classes, approximate joint, SGD) on a rendered shapes image with its boxes, and
 * - the small Faster R-CNN INFERENCE of the peer benchmark (384×640, RoIAlign; bench/peers/frcnn.ts).
 * Each program: one unprofiled warm-up run (shader compilation), then `runs` profiled runs; the report
 * lists the top kernels by total time (and the top op patterns), the summed kernel time and the wall
 * time of the profiled runs. Writes bench/results/profile.{md,json}.
 */
import { writeFileSync } from 'node:fs';
import { toFloat32 } from '../data/image.js';
import { renderShapesImage, SHAPE_CLASSES } from '../data/shapes.js';
import {
  compile,
  type Feed,
  GraphBuilder,
  getDevice,
  limitsFrom,
  Session,
  type Tensor,
  type Update,
} from '../index.js';
import { buildFrcnnTraining } from '../models/frcnn/train.js';
import { type KernelTotal, kernelPattern, type StepProfile, topKernels } from '../runtime/profile.js';
import { smallShapesConfig, trainingOptions } from '../train/frcnn-config.js';
import { frcnnInferenceGraph } from './peers/frcnn.js';

export interface ProgramProfile {
  readonly program: string;
  readonly dispatches: number;
  readonly runs: number;
  /** Median wall time of a profiled run (one pass per dispatch: slower than an unprofiled run). */
  readonly wallMs: number;
  /** Median of the summed dispatch times. */
  readonly kernelSumMs: number;
  readonly firstRunMs: number;
  readonly topKernels: readonly KernelTotal[];
  readonly topPatterns: readonly KernelTotal[];
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function profileProgram(
  program: string,
  g: GraphBuilder,
  outputs: Record<string, Tensor>,
  feeds: Readonly<Record<string, Feed>>,
  opts: { updates?: Update[]; runs: number; top: number },
): Promise<ProgramProfile> {
  const dev = await getDevice();
  const { spec } = compile(g, {
    outputs,
    limits: limitsFrom(dev.limits),
    name: program,
    seed: 1,
    ...(opts.updates ? { updates: opts.updates } : {}),
  });
  const session = await Session.create(spec, { gpu: dev, profile: true });
  try {
    const t0 = performance.now();
    await session.run(feeds);
    const firstRunMs = performance.now() - t0;
    const profiles: StepProfile[] = [];
    const walls: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const t = performance.now();
      await session.run(feeds);
      walls.push(performance.now() - t);
      const p = session.lastRunProfile;
      if (p) profiles.push(p);
    }
    return {
      program,
      dispatches: spec.stats.dispatches,
      runs: opts.runs,
      wallMs: median(walls),
      kernelSumMs: median(profiles.map((p) => p.totalMs)),
      firstRunMs,
      topKernels: topKernels(profiles, opts.top),
      topPatterns: topKernels(profiles, opts.top, kernelPattern),
    };
  } finally {
    session.destroy();
  }
}

/** The demo's training step on one rendered shapes image (boxes and labels from the renderer). */
async function trainingStep(runs: number, top: number): Promise<ProgramProfile> {
  const dev = await getDevice();
  const config = smallShapesConfig([...SHAPE_CLASSES], 1000);
  const opts = trainingOptions(config, limitsFrom(dev.limits));
  const g = new GraphBuilder();
  const tr = buildFrcnnTraining(g, opts);
  const [H, W] = config.canvas;
  const shot = renderShapesImage(1, 0, { size: { width: W, height: H }, maxObjects: config.maxGt });
  const G = config.maxGt;
  const gtBoxes = new Float32Array(G * 4);
  const gtLabels = new Int32Array(G);
  const n = Math.min(G, shot.objects.length);
  shot.objects.slice(0, n).forEach((o, i) => {
    gtBoxes.set(o.box, 4 * i);
    gtLabels[i] = o.label;
  });
  const feeds: Record<string, Feed> = {
    image: toFloat32(shot.image, config.pixel),
    im_info: [H, W, 1],
    gt_boxes: gtBoxes,
    gt_labels: gtLabels,
    gt_count: new Int32Array([n]),
    seed: new Uint32Array([1]),
    [tr.lrInput]: [config.lr.base],
  };
  return profileProgram(`frcnn-small training step ${H}x${W} (shapes demo config)`, g, tr.outputs, feeds, {
    updates: tr.updates,
    runs,
    top,
  });
}

async function inference(runs: number, top: number): Promise<ProgramProfile> {
  const { g, m, image, imInfo } = await frcnnInferenceGraph();
  const [, , H, W] = m.image.shape as [number, number, number, number];
  return profileProgram(
    `frcnn-small inference ${H}x${W} (peer benchmark graph)`,
    g,
    m.outputs,
    { image, im_info: imInfo },
    { runs, top },
  );
}

/** Per-run figures of kernels totalled over `runs` runs. */
const table = (rows: readonly KernelTotal[], what: string, runs: number) =>
  [
    `| ${what} | dispatches per run | ms per run | mean ms per dispatch | share of kernel time |`,
    '|---|---:|---:|---:|---:|',
    ...rows.map(
      (k) =>
        `| ${k.name} | ${k.calls / runs} | ${(k.totalMs / runs).toFixed(2)} | ${k.meanMs.toFixed(3)} | ${(100 * k.share).toFixed(1)}% |`,
    ),
  ].join('\n');

export function profileMarkdown(profiles: readonly ProgramProfile[]): string {
  return profiles
    .map((p) =>
      [
        `### ${p.program}`,
        '',
        `${p.dispatches} dispatches; ${p.runs} profiled runs: median wall ${p.wallMs.toFixed(1)} ms (one compute pass per dispatch), median summed kernel time ${p.kernelSumMs.toFixed(1)} ms; first (unprofiled, shader-compiling) run ${p.firstRunMs.toFixed(0)} ms`,
        '',
        table(p.topKernels, 'kernel', p.runs),
        '',
        table(p.topPatterns, 'op pattern (kernels grouped)', p.runs),
      ].join('\n'),
    )
    .join('\n\n');
}

/** Profiles both programs, writes bench/results/profile.{md,json}, returns the profiles. */
export async function profileSuite(
  log: (s: string) => void = () => {},
  opts: { runs?: number; top?: number; outPath?: string } = {},
): Promise<ProgramProfile[]> {
  const runs = opts.runs ?? 3;
  const top = opts.top ?? 15;
  const out: ProgramProfile[] = [];
  for (const f of [trainingStep, inference]) {
    const p = await f(runs, top);
    out.push(p);
    log(
      `${p.program}: wall ${p.wallMs.toFixed(1)} ms, kernels ${p.kernelSumMs.toFixed(1)} ms; top: ${p.topKernels
        .slice(0, 3)
        .map((k) => `${k.name} ${(k.totalMs / runs).toFixed(1)} ms`)
        .join(', ')}`,
    );
  }
  const path = opts.outPath ?? 'bench/results/profile';
  const dev = await getDevice();
  writeFileSync(`${path}.md`, `adapter: ${dev.adapterName}\n\n${profileMarkdown(out)}\n`);
  writeFileSync(
    `${path}.json`,
    `${JSON.stringify({ adapter: dev.adapterName, date: new Date().toISOString(), profiles: out }, null, 2)}\n`,
  );
  return out;
}
