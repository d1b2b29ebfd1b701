/** Half-precision emulation for tests: wgflow has no f16 dtype, so f16 cases round their inputs to f16 values. */

/** Rounds to the nearest float16 value (normal range; ties to even). */
export function f16round(x: number): number {
  if (x === 0) return 0;
  const ulp = 2 ** (Math.floor(Math.log2(Math.abs(x))) - 10);
  const q = x / ulp;
  const r = Math.round(q);
  return (Math.abs(q % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r) * ulp;
}
