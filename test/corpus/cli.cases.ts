/** Bad command lines and bad files given to the `wgflow` CLI (each case fails before any GPU work). */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pictureNames } from '../../cli/output-paths.js';
import { encodeSafetensors, generateShapesDataset, SHAPE_CLASSES, smallShapesConfig } from '../../index.js';
import type { CliCase, CorpusCase } from './types.js';

/** A checkpoint file with a training configuration (edited by `edit`) and one small tensor. */
function checkpoint(dir: string, config: string | null = JSON.stringify(smallShapesConfig(['a', 'b'], 10))): void {
  writeFileSync(
    join(dir, 'c.safetensors'),
    encodeSafetensors(
      { w: { data: Float32Array.of(0.5, -0.25), shape: [2], dtype: 'f32' } },
      { format: 'wgflow-checkpoint', format_version: '1', iteration: '1', ...(config !== null ? { config } : {}) },
    ),
  );
}
/** A file with image-like bytes (never decoded: every case fails before). */
const image = (dir: string, name = 'cat.png') => {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4));
  return p;
};
const cli = (
  id: string,
  what: string,
  args: readonly string[],
  message: RegExp,
  setup?: CliCase['setup'],
  extra: Partial<CliCase> = {},
): CliCase => ({
  id: `cli/${id}`,
  area: 'cli',
  kind: 'cli',
  what,
  expect: { error: 'cli', message },
  args: () => args,
  ...(setup ? { setup } : {}),
  ...extra,
});
const withCkpt = (ctx: { dir: string }) => {
  checkpoint(ctx.dir);
  image(ctx.dir);
};

