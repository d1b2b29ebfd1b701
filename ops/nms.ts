/**
 * Non-maximum suppression (FASTER_RCNN_SPEC.md §6) as one opaque op, `nms`:
 *   boxes f32 [..., N, 4] (x1, y1, x2, y2), scores f32 [..., N]  →  i32 [..., maxOutput + 1]
 * Leading dimensions are independent problems (e.g. one per image). Per problem: boxes are visited in
 * stable descending score order (equal scores: lower index first; NaN scores count as the largest, as
 * in torch.sort), a box is kept when no kept box suppresses it, and a kept box suppresses every later
 * box whose IoU with it is > iouThreshold (strict; `inclusive: true` gives py-faster-rcnn cpu_nms's ≥).
 * The output holds the kept ORIGINAL indices in score order in [0, maxOutput) (at most maxOutput of
 * them; unused slots are -1) and their count at [maxOutput].
 *
 * IoU (torchvision; `plusOne` adds py-faster-rcnn's +1 to widths, heights and intersections):
 *   area = (x2 - x1) * (y2 - y1);  w = max(min(x2a, x2b) - max(x1a, x1b), 0) (same for h)
 *   inter = w * h;  iou = inter / ((area_a + area_b) - inter)
 * evaluated in float32, one rounding per operation in exactly this order. Two zero-area boxes give
 * 0 / 0 = NaN, which never suppresses. The threshold is compared like torchvision (float32 IoU against a
 * float64 threshold): `iou > t` is evaluated as `iou > t32` with t32 the largest float32 ≤ t, which is
 * the same test. NaN coordinates give unspecified results.
 * Exactness on the GPU relies on the driver not reassociating float arithmetic: the +1 of `plusOne`
 * is therefore not a literal (Mesa rewrote (x2 - x1) + 1.0 and was off by an ulp), and nothing else in
 * the formula involves constants. WGSL lets f32 division be off by up to 2.5 ulp and drivers may
 * contract a*b - c into an fma; lavapipe does neither (checked), so there GPU and reference agree
 * bit for bit. On a driver that does, only pairs within an ulp or two of the threshold can differ.
 *
 * Kernels: the greedy walk of ops/nms-greedy.ts (sorted runs of the scores, then one workgroup per
 * problem merges them and walks the boxes in score order in blocks, testing each candidate only
 * against the boxes already kept and stopping once maxOutput are kept: at most N · maxOutput IoUs,
 * e.g. 6000 → 300 walks ~300 boxes instead of the 18M pairs of a mask). It needs the kept list in
 * workgroup memory (maxOutput words at least); when that does not fit (a capacity of several
 * thousand), the op falls back to the CUDA bitmask algorithm with 32-bit words (WGSL has no u64):
 * 1. the stable descending argsort of the scores (ops/sort.ts kernels, into scratch);
 * 2. the IoU mask: workgroup (col c, row r, problem) with 32 threads, only c ≥ r; the 32 boxes of
 *    column block c (in score order) are cached in workgroup memory, thread t computes the word
 *    mask[i, c] for box i = 32r + t (bit b: IoU(box i, box 32c + b) passes, for later boxes only);
 * 3. the scan: one workgroup per problem. removed[] (one bit per box) lives in workgroup memory. For
 *    each word w in order, thread 0 walks its 32 boxes (the diagonal words resolve suppression inside
 *    the block) and emits the kept ones; then all threads OR the kept boxes' mask rows into the words
 *    after w. Two barriers per 32 boxes.
 * Fallback scratch: the sort's 2 u32 per padded box, and the mask, N · ceil(N/32) u32 words per
 * problem (N = 12000: 18 MB). The mask must fit one storage binding (N up to about 20000 at 128 MiB).
 */
