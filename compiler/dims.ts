/**
 * Run-time sizes. A dimension is a number (static) or a SymDim: an integer polynomial over named size
 * symbols (`g.dim('H', { max: 1344 })`) and floor divisions / minima / maxima of such polynomials.
 * Every SymDim knows its range, so memory is planned for the upper bound; the runtime evaluates the
 * same expression (serialized as DimJson, runtime/dims.ts) from the sizes of the inputs it is fed.
 *
 * Canonical form: constant + Σ coef·(product of atoms), terms sorted by key, so two dimensions are
 * equal exactly when their keys are (polynomial identity); ceil-division and modulo are rewritten
 * through floor division: ceil(p / d) = floor((p + d − 1) / d), p mod d = p − d·floor(p / d).
 */
import type { DimJson } from '../runtime/dims.js';

type Atom =
  | { readonly k: 'sym'; readonly name: string; readonly lo: number; readonly hi: number; readonly key: string }
  | { readonly k: 'fdiv'; readonly a: Poly; readonly d: number; readonly key: string }
  | { readonly k: 'min' | 'max'; readonly a: Poly; readonly b: Poly; readonly key: string };

interface Term {
  readonly coef: number;
  /** Atoms of the monomial, sorted by key (repeats allowed). */
  readonly atoms: readonly Atom[];
  readonly key: string;
}

interface Poly {
  readonly c: number;
  readonly terms: readonly Term[];
}

const monoKey = (atoms: readonly Atom[]) => atoms.map((a) => a.key).join('*');

function polyKey(p: Poly): string {
  if (p.terms.length === 0) return String(p.c);
  const t = p.terms.map((x) => `${x.coef === 1 ? '' : `${x.coef}·`}${x.key}`).join(' + ');
  return p.c === 0 ? t : `${t} + ${p.c}`;
}

function mkPoly(c: number, terms: Map<string, Term>): Poly {
  const list = [...terms.values()].filter((t) => t.coef !== 0).sort((a, b) => (a.key < b.key ? -1 : 1));
  return { c, terms: list };
}

function addTerm(m: Map<string, Term>, t: Term): void {
  const prev = m.get(t.key);
  m.set(t.key, prev ? { ...prev, coef: prev.coef + t.coef } : t);
}

function pAdd(a: Poly, b: Poly, sign = 1): Poly {
  const m = new Map<string, Term>();
  for (const t of a.terms) addTerm(m, t);
  for (const t of b.terms) addTerm(m, { ...t, coef: sign * t.coef });
  return mkPoly(a.c + sign * b.c, m);
}

function pMul(a: Poly, b: Poly): Poly {
  const m = new Map<string, Term>();
  const aT: Term[] = [...a.terms, ...(a.c !== 0 ? [{ coef: a.c, atoms: [], key: '' }] : [])];
  const bT: Term[] = [...b.terms, ...(b.c !== 0 ? [{ coef: b.c, atoms: [], key: '' }] : [])];
  let c = 0;
  for (const x of aT)
    for (const y of bT) {
      const atoms = [...x.atoms, ...y.atoms].sort((p, q) => (p.key < q.key ? -1 : p.key > q.key ? 1 : 0));
      if (atoms.length === 0) c += x.coef * y.coef;
      else addTerm(m, { coef: x.coef * y.coef, atoms, key: monoKey(atoms) });
    }
  return mkPoly(c, m);
}

const constPoly = (c: number): Poly => ({ c, terms: [] });
const atomPoly = (a: Atom): Poly => ({ c: 0, terms: [{ coef: 1, atoms: [a], key: a.key }] });

/** [lo, hi] of an atom / polynomial by interval arithmetic (safe, not always tight). */
function atomRange(a: Atom): [number, number] {
  if (a.k === 'sym') return [a.lo, a.hi];
  if (a.k === 'fdiv') {
    const [lo, hi] = polyRange(a.a);
    return [Math.floor(lo / a.d), Math.floor(hi / a.d)];
  }
  const [alo, ahi] = polyRange(a.a);
  const [blo, bhi] = polyRange(a.b);
  return a.k === 'min' ? [Math.min(alo, blo), Math.min(ahi, bhi)] : [Math.max(alo, blo), Math.max(ahi, bhi)];
}

function mulRange(x: [number, number], y: [number, number]): [number, number] {
  const p = [x[0] * y[0], x[0] * y[1], x[1] * y[0], x[1] * y[1]];
  return [Math.min(...p), Math.max(...p)];
}

function polyRange(p: Poly): [number, number] {
  let lo = p.c;
  let hi = p.c;
  for (const t of p.terms) {
    let r: [number, number] = [t.coef, t.coef];
    for (const a of t.atoms) r = mulRange(r, atomRange(a));
    lo += r[0];
    hi += r[1];
  }
  return [lo, hi];
}

const isConst = (p: Poly) => p.terms.length === 0;

