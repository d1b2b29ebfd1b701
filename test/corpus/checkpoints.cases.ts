/** Bad checkpoints: corrupt or hand-edited training configurations, wrong files, wrong tensors. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkpointWeightBound,
  compile,
  encodeSafetensors,
  GraphBuilder,
  loadCheckpoint,
  loadDetector,
  readSafetensors,
  Session,
  saveCheckpoint,
  smallShapesConfig,
  WEBGPU_DEFAULT_LIMITS,
} from '../../index.js';
import { writeAfterRun } from '../../train/after-run.js';
import type { CorpusCase } from './types.js';

const good = () => smallShapesConfig(['circle', 'square'], 10) as unknown as Record<string, unknown>;

/** A checkpoint file whose only content that matters is its metadata. */
function ckpt(dir: string, metadata: Record<string, string>, name = 'c.safetensors'): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    encodeSafetensors({ w: { data: Float32Array.of(0.25, -0.5), shape: [2], dtype: 'f32' } }, metadata),
  );
  return path;
}
const withConfig = (edit: (c: Record<string, unknown>) => unknown) => (dir: string) =>
  ckpt(dir, { format: 'wgflow-checkpoint', format_version: '1', iteration: '3', config: JSON.stringify(edit(good())) });

/** [id, what, config edit, message] for loadDetector on a checkpoint whose config is edited. */
const configCases: [string, string, (c: Record<string, unknown>) => unknown, RegExp][] = [
  ['config-empty-object', 'config {}', () => ({}), /c\.safetensors: config: model must be one of/],
  ['config-null', 'config null', () => null, /c\.safetensors: config: must be an object, got null/],
  ['config-list', 'config is a list', () => [1], /c\.safetensors: config: must be an object, got a list/],
  ['config-string', 'config is a string', () => 'frcnn-small', /c\.safetensors: config: must be an object/],
  ['config-model-unknown', 'model "frcnn-huge"', (c) => ({ ...c, model: 'frcnn-huge' }), /config: model.*"frcnn-huge"/],
  [
    'config-classes-missing',
    'no classes',
    (c) => ({ ...c, classes: undefined }),
    /config: classes must be a list.*missing/,
  ],
  ['config-classes-empty', 'classes []', (c) => ({ ...c, classes: [] }), /c\.safetensors: config: classes is empty/],
  [
    'config-classes-numbers',
    'classes [1, 2]',
    (c) => ({ ...c, classes: [1, 2] }),
    /config: classes must be a list of non-empty names/,
  ],
  [
    'config-classes-repeated',
    'a class named twice',
    (c) => ({ ...c, classes: ['a', 'a'] }),
    /config: classes has a repeated name/,
  ],
  [
    'config-canvas-string',
    'canvas "128x160"',
    (c) => ({ ...c, canvas: '128x160' }),
    /config: canvas must be two integers/,
  ],
  [
    'config-canvas-huge',
    'canvas [100000, 100000]',
    (c) => ({ ...c, canvas: [100000, 100000] }),
    /config: canvas must be two integers in \[16, 8192\]/,
  ],
  ['config-canvas-tiny', 'canvas [8, 8]', (c) => ({ ...c, canvas: [8, 8] }), /config: canvas/],
  [
    'config-iterations-zero',
    'iterations 0',
    (c) => ({ ...c, iterations: 0 }),
    /config: iterations must be a positive integer, got 0/,
  ],
  ['config-resize-missing', 'no resize', (c) => ({ ...c, resize: undefined }), /config: resize must be/],
  ['config-anchors-missing', 'no anchors', (c) => ({ ...c, anchors: undefined }), /config: anchors must be/],
  [
    'config-anchors-ratios-string',
    'anchor ratios "0.5,1,2"',
    (c) => ({ ...c, anchors: { baseSize: 16, ratios: '0.5,1,2', scales: [1] } }),
    /config: anchors/,
  ],
  ['config-pooling-bogus', 'pooling "max"', (c) => ({ ...c, pooling: 'max' }), /config: pooling.*"max"/],
  ['config-mode-bogus', 'mode "alternating" stored', (c) => ({ ...c, mode: 'alternating' }), /config: mode/],
  [
    'config-joint-roi-pool',
    'mode joint with roi_pool',
    (c) => ({ ...c, mode: 'joint', pooling: 'roi_pool' }),
    /config: mode 'joint'.*roi_align/,
  ],
  ['config-maxgt-negative', 'maxGt -1', (c) => ({ ...c, maxGt: -1 }), /config: maxGt must be a positive integer/],
  ['config-lr-missing', 'no lr', (c) => ({ ...c, lr: undefined }), /config: lr must be/],
  ['config-lr-negative', 'lr base -1', (c) => ({ ...c, lr: { base: -1, steps: [] } }), /config: lr must be/],
  [
    'config-proposals-missing',
    'no proposalsTest',
    (c) => ({ ...c, proposalsTest: undefined }),
    /config: proposalsTest must be an object/,
  ],
  ['config-flip-string', 'flip "yes"', (c) => ({ ...c, flip: 'yes' }), /config: flip must be true or false/],
  ['config-seed-fraction', 'seed 1.5', (c) => ({ ...c, seed: 1.5 }), /config: seed must be an integer/],
  [
    'config-momentum-nan',
    'momentum NaN (stored as null)',
    (c) => ({ ...c, momentum: Number.NaN }),
    /config: momentum must be a finite number/,
  ],
];