import { type Dim, dimEq, dimFmt, dimMax, dimProd } from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import type { BufRef, Expr, Kernel } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type BufArg, type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtShape, type TensorType, typeOf } from '../compiler/types.js';
import { boxAreaF32, iouF32 } from './kit/iou.js';
import { type BoxK, emitArea, emitIou, emitOne } from './kit/iou-emit.js';
import { greedyNmsGeometry, lowerGreedyNmsKernels } from './nms-greedy.js';
import { linearWorkgroupSize } from './rows.js';
import { cpuArgsortRow, lowerArgsortKernels } from './sort.js';

// ---------------------------------------------------------------- attributes and float32 helpers

export interface NmsOptions {
  readonly iouThreshold: number;
  /** Capacity of the result (default in the helpers: N, i.e. every box may be kept). */
  readonly maxOutput?: number;
  /** py-faster-rcnn's inclusive-pixel convention: +1 in widths, heights and intersections. */
  readonly plusOne?: boolean;
  /** Suppress at IoU ≥ threshold (py-faster-rcnn cpu_nms) instead of IoU > threshold. */
  readonly inclusive?: boolean;
}

interface NmsAttrs {
  readonly iouThreshold: number;
  readonly maxOutput: number;
  readonly plusOne: boolean;
  readonly inclusive: boolean;
}

function nmsAttrs(attrs: Attrs): NmsAttrs {
  const t = attrs.iouThreshold;
  if (typeof t !== 'number' || Number.isNaN(t)) fail(`attribute iouThreshold must be a number, got ${fmtValue(t)}`);
  const m = attrs.maxOutput;
  if (typeof m !== 'number' || !Number.isInteger(m) || m < 1) {
    fail(`attribute maxOutput must be a positive integer, got ${fmtValue(m)}`);
  }
  const plusOne = attrs.plusOne ?? false;
  const inclusive = attrs.inclusive ?? false;
  if (typeof plusOne !== 'boolean') fail(`attribute plusOne must be a boolean, got ${fmtValue(plusOne)}`);
  if (typeof inclusive !== 'boolean') fail(`attribute inclusive must be a boolean, got ${fmtValue(inclusive)}`);
  return { iouThreshold: t, maxOutput: m, plusOne, inclusive };
}

const f32Bits = new DataView(new ArrayBuffer(4));

/** The float32 next to `f` (a float32) towards +Infinity (dir 1) or -Infinity (dir -1). */
function f32Step(f: number, dir: 1 | -1): number {
  if (f === 0) return dir * 2 ** -149;
  f32Bits.setFloat32(0, f);
  const b = f32Bits.getUint32(0);
  f32Bits.setUint32(0, f > 0 === dir > 0 ? b + 1 : b - 1);
  return f32Bits.getFloat32(0);
}

/**
 * The float32 threshold that gives, in float32, the same test as comparing a float32 IoU with the
 * float64 threshold t: largest float32 ≤ t for '>', smallest float32 ≥ t for '≥'.
 */
export function f32Threshold(t: number, inclusive: boolean): number {
  const f = Math.fround(t);
  if (f === t) return f;
  if (!inclusive) return f > t ? f32Step(f, -1) : f;
  return f < t ? f32Step(f, 1) : f;
}

// ---------------------------------------------------------------- CPU reference

/**
 * Greedy NMS of one problem (the reference of the op; float32 arithmetic as above, threshold compared
 * in float64). `boxes` are flat [n, 4]; returns the kept original indices in score order (≤ maxOutput).
 */
export function cpuNms(boxes: ArrayLike<number>, scores: ArrayLike<number>, opts: NmsOptions): number[] {
  const n = scores.length;
  const b = Float32Array.from(boxes);
  const order = cpuArgsortRow(Float32Array.from(scores), 'f32', true);
  const plusOne = opts.plusOne ?? false;
  const inclusive = opts.inclusive ?? false;
  const t = opts.iouThreshold;
  const maxOutput = opts.maxOutput ?? n;
  const areas = Array.from({ length: n }, (_, k) => boxAreaF32(b, k, plusOne));
  const removed = new Uint8Array(n);
  const keep: number[] = [];
  for (let p = 0; p < n && keep.length < maxOutput; p++) {
    const i = order[p] as number;
    if (removed[i]) continue;
    keep.push(i);
    for (let q = p + 1; q < n; q++) {
      const j = order[q] as number;
      if (removed[j]) continue;
      const iou = iouF32(b, i, b, j, plusOne, { areaA: areas[i], areaC: areas[j] });
      if (inclusive ? iou >= t : iou > t) removed[j] = 1;
    }
  }
  return keep;
}