function pFloorDiv(p: Poly, d: number): Poly {
  if (!(Number.isInteger(d) && d > 0)) throw new Error(`internal: floor division of a dimension by ${d}`);
  if (d === 1) return p;
  if (isConst(p)) return constPoly(Math.floor(p.c / d));
  // p = d·q + r: the divisible part leaves the division exactly.
  const q = new Map<string, Term>();
  const r = new Map<string, Term>();
  for (const t of p.terms) {
    const whole = Math.trunc(t.coef / d);
    if (whole !== 0) addTerm(q, { ...t, coef: whole });
    if (t.coef - whole * d !== 0) addTerm(r, { ...t, coef: t.coef - whole * d });
  }
  const qc = Math.floor(p.c / d);
  const rest = mkPoly(p.c - qc * d, r);
  const quotient = mkPoly(qc, q);
  if (isConst(rest)) return quotient; // 0 ≤ rest.c < d
  // floor(floor(x / a) / b) = floor(x / (a·b))
  if (rest.c === 0 && rest.terms.length === 1) {
    const t = rest.terms[0] as Term;
    const only = t.atoms[0];
    if (t.coef === 1 && t.atoms.length === 1 && only?.k === 'fdiv')
      return pAdd(quotient, pFloorDiv(only.a, only.d * d));
  }
  const [lo, hi] = polyRange(rest);
  if (lo >= 0 && hi < d) return quotient;
  const key = `⌊(${polyKey(rest)})/${d}⌋`;
  return pAdd(quotient, atomPoly({ k: 'fdiv', a: rest, d, key }));
}

function pMinMax(kind: 'min' | 'max', a: Poly, b: Poly): Poly {
  const [alo, ahi] = polyRange(a);
  const [blo, bhi] = polyRange(b);
  if (polyKey(a) === polyKey(b)) return a;
  if (kind === 'min') {
    if (ahi <= blo) return a;
    if (bhi <= alo) return b;
  } else {
    if (alo >= bhi) return a;
    if (blo >= ahi) return b;
  }
  const [x, y] = polyKey(a) < polyKey(b) ? [a, b] : [b, a];
  return atomPoly({ k: kind, a: x, b: y, key: `${kind}(${polyKey(x)}, ${polyKey(y)})` });
}

function evalAtom(a: Atom, env: Readonly<Record<string, number>>): number {
  if (a.k === 'sym') {
    const v = env[a.name];
    if (v === undefined) throw new Error(`internal: no value for size symbol ${a.name}`);
    return v;
  }
  if (a.k === 'fdiv') return Math.floor(evalPoly(a.a, env) / a.d);
  const x = evalPoly(a.a, env);
  const y = evalPoly(a.b, env);
  return a.k === 'min' ? Math.min(x, y) : Math.max(x, y);
}

function evalPoly(p: Poly, env: Readonly<Record<string, number>>): number {
  let v = p.c;
  for (const t of p.terms) {
    let m = t.coef;
    for (const a of t.atoms) m *= evalAtom(a, env);
    v += m;
  }
  return v;
}

function atomJson(a: Atom): DimJson {
  if (a.k === 'sym') return { s: a.name };
  if (a.k === 'fdiv') return { op: 'fdiv', a: [polyJson(a.a)], d: a.d };
  return { op: a.k, a: [polyJson(a.a), polyJson(a.b)] };
}

function polyJson(p: Poly): DimJson {
  const terms: DimJson[] = p.terms.map((t) => {
    const f: DimJson[] = t.atoms.map(atomJson);
    if (t.coef !== 1) f.unshift(t.coef);
    return f.length === 1 ? (f[0] as DimJson) : { op: '*', a: f };
  });
  if (p.c !== 0 || terms.length === 0) terms.push(p.c);
  return terms.length === 1 ? (terms[0] as DimJson) : { op: '+', a: terms };
}

function symbolsOf(p: Poly, out: Set<string>): Set<string> {
  for (const t of p.terms)
    for (const a of t.atoms) {
      if (a.k === 'sym') out.add(a.name);
      else {
        symbolsOf(a.a, out);
        if (a.k !== 'fdiv') symbolsOf(a.b, out);
      }
    }
  return out;
}

/** A dimension known only at run time, within [min, max]. Immutable; compare with `dimEq`. */
export class SymDim {
  /** Canonical text: equal keys ⇔ equal dimensions. */
  readonly key: string;
  readonly min: number;
  readonly max: number;

  /** @internal the canonical polynomial */
  readonly poly: Poly;

  /** @internal */
  constructor(poly: Poly) {
    this.poly = poly;
    this.key = polyKey(poly);
    [this.min, this.max] = polyRange(poly);
  }

