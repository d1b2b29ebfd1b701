/**
 * Hand-made torch files for the runtime/torch tests: a small pickle assembler (opcodes as pickletools
 * names them), torch-shaped zip and legacy files built from it, a ZIP64 writer, and the bridge to
 * Debian's python3-torch (test/fixtures/torch/make_state_dicts.py) with a skip when it is absent.
 */
import { spawnSync } from 'node:child_process';
import { zipSync } from 'fflate';
import { expect } from 'vitest';
import { stridesOf } from '../compiler/types.js';
import { WgflowError } from '../runtime/errors.js';

export const PYTHON = '/usr/bin/python3';

let torchChecked: boolean | undefined;
/** True when /usr/bin/python3 can import torch and torchvision (checked once; the import takes seconds). */
export function hasTorch(): boolean {
  torchChecked ??= spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0;
  return torchChecked;
}
export const NO_TORCH_MESSAGE =
  'skipped: /usr/bin/python3 cannot import torch and torchvision (apt-get install python3-torch python3-torchvision; .ci/run does)';

/** Runs the fixture generator into `dir`; returns its timings line and the wall time. */
export function makeStateDicts(
  dir: string,
  seed: number,
  torchvision: boolean,
): { report: Record<string, unknown>; seconds: number } {
  const t0 = performance.now();
  const args = ['test/fixtures/torch/make_state_dicts.py', dir, '--seed', String(seed)];
  if (torchvision) args.push('--torchvision');
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make_state_dicts.py failed (seed ${seed}): ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return { report: JSON.parse(lines[lines.length - 1] as string), seconds: (performance.now() - t0) / 1000 };
}