export const cases: CorpusCase[] = [
  {
    id: 'cli/train-mode-bogus',
    area: 'cli',
    kind: 'cli',
    what: '`train --mode bogus` is rejected at parse time',
    expect: { error: 'cli', message: /--mode.*bogus/ },
    args: () => ['train', '--mode', 'bogus'],
  },
  cli(
    'detect-score-nan',
    '`detect --score NaN`',
    ['detect', 'x.png', '--checkpoint', 'c', '--score', 'NaN'],
    /--score must be a number in \[0, 1\]/,
  ),
  cli(
    'detect-score-word',
    '`detect --score high`',
    ['detect', 'x.png', '--checkpoint', 'c', '--score', 'high'],
    /--score must be a number in \[0, 1\]/,
  ),
  cli(
    'detect-score-negative',
    '`detect --score -0.1`',
    ['detect', 'x.png', '--checkpoint', 'c', '--score=-0.1'],
    /--score must be a number in \[0, 1\]/,
  ),
  cli(
    'detect-score-over-one',
    '`detect --score 1.5`',
    ['detect', 'x.png', '--checkpoint', 'c', '--score', '1.5'],
    /--score must be a number in \[0, 1\]/,
  ),
  cli(
    'detect-score-empty',
    '`detect --score ""`',
    ['detect', 'x.png', '--checkpoint', 'c', '--score', ''],
    /--score must be a number in \[0, 1\]/,
  ),
  cli(
    'detect-score-infinity',
    '`detect --score Infinity`',
    ['detect', 'x.png', '--checkpoint', 'c', '--score', 'Infinity'],
    /--score must be a number in \[0, 1\]/,
  ),
  cli('detect-no-checkpoint', '`detect x.png` without --checkpoint', ['detect', 'x.png'], /--checkpoint/),
  cli('detect-no-images', '`detect --checkpoint c` without images', ['detect', '--checkpoint', 'c'], /images/),
  cli(
    'detect-fifo',
    '`detect` on a named pipe (waited forever)',
    ['detect', 'pipe.png', '--checkpoint', 'c.safetensors'],
    /pipe\.png: the image must be a regular file, this is a named pipe/,
    (ctx) => {
      checkpoint(ctx.dir);
      execFileSync('mkfifo', [join(ctx.dir, 'pipe.png')]);
    },
    { timeoutMs: 15_000 },
  ),
  cli(
    'detect-dev-zero',
    '`detect /dev/zero` (read until out of memory)',
    ['detect', '/dev/zero', '--checkpoint', 'c.safetensors'],
    /\/dev\/zero: the image must be a regular file, this is a character device/,
    (ctx) => checkpoint(ctx.dir),
    { timeoutMs: 15_000 },
  ),
  cli(
    'detect-folder',
    '`detect` on a folder',
    ['detect', 'photos', '--checkpoint', 'c.safetensors'],
    /photos: the image must be a regular file, this is a folder/,
    (ctx) => {
      checkpoint(ctx.dir);
      mkdirSync(join(ctx.dir, 'photos'));
    },
  ),
  cli(
    'detect-missing-image',
    '`detect` on a file that does not exist',
    ['detect', 'nope.png', '--checkpoint', 'c.safetensors'],
    /nope\.png: cannot read the image: no such file/,
    (ctx) => checkpoint(ctx.dir),
  ),
  cli(
    'detect-second-image-missing',
    'the second of two images missing (checked before the GPU)',
    ['detect', 'cat.png', 'nope.png', '--checkpoint', 'c.safetensors'],
    /nope\.png: cannot read the image/,
    withCkpt,
  ),
  cli(
    'detect-out-is-file',
    '`--out` naming an existing file (was EEXIST)',
    ['detect', 'cat.png', '--checkpoint', 'c.safetensors', '--out', 'cat.png'],
    /--out cat\.png: exists and is not a folder/,
    withCkpt,
    {
      unchanged: () => ['cat.png'],
    },
  ),
  cli(
    'detect-out-under-file',
    '`--out` below an existing file (was ENOTDIR)',
    ['detect', 'cat.png', '--checkpoint', 'c.safetensors', '--out', 'cat.png/sub'],
    /--out cat\.png\/sub: cannot make the output folder \(a part of the path is a file/,
    withCkpt,
    {
      unchanged: () => ['cat.png'],
    },
  ),
  cli(
    'detect-input-named-detections-json',
    'an input at <out>/detections.json, which detect writes',
    ['detect', 'o/detections.json', '--checkpoint', 'c.safetensors', '--out', 'o'],
    /an input is o\/detections\.json, which detect writes/,
    (ctx) => {
      checkpoint(ctx.dir);
      image(ctx.dir, 'o/detections.json');
    },
    { unchanged: () => ['o/detections.json'] },
  ),
  cli(
    'detect-checkpoint-missing',
    '`--checkpoint` that does not exist',
    ['detect', 'cat.png', '--checkpoint', 'nope.safetensors'],
    /nope\.safetensors: cannot read the checkpoint: no such file/,
    (ctx) => {
      image(ctx.dir);
    },
  ),
  cli(
    'detect-checkpoint-config-not-json',
    'a checkpoint whose config is not JSON (was SyntaxError at cli/commands.ts)',
    ['detect', 'cat.png', '--checkpoint', 'c.safetensors'],
    /checkpoint c\.safetensors: metadata "config" is not valid JSON/,
    (ctx) => {
      checkpoint(ctx.dir, '{"model":');
      image(ctx.dir);
    },
  ),
  cli(
    'detect-checkpoint-config-empty',
    'a checkpoint whose config has no fields (was TypeError in validateConfig)',
    ['detect', 'cat.png', '--checkpoint', 'c.safetensors'],
    /checkpoint c\.safetensors: config: model must be one of/,
    (ctx) => {
      checkpoint(ctx.dir, '{}');
      image(ctx.dir);
    },
  ),
  cli(
    'detect-checkpoint-config-canvas',
    'a checkpoint config with a bad canvas names the checkpoint',
    ['detect', 'cat.png', '--checkpoint', 'c.safetensors'],
    /checkpoint c\.safetensors: config: canvas must be two integers/,
    (ctx) => {
      checkpoint(ctx.dir, JSON.stringify({ ...smallShapesConfig(['a'], 5), canvas: [0, 0] }));
      image(ctx.dir);
    },
  ),
  cli(
    'detect-checkpoint-no-config',
    'a safetensors file without a configuration',
    ['detect', 'cat.png', '--checkpoint', 'c.safetensors'],
    /--checkpoint c\.safetensors: not a wgflow training checkpoint/,
    (ctx) => {
      checkpoint(ctx.dir, null);
      image(ctx.dir);
    },
  ),
  cli(
    'detect-checkpoint-is-image',
    'an image given as the checkpoint',
    ['detect', 'cat.png', '--checkpoint', 'cat.png'],
    /cat\.png/,
    (ctx) => {
      image(ctx.dir);
    },
  ),
  cli(
    'compile-checkpoint-config-not-json',
    '`compile --checkpoint` on a checkpoint whose config is not JSON',
    ['compile', 'frcnn-small', '--no-gpu', '--checkpoint', 'c.safetensors', '--out', 'art'],
    /checkpoint c\.safetensors: metadata "config" is not valid JSON/,
    (ctx) => checkpoint(ctx.dir, '[1,'),
    {
      absent: () => ['art'],
    },
  ),
  cli(
    'compile-checkpoint-config-empty',
    '`compile --checkpoint` with a config without fields',
    ['compile', 'frcnn-small', '--no-gpu', '--checkpoint', 'c.safetensors', '--out', 'art'],
    /checkpoint c\.safetensors: config: model must be one of/,
    (ctx) => checkpoint(ctx.dir, '{}'),
    {
      absent: () => ['art'],
    },
  ),
  cli(
    'compile-checkpoint-fifo',
    '`compile --checkpoint` on a named pipe',
    ['compile', 'frcnn-small', '--no-gpu', '--checkpoint', 'p', '--out', 'art'],
    /p: the checkpoint must be a regular file, this is a named pipe/,
    (ctx) => {
      execFileSync('mkfifo', [join(ctx.dir, 'p')]);
    },
    { timeoutMs: 15_000 },
  ),
  cli(
    'train-out-is-file',
    '`train --out` naming an existing file',
    ['train', '--dataset', 'd', '--out', 'f'],
    /--out f: exists and is not a folder/,
    (ctx) => {
      writeFileSync(join(ctx.dir, 'f'), 'keep me\n');
    },
    { unchanged: () => ['f'] },
  ),
  cli('train-lr-nan', '`train --lr NaN`', ['train', '--dataset', 'd', '--lr', 'NaN'], /--lr must be a positive number/),
  cli('train-lr-zero', '`train --lr 0`', ['train', '--dataset', 'd', '--lr', '0'], /--lr must be a positive number/),
  cli(
    'train-iters-fraction',
    '`train --iters 2.5`',
    ['train', '--dataset', 'd', '--iters', '2.5'],
    /--iters must be a positive integer/,
  ),
  cli(
    'train-checkpoint-every-zero',
    '`train --checkpoint-every 0`',
    ['train', '--dataset', 'd', '--checkpoint-every', '0'],
    /--checkpoint-every must be a positive integer/,
  ),
  cli(
    'train-pretrain-negative',
    '`train --pretrain-steps -1`',
    ['train', '--dataset', 'd', '--pretrain-steps=-1'],
    /--pretrain-steps must be an integer ≥ 0/,
  ),
  cli(
    'train-model-bogus',
    '`train --model resnet`',
    ['train', '--dataset', 'd', '--model', 'resnet'],
    /--model.*resnet/,
  ),
  cli('unknown-command', '`wgflow frobnicate`', ['frobnicate'], /unknown command 'frobnicate'/),
  cli(
    'compile-unknown-model',
    '`compile resnet50`',
    ['compile', 'resnet50', '--out', 'x', '--no-gpu'],
    /unknown model 'resnet50'/,
  ),
  cli(
    'eval-classes-differ',
    '`eval` with a dataset whose classes differ from the checkpoint\'s (was "classId 3 is not an index")',
    ['eval', '--dataset', 'd', '--split', 'test', '--checkpoint', 'c.safetensors'],
    /evaluate: the dataset's 6 classes \(.*\) are not the checkpoint c\.safetensors's 2 \(a, b\)/,
    async (ctx) => {
      await generateShapesDataset(join(ctx.dir, 'd'), { count: 2, splits: { test: 2 } });
      checkpoint(ctx.dir);
    },
  ),
  cli(
    'eval-classes-reordered',
    '`eval` with the same class names in another order (labels would be compared to the wrong class)',
    ['eval', '--dataset', 'd', '--split', 'test', '--checkpoint', 'c.safetensors'],
    /evaluate: the dataset's 6 classes .* are not the checkpoint c\.safetensors's 6/,
    async (ctx) => {
      await generateShapesDataset(join(ctx.dir, 'd'), { count: 2, splits: { test: 2 } });
      checkpoint(ctx.dir, JSON.stringify(smallShapesConfig([...SHAPE_CLASSES].reverse(), 10)));
    },
  ),
  {
    id: 'cli/detect-output-names',
    area: 'cli',
    kind: 'library',
    what: "detect's picture names: photos/cat.png --out photos, a/same.png b/same.png, a.png a.jpg: never an input, never twice",
    expect: { ok: true },
    setup: (ctx) => {
      for (const f of ['photos/cat.png', 'a/same.png', 'b/same.png', 'x/a.png', 'x/a.jpg', 'photos/cat-1.png'])
        image(ctx.dir, f);
    },
    run: (ctx) => {
      const p = (f: string) => join(ctx.dir, f);
      const check = (images: string[], out: string, want: string[]) => {
        const got = pictureNames(images.map(p), p(out), ['detections.json']);
        if (JSON.stringify(got) !== JSON.stringify(want))
          throw new Error(`pictureNames(${images}, ${out}) = ${got}, want ${want}`);
      };
      // the drawing of photos/cat.png in photos/ is not cat.png; with cat-1.png an input too, not that either
      check(['photos/cat.png'], 'photos', ['cat-1.png']);
      check(['photos/cat.png', 'photos/cat-1.png'], 'photos', ['cat-2.png', 'cat-1-2.png']);
      check(['a/same.png', 'b/same.png'], 'out', ['same.png', 'same-2.png']);
      check(['x/a.png', 'x/a.jpg'], 'out', ['a.png', 'a-2.png']);
      check(['x/a.png', 'x/a.jpg'], 'x', ['a-1.png', 'a-2.png']);
    },
  },
];