  toString(): string {
    return this.key;
  }
  toJSON(): DimJson {
    return polyJson(this.poly);
  }
  /** The size symbols this dimension depends on. */
  symbols(): string[] {
    return [...symbolsOf(this.poly, new Set())].sort();
  }
  /** The plain symbol this dimension is, if it is one. */
  get symbolName(): string | undefined {
    const t = this.poly.terms[0];
    return this.poly.c === 0 && this.poly.terms.length === 1 && t?.coef === 1 && t.atoms.length === 1
      ? t.atoms[0]?.k === 'sym'
        ? (t.atoms[0] as { name: string }).name
        : undefined
      : undefined;
  }
}

/** a / b when b is a nonzero constant or a single monomial dividing every term of a exactly; else undefined. */
function pDivExact(a: Poly, b: Poly): Poly | undefined {
  if (isConst(b)) {
    if (b.c === 0) return undefined;
    if (a.c % b.c !== 0 || a.terms.some((t) => t.coef % b.c !== 0)) return undefined;
    return { c: a.c / b.c, terms: a.terms.map((t) => ({ ...t, coef: t.coef / b.c })) };
  }
  if (b.c !== 0 || b.terms.length !== 1 || a.c !== 0) return undefined;
  const m = b.terms[0] as Term;
  const terms = new Map<string, Term>();
  for (const t of a.terms) {
    if (t.coef % m.coef !== 0) return undefined;
    const rest = [...t.atoms];
    for (const x of m.atoms) {
      const i = rest.findIndex((r) => r.key === x.key);
      if (i < 0) return undefined;
      rest.splice(i, 1);
    }
    if (rest.length === 0) return undefined; // a constant term: keep the polynomial form simple
    addTerm(terms, { coef: t.coef / m.coef, atoms: rest, key: monoKey(rest) });
  }
  return mkPoly(0, terms);
}

/** A static number or a run-time size. */
export type Dim = number | SymDim;

const toPoly = (d: Dim): Poly => (typeof d === 'number' ? constPoly(d) : d.poly);
const fromPoly = (p: Poly): Dim => (isConst(p) ? p.c : new SymDim(p));

/** A new size symbol, `min ≤ value ≤ max` (integers). */
export function sizeSymbol(name: string, max: number, min = 1): SymDim {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`size symbol name '${name}' is not an identifier`);
  if (!(Number.isInteger(max) && Number.isInteger(min) && min >= 0 && max >= min))
    throw new Error(`size symbol ${name}: need integers 0 ≤ min ≤ max, got min ${min}, max ${max}`);
  return new SymDim(atomPoly({ k: 'sym', name, lo: min, hi: max, key: name }));
}

export const isSym = (d: Dim): d is SymDim => typeof d !== 'number';
export const dimMax = (d: Dim): number => (typeof d === 'number' ? d : d.max);
export const dimMin = (d: Dim): number => (typeof d === 'number' ? d : d.min);
export const dimKey = (d: Dim): string => (typeof d === 'number' ? String(d) : d.key);
export const dimEq = (a: Dim, b: Dim): boolean => dimKey(a) === dimKey(b);
export const dimAdd = (a: Dim, b: Dim): Dim => fromPoly(pAdd(toPoly(a), toPoly(b)));
export const dimSub = (a: Dim, b: Dim): Dim => fromPoly(pAdd(toPoly(a), toPoly(b), -1));
export const dimMul = (a: Dim, b: Dim): Dim => fromPoly(pMul(toPoly(a), toPoly(b)));
/** floor(a / d) for a positive integer d. */
export const dimFloorDiv = (a: Dim, d: number): Dim => fromPoly(pFloorDiv(toPoly(a), d));
/** ceil(a / d) for a positive integer d. */
export const dimCeilDiv = (a: Dim, d: number): Dim => dimFloorDiv(dimAdd(a, d - 1), d);
/** a / b when it divides exactly (b a constant or one product of sizes), else undefined. */
export function dimDivExact(a: Dim, b: Dim): Dim | undefined {
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : undefined;
  if (dimEq(a, b)) return 1;
  const q = pDivExact(toPoly(a), toPoly(b));
  return q === undefined ? undefined : fromPoly(q);
}
export const dimMin2 = (a: Dim, b: Dim): Dim => fromPoly(pMinMax('min', toPoly(a), toPoly(b)));
export const dimMax2 = (a: Dim, b: Dim): Dim => fromPoly(pMinMax('max', toPoly(a), toPoly(b)));
export const dimProd = (ds: readonly Dim[]): Dim => ds.reduce<Dim>((p, d) => dimMul(p, d), 1);
export const dimFmt = (d: Dim): string => (typeof d === 'number' ? String(d) : d.key);
/** The value of `d` for the given symbol values. */
export const dimEval = (d: Dim, env: Readonly<Record<string, number>>): number =>
  typeof d === 'number' ? d : evalPoly(d.poly, env);
/** The JSON the runtime evaluates (runtime/dims.ts). */
export const dimJson = (d: Dim): DimJson => (typeof d === 'number' ? d : d.toJSON());
