/**
 * runtime/torch on hand-made files (no torch needed): the unpickler's refusals (os.system,
 * builtins.eval, exec, __reduce__ / NEWOBJ of unknown classes, GLOBAL, STACK_GLOBAL and INST forms),
 * each shown by Python's own pickle to be a real attack (it creates a marker file) and shown here to
 * create nothing; broken zip and legacy files (truncated, storage shorter than its tensor, missing
 * entry, bad magic, trailing bytes, unknown storage type, unknown opcode), each refused naming the
 * file and key; ZIP64 and DEFLATE archives; legacy storage views; Parameters with state; the
 * checkpoint entry choice; and the strided gather against a naive reference on random views.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { readStateDict, toFloat32 } from '../runtime/torch/index.js';
import { unpickle } from '../runtime/torch/pickle.js';
import { gatherView } from '../runtime/torch/strided.js';
import { torchGlobals } from '../runtime/torch/torch-globals.js';
import {
  concat,
  f32Bytes,
  type HandTensor,
  PickleWriter,
  PYTHON,
  pythonUnpickle,
  refusal,
  torchLegacy,
  torchZip,
  zip64Stored,
} from './torch-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-pickle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const seed = (Math.random() * 2 ** 31) >>> 0;
const HAS_PYTHON = existsSync(PYTHON);

/** Seeded uniform values in [-1, 1) (mulberry32). */
function values(n: number, s: number): number[] {
  let a = s >>> 0 || 1;
  return Array.from({ length: n }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

const policy = { source: 'test.pkl', ...torchGlobals() };
const load = (bytes: Uint8Array) => unpickle(bytes, policy);

describe('refused pickles: nothing named by the file runs', () => {
  let n = 0;
  const marker = () => join(dir, `marker-${n++}`);
  /** Each attack: bytes that create `m` when Python unpickles them, and the global the error must name. */
  /** `callee(arg)` as GLOBAL (protocol 2) or STACK_GLOBAL (protocol 4) + REDUCE. */
  const call = (module: string, name: string, arg: string, stack = false) => {
    const w = stack
      ? new PickleWriter().proto(4).stackGlobal(module, name)
      : new PickleWriter().proto().global(module, name);
    return w.mark().str(arg).tuple().reduce().stop().bytes();
  };
  const pyCreate = (m: string) => `open(${JSON.stringify(m)}, 'w').close()`;
  const attacks: [string, (m: string) => Uint8Array, string, boolean][] = [
    ['GLOBAL os.system + REDUCE', (m) => call('os', 'system', `touch ${m}`), 'os.system', true],
    ['GLOBAL builtins.eval + REDUCE', (m) => call('builtins', 'eval', pyCreate(m)), 'builtins.eval', true],
    [
      'STACK_GLOBAL posix.system (protocol 4)',
      (m) => call('posix', 'system', `touch ${m}`, true),
      'posix.system',
      true,
    ],
    ['STACK_GLOBAL builtins.exec', (m) => call('builtins', 'exec', pyCreate(m), true), 'builtins.exec', true],
    [
      'INST os.system (protocol 0)',
      (m) => new PickleWriter().mark().str(`touch ${m}`).inst('os', 'system').stop().bytes(),
      'os.system',
      true,
    ],
    [
      "__reduce__ of an unknown class (subprocess.Popen(['touch', m]))",
      (m) =>
        new PickleWriter()
          .proto()
          .global('subprocess', 'Popen')
          .mark()
          .emptyList()
          .str('touch')
          .append()
          .str(m)
          .append()
          .tuple()
          .reduce()
          .stop()
          .bytes(),
      'subprocess.Popen',
      true,
    ],
    [
      'NEWOBJ + BUILD of an unknown class (__main__.Exploit)',
      () =>
        new PickleWriter()
          .proto()
          .global('__main__', 'Exploit')
          .emptyTuple()
          .newobj()
          .emptyDict()
          .build()
          .stop()
          .bytes(),
      '__main__.Exploit',
      false,
    ],
  ];

  for (const [title, make, global, pythonRuns] of attacks) {
    it(`${title}: refused naming ${global}; nothing is created`, () => {
      const m = marker();
      const bytes = make(m);
      expect(refusal(() => load(bytes))).toMatch(new RegExp(`refused global ${global.replace('.', '\\.')}`));
      // The same bytes inside a torch zip and a legacy file: refused by the state-dict reader, naming the file.
      expect(refusal(() => readStateDict(torchZip(bytes, {}), 'evil.pth'))).toMatch(
        new RegExp(`evil\\.pth \\(torch zip format\\).*data\\.pkl.*refused global ${global.replace('.', '\\.')}`),
      );
      expect(refusal(() => readStateDict(torchLegacy(bytes, []), 'evil-legacy.pth'))).toMatch(
        new RegExp(`evil-legacy\\.pth \\(torch legacy format\\).*refused global ${global.replace('.', '\\.')}`),
      );
      expect(existsSync(m)).toBe(false);
      // Control: Python's own unpickler runs the attack (so the test pickle is a real one).
      if (pythonRuns && HAS_PYTHON) {
        const r = pythonUnpickle(bytes);
        expect(r.status, r.stderr).toBe(0);
        expect(existsSync(m)).toBe(true);
      }
    });
  }

  it('an allowed name that is not callable, or a plain value, cannot be called', () => {
    const storageCall = new PickleWriter().proto().global('torch', 'FloatStorage').emptyTuple().reduce().stop().bytes();
    expect(refusal(() => load(storageCall))).toMatch(/REDUCE of torch\.FloatStorage, which is not callable/);
    const strCall = new PickleWriter().proto().str('os.system').emptyTuple().reduce().stop().bytes();
    expect(refusal(() => load(strCall))).toMatch(/REDUCE of str, which is not callable/);
  });

  it('allowed callables check their arguments; BUILD on a tensor is refused', () => {
    const badArgs = new PickleWriter()
      .proto()
      .global('torch._utils', '_rebuild_tensor_v2')
      .mark()
      .str('not a storage')
      .int(0)
      .tuple()
      .reduce()
      .stop()
      .bytes();
    expect(refusal(() => load(badArgs))).toMatch(/_rebuild_tensor_v2 takes 6 or 7 arguments, got 2/);
    const t: HandTensor = { key: '0', numel: 2, shape: [2] };
    const build = new PickleWriter().proto().tensor(t).emptyDict().build().stop().bytes();
    expect(refusal(() => readStateDict(torchZip(build, { 0: f32Bytes([1, 2]) }), 'build.pth'))).toMatch(
      /BUILD \(set state\) on torch\.Tensor is not allowed/,
    );
  });

  it('"__proto__" is a plain key: no prototype is touched', () => {
    const pkl = new PickleWriter().stateDict([['__proto__', { key: '0', numel: 2, shape: [2] }]]).bytes();
    const sd = readStateDict(torchZip(pkl, { 0: f32Bytes([1.5, -2]) }), 'proto.pth');
    expect([...sd.tensors.keys()]).toEqual(['__proto__']);
    expect([...toFloat32(sd.tensors.get('__proto__')!)]).toEqual([1.5, -2]);
    expect(({} as Record<string, unknown>).data).toBeUndefined();
  });

  it('unknown opcodes, truncation, bad memo, too-new protocol and sets are errors with the byte offset', () => {
    expect(refusal(() => load(Uint8Array.from([0x80, 2, 0xff])))).toMatch(
      /test\.pkl: pickle byte 2 .*unknown opcode 0xff/,
    );
    expect(refusal(() => load(new PickleWriter().proto().str('abc').bytes()))).toMatch(/truncated.*before the STOP/);
    expect(refusal(() => load(Uint8Array.from([0x80, 2, 0x58, 10, 0, 0, 0, 0x61])))).toMatch(
      /truncated: needs 10 more bytes/,
    );
    expect(refusal(() => load(Uint8Array.from([0x80, 2, 0x68, 7, 0x2e])))).toMatch(/memo entry 7 was never stored/);
    expect(refusal(() => load(Uint8Array.from([0x80, 6, 0x4e, 0x2e])))).toMatch(/protocol 6 is newer/);
    expect(refusal(() => load(Uint8Array.from([0x80, 4, 0x8f, 0x2e])))).toMatch(/EMPTY_SET.*sets are not supported/);
    expect(refusal(() => load(Uint8Array.from([0x80, 2, 0x2e])))).toMatch(/stack underflow/);
  });
});

describe('hand-made torch zip files', () => {
  const w = values(8, seed);
  const pkl = new PickleWriter()
    .stateDict([
      ['w', { key: '0', numel: 8, shape: [2, 4] }],
      ['w.t', { key: '0', numel: 8, shape: [4, 2], stride: [1, 4] }],
      ['b', { key: '1', numel: 3, shape: [3] }],
    ])
    .bytes();
  const good = { 0: f32Bytes(w), 1: f32Bytes([0.5, 0.25, -1]) };

  it(`reads STORED, DEFLATE and ZIP64 archives alike (seed ${seed})`, () => {
    const expectW = Float32Array.from(w);
    const wt = Float32Array.from([0, 4, 1, 5, 2, 6, 3, 7].map((i) => expectW[i] as number));
    for (const [label, bytes] of [
      ['stored', torchZip(pkl, good)],
      ['deflate', torchZip(pkl, good, 6)],
      ['zip64', zip64Stored({ 'archive/data.pkl': pkl, 'archive/data/0': good[0], 'archive/data/1': good[1] })],
    ] as const) {
      const sd = readStateDict(bytes, `${label}.pth`);
      expect(sd.format, label).toBe('torch-zip');
      expect(sd.tensors.get('w')?.data, label).toEqual(expectW);
      expect(sd.tensors.get('w.t')?.data, label).toEqual(wt);
      expect(sd.tensors.get('w.t')?.shape, label).toEqual([4, 2]);
      expect([...(sd.tensors.get('b')?.data ?? [])], label).toEqual([0.5, 0.25, -1]);
    }
  });

  it('a truncated zip is refused', () => {
    const bytes = torchZip(pkl, good);
    for (const cut of [bytes.length - 1, Math.floor(bytes.length * 0.6), 10]) {
      expect(refusal(() => readStateDict(bytes.subarray(0, cut), 'cut.pth'))).toMatch(
        /checkpoint cut\.pth \(torch zip format\): not a readable zip archive \(truncated or corrupt\)/,
      );
    }
  });

  it('a data/N entry shorter than its tensor is refused, naming the entry and the tensors', () => {
    const short = torchZip(pkl, { 0: f32Bytes(w.slice(0, 6)), 1: good[1] });
    expect(refusal(() => readStateDict(short, 'short.pth'))).toMatch(
      /short\.pth \(torch zip format\): entry archive\/data\/0 \(storage of tensors "w", "w\.t"\) holds 24 bytes but the pickle declares torch\.FloatStorage × 8 = 32 bytes: the storage is shorter than its tensor/,
    );
    // The pickle itself asks for more than the storage holds: [2, 4] from a 6-element storage.
    const over = new PickleWriter().stateDict([['w', { key: '0', numel: 6, shape: [2, 4] }]]).bytes();
    expect(refusal(() => readStateDict(torchZip(over, { 0: f32Bytes(w.slice(0, 6)) }), 'over.pth'))).toMatch(
      /over\.pth \(torch zip format\): tensor "w" \(size \[2, 4\], stride \[4, 1\], offset 0\) reaches element 7 of storage 0, which holds 6: the storage is shorter than its tensor/,
    );
    const offset = new PickleWriter().stateDict([['v', { key: '0', numel: 8, shape: [3], offset: 6 }]]).bytes();
    expect(refusal(() => readStateDict(torchZip(offset, { 0: good[0] }), 'offset.pth'))).toMatch(
      /tensor "v" \(size \[3\], stride \[1\], offset 6\) reaches element 8 of storage 0, which holds 8/,
    );
  });

  it('a missing data/N entry, a zip without data.pkl and an unknown storage type are refused', () => {
    expect(refusal(() => readStateDict(torchZip(pkl, { 0: good[0] }), 'missing.pth'))).toMatch(
      /missing\.pth \(torch zip format\): storage 1 of tensor "b" has no entry archive\/data\/1 in the archive/,
    );
    expect(refusal(() => readStateDict(zipSync({ 'a/readme.txt': new Uint8Array(3) }), 'other.zip'))).toMatch(
      /other\.zip \(torch zip format\): no <archive>\/data\.pkl entry: not a torch\.save file \(1 entries: a\/readme\.txt\)/,
    );
    const complex = new PickleWriter()
      .stateDict([['z', { key: '0', numel: 2, shape: [2], type: 'ComplexFloatStorage' }]])
      .bytes();
    expect(refusal(() => readStateDict(torchZip(complex, { 0: new Uint8Array(16) }), 'complex.pth'))).toMatch(
      /complex\.pth \(torch zip format\): tensor "z": storage type torch\.ComplexFloatStorage is not supported/,
    );
  });

  it('Parameters (with and without state), _rebuild_tensor, OrderedDict from pairs and _metadata load', () => {
    const p = new PickleWriter().proto().orderedDict().mark();
    p.str('a')
      .global('torch._utils', '_rebuild_parameter')
      .mark()
      .tensor({ key: '0', numel: 8, shape: [8] })
      .bool(true)
      .orderedDict()
      .tuple()
      .reduce();
    p.str('b')
      .global('torch._utils', '_rebuild_parameter_with_state')
      .mark()
      .tensor({ key: '1', numel: 3, shape: [3] })
      .bool(false)
      .orderedDict()
      .emptyDict()
      .tuple()
      .reduce();
    p.str('c').tensor({ key: '1', numel: 3, shape: [2], offset: 1 }, '_rebuild_tensor');
    p.setitems();
    // _metadata through BUILD, with a Python-2 style OrderedDict([[k, v]]) inside.
    p.emptyDict()
      .str('_metadata')
      .global('collections', 'OrderedDict')
      .mark()
      .emptyList()
      .emptyList()
      .str('')
      .append()
      .emptyDict()
      .append()
      .append()
      .tuple()
      .reduce()
      .setitem()
      .build()
      .stop();
    const sd = readStateDict(torchZip(p.bytes(), good), 'params.pth');
    expect([...sd.tensors.keys()]).toEqual(['a', 'b', 'c']);
    expect(sd.tensors.get('a')?.data).toEqual(Float32Array.from(w));
    expect([...(sd.tensors.get('c')?.data ?? [])]).toEqual([0.25, -1]);
  });

  it('the checkpoint entry: model by default, or the key option; ambiguity and absence are errors', () => {
    const ckpt = (entries: [string, 'sd' | 'int'][]) => {
      const p = new PickleWriter().proto().emptyDict().mark();
      for (const [k, kind] of entries) {
        p.str(k);
        if (kind === 'int') p.int(3);
        else
          p.orderedDict()
            .mark()
            .str('w')
            .tensor({ key: '0', numel: 8, shape: [8] })
            .setitems();
      }
      return torchZip(p.setitems().stop().bytes(), { 0: good[0] });
    };
    const a = readStateDict(
      ckpt([
        ['epoch', 'int'],
        ['model', 'sd'],
        ['ema', 'sd'],
      ]),
      'a.pth',
    );
    expect(a.entry).toBe('model');
    expect(
      readStateDict(
        ckpt([
          ['epoch', 'int'],
          ['model', 'sd'],
          ['ema', 'sd'],
        ]),
        'a.pth',
        { key: 'ema' },
      ).entry,
    ).toBe('ema');
    expect(
      refusal(() =>
        readStateDict(
          ckpt([
            ['model', 'sd'],
            ['state_dict', 'sd'],
          ]),
          'b.pth',
        ),
      ),
    ).toMatch(
      /b\.pth \(torch zip format\): the checkpoint has several state dicts \(model, state_dict\): name one with the key option/,
    );
    expect(
      refusal(() =>
        readStateDict(
          ckpt([
            ['epoch', 'int'],
            ['ema', 'sd'],
          ]),
          'c.pth',
        ),
      ),
    ).toMatch(
      /no state dict found: none of model, state_dict, model_state_dict is a dict of tensors; name the entry with the key option \(entries: epoch \(int\), ema \(OrderedDict\)\)/,
    );
    expect(refusal(() => readStateDict(ckpt([['epoch', 'int']]), 'd.pth', { key: 'epoch' }))).toMatch(
      /entry "epoch" is a int, not a state dict/,
    );
    expect(refusal(() => readStateDict(ckpt([['w', 'int']]), 'e.pth', { key: 'model' }))).toMatch(/no entry "model"/);
  });

  it('opaqueGlobals keeps named extra objects inert; they are still refused by default', () => {
    const p = new PickleWriter().proto().emptyDict().mark();
    p.str('args').global('argparse', 'Namespace').emptyTuple().reduce().emptyDict().str('lr').int(2).setitem().build();
    p.str('model')
      .orderedDict()
      .mark()
      .str('w')
      .tensor({ key: '0', numel: 8, shape: [8] })
      .setitems();
    const bytes = torchZip(p.setitems().stop().bytes(), { 0: good[0] });
    expect(refusal(() => readStateDict(bytes, 'args.pth'))).toMatch(/refused global argparse\.Namespace/);
    const sd = readStateDict(bytes, 'args.pth', { opaqueGlobals: ['argparse.Namespace'] });
    expect(sd.entry).toBe('model');
    expect(
      refusal(() => readStateDict(bytes, 'args.pth', { opaqueGlobals: ['argparse.Namespace'], key: 'args' })),
    ).toMatch(/entry "args" is a argparse\.Namespace, not a state dict/);
  });
});

describe('hand-made legacy files', () => {
  const main = (view?: null | readonly [string, number, number]) =>
    new PickleWriter()
      .stateDict([['w', { key: '140', numel: 6, shape: [3], ...(view !== undefined ? { view } : {}) }]])
      .bytes();
  const data = f32Bytes([1, 2, 3, 4, 5, 6]);

  it('reads a legacy file; a storage view (view_key, offset, size) is honoured', () => {
    expect([...readStateDict(torchLegacy(main(null), [['140', 6, data]]), 'l.pth').tensors.get('w')!.data]).toEqual([
      1, 2, 3,
    ]);
    const v = readStateDict(torchLegacy(main(['141', 2, 4]), [['140', 6, data]]), 'view.pth');
    expect(v.format).toBe('torch-legacy');
    expect([...v.tensors.get('w')!.data]).toEqual([3, 4, 5]);
    expect(refusal(() => readStateDict(torchLegacy(main(['141', 4, 4]), [['140', 6, data]]), 'bad-view.pth'))).toMatch(
      /view 141 \[4, 8\) is outside storage 140 of 6 elements/,
    );
  });

  it('bad magic, wrong protocol, truncation, trailing bytes and a count mismatch are refused', () => {
    expect(refusal(() => readStateDict(torchLegacy(main(null), [['140', 6, data]], 0x1234n), 'magic.pth'))).toMatch(
      /magic\.pth \(torch legacy format\): bad magic number 0x1234, expected 0x1950a86a20f9469cfc6c/,
    );
    expect(refusal(() => readStateDict(Uint8Array.from([0x80, 2, 0x7d, 0x2e]), 'dict.pkl'))).toMatch(
      /bad magic number \(a dict\)/,
    );
    const ok = torchLegacy(main(null), [['140', 6, data]]);
    expect(refusal(() => readStateDict(ok.subarray(0, ok.length - 5), 'cut.pth'))).toMatch(
      /cut\.pth \(torch legacy format\): truncated: storage 140 needs bytes \[\d+, \d+\), the file ends at \d+/,
    );
    expect(refusal(() => readStateDict(ok.subarray(0, ok.length - 30), 'cut2.pth'))).toMatch(
      /truncated: the header of storage 140/,
    );
    expect(refusal(() => readStateDict(ok.subarray(0, 60), 'cut3.pth'))).toMatch(
      /cut3\.pth \(torch legacy format\).*truncated/,
    );
    expect(refusal(() => readStateDict(concat([ok, new Uint8Array(3)]), 'tail.pth'))).toMatch(
      /3 unexpected bytes after the last storage/,
    );
    expect(refusal(() => readStateDict(torchLegacy(main(null), [['140', 5, data]]), 'count.pth'))).toMatch(
      /storage 140 has 5 elements in the file, the pickle declares 6/,
    );
    expect(refusal(() => readStateDict(torchLegacy(main(null), []), 'none.pth'))).toMatch(
      /storage 140 of tensor "w" is missing from the file's storage list/,
    );
  });

  it('unknown formats are named as such', () => {
    expect(refusal(() => readStateDict(new Uint8Array(0), 'empty.pth'))).toMatch(
      /empty\.pth: unknown format \(first bytes: none/,
    );
    expect(refusal(() => readStateDict(new TextEncoder().encode('hello world'), 'x.pth'))).toMatch(
      /x\.pth: unknown format \(first bytes: 68 65 6c 6c 6f 20 77 6f\)/,
    );
  });
});

describe('strided gather', () => {
  it(`matches a naive index walk on random views (seed ${seed})`, () => {
    const u = values(4000, seed + 1).map((x) => (x + 1) / 2);
    let k = 0;
    const next = (n: number) => Math.floor((u[k++ % u.length] as number) * n);
    const storage = Float64Array.from({ length: 500 }, (_, i) => i + 0.5);
    for (let trial = 0; trial < 200; trial++) {
      const rank = next(5);
      const shape = Array.from({ length: rank }, () => next(5));
      const stride = Array.from({ length: rank }, () => next(9));
      const offset = next(40);
      const n = shape.reduce((a, b) => a * b, 1);
      const want: number[] = [];
      for (let i = 0; i < n; i++) {
        let rest = i;
        let at = offset;
        for (let d = rank - 1; d >= 0; d--) {
          at += (rest % (shape[d] as number)) * (stride[d] as number);
          rest = Math.floor(rest / (shape[d] as number));
        }
        want.push(storage[at] as number);
      }
      expect(
        [...gatherView(storage, { offset, shape, stride }, false)],
        JSON.stringify({ shape, stride, offset }),
      ).toEqual(want);
    }
  });
});