/** Python (stdlib only) runs `pickle.loads` on the bytes; returns its exit status and stderr. */
export function pythonUnpickle(bytes: Uint8Array): { status: number | null; stderr: string } {
  const r = spawnSync(PYTHON, ['-c', 'import pickle, sys; pickle.loads(sys.stdin.buffer.read())'], {
    input: bytes,
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr };
}

/** Assembles pickle bytes opcode by opcode. */
export class PickleWriter {
  private readonly out: number[] = [];

  raw(...b: number[]): this {
    this.out.push(...b);
    return this;
  }
  proto(p = 2): this {
    return this.raw(0x80, p);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  append(): this {
    return this.raw(0x61);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  newobj(): this {
    return this.raw(0x81);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  /** Text line opcodes (protocol 0): GLOBAL 'c', INST 'i'. */
  private lines(op: number, ...parts: string[]): this {
    this.raw(op);
    for (const p of parts) this.raw(...new TextEncoder().encode(`${p}\n`));
    return this;
  }
  global(module: string, name: string): this {
    return this.lines(0x63, module, name);
  }
  inst(module: string, name: string): this {
    return this.lines(0x69, module, name);
  }
  /** SHORT_BINUNICODE module, SHORT_BINUNICODE name, STACK_GLOBAL (protocol 4). */
  stackGlobal(module: string, name: string): this {
    return this.shortStr(module).shortStr(name).raw(0x93);
  }
  shortStr(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.raw(0x8c, b.length, ...b);
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.raw(0x58, ...u32(b.length), ...b);
  }
  int(v: number): this {
    if (v >= 0 && v < 256) return this.raw(0x4b, v);
    return this.raw(0x4a, ...u32(v >>> 0));
  }
  /** LONG1 of a bigint (two's complement, little-endian). */
  long(v: bigint): this {
    const b: number[] = [];
    let x = v;
    for (;;) {
      b.push(Number(x & 0xffn));
      x >>= 8n;
      if ((x === 0n && !(b[b.length - 1]! & 0x80)) || (x === -1n && b[b.length - 1]! & 0x80)) break;
    }
    return this.raw(0x8a, b.length, ...b);
  }
  ints(values: readonly number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  /** An empty collections.OrderedDict() (as torch writes backward hooks). */
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').emptyTuple().reduce();
  }
  /** _rebuild_tensor_v2((('storage', torch.<type>, key, 'cpu', numel)), offset, size, stride, False, OrderedDict()) */
  tensor(t: HandTensor, rebuild = '_rebuild_tensor_v2'): this {
    this.global('torch._utils', rebuild).mark();
    this.mark()
      .str('storage')
      .global('torch', t.type ?? 'FloatStorage')
      .str(t.key)
      .str('cpu')
      .int(t.numel);
    if (t.view !== undefined) {
      if (t.view === null) this.none();
      else this.mark().str(t.view[0]).int(t.view[1]).int(t.view[2]).tuple();
    }
    this.tuple().binpersid();
    this.int(t.offset ?? 0)
      .ints(t.shape)
      .ints(t.stride ?? stridesOf(t.shape));
    if (rebuild !== '_rebuild_tensor') this.bool(false).orderedDict();
    return this.tuple().reduce();
  }
  /** An OrderedDict of hand tensors, STOP included. */
  stateDict(tensors: readonly [string, HandTensor][], proto = 2): this {
    this.proto(proto).orderedDict().mark();
    for (const [k, t] of tensors) this.str(k).tensor(t);
    return this.setitems().stop();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

export interface HandTensor {
  readonly key: string;
  readonly numel: number;
  readonly shape: readonly number[];
  readonly stride?: readonly number[];
  readonly offset?: number;
  readonly type?: string;
  /** Legacy persistent ids have a 6th field: null, or a view (view_key, offset, size). */
  readonly view?: null | readonly [string, number, number];
}

function u32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** The message of the WgflowError `fn` throws (fails the test when it throws nothing or another error). */
export function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WgflowError);
    return (e as Error).message;
  }
  throw new Error('expected a WgflowError, nothing was thrown');
}

export const f32Bytes = (values: readonly number[]) => new Uint8Array(Float32Array.from(values).buffer);

/** A zip laid out as torch.save lays it out (archive/data.pkl, archive/data/<key>, archive/version), STORED by default. */
export function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array>, level: 0 | 6 = 0): Uint8Array {
  const files: Record<string, Uint8Array> = { 'archive/data.pkl': pkl };
  for (const [k, b] of Object.entries(storages)) files[`archive/data/${k}`] = b;
  files['archive/version'] = new TextEncoder().encode('3\n');
  return zipSync(files, { level });
}

/** A legacy torch file: magic, protocol 1001, sys_info, the object pickle, the key list, then u64 numel + bytes per key. */
export function torchLegacy(
  main: Uint8Array,
  storages: readonly [string, number, Uint8Array][],
  magic = 0x1950a86a20f9469cfc6cn,
): Uint8Array {
  const parts: Uint8Array[] = [
    new PickleWriter().proto().long(magic).stop().bytes(),
    new PickleWriter().proto().raw(0x4d, 0xe9, 0x03).stop().bytes(), // BININT2 1001
    new PickleWriter().proto().emptyDict().str('little_endian').bool(true).setitem().stop().bytes(),
    main,
  ];
  const keys = new PickleWriter().proto().emptyList();
  for (const [k] of storages) keys.str(k).append();
  parts.push(keys.stop().bytes());
  for (const [, numel, b] of storages) {
    const n = new Uint8Array(8);
    new DataView(n.buffer).setBigUint64(0, BigInt(numel), true);
    parts.push(n, b);
  }
  return concat(parts);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A STORED zip whose every size and offset is in ZIP64 fields (0xFFFFFFFF in the classic ones), with
 * the ZIP64 end-of-central-directory record and locator, as a writer lays out a file over 4 GiB.
 * (CRC-32s are left 0: fflate does not check them, and the reader does not claim to.)
 */
export function zip64Stored(files: Record<string, Uint8Array>): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  const le = (n: number, bytes: number) => {
    const b = new Uint8Array(bytes);
    const v = new DataView(b.buffer);
    if (bytes === 2) v.setUint16(0, n, true);
    else if (bytes === 4) v.setUint32(0, n, true);
    else v.setBigUint64(0, BigInt(n), true);
    return b;
  };
  const F = 0xffffffff;
  for (const [name, data] of Object.entries(files)) {
    const nm = enc.encode(name);
    const extraLocal = concat([le(1, 2), le(16, 2), le(data.length, 8), le(data.length, 8)]);
    const local = concat([
      le(0x04034b50, 4),
      le(45, 2),
      le(0, 2),
      le(0, 2), // STORED
      le(0, 2),
      le(0, 2),
      le(0, 4), // crc
      le(F, 4),
      le(F, 4),
      le(nm.length, 2),
      le(extraLocal.length, 2),
      nm,
      extraLocal,
      data,
    ]);
    const extraCentral = concat([le(1, 2), le(24, 2), le(data.length, 8), le(data.length, 8), le(offset, 8)]);
    centrals.push(
      concat([
        le(0x02014b50, 4),
        le(45, 2),
        le(45, 2),
        le(0, 2),
        le(0, 2),
        le(0, 2),
        le(0, 2),
        le(0, 4),
        le(F, 4),
        le(F, 4),
        le(nm.length, 2),
        le(extraCentral.length, 2),
        le(0, 2),
        le(0, 2),
        le(0, 2),
        le(0, 4),
        le(F, 4),
        nm,
        extraCentral,
      ]),
    );
    locals.push(local);
    offset += local.length;
  }
  const cd = concat(centrals);
  const n = centrals.length;
  const eocd64At = offset + cd.length;
  const eocd64 = concat([
    le(0x06064b50, 4),
    le(44, 8),
    le(45, 2),
    le(45, 2),
    le(0, 4),
    le(0, 4),
    le(n, 8),
    le(n, 8),
    le(cd.length, 8),
    le(offset, 8),
  ]);
  const locator = concat([le(0x07064b50, 4), le(0, 4), le(eocd64At, 8), le(1, 4)]);
  const eocd = concat([
    le(0x06054b50, 4),
    le(0, 2),
    le(0, 2),
    le(0xffff, 2),
    le(0xffff, 2),
    le(F, 4),
    le(F, 4),
    le(0, 2),
  ]);
  return concat([...locals, cd, eocd64, locator, eocd]);
}
