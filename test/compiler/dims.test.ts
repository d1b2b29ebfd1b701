/**
 * The run-time size algebra (compiler/dims.ts) and its runtime twin (runtime/dims.ts): canonical
 * forms, floor-division rules, ranges, evaluation, and the JSON the runtime evaluates.
 */
import { describe, expect, it } from 'vitest';
import {
  type Dim,
  dimAdd,
  dimCeilDiv,
  dimDivExact,
  dimEq,
  dimEval,
  dimFloorDiv,
  dimJson,
  dimMax,
  dimMin,
  dimMin2,
  dimMul,
  dimSub,
  sizeSymbol,
} from '../../compiler/dims.js';
import { broadcastDims, dimStrides } from '../../compiler/types.js';
import { bindSymbols, evalDim } from '../../runtime/dims.js';
import { testRandom } from '../seeds.js';

const H = sizeSymbol('H', 1344);
const W = sizeSymbol('W', 1344);
const N = sizeSymbol('N', 8);

/** conv output size: floor((x + 2p − k) / s) + 1 */
const convOut = (x: Dim, k: number, s: number, p: number) => dimAdd(dimFloorDiv(dimAdd(x, 2 * p - k), s), 1);

describe('size algebra', () => {
  it('polynomials are canonical: order and grouping do not matter', () => {
    expect(dimEq(dimMul(dimMul(N, H), W), dimMul(W, dimMul(H, N)))).toBe(true);
    expect(dimEq(dimAdd(dimMul(H, 2), dimMul(3, H)), dimMul(5, H))).toBe(true);
    expect(dimEq(dimSub(dimAdd(H, W), W), H)).toBe(true);
    expect(dimSub(H, H)).toBe(0);
    expect(dimEq(H, W)).toBe(false);
    expect(dimMul(dimAdd(H, 1), dimAdd(H, -1))).toEqual(dimSub(dimMul(H, H), 1));
  });

  it('floor and ceiling division simplify what is exact', () => {
    expect(dimEq(dimFloorDiv(dimMul(H, 4), 2), dimMul(H, 2))).toBe(true);
    expect(dimEq(dimFloorDiv(dimAdd(dimMul(H, 2), 1), 2), H)).toBe(true); // ⌊(2H+1)/2⌋ = H
    expect(dimEq(dimFloorDiv(dimFloorDiv(H, 2), 2), dimFloorDiv(H, 4))).toBe(true);
    expect(dimEq(dimCeilDiv(H, 2), dimFloorDiv(dimAdd(H, 1), 2))).toBe(true);
    expect(dimFloorDiv(7, 2)).toBe(3);
    expect(dimCeilDiv(7, 2)).toBe(4);
    // a stride-2 3×3 conv with padding 1 twice = ⌊(H − 1)/4⌋ + 1 … kept symbolic, evaluated exactly
    const twice = convOut(convOut(H, 3, 2, 1), 3, 2, 1);
    for (const h of [1, 2, 3, 4, 5, 17, 800, 1344]) {
      const once = Math.floor((h + 2 - 3) / 2) + 1;
      expect(dimEval(twice, { H: h })).toBe(Math.floor((once + 2 - 3) / 2) + 1);
    }
  });

  it('ranges bound every value, and min/max fold when the ranges decide', () => {
    const d = dimMul(convOut(H, 3, 2, 1), N);
    expect(dimMin(d)).toBe(1);
    expect(dimMax(d)).toBe(672 * 8);
    expect(dimMin2(6000, dimMul(H, 3))).not.toBe(6000); // undecided: kept
    expect(dimMin2(6000, sizeSymbol('S', 100))).toEqual(sizeSymbol('S', 100));
    expect(dimMin2(6000, dimAdd(sizeSymbol('T', 10000, 7000), 0))).toBe(6000);
  });

  it('exact division for reshape inference', () => {
    expect(dimEq(dimDivExact(dimMul(dimMul(N, H), 6), dimMul(N, 2)) as Dim, dimMul(H, 3))).toBe(true);
    expect(dimDivExact(dimAdd(H, 1), 2)).toBeUndefined();
    expect(dimDivExact(dimMul(H, W), N)).toBeUndefined();
    expect(dimDivExact(12, 4)).toBe(3);
  });

  it('the JSON the runtime evaluates gives the compiler’s values (random sizes)', () => {
    const rnd = testRandom('dims-json');
    const exprs: Dim[] = [
      convOut(convOut(H, 7, 2, 3), 3, 2, 1),
      dimMul(dimMul(N, dimCeilDiv(H, 32)), dimCeilDiv(W, 32)),
      dimMin2(dimMul(dimMul(H, W), 3), 12000),
      dimAdd(dimMul(dimFloorDiv(dimAdd(H, 31), 32), 32), -1),
    ];
    for (let t = 0; t < 50; t++) {
      const env = { H: 1 + Math.floor(rnd() * 1344), W: 1 + Math.floor(rnd() * 1344), N: 1 + Math.floor(rnd() * 8) };
      for (const e of exprs) expect(evalDim(dimJson(e), env)).toBe(dimEval(e, env));
    }
  });

  it('strides and broadcasting with run-time sizes', () => {
    const st = dimStrides([N, 3, H, W]);
    expect(dimEval(st[0] as Dim, { H: 5, W: 7, N: 2 })).toBe(105);
    expect(st[3]).toBe(1);
    expect(broadcastDims([N, 1, W], [H, 1])).toEqual([N, H, W]);
    expect(broadcastDims([H], [W])).toBeNull(); // a size symbol broadcasts only against itself or 1
  });
});

describe('binding symbols at run time', () => {
  const symbols = [
    { name: 'H', min: 1, max: 100 },
    { name: 'W', min: 1, max: 100 },
  ];
  it('binds from fed shapes and checks ranges, consistency and static axes, naming the input', () => {
    const axes = (h: number, w: number, c = 3) => [
      { input: 'image', axis: 0, dim: 3, size: c },
      { input: 'image', axis: 1, dim: { s: 'H' }, size: h },
      { input: 'image', axis: 2, dim: { s: 'W' }, size: w },
    ];
    expect(bindSymbols(symbols, axes(10, 20), 'p')).toEqual({ H: 10, W: 20 });
    expect(() => bindSymbols(symbols, axes(101, 20), 'p')).toThrow(
      /axis 1 \(H\) is 101, outside the compiled range 1\.\.100/,
    );
    expect(() => bindSymbols(symbols, axes(10, 20, 4), 'p')).toThrow(/axis 0 must be 3 \(a static size\), got 4/);
    expect(() =>
      bindSymbols(symbols, [...axes(10, 20), { input: 'mask', axis: 0, dim: { s: 'H' }, size: 11 }], 'p'),
    ).toThrow(/size H is 10 in input "image" but 11 in input "mask"/);
    expect(() => bindSymbols(symbols, axes(10, 20).slice(0, 2), 'p')).toThrow(/no input gives the size W/);
  });
});