const configCorpus: CorpusCase[] = configCases.map(([id, what, edit, message]) => ({
  id: `checkpoints/${id}`,
  area: 'checkpoints',
  kind: 'library',
  what: `loadDetector on a checkpoint whose config is edited: ${what}`,
  expect: { error: 'WgflowError', message },
  run: (ctx) => loadDetector({ checkpoint: withConfig(edit)(ctx.dir) }),
}));

/** A one-parameter program (w: f32 [2, 2], y = x·w) and a session of it. */
async function tinySession(): Promise<Session> {
  const g = new GraphBuilder();
  const x = g.input('x', [1, 2]);
  const w = g.param('w', [2, 2]);
  const c = compile(g, { outputs: { y: x.matmul(w) }, limits: WEBGPU_DEFAULT_LIMITS, name: 'tiny' });
  return Session.create(c.spec);
}
const meta = { format: 'wgflow-checkpoint', format_version: '1', iteration: '1' };
const tensorCase = (
  id: string,
  what: string,
  tensors: Parameters<typeof encodeSafetensors>[0],
  metadata: Record<string, string>,
  message: RegExp,
): CorpusCase => ({
  id: `checkpoints/${id}`,
  area: 'checkpoints',
  kind: 'library',
  what: `loadCheckpoint: ${what}`,
  expect: { error: 'WgflowError', message },
  timeoutMs: 60_000,
  setup: (ctx) => writeFileSync(join(ctx.dir, 'c.safetensors'), encodeSafetensors(tensors, metadata)),
  run: async (ctx) => {
    const s = await tinySession();
    try {
      await loadCheckpoint(s, join(ctx.dir, 'c.safetensors'));
    } finally {
      s.destroy();
    }
  },
});
const w22 = { data: Float32Array.of(0.5, -1, 2, 0.25), shape: [2, 2], dtype: 'f32' as const };

