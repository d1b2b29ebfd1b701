/**
 * Faster R-CNN training targets on the GPU (FASTER_RCNN_SPEC.md §3 "Anchor target assignment" and §4
 * "Proposal target sampling"), with no readback: two opaque ops with packed i32 outputs, and DSL helpers
 * that turn them into labels, sampled RoIs, regression targets and weights with ordinary ops.
 *
 * Both ops take a batch of independent problems (images): leading dimensions L of the per-image inputs
 * (none for one image). Images have different numbers of gt boxes: gt is a fixed capacity G with a
 * count (i32 [..., 1], clamped to [0, G]); rows past the count are ignored (their contents do not matter).
 *
 * ---- anchor_targets(anchors f32 [A,4], gt f32 [...L,G,4], gtCount i32 [...L,1], imageSize f32 [...L,2]
 *      (H, W), seed u32 [1]) → i32 [...L, 2, A]: row 0 the sampled labels (1 fg, 0 bg, −1 ignore),
 *      row 1 the matched gt (argmax over the valid gt; −1 for anchors outside the image or without gt).
 * attrs {posIou 0.7, negIou 0.3, batchSize 256, fgFraction 0.5, allowedBorder 0 | null, plusOne, seed}.
 * Per image, exactly spec §3 (py-faster-rcnn anchor_target_layer.py):
 * 1. anchors not fully inside (x1 ≥ −b, y1 ≥ −b, x2 < W + b, y2 < H + b) get label −1 and no match;
 *    allowedBorder null = torchvision (every anchor participates; imageSize is then unused);
 * 2. IoU (float32, see below) of the inside anchors with the valid gt; per anchor max and first argmax;
 * 3. labels start −1; 0 where max IoU < negIou; 1 for every anchor whose IoU with some gt equals that
 *    gt's maximum over the inside anchors (ties included; a gt whose best IoU is 0 makes every inside
 *    anchor with IoU 0 with it positive — the pathology of the spec, reproduced); 1 where max ≥ posIou;
 *    no valid gt ("negative image", spec §9): every inside anchor is 0, no matches;
 * 4. sampling: numFg = floor(fgFraction·batchSize); if #pos > numFg, all but numFg positives become −1;
 *    numBg = batchSize − #pos kept; if #neg > numBg, all but numBg negatives become −1.
 * The regression targets encode(anchor, gt[match]) and weights (1 for label 1) are built by the
 * `anchorTargets` helper from the matches with box_encode (0 where match = −1).
 *
 * ---- proposal_targets(proposals f32 [...L,P,4], proposalCount i32 [...L,1], gt f32 [...L,G,4],
 *      gtCount i32 [...L,1], gtLabels i32 [...L,G], seed u32 [1]) → i32 [...L, 3, S] (S = batchSize):
 *      row 0 the sampled candidate index c (c < P: proposal c, else gt c − P; −1 = unused slot),
 *      row 1 its label (gt class for fg, 0 for bg, −1 unused), row 2 its matched gt (argmax; −1 if none).
 * attrs {batchSize 128, fgFraction 0.25, fgIou 0.5, bgLo 0.0, bgHi 0.5, plusOne, seed}.
 * Per image, spec §4 (py-faster-rcnn proposal_target_layer.py): the candidates are the valid proposals
 * followed by the valid gt boxes; IoU with the valid gt, max and first argmax; fg = max ≥ fgIou; take
 * min(numFg, #fg) with numFg = round(fgFraction·batchSize) (numpy half-to-even, as PFR; TV floors,
 * which differs only when the product is not an integer); bg = bgLo ≤ max < bgHi; take
 * min(batchSize − #fg taken, #bg). Output: the taken fg in ascending candidate order, then the taken bg
 * in ascending candidate order; the batch may be smaller than S (PFR does not pad): unused slots have
 * index/label/match −1 and must be ignored by the losses. No valid gt: every valid proposal is a bg
 * candidate whatever bgLo is (torchvision; PFR cannot handle such images). Requires bgHi ≤ fgIou.
 * The `proposalTargets` helper gathers the RoIs [.., 5] (batch index = image index), the
 * class-specific regression targets normalized by (means, stds) = ((0,0,0,0), (0.1,0.1,0.2,0.2)) in
 * the 4 slots of the gt class of fg RoIs only, and their weights.
 *
 * ---- Random sampling without readback: every candidate i of image b gets the key
 *   key = pcg(pcg(i) ^ c_b),  c_b = pcg(s + b·0x9e3779b9),  s = pcg(seedInput ^ pcg(attrs.seed))
 * (pcg = the PCG-RXS-M-XS hash of ops/dropout.ts, a bijection of u32, so the keys of one image are
 * distinct), and "randomly keep k of the n candidates" keeps the k smallest keys: a uniformly random
 * subset, as numpy.random.choice without replacement gives, but deterministic for a given seed. The seed
 * is an input, so every training step can sample differently without recompiling. The kernels find the
 * k-th smallest key with a 32-step bitwise search (a count per step), the CPU references sort; both
 * give the same set exactly.
 *
 * ---- IoU: float32 arithmetic in the order of ops/nms.ts (w = (x2 − x1) [+ 1]; area = w·h;
 * inter = max(w,0)·max(h,0) of the intersection; union = (areaA + areaB) − inter), and
 * iou = inter > 0 ? inter / union : 0 (py-faster-rcnn's bbox_overlaps skips non-overlapping pairs; TV
 * would give NaN for 0/0, which only two empty boxes produce). Thresholds are compared with the float32
 * IoU as float64 numbers (the kernels use the equivalent float32 thresholds), so GPU and references
 * agree exactly on labels and indices. The +1 of plusOne is not a literal in the kernels (see nms.ts).
 *
 * Kernels, anchor_targets: (1) IoU matrix [L,A,G] into scratch; (2) per-gt maximum over the inside
 * anchors (one workgroup per (image, gt), tree reduction); (3) per anchor: inside test, max/argmax,
 * pre-sampling label, match, key; (4) one workgroup per image: counts, the two bitwise searches (fg and
 * bg in the same 32 steps), final labels. proposal_targets: (1) per candidate: category, match, key;
 * (2) one workgroup per image: counts, searches, then a stream compaction (per-thread contiguous
 * chunks, exclusive scan of the chunk counts) writing the fixed-capacity result.
 * No gradients: the outputs are integer constants (the helpers stop gradients at their inputs).
 */
import { type Dim, dimEq, dimFmt, dimMax, dimMul, dimProd } from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type BufArg, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtShape, fmtType, numel, type TensorType, typeOf } from '../compiler/types.js';
import { encodeBoxes } from './boxes.js';
import { pcgHash } from './dropout.js';
import { divD, modD } from './kit/indexing.js';
import { iouF32 } from './kit/iou.js';
import { type BoxK, emitArea, emitIou, emitOne } from './kit/iou-emit.js';
import { perThread } from './kit/launch.js';
import { roundHalfEven } from './kit/rounding.js';
import { f32Threshold } from './nms.js';
import { linearWorkgroupSize } from './rows.js';
import { arange, rowStarts, zerosAlong } from './sizes.js';

const fr = Math.fround;

// ---------------------------------------------------------------- attributes

