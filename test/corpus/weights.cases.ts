/** Corrupt weights files: safetensors headers and data sections, and PyTorch .pth archives. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, loadStateDict, readSafetensors, readStateDict } from '../../index.js';
import type { CorpusCase } from './types.js';

/** safetensors bytes: an 8-byte little-endian header length, the header text, then `data`. */
function st(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}
const bytes = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + seed) & 0xff);
const t = (dtype: string, shape: unknown, offs: unknown) => ({ dtype, shape, data_offsets: offs });

/** [id, what, bytes, message] for decodeSafetensors(bytes, 'w.safetensors'). */
const headerCases: [string, string, () => Uint8Array, RegExp][] = [
  ['st-empty', 'an empty file', () => new Uint8Array(0), /w\.safetensors.*truncated.*0 bytes/],
  ['st-short', '5 bytes', () => bytes(5), /w\.safetensors.*truncated/],
  [
    'st-header-huge',
    'header length 2^60',
    () => st({}, new Uint8Array(0), 2n ** 60n),
    /w\.safetensors.*header length.*cap/,
  ],
  [
    'st-header-past-end',
    'header length 1000 in a 40-byte file',
    () => st('{"a":1}', bytes(20), 1000n),
    /w\.safetensors.*larger than the file/,
  ],
  ['st-header-not-json', 'header is not JSON', () => st('{not json at all}'), /w\.safetensors.*not valid UTF-8 JSON/],
  [
    'st-header-bad-utf8',
    'header holds invalid UTF-8',
    () => st(new TextDecoder('latin1').decode(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])), new Uint8Array(0), 4n),
    /w\.safetensors.*(UTF-8|JSON)/,
  ],
  ['st-header-list', 'header is a JSON list', () => st([1, 2]), /w\.safetensors.*not a JSON object/],
  ['st-header-null', 'header is null', () => st('null'), /w\.safetensors.*not a JSON object/],
  ['st-metadata-list', '__metadata__ is a list', () => st({ __metadata__: ['a'] }), /__metadata__.*not an object/],
  [
    'st-metadata-number',
    'a metadata value is a number',
    () => st({ __metadata__: { a: 1 } }),
    /__metadata__\.a.*not a string/,
  ],
  ['st-entry-string', 'a tensor entry is a string', () => st({ w: 'F32' }), /tensor "w".*not an object/],
  [
    'st-dtype-missing',
    'a tensor without dtype',
    () => st({ w: { shape: [1], data_offsets: [0, 4] } }, bytes(4)),
    /tensor "w".*dtype/,
  ],
  [
    'st-dtype-unknown',
    'dtype "F33"',
    () => st({ w: t('F33', [1], [0, 4]) }, bytes(4)),
    /tensor "w".*unknown dtype "F33"/,
  ],
  [
    'st-dtype-u8',
    'dtype U8 (exists, not read)',
    () => st({ w: t('U8', [4], [0, 4]) }, bytes(4)),
    /tensor "w".*U8 is not supported/,
  ],
  [
    'st-dtype-lowercase',
    'dtype "f32" (lower case)',
    () => st({ w: t('f32', [1], [0, 4]) }, bytes(4)),
    /unknown dtype "f32"/,
  ],
  ['st-shape-negative', 'shape [-1]', () => st({ w: t('F32', [-1], [0, 4]) }, bytes(4)), /tensor "w".*shape \[-1\]/],
  ['st-shape-fraction', 'shape [1.5]', () => st({ w: t('F32', [1.5], [0, 4]) }, bytes(4)), /tensor "w".*shape/],
  ['st-shape-string', 'shape "2"', () => st({ w: t('F32', '2', [0, 8]) }, bytes(8)), /tensor "w".*shape/],
  [
    'st-offsets-reversed',
    'data_offsets [8, 0]',
    () => st({ w: t('F32', [2], [8, 0]) }, bytes(8)),
    /data_offsets \[8,0\]/,
  ],
  [
    'st-offsets-three',
    'data_offsets of three numbers',
    () => st({ w: t('F32', [2], [0, 4, 8]) }, bytes(8)),
    /data_offsets/,
  ],
  ['st-offsets-negative', 'data_offsets [-4, 4]', () => st({ w: t('F32', [2], [-4, 4]) }, bytes(8)), /data_offsets/],
  [
    'st-size-mismatch',
    'shape [3] F32 over 8 bytes',
    () => st({ w: t('F32', [3], [0, 8]) }, bytes(8)),
    /shape \[3\] × F32 is 12 bytes/,
  ],
  [
    'st-overlap',
    'two tensors over the same bytes',
    () => st({ a: t('F32', [2], [0, 8]), b: t('F32', [2], [4, 12]) }, bytes(12)),
    /overlap/,
  ],
  [
    'st-gap',
    'a gap between tensors',
    () => st({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [8, 12]) }, bytes(12)),
    /not contiguous: gap/,
  ],
  [
    'st-past-end',
    'a tensor past the end of the data',
    () => st({ a: t('F32', [4], [0, 16]) }, bytes(8)),
    /truncated: tensor "a" ends at data byte 16/,
  ],
  ['st-trailing', 'bytes after the last tensor', () => st({ a: t('F32', [1], [0, 4]) }, bytes(12)), /8 trailing bytes/],
  [
    'st-offsets-huge',
    'data_offsets past 2^53',
    () => st({ a: t('F32', [1], [2 ** 60, 2 ** 60 + 4]) }, bytes(4)),
    /data_offsets/,
  ],
  [
    'st-shape-overflow',
    'shape whose product overflows',
    () => st({ a: t('F32', [2 ** 40, 2 ** 40], [0, 4]) }, bytes(4)),
    /shape.*bytes but data_offsets/,
  ],
];