// ---------------------------------------------------------------- the op

/** The box count N and the number of problems (the leading axes) of nms's inputs; either may be a run-time size. */
function nmsSizes(bx: TensorType, sc: TensorType): { n: Dim; problems: Dim; lead: Dim[] } {
  const bd = dimsOf(bx);
  const sd = dimsOf(sc);
  const r = bd.length;
  if (r < 2 || bd[r - 1] !== 4) fail(`boxes must have shape [..., N, 4], got ${fmtShape(bd)}`);
  const lead = bd.slice(0, -1);
  if (sd.length !== lead.length || !lead.every((d, i) => dimEq(d, sd[i] as Dim))) {
    fail(`scores ${fmtShape(sd)} must have shape ${fmtShape(lead)} (one score per box of ${fmtShape(bd)})`);
  }
  const problemDims = lead.slice(0, -1);
  return { n: lead[lead.length - 1] as Dim, problems: dimProd(problemDims), lead: problemDims };
}

function nmsInfer(inputs: readonly TensorType[], attrs: Attrs): TensorType {
  if (inputs.length !== 2) fail(`takes (boxes, scores), got ${inputs.length} inputs`);
  const [bx, sc] = inputs as [TensorType, TensorType];
  const a = nmsAttrs(attrs);
  if (bx.dtype !== 'f32' || sc.dtype !== 'f32') fail(`boxes and scores must be f32, got ${bx.dtype} and ${sc.dtype}`);
  const { lead } = nmsSizes(bx, sc);
  return typeOf([...lead, a.maxOutput + 1], 'i32');
}

registerOp({
  name: 'nms',
  kind: 'opaque',
  dynamic: true,
  infer: nmsInfer,
  cpu: ({ inputs, attrs }) => {
    const [bx, sc] = inputs as [RefTensor, RefTensor];
    const a = nmsAttrs(attrs);
    const n = sc.shape[sc.shape.length - 1] as number;
    const problems = sc.data.length / n;
    const m = a.maxOutput;
    const out = new Float64Array(problems * (m + 1)).fill(-1);
    for (let p = 0; p < problems; p++) {
      const keep = cpuNms(bx.data.subarray(p * n * 4, (p + 1) * n * 4), sc.data.subarray(p * n, (p + 1) * n), a);
      keep.forEach((v, k) => {
        out[p * (m + 1) + k] = v;
      });
      out[p * (m + 1) + m] = keep.length;
    }
    return out;
  },
  // The indices carry no gradient.
  grad: () => [null, null],
  lower: (args) => {
    const [bx, sc] = args.inputs as [BufArg, BufArg];
    const a = nmsAttrs(args.attrs);
    const { n, problems } = nmsSizes(bx.type, sc.type);
    const limits = args.limits;
    const geometry = greedyNmsGeometry(dimMax(n), a.maxOutput, limits);
    if (geometry !== undefined) {
      const sortWords = dimMax(problems) * geometry.runs * geometry.R;
      if (sortWords * 4 > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)) {
        throw new WgflowError(
          `nms: the sorted runs of ${dimFmt(problems)} × ${dimFmt(n)} scores need ${sortWords * 4}-byte scratch buffers, over this device's storage binding limit (declared at ${args.node.site})`,
        );
      }
      return lowerGreedyNmsKernels({
        name: args.name,
        scratch: args.scratch,
        boxes: bx.buf,
        scores: sc.buf,
        out: args.output.buf,
        problems,
        n,
        maxOutput: a.maxOutput,
        geometry,
        plusOne: a.plusOne,
        inclusive: a.inclusive,
        threshold: f32Threshold(a.iouThreshold, a.inclusive),
      });
    }
    if (typeof n !== 'number' || typeof problems !== 'number')
      throw new WgflowError(
        `nms: over run-time sizes (problems ${dimFmt(problems)}, boxes ${dimFmt(n)}) only the greedy kernel runs, and maxOutput ${a.maxOutput} does not fit its workgroup memory on this device: lower maxOutput or use static sizes (declared at ${args.node.site})`,
      );
    const sort = lowerArgsortKernels({
      name: `${args.name}_sort`,
      limits,
      scratch: args.scratch,
      input: sc.buf,
      keyType: 'f32',
      rows: problems,
      n,
      descending: true,
    });
    return [...sort.kernels, ...lowerBitmaskKernels(args, a, n, problems, sort.indices, sort.rowStride)];
  },
});