export const cases: CorpusCase[] = [
  ...configCorpus,
  {
    id: 'checkpoints/config-invalid-json',
    area: 'checkpoints',
    kind: 'library',
    what: 'config metadata that is not JSON (was a SyntaxError without the file)',
    expect: { error: 'WgflowError', message: /checkpoint .*c\.safetensors: metadata "config" is not valid JSON/ },
    run: (ctx) =>
      loadDetector({ checkpoint: ckpt(ctx.dir, { format: 'wgflow-checkpoint', config: '{"model": "frcnn-small",' }) }),
  },
  {
    id: 'checkpoints/no-config',
    area: 'checkpoints',
    kind: 'library',
    what: 'a safetensors file without a training configuration',
    expect: { error: 'WgflowError', message: /c\.safetensors: not a wgflow training checkpoint/ },
    run: (ctx) => loadDetector({ checkpoint: ckpt(ctx.dir, {}) }),
  },
  {
    id: 'checkpoints/model-mismatch',
    area: 'checkpoints',
    kind: 'library',
    what: 'loadDetector({ model: frcnn-zf }) on a frcnn-small checkpoint',
    expect: { error: 'WgflowError', message: /c\.safetensors is a frcnn-small checkpoint, not frcnn-zf/ },
    run: (ctx) => loadDetector({ model: 'frcnn-zf', checkpoint: withConfig((c) => c)(ctx.dir) }),
  },
  {
    id: 'checkpoints/truncated',
    area: 'checkpoints',
    kind: 'library',
    what: 'a checkpoint cut in half',
    expect: { error: 'WgflowError', message: /c\.safetensors/ },
    run: (ctx) => {
      const p = withConfig((c) => c)(ctx.dir);
      const b = encodeSafetensors({ w: w22 }, { config: JSON.stringify(good()) });
      writeFileSync(p, b.subarray(0, b.length >> 1));
      return loadDetector({ checkpoint: p });
    },
  },
  {
    id: 'checkpoints/text-file',
    area: 'checkpoints',
    kind: 'library',
    what: 'a text file given as the checkpoint',
    expect: { error: 'WgflowError', message: /notes\.txt/ },
    setup: (ctx) => writeFileSync(join(ctx.dir, 'notes.txt'), 'these are not weights\n'.repeat(10)),
    run: (ctx) => loadDetector({ checkpoint: join(ctx.dir, 'notes.txt') }),
  },
  {
    id: 'checkpoints/fifo',
    area: 'checkpoints',
    kind: 'library',
    what: 'a named pipe as the checkpoint',
    expect: { error: 'WgflowError', message: /c\.safetensors.*named pipe/ },
    timeoutMs: 10_000,
    setup: (ctx) => {
      execFileSync('mkfifo', [join(ctx.dir, 'c.safetensors')]);
    },
    run: (ctx) => loadDetector({ checkpoint: join(ctx.dir, 'c.safetensors') }),
  },
  tensorCase('tensor-missing', 'the program\'s "w" is missing', { v: w22 }, meta, /missing tensor "w"/),
  tensorCase('tensor-extra', 'an extra tensor', { w: w22, extra: w22 }, meta, /tensor "extra" not in program "tiny"/),
  tensorCase(
    'tensor-shape',
    'w of shape [4]',
    { w: { ...w22, shape: [4] } },
    meta,
    /tensor "w" has shape \[4\], program "tiny" expects \[2,2\]/,
  ),
  tensorCase(
    'tensor-dtype',
    'w stored as i32',
    { w: { data: Int32Array.of(1, 2, 3, 4), shape: [2, 2], dtype: 'i32' } },
    meta,
    /tensor "w" has dtype I32/,
  ),
  tensorCase('format-missing', 'no "format" metadata', { w: w22 }, { iteration: '1' }, /not a wgflow checkpoint/),
  tensorCase(
    'version-future',
    'format_version 99',
    { w: w22 },
    { ...meta, format_version: '99' },
    /format_version "99" is not supported/,
  ),
  tensorCase(
    'iteration-negative',
    'iteration -3',
    { w: w22 },
    { ...meta, iteration: '-3' },
    /metadata "iteration" "-3"/,
  ),
  tensorCase(
    'rng-state-bad-json',
    'rng_state not JSON',
    { w: w22 },
    { ...meta, rng_state: '{' },
    /metadata "rng_state" is not valid JSON/,
  ),
  // issue 12: `train --lr 1e30 --checkpoint-every 1` replaced a good checkpoint with exploded weights.
  // The trainer saves through saveCheckpoint with the bound of the previous checkpoint; these cases run
  // that save on a session whose weights exploded (or went NaN) next to a good checkpoint file.
  ...(
    [
      [
        'exploded-weights-refused',
        [6e29, -1, 2, 0.25],
        'ExplodedStateError',
        /NOT written: parameter "w" reaches \|w\| = 6\.00e\+29 after iteration 5, over the bound 2\.00e\+3/,
      ],
      [
        'nonfinite-weights-refused',
        [0.5, Number.NaN, 2, 0.25],
        'NonFiniteStateError',
        /NOT written: tensor "w" holds NaN \(element 1\) after iteration 5/,
      ],
    ] as const
  ).map(
    ([id, values, error, message]): CorpusCase => ({
      id: `checkpoints/${id}`,
      area: 'checkpoints',
      kind: 'library',
      what: `saveCheckpoint over a good checkpoint with weights ${values.join(', ')} (the bound of the previous checkpoint)`,
      expect: { error, message },
      timeoutMs: 60_000,
      setup: (ctx) => writeFileSync(join(ctx.dir, 'c.safetensors'), encodeSafetensors({ w: w22 }, meta)),
      unchanged: () => ['c.safetensors'],
      run: async (ctx) => {
        const path = join(ctx.dir, 'c.safetensors');
        const previous = (await readSafetensors(path)).tensors.get('w')?.data as Float32Array;
        const bound = checkpointWeightBound(Math.max(...Array.from(previous, Math.abs)));
        const s = await tinySession();
        try {
          s.write('w', Float32Array.from(values));
          await saveCheckpoint(s, path, { iteration: 5 }, { requireFinite: true, maxAbsWeight: bound });
        } finally {
          s.destroy();
        }
      },
    }),
  ),
  {
    // issue 12: in a read-only output folder the failed checkpoint write was masked by a later EPERM on
    // loss.png. As root no folder is read-only, so the folder here is a regular file: both writes fail
    // (ENOTDIR), and train()'s order is replayed: the checkpoint's error is the one thrown, loss.png a note.
    id: 'checkpoints/first-error-reported',
    area: 'checkpoints',
    kind: 'library',
    what: 'the checkpoint write fails, then the loss curve write fails too: the first error is reported',
    expect: { error: 'WgflowError', message: /checkpoint .*out\/checkpoint\.safetensors NOT written: ENOTDIR/ },
    timeoutMs: 60_000,
    setup: (ctx) => writeFileSync(join(ctx.dir, 'out'), 'not a folder'),
    unchanged: () => ['out'],
    run: async (ctx) => {
      const s = await tinySession();
      let failure: { error: unknown } | undefined;
      try {
        await saveCheckpoint(s, join(ctx.dir, 'out', 'checkpoint.safetensors'), { iteration: 1 });
      } catch (e) {
        failure = { error: e };
      } finally {
        s.destroy();
      }
      const notes: string[] = [];
      const png = join(ctx.dir, 'out', 'loss.png');
      const written = await writeAfterRun(
        failure,
        'loss curve',
        png,
        async () => writeFileSync(png, 'x'),
        (l) => notes.push(l),
      );
      if (
        written !== null ||
        !notes.some((n) => /^note: cannot write the loss curve .*ENOTDIR \(after the error above\)$/.test(n))
      )
        throw new Error(`the loss-curve failure was not a note: ${JSON.stringify(notes)}`);
      if (failure) throw failure.error;
    },
  },
];