function num(attrs: Attrs, key: string, dflt: number, ok: (v: number) => boolean, what: string): number {
  const v = attrs[key] ?? dflt;
  if (typeof v !== 'number' || !ok(v)) fail(`attribute ${key} must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}
const isUnit = (v: number) => v >= 0 && v <= 1;
const isPosInt = (v: number) => Number.isInteger(v) && v >= 1;
const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

function boolOf(attrs: Attrs, key: string): boolean {
  const v = attrs[key] ?? false;
  if (typeof v !== 'boolean') fail(`attribute ${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

export interface AnchorTargetAttrs {
  readonly posIou: number;
  readonly negIou: number;
  readonly batchSize: number;
  readonly fgFraction: number;
  /** null: torchvision (no inside test). */
  readonly allowedBorder: number | null;
  readonly plusOne: boolean;
  readonly seed: number;
}

export function anchorTargetAttrs(attrs: Attrs): AnchorTargetAttrs {
  const b = attrs.allowedBorder === undefined ? 0 : attrs.allowedBorder;
  if (b !== null && (typeof b !== 'number' || !Number.isFinite(b)))
    fail(`attribute allowedBorder must be a finite number or null, got ${JSON.stringify(b)}`);
  return {
    posIou: num(attrs, 'posIou', 0.7, isUnit, 'a number in [0, 1]'),
    negIou: num(attrs, 'negIou', 0.3, isUnit, 'a number in [0, 1]'),
    batchSize: num(attrs, 'batchSize', 256, isPosInt, 'a positive integer'),
    fgFraction: num(attrs, 'fgFraction', 0.5, isUnit, 'a number in [0, 1]'),
    allowedBorder: b,
    plusOne: boolOf(attrs, 'plusOne'),
    seed: num(attrs, 'seed', 0, isU32, 'an integer in [0, 2^32)'),
  };
}

export interface ProposalTargetAttrs {
  readonly batchSize: number;
  readonly fgFraction: number;
  readonly fgIou: number;
  readonly bgLo: number;
  readonly bgHi: number;
  readonly plusOne: boolean;
  readonly seed: number;
}

export function proposalTargetAttrs(attrs: Attrs): ProposalTargetAttrs {
  const a: ProposalTargetAttrs = {
    batchSize: num(attrs, 'batchSize', 128, isPosInt, 'a positive integer'),
    fgFraction: num(attrs, 'fgFraction', 0.25, isUnit, 'a number in [0, 1]'),
    fgIou: num(attrs, 'fgIou', 0.5, isUnit, 'a number in [0, 1]'),
    bgLo: num(attrs, 'bgLo', 0, isUnit, 'a number in [0, 1]'),
    bgHi: num(attrs, 'bgHi', 0.5, isUnit, 'a number in [0, 1]'),
    plusOne: boolOf(attrs, 'plusOne'),
    seed: num(attrs, 'seed', 0, isU32, 'an integer in [0, 2^32)'),
  };
  if (a.bgHi > a.fgIou) fail(`bgHi ${a.bgHi} must not exceed fgIou ${a.fgIou} (a RoI would be both fg and bg)`);
  return a;
}

/** floor(fgFraction · batchSize): both implementations' RPN_FG_FRACTION · RPN_BATCHSIZE. */
export const anchorFgCap = (a: AnchorTargetAttrs): number => Math.floor(a.fgFraction * a.batchSize);

/** numpy.round(fgFraction · batchSize) (half to even), py-faster-rcnn's fg_rois_per_image. */
export const proposalFgCap = (a: ProposalTargetAttrs): number => roundHalfEven(a.fgFraction * a.batchSize);

// ---------------------------------------------------------------- hashing (CPU mirror of the kernels)

const GOLDEN = 0x9e3779b9;

/** The per-image key mix c_b for a seed input value, the seed attribute and image b. */
export function sampleMix(seedInput: number, attrSeed: number, b: number): number {
  const s = pcgHash((seedInput ^ pcgHash(attrSeed)) >>> 0);
  return pcgHash((s + Math.imul(b, GOLDEN)) >>> 0);
}

/** The sampling key of candidate i (a bijection of i for a fixed mix). */
export const sampleKey = (i: number, mix: number): number => pcgHash((pcgHash(i) ^ mix) >>> 0);

/** Keeps the k candidates with the smallest keys (all when there are at most k). */
function keepSmallest(cands: readonly number[], k: number, mix: number): Set<number> {
  if (cands.length <= k) return new Set(cands);
  const keyed = cands.map((i) => [sampleKey(i, mix), i] as const);
  keyed.sort((x, y) => x[0] - y[0]);
  return new Set(keyed.slice(0, k).map((e) => e[1]));
}

// ---------------------------------------------------------------- float32 IoU (reference)

/** The target layers' IoU rule (ops/kit/iou.ts): 0 for boxes that do not intersect. */
const ZERO_IF_DISJOINT = { zeroIfDisjoint: true } as const;

const clampCount = (v: number, cap: number): number => Math.max(0, Math.min(cap, Math.trunc(v)));

// ---------------------------------------------------------------- anchor targets: reference

export interface AnchorTargetsResult {
  /** Per anchor: 1 fg, 0 bg, −1 ignored (after sampling). */
  readonly labels: Int32Array;
  /** Per anchor: argmax gt, or −1 (outside the image, or no gt). */
  readonly matches: Int32Array;
  /** Labels before sampling. */
  readonly preLabels: Int32Array;
}

/**
 * Spec §3 for one image, step by step. anchors flat [A,4], gt flat [G,4] (only the first gtCount rows
 * are used), imageSize (H, W). `mix` is sampleMix(seedInput, attrs.seed, image index).
 */
export function anchorTargetsRef(
  anchors: ArrayLike<number>,
  gt: ArrayLike<number>,
  gtCount: number,
  imageSize: readonly [number, number],
  attrs: AnchorTargetAttrs,
  mix: number,
): AnchorTargetsResult {
  const an = Float32Array.from(anchors);
  const gb = Float32Array.from(gt);
  const A = an.length / 4;
  const G = clampCount(gtCount, gb.length / 4);
  // 1. inside anchors (float32 bounds, as the kernel computes them)
  const inside: boolean[] = [];
  for (let a = 0; a < A; a++) {
    if (attrs.allowedBorder === null) {
      inside.push(true);
      continue;
    }
    const bd = fr(attrs.allowedBorder);
    const [H, W] = [fr(imageSize[0]), fr(imageSize[1])];
    inside.push(
      (an[4 * a] as number) >= fr(-bd) &&
        (an[4 * a + 1] as number) >= fr(-bd) &&
        (an[4 * a + 2] as number) < fr(W + bd) &&
        (an[4 * a + 3] as number) < fr(H + bd),
    );
  }
  const labels = new Int32Array(A).fill(-1);
  const matches = new Int32Array(A).fill(-1);
  if (G === 0) {
    // negative image: every inside anchor is background
    for (let a = 0; a < A; a++) if (inside[a]) labels[a] = 0;
  } else {
    // 2. overlaps of the inside anchors; argmax (first) and max per anchor; max per gt over inside anchors
    const ov = (a: number, g: number) => iouF32(an, a, gb, g, attrs.plusOne, ZERO_IF_DISJOINT);
    const maxOv = new Float64Array(A);
    const gtMax = new Float64Array(G).fill(-1);
    for (let a = 0; a < A; a++) {
      if (!inside[a]) continue;
      let best = -1;
      let arg = -1;
      for (let g = 0; g < G; g++) {
        const v = ov(a, g);
        if (v > best) {
          best = v;
          arg = g;
        }
        if (v > (gtMax[g] as number)) gtMax[g] = v;
      }
      maxOv[a] = best;
      matches[a] = arg;
    }
    // 3. labels: bg first, then best-for-some-gt (ties included), then IoU ≥ posIou (positives win)
    for (let a = 0; a < A; a++) if (inside[a] && (maxOv[a] as number) < attrs.negIou) labels[a] = 0;
    for (let a = 0; a < A; a++) {
      if (!inside[a]) continue;
      for (let g = 0; g < G; g++) if (ov(a, g) === gtMax[g]) labels[a] = 1;
    }
    for (let a = 0; a < A; a++) if (inside[a] && (maxOv[a] as number) >= attrs.posIou) labels[a] = 1;
  }
  const preLabels = labels.slice();
  // 4. sampling
  const fg: number[] = [];
  for (let a = 0; a < A; a++) if (labels[a] === 1) fg.push(a);
  const keepFg = keepSmallest(fg, anchorFgCap(attrs), mix);
  for (const a of fg) if (!keepFg.has(a)) labels[a] = -1;
  const numBg = attrs.batchSize - keepFg.size;
  const bg: number[] = [];
  for (let a = 0; a < A; a++) if (labels[a] === 0) bg.push(a);
  const keepBg = keepSmallest(bg, numBg, mix);
  for (const a of bg) if (!keepBg.has(a)) labels[a] = -1;
  return { labels, matches, preLabels };
}

// ---------------------------------------------------------------- proposal targets: reference

export interface ProposalTargetsResult {
  /** Sampled candidate indices (c < P: proposal, else gt c − P): fg first, then bg; length ≤ batchSize. */
  readonly indices: number[];
  /** Their labels: gt class for fg, 0 for bg. */
  readonly labels: number[];
  /** Their matched gt (argmax; −1 when the image has no gt). */
  readonly matches: number[];
  /** How many of them are fg. */
  readonly numFg: number;
}

/** Spec §4 for one image. proposals flat [P,4], gt flat [G,4], gtLabels [G]. */
export function proposalTargetsRef(
  proposals: ArrayLike<number>,
  proposalCount: number,
  gt: ArrayLike<number>,
  gtCount: number,
  gtLabels: ArrayLike<number>,
  attrs: ProposalTargetAttrs,
  mix: number,
): ProposalTargetsResult {
  const pb = Float32Array.from(proposals);
  const gb = Float32Array.from(gt);
  const P = pb.length / 4;
  const nP = clampCount(proposalCount, P);
  const G = clampCount(gtCount, gb.length / 4);
  // all_rois = vstack(proposals, gt boxes)
  const cands: { c: number; arr: Float32Array; k: number }[] = [];
  for (let p = 0; p < nP; p++) cands.push({ c: p, arr: pb, k: p });
  for (let g = 0; g < G; g++) cands.push({ c: P + g, arr: gb, k: g });
  const fg: number[] = [];
  const bg: number[] = [];
  const match = new Map<number, number>();
  for (const { c, arr, k } of cands) {
    let best = G === 0 ? 0 : -1;
    let arg = -1;
    for (let g = 0; g < G; g++) {
      const v = iouF32(arr, k, gb, g, attrs.plusOne, ZERO_IF_DISJOINT);
      if (v > best) {
        best = v;
        arg = g;
      }
    }
    match.set(c, arg);
    if (G > 0 && best >= attrs.fgIou) fg.push(c);
    else if (G === 0 || (best < attrs.bgHi && best >= attrs.bgLo)) bg.push(c);
  }
  const mix0 = mix;
  const fgKeep = keepSmallest(fg, Math.min(proposalFgCap(attrs), fg.length), mix0);
  const fgTaken = fg.filter((c) => fgKeep.has(c));
  const bgKeep = keepSmallest(bg, Math.min(attrs.batchSize - fgTaken.length, bg.length), mix0);
  const bgTaken = bg.filter((c) => bgKeep.has(c));
  const indices = [...fgTaken, ...bgTaken];
  const matches = indices.map((c) => match.get(c) as number);
  const labels = indices.map((c, i) => (i < fgTaken.length ? (gtLabels[match.get(c) as number] as number) : 0));
  return { indices, labels, matches, numFg: fgTaken.length };
}

// ---------------------------------------------------------------- kernel helpers

const PCG_MUL = 747796405;
const PCG_INC = 2891336453;
const PCG_OUT = 277803737;

/** pcgHash as kernel statements (u32). */
function pcgK(kb: K.KernelBuilder, v: Expr): Expr {
  const st = kb.let('st', K.add(K.mul(v, K.u32(PCG_MUL)), K.u32(PCG_INC)));
  const w = kb.let('w', K.mul(K.bitXor(K.shr(st, K.add(K.shr(st, 28), K.u32(4))), st), K.u32(PCG_OUT)));
  return kb.let('h', K.bitXor(K.shr(w, 22), w));
}

/** c_b of the kernels: pcg(pcg(seed ^ pcg(attrSeed)) + b·GOLDEN). */
function mixK(kb: K.KernelBuilder, seedBuf: BufRef, attrSeed: number, b: Expr): Expr {
  const s = pcgK(kb, K.bitXor(K.load(seedBuf, K.u32(0)), K.u32(pcgHash(attrSeed))));
  return pcgK(kb, K.add(s, K.mul(b, K.u32(GOLDEN))));
}

/** A count input (i32), clamped to [0, cap], as u32. */
function countK(kb: K.KernelBuilder, buf: BufRef, b: Expr, cap: number): Expr {
  return kb.let('cnt', K.cast('u32', K.max(K.min(K.load(buf, b), K.i32(cap)), K.i32(0))));
}

/** The float32 IoU of the kernels (ops/kit/iou-emit.ts; 0 unless the boxes intersect); boxes as 4 expressions each. */
function iouK(kb: K.KernelBuilder, p: readonly Expr[], q: readonly Expr[], plusOne: boolean): Expr {
  const a = p as BoxK;
  const b = q as BoxK;
  // the +1 as a value the shader compiler cannot fold (see emitOne)
  const one = plusOne ? emitOne(kb, a[0]) : undefined;
  return emitIou(kb, a, emitArea(kb, a, one), b, emitArea(kb, b, one), one, { zeroIfDisjoint: true });
}

function loadBox(kb: K.KernelBuilder, buf: BufRef, row: Expr, name: string): Expr[] {
  const base = kb.let(`${name}base`, K.mul(row, K.u32(4)));
  return [0, 1, 2, 3].map((c) => kb.let(`${name}${c}`, K.load(buf, c === 0 ? base : K.add(base, K.u32(c)))));
}

/**
 * Workgroup sum of one u32 per value in `vals` (each thread's contribution), through the arrays
 * `arrs` (size wg each). Call from uniform control flow. Returns the sums (read after a barrier; the
 * caller must put a barrier before the arrays are written again).
 */
function wgSum(kb: K.KernelBuilder, arrs: readonly string[], vals: readonly Expr[], wg: number): Expr[] {
  const lidx = K.builtin('lidx');
  arrs.forEach((arr, k) => kb.astore(arr, lidx, vals[k] as Expr));
  kb.barrier();
  for (let s = wg / 2; s >= 1; s /= 2) {
    kb.if(K.lt(lidx, K.u32(s)), () => {
      for (const arr of arrs) {
        kb.astore(arr, lidx, K.add(kb.aload(arr, 'u32', lidx), kb.aload(arr, 'u32', K.add(lidx, K.u32(s)))));
      }
    });
    kb.barrier();
  }
  return arrs.map((arr) => kb.let('sum', kb.aload(arr, 'u32', K.u32(0))));
}

/**
 * The two bitwise searches for the k-th smallest key among the candidates of categories 1 and 2
 * (`catOf(i)` → u32 0/1/2, `keyOf(i)` → u32, i over [0, n)), run together in 32 steps. Returns
 * private variables x1, x2 with: candidate i of category c is kept iff k_c > 0 and key_i ≤ x_c.
 */
function searchK(
  kb: K.KernelBuilder,
  n: Dim,
  wg: number,
  arrs: readonly [string, string],
  k1: Expr,
  k2: Expr,
  catOf: (i: Expr) => Expr,
  keyOf: (i: Expr) => Expr,
): [Expr, Expr] {
  const lidx = K.builtin('lidx');
  const x1 = kb.var('x1', K.u32(0));
  const x2 = kb.var('x2', K.u32(0));
  kb.for(
    'step',
    K.u32(0),
    K.u32(32),
    (step) => {
      const bit = kb.let('bit', K.shl(K.u32(1), K.sub(K.u32(31), step)));
      const y1 = kb.let('y1', K.bitOr(x1, bit));
      const y2 = kb.let('y2', K.bitOr(x2, bit));
      const c1 = kb.var('c1', K.u32(0));
      const c2 = kb.var('c2', K.u32(0));
      kb.for(
        'i',
        lidx,
        K.size(n),
        (i) => {
          const cat = kb.let('cat', catOf(i));
          kb.if(K.ne(cat, K.u32(0)), () => {
            const key = kb.let('key', keyOf(i));
            kb.if(K.and(K.eq(cat, K.u32(1)), K.lt(key, y1)), () => kb.assign(c1, K.add(c1, K.u32(1))));
            kb.if(K.and(K.eq(cat, K.u32(2)), K.lt(key, y2)), () => kb.assign(c2, K.add(c2, K.u32(1))));
          });
        },
        { t: 'u32', step: wg },
      );
      const [s1, s2] = wgSum(kb, arrs, [c1, c2], wg) as [Expr, Expr];
      kb.if(K.lt(s1, k1), () => kb.assign(x1, y1));
      kb.if(K.lt(s2, k2), () => kb.assign(x2, y2));
      kb.barrier();
    },
    { t: 'u32' },
  );
  return [x1, x2];
}

/** One thread per candidate i of image b: B images of n candidates each, image-major (thread t = b·n + i). */
function perCandidate(
  name: string,
  B: Dim,
  n: Dim,
  body: (kb: K.KernelBuilder, b: Expr, i: Expr, t: Expr) => void,
  wg: number,
): Kernel {
  return perThread(name, dimMul(B, n), (kb, t) => body(kb, kb.let('b', divD(t, n)), kb.let('i', modD(t, n)), t), wg);
}

/**
 * The largest IoU over the first `n` gt boxes and its first argmax (−1, −1 when n is 0): private
 * variables. `each` sees every (g, IoU) too.
 */
function bestGtK(
  kb: K.KernelBuilder,
  n: Expr,
  iouAt: (g: Expr) => Expr,
  each?: (g: Expr, v: Expr) => void,
): { best: Expr; arg: Expr } {
  const best = kb.var('best', K.f32(-1));
  const arg = kb.var('arg', K.i32(-1));
  kb.for(
    'g',
    K.u32(0),
    n,
    (g) => {
      const v = kb.let('v', iouAt(g));
      kb.if(K.gt(v, best), () => {
        kb.assign(best, v);
        kb.assign(arg, K.cast('i32', g));
      });
      each?.(g, v);
    },
    { t: 'u32' },
  );
  return { best, arg };
}

/**
 * The prologue of a one-workgroup-per-image kernel: the image b (clamped; `valid` false for the extra
 * workgroups of a folded grid), its first candidate b·n, and the two workgroup arrays of the searches.
 */
function imageWorkgroup(
  kb: K.KernelBuilder,
  B: Dim,
  n: Dim,
  wg: number,
): { lidx: Expr; arrs: [string, string]; valid: Expr; b: Expr; base: Expr } {
  const arrs: [string, string] = [kb.array('ra', 'u32', wg, 'workgroup'), kb.array('rb', 'u32', wg, 'workgroup')];
  const w = kb.let('w', K.builtin('wg_linear'));
  const valid = kb.let('valid', K.lt(w, K.size(B)));
  const b = kb.let('b', K.min(w, K.sub(K.size(B), K.u32(1))));
  return { lidx: K.builtin('lidx'), arrs, valid, b, base: kb.let('base', K.mul(b, K.size(n))) };
}

/** The leading (image) dimensions of a per-image input (run-time sizes allowed; the tail is static). */
function leadOf(t: TensorType | undefined, tail: readonly (number | null)[], dtype: string, what: string): Dim[] {
  if (!t) fail(`missing input ${what}`);
  const dims = dimsOf(t);
  const r = dims.length - tail.length;
  const ok = t.dtype === dtype && r >= 0 && tail.every((d, i) => d === null || dims[r + i] === d);
  if (!ok) fail(`${what} must be ${dtype} [...,${tail.map((d) => d ?? 'N').join(',')}], got ${fmtType(t)}`);
  return dims.slice(0, r);
}

function sameLead(leads: readonly Dim[][], types: readonly TensorType[], names: readonly string[]): Dim[] {
  const l0 = leads[0] as Dim[];
  leads.forEach((l, i) => {
    if (l.length !== l0.length || l.some((d, j) => !dimEq(d, l0[j] as Dim))) {
      fail(
        `per-image inputs must share their leading (image) dimensions: ${names[0]} ${fmtShape(dimsOf(types[0] as TensorType))} vs ${names[i]} ${fmtShape(dimsOf(types[i] as TensorType))}`,
      );
    }
  });
  return l0;
}

function checkSeed(t: TensorType | undefined): void {
  if (t?.dtype !== 'u32' || numel(t.shape) !== 1)
    fail(`seed must be a u32 [1] tensor, got ${t ? fmtType(t) : 'nothing'}`);
}

const vals = (t: RefTensor, from: number, len: number) => t.data.subarray(from, from + len);

// ---------------------------------------------------------------- anchor_targets

registerOp({
  name: 'anchor_targets',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    if (inputs.length !== 5) fail(`takes (anchors, gt, gtCount, imageSize, seed), got ${inputs.length} inputs`);
    const [an, gt, cnt, size, seed] = inputs as [TensorType, TensorType, TensorType, TensorType, TensorType];
    anchorTargetAttrs(attrs);
    if (an.dtype !== 'f32' || an.shape.length !== 2 || an.shape[1] !== 4)
      fail(`anchors must be f32 [A,4], got ${fmtType(an)}`);
    const names = ['gt', 'gtCount', 'imageSize'];
    const lead = sameLead(
      [
        leadOf(gt, [null, 4], 'f32', 'gt'),
        leadOf(cnt, [1], 'i32', 'gtCount'),
        leadOf(size, [2], 'f32', 'imageSize (H, W)'),
      ],
      [gt, cnt, size],
      names,
    );
    checkSeed(seed);
    if ((gt.shape[gt.shape.length - 2] as number) < 1) fail('gt capacity must be at least 1');
    return typeOf([...lead, 2, dimsOf(an)[0] as Dim], 'i32');
  },
  cpu: ({ inputs, attrs }) => {
    const [an, gt, cnt, size, seed] = inputs as [RefTensor, RefTensor, RefTensor, RefTensor, RefTensor];
    const a = anchorTargetAttrs(attrs);
    const A = an.shape[0] as number;
    const G = gt.shape[gt.shape.length - 2] as number;
    const B = numel(cnt.shape);
    const out = new Float64Array(B * 2 * A);
    for (let b = 0; b < B; b++) {
      const r = anchorTargetsRef(
        an.data,
        vals(gt, b * G * 4, G * 4),
        cnt.data[b] as number,
        [size.data[2 * b] as number, size.data[2 * b + 1] as number],
        a,
        sampleMix(seed.data[0] as number, a.seed, b),
      );
      out.set(r.labels, b * 2 * A);
      out.set(r.matches, b * 2 * A + A);
    }
    return out;
  },
  grad: () => [null, null, null, null, null],
  lower: (args) => {
    const [an, gt, cnt, size, seed] = args.inputs as [BufArg, BufArg, BufArg, BufArg, BufArg];
    const a = anchorTargetAttrs(args.attrs);
    const A = dimsOf(an.type)[0] as Dim; // the anchor count: a run-time size when the feature map's is
    const Amax = dimMax(A);
    const G = gt.type.shape[gt.type.shape.length - 2] as number;
    const B = dimProd(dimsOf(cnt.type)); // the images (a run-time size when the batch is)
    const Bmax = dimMax(B);
    const limits = args.limits;
    const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    if (Bmax * Amax * G * 4 > maxBinding) {
      throw new WgflowError(
        `anchor_targets: the IoU matrix of ${dimFmt(B)} × ${dimFmt(A)} anchors × ${G} gt needs ${Bmax * Amax * G * 4} bytes, over the storage binding limit ${maxBinding} (declared at ${args.node.site})`,
      );
    }
    const wg = linearWorkgroupSize(limits);
    const out = args.output.buf;
    const iou = args.scratch('f32', Bmax * Amax * G);
    const gtMax = args.scratch('f32', Bmax * G);
    const pre = args.scratch('i32', Bmax * Amax);
    const keys = args.scratch('u32', Bmax * Amax);
    const BG = dimMul(B, G);
    const tPos = K.f32(f32Threshold(a.posIou, true));
    const tNeg = K.f32(f32Threshold(a.negIou, true));
    const fgCap = anchorFgCap(a);

    /** Whether anchor (row `row`) is inside image b. */
    const insideK = (kb: K.KernelBuilder, box: readonly Expr[], b: Expr): Expr => {
      if (a.allowedBorder === null) return K.bool(true);
      const bd = a.allowedBorder;
      const H = kb.let('imh', K.load(size.buf, K.mul(b, K.u32(2))));
      const W = kb.let('imw', K.load(size.buf, K.add(K.mul(b, K.u32(2)), K.u32(1))));
      const [x1, y1, x2, y2] = box as [Expr, Expr, Expr, Expr];
      return kb.let(
        'inside',
        K.and(
          K.and(K.ge(x1, K.f32(-bd)), K.ge(y1, K.f32(-bd))),
          K.and(K.lt(x2, K.add(W, K.f32(bd))), K.lt(y2, K.add(H, K.f32(bd)))),
        ),
      );
    };

    // (1) IoU matrix, −1 for gt past the count
    const k1 = perThread(
      `${args.name}_iou`,
      dimMul(A, BG),
      (kb, t) => {
        const g = kb.let('g', K.mod(t, K.u32(G)));
        const ba = kb.let('ba', K.div(t, K.u32(G)));
        const anc = kb.let('anc', K.mod(ba, K.size(A)));
        const b = kb.let('b', K.div(ba, K.size(A)));
        const n = countK(kb, cnt.buf, b, G);
        const v = kb.var('v', K.f32(-1));
        kb.if(K.lt(g, n), () => {
          const p = loadBox(kb, an.buf, anc, 'a');
          const q = loadBox(kb, gt.buf, K.add(K.mul(b, K.u32(G)), g), 'g');
          kb.assign(v, iouK(kb, p, q, a.plusOne));
        });
        kb.store(iou, t, v);
      },
      wg,
    );

    // (2) per (image, gt): max over inside anchors
    const k2b = new K.KernelBuilder(`${args.name}_gtmax`);
    {
      const kb = k2b;
      const lidx = K.builtin('lidx');
      const arr = kb.array('red', 'f32', wg, 'workgroup');
      const w = kb.let('w', K.builtin('wg_linear'));
      const valid = kb.let('valid', K.lt(w, K.size(BG)));
      const bg = kb.let('bg', K.min(w, K.sub(K.size(BG), K.u32(1))));
      const g = kb.let('g', K.mod(bg, K.u32(G)));
      const b = kb.let('b', K.div(bg, K.u32(G)));
      const m = kb.var('m', K.f32(-1));
      kb.for(
        'i',
        lidx,
        K.size(A),
        (i) => {
          const ins = insideK(kb, loadBox(kb, an.buf, i, 'a'), b);
          kb.if(ins, () =>
            kb.assign(m, K.max(m, K.load(iou, K.add(K.mul(K.add(K.mul(b, K.size(A)), i), K.u32(G)), g)))),
          );
        },
        { t: 'u32', step: wg },
      );
      kb.astore(arr, lidx, m);
      kb.barrier();
      for (let s = wg / 2; s >= 1; s /= 2) {
        kb.if(K.lt(lidx, K.u32(s)), () =>
          kb.astore(arr, lidx, K.max(kb.aload(arr, 'f32', lidx), kb.aload(arr, 'f32', K.add(lidx, K.u32(s))))),
        );
        kb.barrier();
      }
      kb.if(K.and(valid, K.eq(lidx, K.u32(0))), () => kb.store(gtMax, bg, kb.aload(arr, 'f32', K.u32(0))));
    }
    const k2 = k2b.finish([wg, 1, 1], { linear: BG });

    // (3) per anchor: pre-sampling label, match, key
    const k3 = perCandidate(
      `${args.name}_label`,
      B,
      A,
      (kb, b, anc, t) => {
        const n = countK(kb, cnt.buf, b, G);
        const ins = insideK(kb, loadBox(kb, an.buf, anc, 'a'), b);
        const isBest = kb.var('isbest', K.bool(false));
        const rowBase = kb.let('rowbase', K.mul(t, K.u32(G)));
        const { best, arg } = bestGtK(
          kb,
          n,
          (g) => K.load(iou, K.add(rowBase, g)),
          (g, v) => kb.if(K.eq(v, K.load(gtMax, K.add(K.mul(b, K.u32(G)), g))), () => kb.assign(isBest, K.bool(true))),
        );
        const lab = kb.var('lab', K.i32(-1));
        kb.if(ins, () => {
          kb.if(
            K.eq(n, K.u32(0)),
            () => kb.assign(lab, K.i32(0)),
            () => {
              kb.if(K.lt(best, tNeg), () => kb.assign(lab, K.i32(0)));
              kb.if(K.or(isBest, K.ge(best, tPos)), () => kb.assign(lab, K.i32(1)));
            },
          );
        });
        kb.store(pre, t, lab);
        kb.store(out, K.add(K.mul(b, K.size(dimMul(A, 2))), K.add(K.size(A), anc)), K.select(ins, arg, K.i32(-1)));
        kb.store(keys, t, pcgK(kb, K.bitXor(pcgK(kb, anc), mixK(kb, seed.buf, a.seed, b))));
      },
      wg,
    );

    // (4) per image: counts, searches, final labels
    const k4b = new K.KernelBuilder(`${args.name}_sample`);
    {
      const kb = k4b;
      const { lidx, arrs, valid, b, base } = imageWorkgroup(kb, B, A, wg);
      const catOf = (i: Expr): Expr => {
        const l = kb.let('l', K.load(pre, K.add(base, i)));
        return K.select(K.eq(l, K.i32(1)), K.u32(1), K.select(K.eq(l, K.i32(0)), K.u32(2), K.u32(0)));
      };
      const np = kb.var('np', K.u32(0));
      const nn = kb.var('nn', K.u32(0));
      kb.for(
        'i',
        lidx,
        K.size(A),
        (i) => {
          const c = kb.let('c', catOf(i));
          kb.if(K.eq(c, K.u32(1)), () => kb.assign(np, K.add(np, K.u32(1))));
          kb.if(K.eq(c, K.u32(2)), () => kb.assign(nn, K.add(nn, K.u32(1))));
        },
        { t: 'u32', step: wg },
      );
      const [sp] = wgSum(kb, arrs, [np, nn], wg) as [Expr, Expr];
      const kP = K.u32(fgCap);
      const kN = kb.let('kn', K.sub(K.u32(a.batchSize), K.min(sp, kP)));
      kb.barrier();
      const [xP, xN] = searchK(kb, A, wg, arrs, kP, kN, catOf, (i) => K.load(keys, K.add(base, i)));
      kb.if(valid, () => {
        kb.for(
          'i',
          lidx,
          K.size(A),
          (i) => {
            const l = kb.let('l', K.load(pre, K.add(base, i)));
            const key = kb.let('key', K.load(keys, K.add(base, i)));
            const dropP = K.and(K.eq(l, K.i32(1)), K.not(K.and(K.gt(kP, K.u32(0)), K.le(key, xP))));
            const dropN = K.and(K.eq(l, K.i32(0)), K.not(K.and(K.gt(kN, K.u32(0)), K.le(key, xN))));
            kb.store(out, K.add(K.mul(b, K.size(dimMul(A, 2))), i), K.select(K.or(dropP, dropN), K.i32(-1), l));
          },
          { t: 'u32', step: wg },
        );
      });
    }
    const k4 = k4b.finish([wg, 1, 1], { linear: B });
    return [k1, k2, k3, k4];
  },
});

// ---------------------------------------------------------------- proposal_targets

registerOp({
  name: 'proposal_targets',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    if (inputs.length !== 6)
      fail(`takes (proposals, proposalCount, gt, gtCount, gtLabels, seed), got ${inputs.length} inputs`);
    const [pr, pc, gt, gc, gl, seed] = inputs as TensorType[] as [
      TensorType,
      TensorType,
      TensorType,
      TensorType,
      TensorType,
      TensorType,
    ];
    const a = proposalTargetAttrs(attrs);
    const names = ['proposals', 'proposalCount', 'gt', 'gtCount', 'gtLabels'];
    const lead = sameLead(
      [
        leadOf(pr, [null, 4], 'f32', 'proposals'),
        leadOf(pc, [1], 'i32', 'proposalCount'),
        leadOf(gt, [null, 4], 'f32', 'gt'),
        leadOf(gc, [1], 'i32', 'gtCount'),
        leadOf(gl, [null], 'i32', 'gtLabels'),
      ],
      [pr, pc, gt, gc, gl],
      names,
    );
    checkSeed(seed);
    const G = gt.shape[gt.shape.length - 2] as number;
    if (gl.shape[gl.shape.length - 1] !== G)
      fail(`gtLabels ${fmtShape(gl.shape)} must hold one label per gt box of ${fmtShape(gt.shape)}`);
    return typeOf([...lead, 3, a.batchSize], 'i32');
  },
  cpu: ({ inputs, attrs }) => {
    const [pr, pc, gt, gc, gl, seed] = inputs as RefTensor[] as [
      RefTensor,
      RefTensor,
      RefTensor,
      RefTensor,
      RefTensor,
      RefTensor,
    ];
    const a = proposalTargetAttrs(attrs);
    const P = pr.shape[pr.shape.length - 2] as number;
    const G = gt.shape[gt.shape.length - 2] as number;
    const B = numel(pc.shape);
    const S = a.batchSize;
    const out = new Float64Array(B * 3 * S).fill(-1);
    for (let b = 0; b < B; b++) {
      const r = proposalTargetsRef(
        vals(pr, b * P * 4, P * 4),
        pc.data[b] as number,
        vals(gt, b * G * 4, G * 4),
        gc.data[b] as number,
        vals(gl, b * G, G),
        a,
        sampleMix(seed.data[0] as number, a.seed, b),
      );
      out.set(r.indices, b * 3 * S);
      out.set(r.labels, b * 3 * S + S);
      out.set(r.matches, b * 3 * S + 2 * S);
    }
    return out;
  },
  grad: () => [null, null, null, null, null, null],
  lower: (args) => {
    const [pr, pc, gt, gc, gl, seed] = args.inputs as BufArg[] as [BufArg, BufArg, BufArg, BufArg, BufArg, BufArg];
    const a = proposalTargetAttrs(args.attrs);
    const P = pr.type.shape[pr.type.shape.length - 2] as number;
    const G = gt.type.shape[gt.type.shape.length - 2] as number;
    const B = dimProd(dimsOf(pc.type)); // the images (a run-time size when the batch is)
    const Bmax = dimMax(B);
    const N = P + G;
    const S = a.batchSize;
    const wg = linearWorkgroupSize(args.limits);
    const out = args.output.buf;
    const cat = args.scratch('u32', Bmax * N);
    const match = args.scratch('i32', Bmax * N);
    const keys = args.scratch('u32', Bmax * N);
    const tFg = K.f32(f32Threshold(a.fgIou, true));
    const tHi = K.f32(f32Threshold(a.bgHi, true));
    const tLo = K.f32(f32Threshold(a.bgLo, true));

    // (1) per candidate: category (0 none, 1 fg, 2 bg), match, key
    const k1 = perCandidate(
      `${args.name}_match`,
      B,
      N,
      (kb, b, c, t) => {
        const nP = countK(kb, pc.buf, b, P);
        const nG = countK(kb, gc.buf, b, G);
        const isProp = kb.let('isprop', K.lt(c, K.u32(P)));
        const valid = kb.let('valid', K.select(isProp, K.lt(c, nP), K.lt(K.sub(c, K.u32(P)), nG)));
        const best = kb.var('best', K.f32(-1));
        const arg = kb.var('arg', K.i32(-1));
        const ca = kb.var('cat', K.u32(0));
        const gtRow = kb.let('gtrow', K.mul(b, K.u32(G)));
        kb.if(valid, () => {
          const row = kb.let(
            'row',
            K.select(isProp, K.add(K.mul(b, K.u32(P)), c), K.add(K.mul(b, K.u32(G)), K.sub(c, K.u32(P)))),
          );
          // P ≥ 1 and G ≥ 1, so both clamped rows are in range; select the buffer by loading both
          const p = loadBox(kb, pr.buf, K.min(row, K.sub(K.size(dimMul(B, P)), K.u32(1))), 'p');
          const q = loadBox(kb, gt.buf, K.min(row, K.sub(K.size(dimMul(B, G)), K.u32(1))), 'q');
          const box = p.map((e, k) => kb.let('x', K.select(isProp, e, q[k] as Expr)));
          const m = bestGtK(kb, nG, (g) => iouK(kb, box, loadBox(kb, gt.buf, K.add(gtRow, g), 'g'), a.plusOne));
          kb.assign(best, m.best);
          kb.assign(arg, m.arg);
          kb.if(
            K.eq(nG, K.u32(0)),
            () => kb.assign(ca, K.u32(2)),
            () => {
              kb.if(K.ge(best, tFg), () => kb.assign(ca, K.u32(1)));
              kb.if(K.and(K.lt(best, tHi), K.ge(best, tLo)), () => kb.assign(ca, K.u32(2)));
            },
          );
        });
        kb.store(cat, t, ca);
        kb.store(match, t, arg);
        kb.store(keys, t, pcgK(kb, K.bitXor(pcgK(kb, c), mixK(kb, seed.buf, a.seed, b))));
      },
      wg,
    );

    // (2) per image: counts, searches, compaction
    const k2b = new K.KernelBuilder(`${args.name}_sample`);
    {
      const kb = k2b;
      const { lidx, arrs, valid, b, base } = imageWorkgroup(kb, B, N, wg);
      const tot = kb.array('tot', 'u32', 2, 'workgroup');
      const catOf = (i: Expr): Expr => K.load(cat, K.add(base, i));
      const nf = kb.var('nf', K.u32(0));
      kb.for('i', lidx, K.u32(N), (i) => kb.if(K.eq(catOf(i), K.u32(1)), () => kb.assign(nf, K.add(nf, K.u32(1)))), {
        t: 'u32',
        step: wg,
      });
      const [sf] = wgSum(kb, arrs, [nf, K.u32(0)], wg) as [Expr, Expr];
      const kF = K.u32(proposalFgCap(a));
      const kB = kb.let('kb', K.sub(K.u32(S), K.min(sf, kF)));
      kb.barrier();
      const [xF, xB] = searchK(kb, N, wg, arrs, kF, kB, catOf, (i) => K.load(keys, K.add(base, i)));
      /** u32 0 none, 1 taken fg, 2 taken bg. */
      const takenOf = (i: Expr): Expr => {
        const c = kb.let('c', catOf(i));
        const key = kb.let('key', K.load(keys, K.add(base, i)));
        const tf = K.and(K.eq(c, K.u32(1)), K.and(K.gt(kF, K.u32(0)), K.le(key, xF)));
        const tb = K.and(K.eq(c, K.u32(2)), K.and(K.gt(kB, K.u32(0)), K.le(key, xB)));
        return kb.let('taken', K.select(tf, K.u32(1), K.select(tb, K.u32(2), K.u32(0))));
      };
      // per-thread contiguous chunks
      const chunk = Math.ceil(N / wg);
      const lo = kb.let('lo', K.min(K.mul(lidx, K.u32(chunk)), K.u32(N)));
      const hi = kb.let('hi', K.min(K.add(lo, K.u32(chunk)), K.u32(N)));
      const cf = kb.var('cf', K.u32(0));
      const cb = kb.var('cb', K.u32(0));
      kb.for(
        'i',
        lo,
        hi,
        (i) => {
          const tk = takenOf(i);
          kb.if(K.eq(tk, K.u32(1)), () => kb.assign(cf, K.add(cf, K.u32(1))));
          kb.if(K.eq(tk, K.u32(2)), () => kb.assign(cb, K.add(cb, K.u32(1))));
        },
        { t: 'u32' },
      );
      kb.astore(arrs[0], lidx, cf);
      kb.astore(arrs[1], lidx, cb);
      kb.barrier();
      // exclusive scan of the chunk counts (thread 0; wg ≤ 256 entries)
      kb.if(K.eq(lidx, K.u32(0)), () => {
        const rf = kb.var('rf', K.u32(0));
        const rb = kb.var('rb', K.u32(0));
        kb.for(
          'j',
          K.u32(0),
          K.u32(wg),
          (j) => {
            const vf = kb.let('vf', kb.aload(arrs[0], 'u32', j));
            const vb = kb.let('vb', kb.aload(arrs[1], 'u32', j));
            kb.astore(arrs[0], j, rf);
            kb.astore(arrs[1], j, rb);
            kb.assign(rf, K.add(rf, vf));
            kb.assign(rb, K.add(rb, vb));
          },
          { t: 'u32' },
        );
        kb.astore(tot, K.u32(0), rf);
        kb.astore(tot, K.u32(1), rb);
      });
      kb.barrier();
      const totF = kb.let('totf', kb.aload(tot, 'u32', K.u32(0)));
      const totB = kb.let('totb', kb.aload(tot, 'u32', K.u32(1)));
      const outBase = kb.let('outbase', K.mul(b, K.u32(3 * S)));
      kb.if(valid, () => {
        const of = kb.var('of', kb.aload(arrs[0], 'u32', lidx));
        const ob = kb.var('ob', K.add(totF, kb.aload(arrs[1], 'u32', lidx)));
        kb.for(
          'i',
          lo,
          hi,
          (i) => {
            const tk = takenOf(i);
            kb.if(K.ne(tk, K.u32(0)), () => {
              const slot = kb.let('slot', K.select(K.eq(tk, K.u32(1)), of, ob));
              const m = kb.let('m', K.load(match, K.add(base, i)));
              const gtRow = K.add(K.mul(b, K.u32(G)), K.cast('u32', K.max(m, K.i32(0))));
              const label = K.select(K.eq(tk, K.u32(1)), K.load(gl.buf, gtRow), K.i32(0));
              kb.store(out, K.add(outBase, slot), K.cast('i32', i));
              kb.store(out, K.add(outBase, K.add(K.u32(S), slot)), label);
              kb.store(out, K.add(outBase, K.add(K.u32(2 * S), slot)), m);
              kb.if(
                K.eq(tk, K.u32(1)),
                () => kb.assign(of, K.add(of, K.u32(1))),
                () => kb.assign(ob, K.add(ob, K.u32(1))),
              );
            });
          },
          { t: 'u32' },
        );
        kb.for(
          's',
          K.add(K.add(totF, totB), lidx),
          K.u32(S),
          (s) => {
            for (let r = 0; r < 3; r++) kb.store(out, K.add(outBase, K.add(K.u32(r * S), s)), K.i32(-1));
          },
          { t: 'u32', step: wg },
        );
      });
    }
    const k2 = k2b.finish([wg, 1, 1], { linear: B });
    return [k1, k2];
  },
});

// ---------------------------------------------------------------- DSL helpers

export interface AnchorTargetOptions {
  readonly posIou?: number;
  readonly negIou?: number;
  readonly batchSize?: number;
  readonly fgFraction?: number;
  /** py-faster-rcnn's border for the inside test (default 0); null = torchvision (no test). */
  readonly allowedBorder?: number | null;
  /** py-faster-rcnn's +1 pixel convention in IoU and box coding. */
  readonly plusOne?: boolean;
  /** A static salt mixed with the seed input. */
  readonly seed?: number;
  /** Box-coding weights of the regression targets (RPN: 1,1,1,1). */
  readonly weights?: readonly [number, number, number, number];
}

export interface AnchorTargets {
  /** i32 [...L, A]: 1 fg, 0 bg, −1 ignore (sampled). */
  readonly labels: Tensor;
  /** i32 [...L, A]: matched gt (argmax) or −1. */
  readonly matches: Tensor;
  /** f32 [...L, A, 4]: encode(anchor, gt[match]); 0 where match = −1. */
  readonly bboxTargets: Tensor;
  /** f32 [...L, A, 4]: 1 for the 4 coordinates of label-1 anchors (PFR bbox_inside_weights), else 0. */
  readonly bboxWeights: Tensor;
}

/** The leading (image) dimensions of a per-image tensor and their product B (run-time sizes allowed). */
function imageLead(t: Tensor, tail: number): { lead: Dim[]; B: Dim } {
  const lead = t.dims.slice(0, t.rank - tail);
  return { lead, B: dimProd(lead) };
}

/** idx i32 [B·rows] (image-major) plus each image's first flat row b·stride. */
function offsetRows(idx: Tensor, B: Dim, rows: number, stride: number): Tensor {
  if (B === 1) return idx;
  return idx
    .reshape([B, rows])
    .add(rowStarts(idx.builder, B, stride))
    .reshape([dimMul(B, rows)]);
}

/** The arguments of {@link anchorTargets} and {@link anchorTargetsPacked}. */
export type AnchorTargetArgs = [
  anchors: Tensor,
  gt: Tensor,
  gtCount: Tensor,
  imageSize: Tensor | readonly [number, number],
  seed: Tensor,
  opts?: AnchorTargetOptions,
];

/** The packed anchor_targets output i32 [...L, 2, A] (labels, matches). */
export function anchorTargetsPacked(...args: AnchorTargetArgs): Tensor {
  const [anchors, gt, gtCount, imageSize, seed, opts = {}] = args;
  const g = anchors.builder;
  const { lead, B } = imageLead(gt, 2);
  const size = Array.isArray(imageSize)
    ? zerosAlong(g, B, 2)
        .add(g.constant([...(imageSize as readonly [number, number])], [1, 2]))
        .reshape([...lead, 2])
    : (imageSize as Tensor);
  return g.apply('anchor_targets', [anchors.stopGradient(), gt.stopGradient(), gtCount, size.stopGradient(), seed], {
    posIou: opts.posIou ?? 0.7,
    negIou: opts.negIou ?? 0.3,
    batchSize: opts.batchSize ?? 256,
    fgFraction: opts.fgFraction ?? 0.5,
    allowedBorder: opts.allowedBorder === undefined ? 0 : opts.allowedBorder,
    plusOne: opts.plusOne ?? false,
    seed: opts.seed ?? 0,
  });
}

/**
 * RPN training targets (spec §3) of anchors [A,4] for images with gt [...L, G, 4] (first gtCount
 * [...L, 1] rows valid), image sizes (H, W) ([...L, 2] tensor, or numbers for all images) and a u32 [1]
 * seed input. See the file comment for the rules; everything runs on the GPU.
 */
export function anchorTargets(...args: AnchorTargetArgs): AnchorTargets {
  const packed = anchorTargetsPacked(...args);
  const [anchors, gt, , , , opts = {}] = args;
  const { lead, B } = imageLead(gt, 2);
  const A = anchors.dims[0] as Dim; // a run-time size when the feature map's is
  const BA = dimMul(A, B);
  const G = gt.shape[gt.rank - 2] as number;
  const p = packed.reshape([B, 2, A]);
  const labels = p.slice([0, 0, 0], [B, 1, A]).reshape([BA]);
  const matchesBA = p.slice([0, 1, 0], [B, 2, A]).reshape([B, A]);
  const matches = matchesBA.reshape([BA]);
  const gtFlat = gt.stopGradient().reshape([dimMul(B, G), 4]);
  // rows of image b's gt start at b·G
  const b = anchors.builder;
  const matched = gtFlat.gather(
    matchesBA
      .maximum(0)
      .add(rowStarts(b, B, G))
      .reshape([BA]),
  );
  const anc =
    B === 1
      ? anchors.stopGradient()
      : anchors
          .stopGradient()
          .reshape([1, A, 4])
          .add(zerosAlong(b, B, 3))
          .reshape([BA, 4]);
  const deltas = encodeBoxes(matched, anc, { weights: opts.weights ?? [1, 1, 1, 1], plusOne: opts.plusOne ?? false });
  const bboxTargets = b.where(matches.ge(0).reshape([BA, 1]), deltas, 0);
  const bboxWeights = b.where(labels.eq(1).reshape([BA, 1]), b.constant([1, 1, 1, 1], [1, 4]), 0);
  return {
    labels: labels.reshape([...lead, A]),
    matches: matches.reshape([...lead, A]),
    bboxTargets: bboxTargets.reshape([...lead, A, 4]),
    bboxWeights: bboxWeights.reshape([...lead, A, 4]),
  };
}

export interface ProposalTargetOptions {
  readonly batchSize?: number;
  readonly fgFraction?: number;
  readonly fgIou?: number;
  /** py-faster-rcnn Faster R-CNN ymls: 0.0 (Fast R-CNN default 0.1). */
  readonly bgLo?: number;
  readonly bgHi?: number;
  readonly plusOne?: boolean;
  readonly seed?: number;
  /** Target normalization (t − mean) / std: PFR BBOX_NORMALIZE_MEANS / STDS. */
  readonly means?: readonly [number, number, number, number];
  /**
   * Keep the sampled RoIs differentiable in the proposal boxes (non-approximate joint training; the
   * regression targets are still constants). Default false: RoIs carry no gradient.
   */
  readonly boxGradient?: boolean;
  readonly stds?: readonly [number, number, number, number];
}

export interface ProposalTargets {
  /** f32 [B·S, 5]: (image index, x1, y1, x2, y2); zeros in unused slots. */
  readonly rois: Tensor;
  /** i32 [B·S]: gt class for fg, 0 for bg, −1 for unused slots (ignore in the losses). */
  readonly labels: Tensor;
  /** f32 [B·S, 4·numClasses]: normalized targets in the 4 slots of the class of fg RoIs, 0 elsewhere. */
  readonly bboxTargets: Tensor;
  /** f32 [B·S, 4·numClasses]: 1 where bboxTargets is filled (PFR inside = outside weights). */
  readonly bboxWeights: Tensor;
  /** i32 [B·S]: sampled candidate index (proposal c, or gt c − P), −1 unused. */
  readonly indices: Tensor;
  /** i32 [B·S]: matched gt index, −1 when none. */
  readonly matches: Tensor;
}

/**
 * Fast R-CNN head training targets (spec §4) for proposals [...L, P, 4] (first proposalCount valid),
 * gt [...L, G, 4] (first gtCount valid) with classes gtLabels i32 [...L, G] in 1..numClasses−1, and a
 * u32 [1] seed input. numClasses includes the background (VOC: 21). Images are flattened: B = ∏L.
 */
export function proposalTargets(
  proposals: Tensor,
  proposalCount: Tensor,
  gt: Tensor,
  gtCount: Tensor,
  gtLabels: Tensor,
  seed: Tensor,
  numClasses: number,
  opts: ProposalTargetOptions = {},
): ProposalTargets {
  if (!Number.isInteger(numClasses) || numClasses < 2)
    throw new WgflowError(`proposalTargets: numClasses must be an integer ≥ 2 (with background), got ${numClasses}`);
  const g = proposals.builder;
  const S = opts.batchSize ?? 128;
  const { B } = imageLead(gt, 2);
  const P = proposals.shape[proposals.rank - 2] as number;
  const G = gt.shape[gt.rank - 2] as number;
  const N = P + G;
  const pr = (opts.boxGradient === true ? proposals : proposals.stopGradient()).reshape([B, P, 4]);
  const gb = gt.stopGradient().reshape([B, G, 4]);
  const packed = g
    .apply('proposal_targets', [proposals.stopGradient(), proposalCount, gt.stopGradient(), gtCount, gtLabels, seed], {
      batchSize: S,
      fgFraction: opts.fgFraction ?? 0.25,
      fgIou: opts.fgIou ?? 0.5,
      bgLo: opts.bgLo ?? 0,
      bgHi: opts.bgHi ?? 0.5,
      plusOne: opts.plusOne ?? false,
      seed: opts.seed ?? 0,
    })
    .reshape([B, 3, S]);
  const BS = dimMul(B, S);
  const indices = packed.slice([0, 0, 0], [B, 1, S]).reshape([BS]);
  const labels = packed.slice([0, 1, 0], [B, 2, S]).reshape([BS]);
  const matches = packed.slice([0, 2, 0], [B, 3, S]).reshape([BS]);
  const all = g.concat([pr, gb], 1).reshape([dimMul(B, N), 4]);
  const used = indices.ge(0).reshape([BS, 1]);
  const boxes = g.where(used, all.gather(offsetRows(indices.maximum(0), B, S, N)), 0);
  // the image index of every row
  const batchCol =
    typeof B === 'number'
      ? g.constant(
          Array.from({ length: B * S }, (_, k) => Math.floor(k / S)),
          [B * S, 1],
        )
      : arange(g, B, 'f32')
          .reshape([B, 1])
          .add(g.constant(new Array<number>(S).fill(0), [1, S]))
          .reshape([BS, 1]);
  const rois = g.concat([batchCol, boxes], 1);
  const matched = gb.reshape([dimMul(B, G), 4]).gather(offsetRows(matches.maximum(0), B, S, G));
  const means = opts.means ?? [0, 0, 0, 0];
  const stds = opts.stds ?? [0.1, 0.1, 0.2, 0.2];
  const raw = encodeBoxes(matched, boxes.stopGradient(), { weights: [1, 1, 1, 1], plusOne: opts.plusOne ?? false });
  const norm = raw.sub(g.constant([...means], [1, 4])).div(g.constant([...stds], [1, 4]));
  const C = numClasses;
  const fg = labels.gt(0).reshape([BS, 1, 1]);
  const classes = g.constant(
    Array.from({ length: C }, (_, c) => c),
    [1, C, 1],
    'i32',
  );
  const slot = labels.reshape([BS, 1, 1]).eq(classes).mul(fg); // u32 [BS, C, 1]
  const bboxTargets = g.where(slot, norm.reshape([BS, 1, 4]), 0).reshape([BS, 4 * C]);
  const bboxWeights = g.where(slot, g.constant([1, 1, 1, 1], [1, 1, 4]), 0).reshape([BS, 4 * C]);
  return { rois, labels, bboxTargets, bboxWeights, indices, matches };
}