const headerCorpus: CorpusCase[] = headerCases.map(([id, what, make, message]) => ({
  id: `weights/${id}`,
  area: 'weights',
  kind: 'library',
  what: `safetensors: ${what}`,
  expect: { error: 'WgflowError', message },
  run: () => decodeSafetensors(make(), 'w.safetensors'),
}));

export const cases: CorpusCase[] = [
  ...headerCorpus,
  {
    id: 'weights/st-i64-overflow',
    area: 'weights',
    kind: 'library',
    what: 'an I64 value past the i32 range',
    expect: { error: 'WgflowError', message: /w\.safetensors.*tensor "a".*does not fit in i32/ },
    run: () => {
      const d = new Uint8Array(8);
      new DataView(d.buffer).setBigInt64(0, 2n ** 40n, true);
      return decodeSafetensors(st({ a: t('I64', [1], [0, 8]) }, d), 'w.safetensors');
    },
  },
  {
    id: 'weights/st-valid-roundtrip',
    area: 'weights',
    kind: 'library',
    what: 'a valid file with an empty tensor and metadata (must load)',
    expect: { ok: true },
    run: () => {
      const enc = encodeSafetensors(
        {
          e: { data: new Float32Array(0), shape: [0, 3], dtype: 'f32' },
          w: { data: Float32Array.of(1.5, -2), shape: [2], dtype: 'f32' },
        },
        { note: 'x' },
      );
      const r = decodeSafetensors(enc, 'ok.safetensors');
      if (r.tensors.get('w')?.data[1] !== -2 || r.metadata.note !== 'x') throw new Error('round trip changed the data');
    },
  },
  {
    id: 'weights/st-fifo',
    area: 'weights',
    kind: 'library',
    what: 'readSafetensors on a named pipe (would wait forever)',
    expect: { error: 'WgflowError', message: /w\.safetensors.*regular file.*named pipe/ },
    timeoutMs: 10_000,
    setup: (ctx) => {
      execFileSync('mkfifo', [join(ctx.dir, 'w.safetensors')]);
    },
    run: (ctx) => readSafetensors(join(ctx.dir, 'w.safetensors')),
  },
  {
    id: 'weights/st-dev-zero',
    area: 'weights',
    kind: 'library',
    what: 'readSafetensors on /dev/zero (would read without end)',
    expect: { error: 'WgflowError', message: /\/dev\/zero.*regular file.*character device/ },
    timeoutMs: 10_000,
    run: () => readSafetensors('/dev/zero'),
  },
  {
    id: 'weights/st-folder',
    area: 'weights',
    kind: 'library',
    what: 'readSafetensors on a folder',
    expect: { error: 'WgflowError', message: /w\.safetensors.*regular file.*folder/ },
    setup: (ctx) => mkdirSync(join(ctx.dir, 'w.safetensors')),
    run: (ctx) => readSafetensors(join(ctx.dir, 'w.safetensors')),
  },
  {
    id: 'weights/st-missing',
    area: 'weights',
    kind: 'library',
    what: 'readSafetensors on a file that does not exist',
    expect: { error: 'WgflowError', message: /nope\.safetensors.*no such file/ },
    run: (ctx) => readSafetensors(join(ctx.dir, 'nope.safetensors')),
  },
  {
    id: 'weights/st-over-size-limit',
    area: 'weights',
    kind: 'library',
    what: 'a file over the maxBytes limit is refused before reading',
    expect: { error: 'WgflowError', message: /big\.safetensors.*over the limit/ },
    setup: (ctx) => writeFileSync(join(ctx.dir, 'big.safetensors'), st({ a: t('F32', [256], [0, 1024]) }, bytes(1024))),
    run: (ctx) => readSafetensors(join(ctx.dir, 'big.safetensors'), { maxBytes: 512 }),
  },
  {
    id: 'weights/pth-empty',
    area: 'weights',
    kind: 'library',
    what: 'an empty .pth file',
    expect: { error: 'WgflowError', message: /m\.pth/ },
    setup: (ctx) => writeFileSync(join(ctx.dir, 'm.pth'), new Uint8Array(0)),
    run: (ctx) => loadStateDict(join(ctx.dir, 'm.pth')),
  },
  {
    id: 'weights/pth-garbage',
    area: 'weights',
    kind: 'library',
    what: 'a .pth of random bytes',
    expect: { error: 'WgflowError', message: /m\.pth/ },
    setup: (ctx) => writeFileSync(join(ctx.dir, 'm.pth'), bytes(4096, 3)),
    run: (ctx) => loadStateDict(join(ctx.dir, 'm.pth')),
  },
  {
    id: 'weights/pth-zip-truncated',
    area: 'weights',
    kind: 'library',
    what: 'a zip .pth cut after its first local header',
    expect: { error: 'WgflowError', message: /m\.pth/ },
    run: () => {
      const head = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      const b = new Uint8Array(200);
      b.set(head);
      b.set(bytes(100), 30);
      return readStateDict(b, 'm.pth');
    },
  },
  {
    id: 'weights/pth-pickle-garbage',
    area: 'weights',
    kind: 'library',
    what: 'a legacy .pth whose pickle is garbage after the protocol byte',
    expect: { error: 'WgflowError', message: /m\.pth/ },
    run: () => readStateDict(Uint8Array.from([0x80, 0x02, 0xff, 0xfe, 0xfd, 0x2e]), 'm.pth'),
  },
  {
    id: 'weights/pth-fifo',
    area: 'weights',
    kind: 'library',
    what: 'loadStateDict on a named pipe',
    expect: { error: 'WgflowError', message: /m\.pth.*named pipe/ },
    timeoutMs: 10_000,
    setup: (ctx) => {
      execFileSync('mkfifo', [join(ctx.dir, 'm.pth')]);
    },
    run: (ctx) => loadStateDict(join(ctx.dir, 'm.pth')),
  },
];
