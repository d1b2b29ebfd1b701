/**
 * mapStateDict: every missing key, unexpected key, shape mismatch and rename clash reported in one
 * error; num_batches_tracked ignored; prefix rules, rename functions and ignore patterns.
 */
import { describe, expect, it } from 'vitest';
import { mapStateDict, type StateDict, type StateTensor } from '../runtime/torch/index.js';
import { refusal } from './torch-fixtures.js';

const seed = (Math.random() * 2 ** 31) >>> 0;
let s = seed;
const f32 = (shape: number[]): StateTensor => ({
  dtype: 'f32',
  shape,
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  }),
});
const counter: StateTensor = { dtype: 'i64', shape: [], data: BigInt64Array.of(17n) };

const file = (): StateDict =>
  new Map([
    ['module.conv.weight', f32([8, 3, 3, 3])],
    ['module.conv.bias', f32([8])],
    ['module.bn.weight', f32([8])],
    ['module.bn.num_batches_tracked', counter],
    ['module.fc.weight', f32([10, 8])],
    ['module.extra.weight', f32([2])],
  ]);

const expected = [
  { name: 'conv.weight', shape: [8, 3, 3, 3] },
  { name: 'conv.bias', shape: [8] },
  { name: 'bn.weight', shape: [8] },
  { name: 'bn.num_batches_tracked', shape: [] },
  { name: 'fc.weight', shape: [10, 8] },
];

describe('mapStateDict', () => {
  it(`returns the file's tensors in the model's order after a prefix rule (seed ${seed})`, () => {
    const sd = file();
    const m = mapStateDict(expected, sd, { rename: [{ from: 'module.', to: '' }], ignore: ['module.extra.weight'] });
    expect([...m.keys()]).toEqual(['conv.weight', 'conv.bias', 'bn.weight', 'fc.weight']);
    expect(m.get('fc.weight')).toBe(sd.get('module.fc.weight'));
  });

  it('lists every missing key, unexpected key and shape mismatch in one error', () => {
    const sd = file();
    sd.delete('module.conv.bias');
    sd.set('module.fc.weight', f32([8, 10]));
    sd.set('module.bn.weight', f32([4]));
    const msg = refusal(() => mapStateDict(expected, sd, { rename: [{ from: 'module.', to: '' }], source: 'net.pth' }));
    expect(msg).toBe(
      [
        'net.pth does not fit the model:',
        '1 missing key:',
        '  "conv.bias" [8]',
        '1 unexpected key:',
        '  "module.extra.weight" (as "extra.weight")',
        '2 shape mismatches:',
        '  "bn.weight" (file key "module.bn.weight"): model [8], file [4]',
        '  "fc.weight" (file key "module.fc.weight"): model [10, 8], file [8, 10]',
      ].join('\n'),
    );
    expect(msg).not.toMatch(/num_batches_tracked/);
  });

  it('without renaming, every key is both missing and unexpected; a function can rename or drop', () => {
    const msg = refusal(() => mapStateDict(expected, file()));
    expect(msg).toMatch(
      /4 missing keys:\n {2}"conv\.weight" \[8, 3, 3, 3\]\n {2}"conv\.bias" \[8\]\n {2}"bn\.weight" \[8\]\n {2}"fc\.weight" \[10, 8\]/,
    );
    expect(msg).toMatch(/5 unexpected keys:/);
    const m = mapStateDict(expected, file(), {
      rename: (k) => (k.includes('extra') ? null : k.replace(/^module\./, '')),
    });
    expect(m.size).toBe(4);
  });

  it('two file keys renamed to one name are reported', () => {
    const sd = file();
    sd.set('conv.weight', f32([8, 3, 3, 3]));
    const msg = refusal(() =>
      mapStateDict(expected, sd, { rename: [{ from: 'module.', to: '' }], ignore: [/^module\.extra\./] }),
    );
    expect(msg).toMatch(
      /1 key clash after renaming:\n {2}"module\.conv\.weight" and "conv\.weight" both map to "conv\.weight"/,
    );
  });
});