/**
 * The fallback when the greedy walk's kept list does not fit workgroup memory (large maxOutput): the
 * IoU bitmask of all pairs and the sequential scan (kernels 2 and 3 of the file comment).
 */
function lowerBitmaskKernels(
  args: LowerArgs,
  a: NmsAttrs,
  n: number,
  problems: number,
  order: BufRef,
  P: number,
): Kernel[] {
  const bx = args.inputs[0] as BufArg;
  const limits = args.limits;
  const cb = Math.ceil(n / 32);
  const maskWords = problems * n * cb;
  const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (maskWords * 4 > maxBinding) {
    throw new WgflowError(
      `nms: the IoU mask of ${problems} × ${n} boxes (maxOutput ${a.maxOutput}: too many kept boxes for the greedy kernel's workgroup memory) needs ${maskWords * 4} bytes, over this device's storage binding limit of ${maxBinding} bytes (declared at ${args.node.site})`,
    );
  }
  if ((cb + 4) * 4 > limits.maxComputeWorkgroupStorageSize) {
    throw new WgflowError(
      `nms: ${n} boxes need ${(cb + 4) * 4} bytes of workgroup memory, over the device's ${limits.maxComputeWorkgroupStorageSize} (declared at ${args.node.site})`,
    );
  }
  if (cb > limits.maxComputeWorkgroupsPerDimension || problems > limits.maxComputeWorkgroupsPerDimension) {
    throw new WgflowError(
      `nms: ${problems} problems of ${n} boxes exceed the device's workgroup grid limit ${limits.maxComputeWorkgroupsPerDimension} (declared at ${args.node.site})`,
    );
  }
  {
    const mask = args.scratch('u32', maskWords);
    const plusOne = a.plusOne;
    const thr = K.f32(f32Threshold(a.iouThreshold, a.inclusive));

    // ---- kernel 2: the IoU mask
    // R row blocks per workgroup (32 × R threads) share the cached column block
    const R = Math.max(1, Math.min(8, Math.floor(limits.maxComputeInvocationsPerWorkgroup / 32), cb));
    const mk = new K.KernelBuilder(`${args.name}_mask`);
    {
      const kb = mk;
      const col = kb.let('col', K.builtin('wg_x'));
      const rowGroup = kb.let('rowgroup', K.mul(K.builtin('wg_y'), K.u32(R)));
      const prob = kb.let('prob', K.builtin('wg_z'));
      const t = K.builtin('lid_x');
      const row = kb.let('row', K.add(rowGroup, K.builtin('lid_y')));
      // uniform: the whole workgroup leaves together, before any barrier
      kb.if(K.gt(rowGroup, col), () => kb.ret());
      const cache = ['x1', 'y1', 'x2', 'y2', 'area'].map((nm) => kb.array(`s${nm}`, 'f32', 32, 'workgroup'));
      const boxBase = kb.let('boxbase', K.mul(prob, K.u32(n)));
      const orderBase = kb.let('orderbase', K.mul(prob, K.u32(P)));
      /** Coordinates of the box at sorted position `pos` (clamped into range). */
      const loadBox = (pos: Expr): Expr[] => {
        const orig = kb.let('orig', K.load(order, K.add(orderBase, K.min(pos, K.u32(n - 1)))));
        const at = kb.let('at', K.mul(K.add(boxBase, K.min(orig, K.u32(n - 1))), K.u32(4)));
        return [0, 1, 2, 3].map((c) => kb.let('c', K.load(bx.buf, c === 0 ? at : K.add(at, K.u32(c)))));
      };
      /** The +1 of the PFR convention, not a literal (see emitOne). */
      const oneFrom = (x: Expr): Expr => emitOne(kb, x);
      const j0 = kb.let('j0', K.add(K.mul(col, K.u32(32)), t));
      kb.if(K.and(K.lt(j0, K.u32(n)), K.eq(K.builtin('lid_y'), K.u32(0))), () => {
        const c = loadBox(j0);
        c.forEach((v, k) => kb.astore(cache[k] as string, t, v));
        kb.astore(
          cache[4] as string,
          t,
          emitArea(kb, c as unknown as BoxK, plusOne ? oneFrom(c[0] as Expr) : undefined),
        );
      });
      kb.barrier();
      const i = kb.let('i', K.add(K.mul(row, K.u32(32)), t));
      kb.if(K.and(K.lt(i, K.u32(n)), K.le(row, col)), () => {
        const [ax1, ay1, ax2, ay2] = loadBox(i) as [Expr, Expr, Expr, Expr];
        const oneA = plusOne ? oneFrom(ax1) : undefined;
        const areaA = emitArea(kb, [ax1, ay1, ax2, ay2], oneA);
        const bits = kb.var('bits', K.u32(0));
        const start = kb.let('start', K.select(K.eq(row, col), K.add(t, K.u32(1)), K.u32(0)));
        const colSize = kb.let('colsize', K.min(K.sub(K.u32(n), K.mul(col, K.u32(32))), K.u32(32)));
        kb.for(
          'jj',
          start,
          colSize,
          (jj) => {
            const sx = (k: number) => kb.aload(cache[k] as string, 'f32', jj);
            const iou = emitIou(kb, [ax1, ay1, ax2, ay2], areaA, [sx(0), sx(1), sx(2), sx(3)], sx(4), oneA);
            // NaN (0/0 for two empty boxes) compares false: never suppresses
            kb.if(a.inclusive ? K.ge(iou, thr) : K.gt(iou, thr), () =>
              kb.assign(bits, K.bitOr(bits, K.shl(K.u32(1), jj))),
            );
          },
          { t: 'u32' },
        );
        kb.store(mask, K.add(K.mul(K.add(boxBase, i), K.u32(cb)), col), bits);
      });
    }
    const maskKernel = mk.finish([32, R, 1], { xyz: [cb, Math.ceil(cb / R), problems] });

    // ---- kernel 3: the sequential scan, one workgroup per problem
    const T = Math.min(linearWorkgroupSize(limits), Math.max(32, 2 ** Math.ceil(Math.log2(cb))));
    const m = a.maxOutput;
    const out = args.output.buf;
    const sk = new K.KernelBuilder(`${args.name}_scan`);
    {
      const kb = sk;
      const lidx = K.builtin('lidx');
      const wg = kb.let('wg', K.builtin('wg_linear'));
      const valid = kb.let('valid', K.lt(wg, K.u32(problems)));
      const prob = kb.let('prob', K.min(wg, K.u32(problems - 1)));
      const removed = kb.array('removed', 'u32', cb, 'workgroup');
      const state = kb.array('state', 'u32', 2, 'workgroup'); // [0]: kept bits of the current word, [1]: count
      const maskRow = kb.let('maskrow', K.mul(prob, K.u32(n)));
      const orderBase = kb.let('orderbase', K.mul(prob, K.u32(P)));
      const outBase = kb.let('outbase', K.mul(prob, K.u32(m + 1)));
      kb.for('w', lidx, K.u32(cb), (w) => kb.astore(removed, w, K.u32(0)), { t: 'u32', step: T });
      kb.if(K.eq(lidx, K.u32(0)), () => kb.astore(state, K.u32(1), K.u32(0)));
      kb.barrier();
      kb.for(
        'w',
        K.u32(0),
        K.u32(cb),
        (w) => {
          kb.if(K.eq(lidx, K.u32(0)), () => {
            const rem = kb.var('rem', kb.aload(removed, 'u32', w));
            const cnt = kb.var('cnt', kb.aload(state, 'u32', K.u32(1)));
            const kept = kb.var('kept', K.u32(0));
            kb.for(
              'b',
              K.u32(0),
              K.u32(32),
              (b) => {
                const i = kb.let('i', K.add(K.mul(w, K.u32(32)), b));
                const free = K.eq(K.bitAnd(K.shr(rem, b), K.u32(1)), K.u32(0));
                kb.if(K.and(K.and(K.lt(i, K.u32(n)), free), K.lt(cnt, K.u32(m))), () => {
                  kb.assign(kept, K.bitOr(kept, K.shl(K.u32(1), b)));
                  kb.if(valid, () =>
                    kb.store(out, K.add(outBase, cnt), K.cast('i32', K.load(order, K.add(orderBase, i)))),
                  );
                  kb.assign(cnt, K.add(cnt, K.u32(1)));
                  kb.assign(rem, K.bitOr(rem, K.load(mask, K.add(K.mul(K.add(maskRow, i), K.u32(cb)), w))));
                });
              },
              { t: 'u32' },
            );
            kb.astore(state, K.u32(0), kept);
            kb.astore(state, K.u32(1), cnt);
          });
          kb.barrier();
          const kept = kb.let('keptw', kb.aload(state, 'u32', K.u32(0)));
          kb.if(K.ne(kept, K.u32(0)), () => {
            kb.for(
              'j',
              K.add(K.add(w, K.u32(1)), lidx),
              K.u32(cb),
              (j) => {
                const acc = kb.var('acc', kb.aload(removed, 'u32', j));
                kb.for(
                  'b',
                  K.u32(0),
                  K.u32(32),
                  (b) => {
                    kb.if(K.ne(K.bitAnd(K.shr(kept, b), K.u32(1)), K.u32(0)), () => {
                      const i = K.add(K.mul(w, K.u32(32)), b);
                      kb.assign(acc, K.bitOr(acc, K.load(mask, K.add(K.mul(K.add(maskRow, i), K.u32(cb)), j))));
                    });
                  },
                  { t: 'u32' },
                );
                kb.astore(removed, j, acc);
              },
              { t: 'u32', step: T },
            );
          });
          kb.barrier();
        },
        { t: 'u32' },
      );
      const count = kb.let('count', kb.aload(state, 'u32', K.u32(1)));
      kb.if(valid, () => {
        kb.for('k', K.add(count, lidx), K.u32(m), (k) => kb.store(out, K.add(outBase, k), K.i32(-1)), {
          t: 'u32',
          step: T,
        });
        kb.if(K.eq(lidx, K.u32(0)), () => kb.store(out, K.add(outBase, K.u32(m)), K.cast('i32', count)));
      });
    }
    const scanKernel: Kernel = sk.finish([T, 1, 1], { linear: problems });
    return [maskKernel, scanKernel];
  }
}

