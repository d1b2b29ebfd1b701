/**
 * runtime/torch against files torch itself wrote (Debian's python3-torch; skipped with a message when
 * /usr/bin/python3 cannot import it): test/fixtures/torch/make_state_dicts.py writes a fresh seeded
 * state dict (every dtype, non-contiguous views sharing storages, Parameters, BatchNorm state,
 * _metadata) with torch.save in the zip format, the legacy format, pickle protocols 1 and 4, and as
 * safetensors, plus full checkpoints. Every tensor must equal what Python reports: key order, dtype,
 * shape, the sha256 of its contiguous bytes, and its values (as f32, f64 exactly, integers exactly),
 * and the formats must agree bit for bit. Real files broken on purpose (truncated, a storage cut
 * short) are refused naming the file and the tensors.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type LoadedStateDict,
  loadStateDict,
  readStateDict,
  type StateTensor,
  toFloat32,
} from '../runtime/torch/index.js';
import { type PickleDict, unpickle } from '../runtime/torch/pickle.js';
import { storageLoader, TensorRef, torchGlobals } from '../runtime/torch/torch-globals.js';
import { hasTorch, makeStateDicts, NO_TORCH_MESSAGE, refusal } from './torch-fixtures.js';

const HAS_TORCH = hasTorch();
if (!HAS_TORCH) console.warn(`torch-state-dict.test.ts: ${NO_TORCH_MESSAGE}`);

interface PyTensor {
  dtype: string;
  shape: number[];
  sha256: string;
  f32?: number[];
  f64?: number[];
  int?: string[];
}

const dir = mkdtempSync(join(tmpdir(), 'wgflow-torch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const seed = (Math.random() * 2 ** 31) >>> 0;
const file = (n: string) => join(dir, n);
let expected: [string, PyTensor][] = [];

const bytesOf = (t: StateTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const sha256 = (t: StateTensor) => createHash('sha256').update(bytesOf(t)).digest('hex');

function checkAgainstPython(sd: LoadedStateDict, label: string) {
  expect([...sd.tensors.keys()], label).toEqual(expected.map(([k]) => k));
  for (const [k, py] of expected) {
    const t = sd.tensors.get(k) as StateTensor;
    const what = `${label} ${k} (seed ${seed})`;
    expect(t.dtype, what).toBe(py.dtype);
    expect(t.shape, what).toEqual(py.shape);
    expect(t.data.length, what).toBe(py.shape.reduce((a, b) => a * b, 1));
    expect(sha256(t), what).toBe(py.sha256);
    if (py.f32) expect(toFloat32(t), what).toEqual(Float32Array.from(py.f32));
    if (py.f64) expect([...(t.data as Float64Array)], what).toEqual(py.f64);
    if (py.int)
      expect(
        Array.from(t.data as ArrayLike<number | bigint>, (v) => String(v)),
        what,
      ).toEqual(py.int);
  }
}

describe.skipIf(!HAS_TORCH)('state dicts written by torch.save', () => {
  beforeAll(() => {
    const { report, seconds } = makeStateDicts(dir, seed, false);
    console.log(`make_state_dicts.py (seed ${seed}): ${seconds.toFixed(1)} s wall, ${JSON.stringify(report)}`);
    expected = JSON.parse(readFileSync(file('small.json'), 'utf8')).keys;
  });

  const formats: [string, string][] = [
    ['small.zip.pth', 'torch-zip'],
    ['small.legacy.pth', 'torch-legacy'],
    ['small.p4.zip.pth', 'torch-zip'],
    ['small.p1.legacy.pth', 'torch-legacy'],
    ['small.safetensors', 'safetensors'],
  ];
  for (const [name, format] of formats) {
    it(`${name}: every tensor as Python reports it (dtype, shape, bytes, values)`, async () => {
      const sd = await loadStateDict(file(name));
      expect(sd.format).toBe(format);
      expect(sd.entry).toBeNull();
      checkAgainstPython(sd, name);
    });
  }

  it('the zip, legacy and safetensors files give identical tensors, bit for bit', async () => {
    const [zip, ...others] = await Promise.all(formats.map(([n]) => loadStateDict(file(n))));
    for (const other of others)
      for (const [k, t] of zip!.tensors) {
        const o = other.tensors.get(k) as StateTensor;
        expect(o.dtype, `${other.name} ${k}`).toBe(t.dtype);
        expect(o.shape, `${other.name} ${k}`).toEqual(t.shape);
        expect(bytesOf(o), `${other.name} ${k}`).toEqual(bytesOf(t));
      }
  });

  it('views are copied out: tensors sharing a storage do not share memory', async () => {
    const sd = await loadStateDict(file('small.zip.pth'));
    const base = sd.tensors.get('shared.base')!.data as Float32Array;
    const t = sd.tensors.get('shared.transposed')!.data as Float32Array;
    expect(t.buffer).not.toBe(base.buffer);
    expect(t[1]).toBe(base[7]); // transposed [7, 5]: t[0][1] = base[1][0]
    base[7] = 12345;
    expect(t[1]).not.toBe(12345);
  });

  it('full checkpoints: the model entry by default; other entries are not state dicts', async () => {
    for (const n of ['full.zip.pth', 'full.legacy.pth']) {
      const sd = await loadStateDict(file(n));
      expect(sd.entry).toBe('model');
      checkAgainstPython(sd, n);
      const bytes = readFileSync(file(n));
      expect(refusal(() => readStateDict(bytes, n, { key: 'optimizer' }))).toMatch(
        new RegExp(`${n.replace('.', '\\.')} .*entry "optimizer": "state" is a dict, not a tensor`),
      );
    }
    const withArgs = readFileSync(file('full-args.zip.pth'));
    expect(refusal(() => readStateDict(withArgs, 'full-args.zip.pth'))).toMatch(
      /full-args\.zip\.pth \(torch zip format\), full-args\.zip\/data\.pkl: pickle byte \d+ \(GLOBAL\): refused global argparse\.Namespace/,
    );
    const sd = readStateDict(withArgs, 'full-args.zip.pth', { opaqueGlobals: ['argparse.Namespace'] });
    checkAgainstPython(sd, 'full-args.zip.pth');
  });

  it('real files broken on purpose are refused, naming the file and the tensor', () => {
    const zip = readFileSync(file('small.zip.pth'));
    expect(refusal(() => readStateDict(zip.subarray(0, zip.length - 100), 'cut.zip.pth'))).toMatch(
      /cut\.zip\.pth \(torch zip format\): not a readable zip archive \(truncated or corrupt\)/,
    );
    // Re-zip torch's entries with one storage cut short: the one that "bn.num_batches_tracked" uses.
    const entries = unzipSync(zip);
    const pklName = Object.keys(entries).find((n) => n.endsWith('/data.pkl'))!;
    const key = storageKeyOf(entries[pklName]!, 'bn.num_batches_tracked');
    const storage = `${pklName.slice(0, -'data.pkl'.length)}data/${key}`;
    entries[storage] = entries[storage]!.subarray(0, 4);
    expect(refusal(() => readStateDict(zipSync(entries, { level: 0 }), 'short.zip.pth'))).toMatch(
      new RegExp(
        `short\\.zip\\.pth \\(torch zip format\\): entry ${storage.replace(/\./g, '\\.')} \\(storage of tensor "bn\\.num_batches_tracked"\\) holds 4 bytes but the pickle declares torch\\.LongStorage × 1 = 8 bytes`,
      ),
    );
    const legacy = readFileSync(file('small.legacy.pth'));
    expect(refusal(() => readStateDict(legacy.subarray(0, legacy.length - 3), 'cut.legacy.pth'))).toMatch(
      /cut\.legacy\.pth \(torch legacy format\): truncated: storage \d+ needs bytes/,
    );
    const bad = Uint8Array.from(legacy);
    bad[5] = (bad[5] as number) ^ 0xff; // inside the magic number
    expect(refusal(() => readStateDict(bad, 'magic.legacy.pth'))).toMatch(
      /magic\.legacy\.pth \(torch legacy format\): bad magic number/,
    );
    writeFileSync(file('garbage.pth'), new Uint8Array([1, 2, 3]));
    return expect(loadStateDict(file('garbage.pth'))).rejects.toThrow(/garbage\.pth: unknown format/);
  });
});

/** The storage key of tensor `name` in a data.pkl (read with the reader's own unpickler). */
function storageKeyOf(pkl: Uint8Array, name: string): string {
  const { value } = unpickle(pkl, { source: 'data.pkl', ...torchGlobals(), ...storageLoader() });
  const t = (value as PickleDict).entries.get(name);
  if (!(t instanceof TensorRef)) throw new Error(`no tensor ${name} in data.pkl`);
  return t.storage.key;
}
