/**
 * Crash safety of `wgflow train`: the CLI trains frcnn-small (64×80 shapes, a checkpoint every
 * iteration) and is killed with SIGKILL at seeded-random moments after it has written a checkpoint, 10
 * times (every third kill right after a checkpoint write has begun), each next run resuming from the
 * checkpoint. After every kill the checkpoint must be whole: it decodes (header, offsets, sizes), is a
 * wgflow checkpoint holding the same tensors as the first one, all finite, and its iteration is larger
 * than after the previous kill. Kills that land while a checkpoint is being written leave at most a
 * `.checkpoint.safetensors.tmp-*` file, which nothing loads (the CLI resumes from the named file).
 * Finally a run goes to the end: iteration 40.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniformStream } from '../runtime/init.js';
import { readSafetensors } from '../runtime/safetensors.js';
import { runCli, startCli } from './cli-process.js';
import { makeTinyShapes } from './tiny-frcnn.js';

const ITERS = 40;
const KILLS = 10;
const SEED = 0x5161;
/** Largest delay between a new checkpoint and the kill (a few iterations). */
const MAX_DELAY_MS = 700;

const root = mkdtempSync(join(tmpdir(), 'wgflow-sigkill-'));
const data = join(root, 'data');
const out = join(root, 'run');
const ckpt = join(out, 'checkpoint.safetensors');
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(async () => {
  await makeTinyShapes(data, { train: 8, test: 0 });
});

const trainArgs = (resume: boolean) => [
  'train',
  '--dataset',
  data,
  '--model',
  'frcnn-small',
  '--canvas',
  '64x80',
  '--iters',
  String(ITERS),
  '--checkpoint-every',
  '1',
  '--pretrain-steps',
  '0',
  '--out',
  out,
  ...(resume ? ['--resume', ckpt] : []),
];

/** The iteration in the checkpoint's safetensors header (only the header is read), or -1 when there is no file. */
async function headerIteration(path: string): Promise<number> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch {
    return -1;
  }
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const head = Buffer.alloc(n);
    await fh.read(head, 0, n, 8);
    const meta = (JSON.parse(head.toString('utf8')) as { __metadata__?: { iteration?: string } }).__metadata__;
    return Number(meta?.iteration);
  } finally {
    await fh.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Temp files of checkpoint writes in the output folder. */
const tempFiles = () => {
  try {
    return readdirSync(out).filter((f) => f.startsWith('.checkpoint.safetensors.tmp-'));
  } catch {
    return [];
  }
};

describe(`SIGKILL during train (seed ${SEED})`, () => {
  it(`${KILLS} kills never leave a corrupt checkpoint; the last good one always resumes`, async () => {
    const rand = uniformStream(SEED);
    let names: string[] | undefined;
    let last = 0;
    let midWrite = 0;
    const log: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      const before = await headerIteration(ckpt);
      expect(before).toBe(k === 0 ? -1 : last);
      const { child, output } = startCli(trainArgs(k > 0));
      const exited = new Promise<void>((res) => child.once('exit', () => res()));
      // wait for a checkpoint written by this run
      const t0 = performance.now();
      for (;;) {
        if (child.exitCode !== null)
          throw new Error(`run ${k} exited (${child.exitCode}) before a new checkpoint:\n${output()}`);
        if (performance.now() - t0 > 600_000) throw new Error(`run ${k}: no new checkpoint in 600 s:\n${output()}`);
        const it = await headerIteration(ckpt).catch(() => -1);
        if (it > before) break;
        await sleep(20);
      }
      // every third kill aims at a checkpoint write: right after the next temp file appears
      const atWrite = k % 3 === 2;
      const delay = atWrite ? Math.floor(rand() * 20) : Math.floor(rand() * MAX_DELAY_MS);
      if (atWrite) {
        const known = new Set(tempFiles());
        const t1 = performance.now();
        while (!tempFiles().some((f) => !known.has(f))) {
          if (child.exitCode !== null || performance.now() - t1 > 30_000)
            throw new Error(`run ${k}: no checkpoint write seen:\n${output()}`);
          await sleep(2);
        }
      }
      await sleep(delay);
      const finishedAlready = child.exitCode !== null;
      child.kill('SIGKILL');
      await exited;
      expect(finishedAlready, `run ${k} finished before the kill:\n${output()}`).toBe(false);
      expect(child.signalCode).toBe('SIGKILL');

      // the checkpoint is whole and newer than the last one
      const { tensors, metadata } = await readSafetensors(ckpt);
      expect(metadata.format).toBe('wgflow-checkpoint');
      const iteration = Number(metadata.iteration);
      expect(Number.isInteger(iteration)).toBe(true);
      expect(iteration).toBeGreaterThan(last);
      expect(iteration).toBeLessThan(ITERS);
      const keys = [...tensors.keys()];
      names ??= keys;
      expect(keys).toEqual(names);
      for (const [name, t] of tensors)
        for (const v of t.data) if (!Number.isFinite(v)) throw new Error(`${name}: non-finite value ${v}`);
      // only the checkpoint and, after a kill during a write, stray temp files
      const files = readdirSync(out).filter((f) => f !== 'checkpoint.safetensors' && f !== 'loss.png');
      for (const f of files) expect(f).toMatch(/^\.checkpoint\.safetensors\.tmp-\d+-[0-9a-f]+$/);
      const leftNow = files.length - midWrite;
      midWrite = files.length;
      log.push(
        `run ${k}: killed ${delay} ms after ${atWrite ? 'a checkpoint write began' : 'a checkpoint'}` +
          `${leftNow > 0 ? ' (during the write: temp file left)' : ''}; checkpoint at iteration ${iteration}`,
      );
      last = iteration;
    }
    console.log(`${log.join('\n')}\n${midWrite} temp file(s) left by kills during a write`);

    // the last run finishes
    const r = await runCli(trainArgs(true));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`resumed from ${ckpt} at iteration ${last}`);
    const final = await readSafetensors(ckpt);
    expect(final.metadata.iteration).toBe(String(ITERS));
    expect([...final.tensors.keys()]).toEqual(names);
  }, 900_000);
});