// ---------------------------------------------------------------- DSL helpers

export interface NmsResult {
  /** i32 [..., maxOutput]: kept original indices in descending score order, -1 past the count. */
  readonly indices: Tensor;
  /** i32 [..., 1]: how many indices are valid. */
  readonly count: Tensor;
}

/** Splits the packed [..., capacity + 1] output of an op with a variable-length result. */
export function splitPacked(packed: Tensor): NmsResult {
  const lead = packed.shape.slice(0, -1);
  const cap = (packed.shape[packed.rank - 1] as number) - 1;
  const z = lead.map(() => 0);
  return {
    indices: packed.slice([...z, 0], [...lead, cap]),
    count: packed.slice([...z, cap], [...lead, cap + 1]),
  };
}

function nmsAttrsOf(opts: NmsOptions, n: number): Attrs {
  return {
    iouThreshold: opts.iouThreshold,
    maxOutput: opts.maxOutput ?? n,
    plusOne: opts.plusOne ?? false,
    inclusive: opts.inclusive ?? false,
  };
}

/** The packed nms output i32 [..., maxOutput + 1] (indices, then the count). */
export function nmsPacked(boxes: Tensor, scores: Tensor, opts: NmsOptions): Tensor {
  const nd = scores.dims[scores.rank - 1] as Dim;
  // without maxOutput: every box may be kept (the largest count where N is a run-time size)
  const n = dimMax(nd);
  return boxes.builder.apply('nms', [boxes, scores], nmsAttrsOf(opts, n));
}

