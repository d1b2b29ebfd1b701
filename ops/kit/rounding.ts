/** Rounding helpers shared by the CPU references. */

/** C's round(): half away from zero. */
export const cRound = (v: number): number => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);

/** numpy.round / torch.round: round half to even (−0.5 gives −0). */
export function roundHalfEven(v: number): number {
  const a = Math.abs(v);
  const t = Math.floor(a);
  const fr = a - t;
  const r = fr > 0.5 || (fr === 0.5 && t % 2 !== 0) ? t + 1 : t;
  return v < 0 ? -r : r;
}
