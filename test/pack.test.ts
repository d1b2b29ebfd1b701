/**
 * The published package, as a new user meets it: `npm pack` (its prepare script builds dist/), the tarball
 * installed into a fresh temporary project that has nothing else (dependencies from the registry, through
 * the local npm cache), and there:
 * - the tarball's files: dist/ (JS, .d.ts, source maps that carry their sources), the GPU set-up script,
 *   the README; no TypeScript sources, tests or benchmarks; npm reports no unreviewed install scripts
 *   with the allowScripts block the README gives (nor in the clone);
 * - `npx wgflow --version`, `--help`, `setup-gpu`;
 * - `npx wgflow compile frcnn-small --out art`, and the generated typed module type-checks;
 * - a 20-iteration `train` and `detect` on a few generated images: detect's stderr holds only wgflow's
 *   lines, and detections.json reads through a COCO-results reader (pycocotools' loadRes rules) with
 *   x2 = x + w giving back the detector's boxes;
 * - a library script: loadDetector() + detect() on a path, a Buffer and decoded pixels, ops.nms and
 *   ops.batchedNms on plain arrays;
 * - the examples (detect on an image, runtime-only artifact load, train on a folder), run against the
 *   installed package;
 * - `import 'wgflow/runtime'` (and the runtime-only example) loads nothing of dist/compiler, dist/ops,
 *   dist/models, ts-morph, sharp or @napi-rs/canvas (every resolved module URL recorded by a loader hook);
 * - a strict `tsc` check of a user .ts file that uses the public types, with no set-up beyond the install.
 * Small on purpose (a 64×80 canvas, 8 images, 20 iterations); on a cold Mesa shader cache the first
 * training step still takes minutes, hence the long hang guard.
 */
import { type ExecFileOptions, execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoadedCocoResult, loadCocoResults } from '../eval/coco-results.js';
import { cpuNms } from '../ops/nms.js';
import { REPO } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'wgflow-pack-'));
const project = join(root, 'user-project');
const pkgDir = join(project, 'node_modules', 'wgflow');
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const TSX = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs')).href;
const RECORDER = pathToFileURL(join(REPO, 'test', 'fixtures', 'record-imports.mjs')).href;
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
/** The allowScripts block the README tells users to add (install scripts wgflow's dependencies do not need). */
const USER_ALLOW_SCRIPTS = { koffi: false, webgpu: false };