/**
 * NMS of boxes [..., N, 4] with scores [..., N] (leading dimensions: independent problems). See the
 * file comment for the exact semantics.
 */
export function nms(boxes: Tensor, scores: Tensor, opts: NmsOptions): NmsResult {
  return splitPacked(nmsPacked(boxes, scores, opts));
}

/**
 * The boxes shifted by class · (max − min + 1), max and min over every coordinate (the coordinate-offset
 * trick of batchedNms). torchvision shifts by class · (max + 1), which separates the classes only when
 * no coordinate is negative; with the range, the boxes of class c lie in [min + c·r', max + c·r']
 * (r' = max − min + 1), so two classes are always at least one unit apart, whatever the coordinates.
 */
export function offsetBoxesByClass(boxes: Tensor, classes: Tensor, scores: Tensor): Tensor {
  if (
    classes.dtype !== 'i32' ||
    classes.rank !== scores.rank ||
    !classes.shape.every((d, i) => d === scores.shape[i])
  ) {
    throw new WgflowError(
      `batchedNms: classes must be i32 with the scores' shape ${fmtShape(scores.shape)}, got ${classes.dtype}${fmtShape(classes.shape)}`,
    );
  }
  // the coordinate range of each problem (leading index), so that a problem's result does not depend
  // on the others
  const lead = classes.dims.slice(0, -1);
  const axes = [lead.length, lead.length + 1];
  const range = boxes
    .max(axes, true)
    .sub(boxes.neg().max(axes, true).neg())
    .reshape(lead.length ? [...lead, 1] : []);
  const offsets = classes.cast('f32').mul(range.add(1));
  return boxes.add(offsets.reshape([...classes.dims, 1]));
}

/** batchedNms's packed output i32 [..., maxOutput + 1]. */
export function batchedNmsPacked(boxes: Tensor, scores: Tensor, classes: Tensor, opts: NmsOptions): Tensor {
  return nmsPacked(offsetBoxesByClass(boxes, classes, scores), scores, opts);
}

/**
 * NMS independently per class (torchvision batched_nms) with the coordinate-offset trick: every box
 * is shifted by class · (max − min + 1), the coordinate range over all boxes computed on the GPU, so
 * boxes of different classes never overlap and one NMS does all classes. Any finite coordinates work,
 * negative ones included (torchvision's max + 1 offset needs non-negative boxes); classes are integers
 * (i32, the scores' shape). As in torchvision, the shifted coordinates are rounded to float32, so a
 * pair whose IoU is within rounding of the threshold may be decided differently than by a per-class
 * loop on the original coordinates.
 */
export function batchedNms(boxes: Tensor, scores: Tensor, classes: Tensor, opts: NmsOptions): NmsResult {
  return splitPacked(batchedNmsPacked(boxes, scores, classes, opts));
}
