import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { atomicTempPath, writeFileAtomic } from '../runtime/atomic-file.js';
import { uniformStream } from '../runtime/init.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  SAFETENSORS_MAX_HEADER_BYTES,
  writeSafetensors,
} from '../runtime/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Builds a file by hand, the way Python's safetensors lays it out: u64 LE length, JSON, raw bytes. */
function handMade(
  header: unknown,
  data: Uint8Array,
  opts: { headerLen?: bigint; rawHeader?: string } = {},
): Uint8Array {
  const json = new TextEncoder().encode(opts.rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, opts.headerLen ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function le(values: number[], kind: 'f32' | 'i32' | 'f16bits' | 'f64' | 'i64'): Uint8Array {
  const size = { f32: 4, i32: 4, f16bits: 2, f64: 8, i64: 8 }[kind];
  const b = new Uint8Array(values.length * size);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => {
    if (kind === 'f32') v.setFloat32(i * 4, x, true);
    else if (kind === 'i32') v.setInt32(i * 4, x, true);
    else if (kind === 'f16bits') v.setUint16(i * 2, x, true);
    else if (kind === 'f64') v.setFloat64(i * 8, x, true);
    else v.setBigInt64(i * 8, BigInt(x), true);
  });
  return b;
}

describe('safetensors round trip', () => {
  it('f32/i32/u32 tensors of several shapes (scalar, empty, 3-D) with and without metadata', async () => {
    const tensors = new Map([
      ['w', { data: Float32Array.from([1.5, -2, 3.25, Number.NaN, -0, 1e-30]), shape: [2, 3], dtype: 'f32' as const }],
      ['scalar', { data: Float32Array.from([42]), shape: [], dtype: 'f32' as const }],
      ['idx', { data: Int32Array.from([-7, 0, 2147483647, -2147483648]), shape: [4], dtype: 'i32' as const }],
      ['bits', { data: Uint32Array.from([0, 4294967295, 12345]), shape: [3, 1, 1], dtype: 'u32' as const }],
      ['empty', { data: new Float32Array(0), shape: [0, 5], dtype: 'f32' as const }],
      ['2', { data: Int32Array.from([9]), shape: [1], dtype: 'i32' as const }],
    ]);
    for (const metadata of [{}, { step: '12', note: 'ünïcode ✓' }] as Record<string, string>[]) {
      const bytes = encodeSafetensors(tensors, metadata);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
      expect('__metadata__' in header).toBe(Object.keys(metadata).length > 0);
      // tensors contiguous in the given order
      expect(header.w.data_offsets).toEqual([0, 24]);
      expect(header.scalar.data_offsets).toEqual([24, 28]);
      expect(header.idx.data_offsets).toEqual([28, 44]);
      const path = join(dir, `rt-${Object.keys(metadata).length}.safetensors`);
      await writeSafetensors(path, tensors, metadata);
      const back = await readSafetensors(path);
      expect(back.metadata).toEqual(metadata);
      expect([...back.tensors.keys()]).toEqual([...tensors.keys()]);
      for (const [name, t] of tensors) {
        const r = back.tensors.get(name);
        expect(r?.dtype).toBe(t.dtype);
        expect(r?.shape).toEqual(t.shape);
        expect(r?.data.constructor).toBe(t.data.constructor);
        expect(Object.is(r?.data[4], t.data[4])).toBe(true); // -0 survives
        expect([...(r?.data ?? [])]).toEqual([...t.data]);
      }
    }
  });

  it('an empty file (no tensors, no metadata) round-trips', () => {
    const bytes = encodeSafetensors({});
    expect(decodeSafetensors(bytes).tensors.size).toBe(0);
    expect(decodeSafetensors(bytes).metadata).toEqual({});
  });

  it('writer rejects data that does not match the shape', () => {
    expect(() => encodeSafetensors({ a: { data: new Float32Array(3), shape: [2, 2], dtype: 'f32' } })).toThrow(
      /"a" shape \[2,2\] needs 4 values, data has 3/,
    );
  });
});

describe('safetensors: hand-built (Python-style) files', () => {
  it('reads a file laid out by hand per the spec, header keys out of offset order, unpadded header', () => {
    const data = new Uint8Array([...le([1, 2, 3, 4, 5, 6], 'i32'), ...le([0.5, -1.25], 'f32')]);
    const header = {
      __metadata__: { format: 'pt' },
      'layer.bias': { dtype: 'F32', shape: [2], data_offsets: [24, 32] },
      'layer.idx': { dtype: 'I32', shape: [2, 3], data_offsets: [0, 24] },
    };
    const bytes = handMade(header, data);
    const path = join(dir, 'python.safetensors');
    writeFileSync(path, bytes);
    return readSafetensors(path).then((r) => {
      expect(r.metadata).toEqual({ format: 'pt' });
      expect([...(r.tensors.get('layer.bias')?.data ?? [])]).toEqual([0.5, -1.25]);
      expect(r.tensors.get('layer.idx')?.shape).toEqual([2, 3]);
      expect([...(r.tensors.get('layer.idx')?.data ?? [])]).toEqual([1, 2, 3, 4, 5, 6]);
    });
  });

  it('converts F16, BF16 and F64 to f32 and I64 to i32 on read', () => {
    // f16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 0x0001, +inf 0x7c00
    const f16 = le([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00], 'f16bits');
    // bf16: top halves of f32 bits of 1.0 (0x3f80) and -3.0 (0xc040)
    const bf16 = le([0x3f80, 0xc040], 'f16bits');
    const f64 = le([0.1, -1e10], 'f64');
    const i64 = le([-5, 2147483647], 'i64');
    const parts = [f16, bf16, f64, i64];
    const offs: number[] = [0];
    for (const p of parts) offs.push((offs.at(-1) as number) + p.length);
    const data = new Uint8Array(offs.at(-1) as number);
    parts.forEach((p, i) => {
      data.set(p, offs[i]);
    });
    const header = {
      h: { dtype: 'F16', shape: [5], data_offsets: [offs[0], offs[1]] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [offs[1], offs[2]] },
      d: { dtype: 'F64', shape: [2], data_offsets: [offs[2], offs[3]] },
      l: { dtype: 'I64', shape: [1, 2], data_offsets: [offs[3], offs[4]] },
    };
    const r = decodeSafetensors(handMade(header, data), 'conv.safetensors');
    expect(r.tensors.get('h')?.dtype).toBe('f32');
    expect(r.tensors.get('h')?.stored).toBe('F16');
    expect([...(r.tensors.get('h')?.data ?? [])]).toEqual([1, -2, 65504, Math.fround(2 ** -24), Infinity]);
    expect([...(r.tensors.get('b')?.data ?? [])]).toEqual([1, -3]);
    expect([...(r.tensors.get('d')?.data ?? [])]).toEqual([Math.fround(0.1), Math.fround(-1e10)]);
    expect(r.tensors.get('l')?.dtype).toBe('i32');
    expect([...(r.tensors.get('l')?.data ?? [])]).toEqual([-5, 2147483647]);
    const big = handMade({ l: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, le([2 ** 40], 'i64'));
    expect(() => decodeSafetensors(big, 'big.safetensors')).toThrow(
      /big\.safetensors: tensor "l": I64 value 1099511627776 at index 0 does not fit in i32/,
    );
  });
});

describe('safetensors: corrupt files give clear errors naming the file', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', new Uint8Array([1, 2, 3]), /bad\.st: truncated: 3 bytes, too short/],
    [
      'header length past the end of the file',
      handMade(ok, new Uint8Array(8), { headerLen: 10_000n }),
      /bad\.st: header length 10000 is larger than the file/,
    ],
    [
      'header length over the 100 MB cap',
      handMade(ok, new Uint8Array(8), { headerLen: BigInt(SAFETENSORS_MAX_HEADER_BYTES + 1) }),
      /bad\.st: header length 100000001 exceeds the 100000000-byte cap/,
    ],
    ['header length 2^64-1', handMade(ok, new Uint8Array(8), { headerLen: 2n ** 64n - 1n }), /exceeds the .*cap/],
    ['non-JSON header', handMade(null, new Uint8Array(8), { rawHeader: '{"a": nope' }), /bad\.st: header is not valid/],
    ['JSON array header', handMade([1, 2], new Uint8Array(0)), /bad\.st: header is not a JSON object/],
    [
      'unknown dtype',
      handMade({ a: { dtype: 'F33', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /bad\.st: tensor "a": unknown dtype "F33"/,
    ],
    [
      'known but unsupported dtype',
      handMade({ a: { dtype: 'U8', shape: [8], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /bad\.st: tensor "a": dtype U8 is not supported/,
    ],
    [
      'overlapping offsets',
      handMade(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      /bad\.st: tensor "b" data_offsets \[4, 12\] overlap tensor "a"/,
    ],
    [
      'a gap between tensors',
      handMade(
        {
          a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
        },
        new Uint8Array(12),
      ),
      /bad\.st: offsets are not contiguous: gap of 4 bytes before tensor "b"/,
    ],
    [
      'offsets past the data (truncated file)',
      handMade(ok, new Uint8Array(5)),
      /bad\.st: truncated: tensor "a" ends at data byte 8 but the data section has 5 bytes/,
    ],
    ['trailing bytes', handMade(ok, new Uint8Array(12)), /bad\.st: 4 trailing bytes after the last tensor/],
    [
      'shape × dtype ≠ byte length',
      handMade({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /bad\.st: tensor "a": shape \[3\] × F32 is 12 bytes but data_offsets \[0, 8\] span 8/,
    ],
    [
      'reversed offsets',
      handMade({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)),
      /bad\.st: tensor "a": data_offsets \[8,0\] is not \[begin, end\]/,
    ],
    [
      'negative shape',
      handMade({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /bad\.st: tensor "a": shape \[-2\] is not a list of non-negative integers/,
    ],
    [
      'non-string metadata',
      handMade({ __metadata__: { n: 3 } }, new Uint8Array(0)),
      /bad\.st: "__metadata__\.n" is not a string/,
    ],
  ];
  for (const [what, bytes, msg] of cases)
    it(what, () => {
      expect(() => decodeSafetensors(bytes, 'bad.st')).toThrow(msg);
    });

  it('a real truncated file on disk names its path', async () => {
    const full = encodeSafetensors({ w: { data: new Float32Array(100), shape: [10, 10], dtype: 'f32' } });
    const path = join(dir, 'cut.safetensors');
    writeFileSync(path, full.subarray(0, full.length - 7));
    await expect(readSafetensors(path)).rejects.toThrow(`safetensors file ${path}: truncated`);
    await expect(readSafetensors(join(dir, 'nope.safetensors'))).rejects.toThrow(/nope\.safetensors: cannot read/);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file; a failure before the rename leaves the old file and no temp file', async () => {
    const path = join(dir, 'atomic.bin');
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    await writeFileAtomic(path, new Uint8Array([4, 5]));
    expect([...readFileSync(path)]).toEqual([4, 5]);
    let seenTemp = '';
    await expect(
      writeFileAtomic(path, new Uint8Array([9, 9, 9, 9]), {
        beforeRename: (tmp) => {
          seenTemp = tmp;
          expect([...readFileSync(tmp)]).toEqual([9, 9, 9, 9]); // fully written before the rename
          throw new Error('simulated crash');
        },
      }),
    ).rejects.toThrow('simulated crash');
    expect(seenTemp.startsWith(join(dir, '.atomic.bin.tmp-'))).toBe(true);
    expect([...readFileSync(path)]).toEqual([4, 5]);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(atomicTempPath(path)).not.toBe(atomicTempPath(path));
  });
});

describe('safetensors: F16 / BF16 writing', () => {
  /** Every 16-bit pattern, as the reader decodes it (F16 or BF16). */
  function allHalves(kind: 'F16' | 'BF16'): Float32Array {
    const bits = le(
      Array.from({ length: 65536 }, (_, i) => i),
      'f16bits',
    );
    const t = decodeSafetensors(handMade({ h: { dtype: kind, shape: [65536], data_offsets: [0, 131072] } }, bits));
    return t.tensors.get('h')?.data as Float32Array;
  }

  for (const kind of ['F16', 'BF16'] as const)
    it(`${kind}: all 65536 values round-trip exactly through write and read (NaN stays NaN, −0 stays −0)`, () => {
      const values = allHalves(kind);
      const bytes = encodeSafetensors([['h', { data: values, shape: [256, 256], dtype: 'f32', storeAs: kind }]]);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
      expect(header.h).toEqual({ dtype: kind, shape: [256, 256], data_offsets: [0, 131072] });
      const back = decodeSafetensors(bytes).tensors.get('h');
      expect(back?.stored).toBe(kind);
      expect(back?.dtype).toBe('f32');
      const got = back?.data as Float32Array;
      for (let i = 0; i < 65536; i++)
        if (!Object.is(got[i], values[i]))
          throw new Error(`${kind} pattern ${i.toString(16)}: wrote ${values[i]}, read ${got[i]}`);
    });

  it('F16 rounds to the nearest value (ties to even), overflows to ±∞, underflows to ±0', () => {
    const halves = allHalves('F16');
    const finite = [...halves].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    const u = uniformStream(12345);
    const probes = [0.1, -0.3, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, -70000, 2 ** -25, 2 ** -25 * 1.01, 1e-9];
    for (let i = 0; i < 2000; i++) probes.push((u() - 0.5) * 2 ** (Math.floor(u() * 40) - 24));
    const bytes = encodeSafetensors({
      p: { data: Float32Array.from(probes), shape: [probes.length], dtype: 'f32', storeAs: 'F16' },
    });
    const got = decodeSafetensors(bytes).tensors.get('p')?.data as Float32Array;
    probes.forEach((p0, i) => {
      const p = Math.fround(p0);
      const g = got[i] as number;
      if (Math.abs(p) >= 65520) return expect(g).toBe(Math.sign(p) * Infinity);
      // no finite f16 value is strictly closer than the one written
      let best = Infinity;
      for (const v of finite) best = Math.min(best, Math.abs(v - p));
      expect(Math.abs(g - p), `probe ${p}`).toBe(best);
    });
    expect(got[0]).toBe(0.0999755859375);
    expect(got[2]).toBe(1); // tie between 1 and 1 + 2^-10 → even (1)
    expect(got[3]).toBe(1 + 2 ** -9); // tie → even mantissa
    expect(got[4]).toBe(65504);
    expect(got[5]).toBe(Infinity); // 65520 is the tie between 65504 and 2^16: rounds to even = ∞
    expect(got[7]).toBe(0); // 2^-25 is half the smallest subnormal: tie → 0
    expect(got[8]).toBe(2 ** -24);
  });

  it('storeAs is only for f32 data', () => {
    expect(() =>
      encodeSafetensors({ a: { data: new Int32Array(2), shape: [2], dtype: 'i32', storeAs: 'F16' } }),
    ).toThrow(/tensor "a": storeAs F16 needs f32 data/);
  });
});

describe('safetensors: hand-made corrupt files on disk name the file and the problem', () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const fixtures: [string, Uint8Array, RegExp][] = [
    [
      'bad-json.safetensors',
      handMade(null, new Uint8Array(8), { rawHeader: '{"a": {"dtype": "F32",' }),
      /header is not valid UTF-8 JSON/,
    ],
    [
      'not-utf8.safetensors',
      (() => {
        // {"<0xff>": 1}: 0xff never occurs in UTF-8
        const json = [0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d];
        const b = new Uint8Array(8 + json.length);
        new DataView(b.buffer).setBigUint64(0, BigInt(json.length), true);
        b.set(json, 8);
        return b;
      })(),
      /header is not valid UTF-8 JSON/,
    ],
    [
      'header-past-eof.safetensors',
      handMade(good, new Uint8Array(8), { headerLen: 4096n }),
      /header length 4096 is larger than the file \(\d+ bytes\)/,
    ],
    [
      'cut-in-header.safetensors',
      handMade(good, new Uint8Array(8)).subarray(0, 20),
      /header length \d+ is larger than the file \(20 bytes\)/,
    ],
    [
      'short-data.safetensors',
      handMade(good, new Uint8Array(6)),
      /truncated: tensor "a" ends at data byte 8 but the data section has 6 bytes/,
    ],
    [
      'unknown-dtype.safetensors',
      handMade({ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor "a": unknown dtype "Q4" \(supported: F32, I32, U32, F16, BF16, F64, I64\)/,
    ],
    [
      'overlap.safetensors',
      handMade(
        {
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        },
        new Uint8Array(12),
      ),
      /tensor "b" data_offsets \[4, 12\] overlap tensor "a" \(ends at 8\)/,
    ],
    [
      'reversed-offsets.safetensors',
      handMade({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, new Uint8Array(8)),
      /tensor "a": data_offsets \[8,0\] is not \[begin, end\] with 0 ≤ begin ≤ end/,
    ],
    [
      'gap-at-start.safetensors',
      handMade({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      /offsets are not contiguous: gap of 4 bytes before tensor "a" at 0/,
    ],
  ];
  for (const [file, bytes, msg] of fixtures)
    it(file, async () => {
      const path = join(dir, file);
      writeFileSync(path, bytes);
      const err = await readSafetensors(path).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.name).toBe('WgflowError');
      expect(err?.message).toContain(`safetensors file ${path}: `);
      expect(err?.message).toMatch(msg);
    });
});