const env = {
  ...process.env,
  ONNXRUNTIME_NODE_INSTALL: 'skip',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  npm_config_prefer_offline: 'true',
};

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command (never rejects); `cwd` defaults to the user project. */
function run(
  file: string,
  args: readonly string[],
  opts: ExecFileOptions & { env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  return new Promise((res) => {
    execFile(
      file,
      args,
      { cwd: project, env, maxBuffer: 64 * 2 ** 20, timeout: 900_000, ...opts },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string }) | null;
        res({
          code: e ? (typeof e.code === 'number' ? e.code : -1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}
const npx = (...args: string[]) => run('npx', ['--no-install', ...args]);
const node = (...args: string[]) => run(process.execPath, args);
const ok = (r: Run, what: string) => expect(r.code, `${what}\n${r.stderr}\n${r.stdout}`).toBe(0);

let tarball = '';
let packedFiles: string[] = [];
let testImages: string[] = [];

beforeAll(async () => {
  // npm pack runs prepare (the build) in the clone
  const p = await run('npm', ['pack', '--json', '--pack-destination', root], { cwd: REPO });
  if (p.code !== 0) throw new Error(`npm pack failed:\n${p.stderr}`);
  const info = JSON.parse(p.stdout.slice(p.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  tarball = join(root, info[0]!.filename);
  packedFiles = info[0]!.files.map((f) => f.path);
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'wgflow-user', private: true, type: 'module', allowScripts: USER_ALLOW_SCRIPTS }, null, 2)}\n`,
  );
  const i = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball]);
  if (i.code !== 0) throw new Error(`npm install of the tarball failed:\n${i.stderr}`);
  // a few generated images (VOC layout), made by the installed library
  const g = await node(
    '--input-type=module',
    '-e',
    `import { generateShapesDataset } from 'wgflow';
await generateShapesDataset('data', { count: 8, seed: 5, size: { width: 80, height: 64 }, maxObjects: 3, imageFormat: 'png', splits: { train: 6, test: 2 } });`,
  );
  if (g.code !== 0) throw new Error(`generating the dataset failed:\n${g.stderr}`);
  testImages = readFileSync(join(project, 'data/ImageSets/Main/test.txt'), 'utf8')
    .split('\n')
    .filter((s) => s)
    .map((id) => `data/JPEGImages/${id}.png`);
}, 1_800_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('npm pack → install into an empty project', () => {
  it('ships dist/ (with inlined sources in the maps), the GPU set-up script and the README, nothing of the clone', async () => {
    for (const f of [
      'package.json',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/runtime/index.js',
      'dist/runtime/index.d.ts',
      'dist/cli/wgflow.js',
      'scripts/setup-gpu.sh',
      'scripts/probe-adapter.mjs',
    ])
      expect(packedFiles, f).toContain(f);
    expect(
      packedFiles.filter((f) => /^(test|bench|examples)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts'))),
    ).toEqual([]);
    const maps = packedFiles.filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(50);
    for (const m of maps) {
      const map = JSON.parse(readFileSync(join(pkgDir, m), 'utf8')) as {
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      expect(map.sourcesContent?.length, m).toBe(map.sources.length);
      expect(
        map.sourcesContent?.every((s) => typeof s === 'string' && s.length > 0),
        m,
      ).toBe(true);
    }
    // ts-morph and the WebGPU types are dependencies now
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies)).toEqual(expect.arrayContaining(['ts-morph', '@webgpu/types']));
    // install scripts: covered by the README's allowScripts here, and by the clone's own
    for (const cwd of [project, REPO]) {
      const a = await run('npm', ['approve-scripts', '--allow-scripts-pending'], { cwd });
      ok(a, `npm approve-scripts in ${cwd}`);
      expect(a.stdout + a.stderr, cwd).toMatch(/No packages with unreviewed install scripts/);
    }
  });

  it('npx wgflow --version, --help, setup-gpu', async () => {
    const v = await npx('wgflow', '--version');
    ok(v, '--version');
    expect(v.stdout.trim()).toBe(VERSION);
    const h = await npx('wgflow', '--help');
    ok(h, '--help');
    for (const c of ['compile', 'train', 'detect', 'eval', 'serve', 'setup-gpu', 'bench', 'demo'])
      expect(h.stdout).toContain(c);
    expect(h.stdout).toMatch(/clone only/);
    const b = await npx('wgflow', 'bench');
    expect(b.code).toBe(1);
    expect(b.stderr.trim()).toMatch(/^wgflow: bench: clone only: .*npm run bench$/);
    const s = await npx('wgflow', 'setup-gpu');
    ok(s, 'setup-gpu');
    expect(s.stdout).toMatch(/setup-gpu: WebGPU adapter found/);
  });

  it('npx wgflow compile frcnn-small --out art; the typed module type-checks', async () => {
    const c = await npx('wgflow', 'compile', 'frcnn-small', '--out', 'art');
    ok(c, 'compile');
    expect(existsSync(join(project, 'art', 'frcnn-small.ts'))).toBe(true);
    writeFileSync(
      join(project, 'use-art.ts'),
      `import { type FrcnnSmallOutputs, input, load } from './art/frcnn-small.js';
const model = await load();
const out: FrcnnSmallOutputs = await model.run({ image: input.image(new Float32Array(${3 * 128 * 160})), im_info: input.im_info([128, 160, 1]) });
const boxes: Float32Array = out.det_boxes.data;
console.log(boxes.length);
`,
    );
    const t = await tsc(['use-art.ts', 'art/frcnn-small.ts'], { node: true });
    ok(t, 'tsc of the typed module');
  });

  it('wgflow serve art: the packaged page, its browser runtime (dist/browser) and the artifact; SIGTERM stops it', async () => {
    // the installed bin itself (node_modules/.bin/wgflow points at it), so that SIGTERM reaches the server
    const bin = join(pkgDir, 'dist', 'cli', 'wgflow.js');
    const child = spawn(process.execPath, [bin, 'serve', 'art', '--port', '0'], {
      cwd: project,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stderr?.on('data', (d) => {
      out += String(d);
    });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    try {
      const url = await new Promise<string>((found, bad) => {
        child.stdout?.on('data', (d) => {
          out += String(d);
          const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) found(m[1] as string);
        });
        void exited.then((code) => bad(new Error(`wgflow serve exited ${code}: ${out}`)));
      });
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('app.js');
      expect((await fetch(`${url}app.js`)).status).toBe(200);
      const served = new Uint8Array(await (await fetch(`${url}runtime/wgflow-runtime.js`)).arrayBuffer());
      const shipped = readFileSync(join(pkgDir, 'dist', 'browser', 'wgflow-runtime.js'));
      expect(Buffer.from(served).equals(shipped), 'the page gets the package’s browser build').toBe(true);
      const manifest = (await (await fetch(`${url}artifact/manifest.json`)).json()) as { name: string };
      expect(manifest.name).toBe('frcnn-small');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, out).toBe(0);
  });

  it('train 20 iterations, detect: only wgflow lines on stderr, COCO results with x2 = x + w', async () => {
    const t = await npx(
      'wgflow',
      'train',
      '--dataset',
      'data',
      '--iters',
      '20',
      '--canvas',
      '64x80',
      '--pretrain-steps',
      '0',
      '--checkpoint-every',
      '10',
      '--out',
      'run',
    );
    ok(t, 'train');
    expect(existsSync(join(project, 'run', 'checkpoint.safetensors'))).toBe(true);
    expect(existsSync(join(project, 'run', 'loss.png'))).toBe(true);
    const d = await npx(
      'wgflow',
      'detect',
      ...testImages,
      '--checkpoint',
      'run/checkpoint.safetensors',
      '--out',
      'det',
      '--score',
      '0',
    );
    ok(d, 'detect');
    const lines = d.stderr.trimEnd().split('\n');
    expect(lines, d.stderr).toHaveLength(testImages.length + 1);
    for (const line of lines)
      expect(line).toMatch(
        /^(data\/JPEGImages\/\d+\.png: \d+ detections ≥ 0 \(\d+ in all\) → det\/\d+\.png|COCO results: det\/detections\.json)$/,
      );
    const results = detectionsJson();
    expect(results.length).toBeGreaterThan(0);
    for (const r of results) {
      expect(r.bbox[2]).toBeGreaterThanOrEqual(0);
      expect(r.bbox[3]).toBeGreaterThanOrEqual(0);
    }
  });

  it('a library script: detect() on a path, a Buffer and pixels; ops.nms / batchedNms on plain arrays', async () => {
    const image = busiestImage();
    writeFileSync(
      join(project, 'lib.mjs'),
      `import { readFileSync } from 'node:fs';
import { closeDevice, decodeImage, loadDetector, ops } from 'wgflow';
const [checkpoint, image] = process.argv.slice(2);
const det = await loadDetector({ model: 'frcnn-small', checkpoint });
const rgb = await decodeImage(image);
const rgba = new Uint8ClampedArray(rgb.width * rgb.height * 4);
for (let i = 0; i < rgb.width * rgb.height; i++) rgba.set([...rgb.data.subarray(3 * i, 3 * i + 3), 255], 4 * i);
const [a, b, c, d] = await det.detect([image, readFileSync(image), rgb, { data: rgba, width: rgb.width, height: rgb.height }]);
const same = [b, c, d].every((r) => r.boxes.join() === a.boxes.join() && r.scores.join() === a.scores.join() && r.labels.join() === a.labels.join());
const rows = Array.from(a.scores, (_, i) => Array.from(a.boxes.subarray(4 * i, 4 * i + 4)));
const kept = await ops.nms(rows, Array.from(a.scores), 0.5);
const one = await ops.nms([[0, 0, 1, 1]], [0.5], 0.5);
const neg = await ops.batchedNms([[-10, -10, -5, -5], [-10, -10, -5, -6], [-9, -10, -5, -5]], [0.9, 0.8, 0.7], [0, 1, 0], 0.5);
console.log(JSON.stringify({ same, classes: det.classes, rows, scores: Array.from(a.scores), labels: Array.from(a.labels), kept: Array.from(kept), one: Array.from(one), neg: Array.from(neg) }));
det.destroy();
await closeDevice();
`,
    );
    const r = await node('lib.mjs', 'run/checkpoint.safetensors', image);
    ok(r, 'lib.mjs');
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as {
      same: boolean;
      classes: string[];
      rows: number[][];
      scores: number[];
      labels: number[];
      kept: number[];
      one: number[];
      neg: number[];
    };
    expect(out.same).toBe(true);
    expect(out.classes[0]).toBe('__background__');
    expect(out.one).toEqual([0]);
    expect(out.neg).toEqual([0, 1]);
    expect(out.kept).toEqual(cpuNms(out.rows.flat(), out.scores, { iouThreshold: 0.5 }));
    // the library's detections are the CLI's (detections.json: x, y, w = x2 − x1, h = y2 − y1)
    const id = Number(image.slice(-10, -4));
    const cli = detectionsJson().filter((e) => e.image_id === id);
    expect(out.rows.length).toBe(cli.length);
    expect(cli.map((e) => e.corners)).toEqual(out.rows);
    expect(cli.map((e) => e.category_id)).toEqual(out.labels);
  });

  it('the examples run against the installed package (detect, runtime-only artifact, train on a folder)', async () => {
    for (const f of ['detect-image.ts', 'runtime-artifact.ts', 'train-folder.ts'])
      copyFileSync(join(REPO, 'examples', f), join(project, f));
    const d = await node(
      '--import',
      TSX,
      'detect-image.ts',
      'run/checkpoint.safetensors',
      ...testImages,
      '--score',
      '0',
    );
    ok(d, 'detect-image.ts');
    const lines = d.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { image: string; afterClassAgnosticNms: unknown[] });
    expect(lines.map((l) => l.image)).toEqual(testImages);

    // the runtime-only example on a PPM of a test image; the same detections as `detect`
    const c = await npx(
      'wgflow',
      'compile',
      'frcnn-small',
      '--checkpoint',
      'run/checkpoint.safetensors',
      '--out',
      'art-trained',
    );
    ok(c, 'compile --checkpoint');
    const rgb = await node(
      '--input-type=module',
      '-e',
      `import { decodeImage } from 'wgflow'; import { writeFileSync } from 'node:fs';
const img = await decodeImage(${JSON.stringify(busiestImage())});
writeFileSync('img.ppm', Buffer.concat([Buffer.from('P6\\n# a test image\\n' + img.width + ' ' + img.height + '\\n255\\n'), Buffer.from(img.data)]));`,
    );
    ok(rgb, 'writing the PPM');
    const log = join(root, 'runtime-example-imports.log');
    const r = await run(
      process.execPath,
      ['--import', TSX, '--import', RECORDER, 'runtime-artifact.ts', 'art-trained', 'img.ppm'],
      {
        env: { ...env, WGFLOW_IMPORT_LOG: log },
      },
    );
    ok(r, 'runtime-artifact.ts');
    const got = JSON.parse(r.stdout) as { detections: { box: number[]; score: number }[] };
    const id = Number(busiestImage().slice(-10, -4));
    const cli = detectionsJson().filter((e) => e.image_id === id);
    expect(cli.length).toBeGreaterThan(0);
    expect(got.detections.map((x) => x.box)).toEqual(cli.map((e) => [...e.corners]));
    expect(got.detections.map((x) => x.score)).toEqual(cli.map((e) => e.score));
    expectRuntimeOnly(log, true);

    const t = await node(
      '--import',
      TSX,
      'train-folder.ts',
      'data',
      '--out',
      'run-example',
      '--iters',
      '2',
      '--canvas',
      '64x80',
      '--pretrain-steps',
      '0',
    );
    ok(t, 'train-folder.ts');
    const res = JSON.parse(t.stdout.trim().split('\n').pop() as string) as {
      checkpoint: string;
      iterations: number;
      vocMap: number;
    };
    expect(res.iterations).toBe(2);
    expect(existsSync(join(project, res.checkpoint))).toBe(true);
    expect(Number.isNaN(res.vocMap) || (res.vocMap >= 0 && res.vocMap <= 1)).toBe(true);
  });

  it("import 'wgflow/runtime' loads no compiler, ops, models, ts-morph, sharp or canvas module", async () => {
    expectRuntimeOnly(
      await recordImports(['--input-type=module', '-e', "await import('wgflow/runtime');"], 'runtime'),
      false,
    );
    // the check can fail: the full entry loads the compiler and sharp (ts-morph only when a typed module is made)
    const all = await recordImports(['--input-type=module', '-e', "await import('wgflow');"], 'all');
    const files = resolvedFiles(all);
    for (const dir of ['dist/compiler/', 'dist/ops/', 'dist/models/'])
      expect(
        files.some((p) => p.includes(`/wgflow/${dir}`)),
        dir,
      ).toBe(true);
    expect(files.some((p) => p.includes('/node_modules/sharp/'))).toBe(true);
    expect(files.filter((p) => /\/node_modules\/(ts-morph|@ts-morph|@napi-rs)\//.test(p))).toEqual([]);
  });

  it("import 'wgflow/runtime/distributed': without a launcher, rank 0 of 1 and no MPI loaded", async () => {
    const r = await node(
      '--input-type=module',
      '-e',
      `import { readFileSync } from 'node:fs';
import { getCommunicator, bcastJson } from 'wgflow/runtime/distributed';
const comm = await getCommunicator();
const buf = Float32Array.of(1.5, -2);
comm.allreduceSum(buf);
const mpiMapped = /libmpi|libmpich/.test(readFileSync('/proc/self/maps', 'utf8'));
console.log(JSON.stringify({ kind: comm.kind, rank: comm.rank, size: comm.size, sums: [...buf], json: bcastJson(comm, { a: 1 }), mpiMapped }));`,
    );
    ok(r, 'wgflow/runtime/distributed');
    expect(JSON.parse(r.stdout.trim())).toEqual({
      kind: 'single',
      rank: 0,
      size: 1,
      sums: [1.5, -2],
      json: { a: 1 },
      mpiMapped: false,
    });
  });

  it('a strict tsc check of a user file using the public types (no set-up beyond the install)', async () => {
    writeFileSync(
      join(project, 'user.ts'),
      `import {
  compile,
  type DetectionDataset,
  type DetectionResult,
  type Detector,
  evaluate,
  GraphBuilder,
  type ImageInput,
  type LoadDetectorOptions,
  loadDetector,
  loadVoc,
  ops,
  type TensorLike,
  type TrainOptions,
  train,
  type EvaluationResult,
} from 'wgflow';
import { type LoadedArtifact, loadArtifact, type TypedTensor, typedTensor } from 'wgflow/runtime';

export async function detectAll(path: string, bytes: Uint8Array): Promise<number> {
  const opts: LoadDetectorOptions = { model: 'frcnn-small', checkpoint: 'run/checkpoint.safetensors' };
  const det: Detector = await loadDetector(opts);
  const images: ImageInput[] = [path, bytes, { data: new Uint8ClampedArray(16), width: 2, height: 2 }];
  const results: DetectionResult[] = await det.detect(images, { scoreThreshold: 0.5 });
  const first: Float32Array | undefined = results[0]?.boxes;
  const boxes: TensorLike = [[0, 0, 1, 1]];
  const kept: Int32Array = await ops.nms(boxes, [0.5], 0.5);
  const perClass = await ops.batchedNms(new Float32Array([-1, -1, 2, 2]), [0.9], [3], 0.5);
  // @ts-expect-error: boxes hold numbers
  await ops.nms([['a', 0, 1, 1]], [0.5], 0.5);
  // @ts-expect-error: not a model wgflow knows
  await loadDetector({ model: 'resnet-9000', checkpoint: 'x' });
  const ds: DetectionDataset = await loadVoc('voc', { split: 'test' });
  const ev: EvaluationResult = await evaluate(det, ds);
  det.destroy();
  return kept.length + perClass.length + (first?.length ?? 0) + ev.voc.map;
}

export async function trainSmall(): Promise<string> {
  const o: TrainOptions = { dataset: 'data', iters: 20, canvas: '64x80', pretrainSteps: 0 };
  return (await train(o)).checkpoint;
}

export function graph(): number {
  const g = new GraphBuilder();
  const x = g.input('x', [2, 3]);
  return compile(g, { outputs: { y: x.relu() } }).spec.kernels.length;
}

export async function runtimeOnly(dir: string): Promise<LoadedArtifact> {
  const t: TypedTensor<'f32', readonly [2]> = typedTensor('f32', [2], [1, 2]);
  void t;
  return loadArtifact(dir);
}
`,
    );
    const t = await tsc(['user.ts'], { node: false });
    ok(t, 'tsc --strict user.ts (no @types/node)');
  });
});

/** `detect`'s det/detections.json, read as pycocotools' loadRes reads it (image ids: the file names' numbers). */
function detectionsJson(): LoadedCocoResult[] {
  const ids = testImages.map((p) => Number(p.slice(-10, -4)));
  return loadCocoResults(JSON.parse(readFileSync(join(project, 'det', 'detections.json'), 'utf8')), ids);
}

/** The test image with the most detections (after 20 iterations some may have none). */
function busiestImage(): string {
  const all = detectionsJson();
  const count = (p: string) => all.filter((e) => e.image_id === Number(p.slice(-10, -4))).length;
  const best = [...testImages].sort((a, b) => count(b) - count(a))[0] as string;
  expect(count(best), 'detections of the busiest test image').toBeGreaterThan(0);
  return best;
}

/** tsc --strict --noEmit in the user project (skipLibCheck off: the package's .d.ts are checked too). */
function tsc(files: readonly string[], o: { node: boolean }): Promise<Run> {
  const tsconfig = {
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      skipLibCheck: false,
      // a Node script needs Node's types (here the clone's @types/node); the library itself does not
      types: o.node ? ['node'] : [],
      ...(o.node ? { typeRoots: [join(REPO, 'node_modules', '@types')] } : {}),
    },
    files,
  };
  const name = `tsconfig.${o.node ? 'node' : 'plain'}.json`;
  writeFileSync(join(project, name), JSON.stringify(tsconfig, null, 2));
  return node(TSC, '-p', name);
}

/** Runs node with the import recorder; returns the log of every module URL it resolved. */
async function recordImports(args: readonly string[], name: string): Promise<string> {
  const log = join(root, `${name}-imports.log`);
  const r = await run(process.execPath, ['--import', RECORDER, ...args], { env: { ...env, WGFLOW_IMPORT_LOG: log } });
  ok(r, `node ${args.join(' ')}`);
  return log;
}

/** The files a run resolved (file: URLs of the recorder's log). */
function resolvedFiles(log: string): string[] {
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .filter((u) => u.startsWith('file:'))
    .map((u) => fileURLToPath(u));
}

/** Asserts the run resolved the installed runtime and nothing of the compiler, ts-morph, sharp or canvas. */
function expectRuntimeOnly(log: string, artifact: boolean): void {
  const files = resolvedFiles(log).map((f) => relative(project, f));
  expect(files).toContain('node_modules/wgflow/dist/runtime/index.js');
  if (artifact) expect(files).toContain('node_modules/wgflow/dist/runtime/artifact.js');
  const forbidden = files.filter((f) =>
    /^node_modules\/wgflow\/dist\/(compiler|ops|models|data|train|viz)\/|node_modules\/(ts-morph|@ts-morph|sharp|@img|@napi-rs)\//.test(
      f,
    ),
  );
  expect(forbidden).toEqual([]);
  expect(readdirSync(join(pkgDir, 'dist', 'runtime')).length).toBeGreaterThan(5);
}
