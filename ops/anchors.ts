/**
 * Anchors (spec §1). The base anchors are constants computed on the host exactly as the reference
 * implementations do (py-faster-rcnn's generate_anchors with numpy's half-to-even rounding;
 * torchvision's AnchorGenerator in float32 with torch.round, also half-to-even). The GPU ops:
 * - shift_anchors(base [A,4] [, feature map]) → [H_f·W_f·A, 4] (H_f, W_f from attributes or from the
 *   map's sizes, which may be run-time sizes): anchor (y·W_f + x)·A + a = base[a] + (x·sx, y·sy, x·sx, y·sy)
 *   (cell-major, anchor-minor, as both implementations lay them out);
 * - anchors_inside(anchors [N,4]) → u32 [N]: PFR's "fully inside the image" test
 *   x1 ≥ −b, y1 ≥ −b, x2 < W + b, y2 < H + b (allowed_border b = 0 by default).
 */
import { type Dim, dimFloorDiv, dimMul } from '../compiler/dims.js';
import { fail, WgflowError } from '../compiler/errors.js';
import type { Attrs } from '../compiler/ir.js';
import type { Expr } from '../compiler/kernel/ast.js';
import * as K from '../compiler/kernel/build.js';
import { type LowerArgs, type RefTensor, registerOp } from '../compiler/registry.js';
import type { GraphBuilder, Tensor } from '../compiler/tensor.js';
import { dimsOf, fmtType, type TensorType, typeOf } from '../compiler/types.js';
import { checkBoxes } from './boxes.js';
import { divD, modD } from './kit/indexing.js';
import { perThread } from './kit/launch.js';
import { roundHalfEven } from './kit/rounding.js';
import { storeOut } from './kit/store.js';

// ---------------------------------------------------------------- host-side base anchors

/** One box row (x1, y1, x2, y2). */
export type Row = [number, number, number, number];

/**
 * py-faster-rcnn generate_anchors(base_size, ratios, scales): ratio-major, scale-minor, rows
 * (x1, y1, x2, y2) in inclusive pixel coordinates. The defaults give the 9 VGG16 anchors of spec §1.
 */
export function generateAnchors(
  baseSize = 16,
  ratios: readonly number[] = [0.5, 1, 2],
  scales: readonly number[] = [8, 16, 32],
): Row[] {
  const whctrs = (a: Row): [number, number, number, number] => {
    const w = a[2] - a[0] + 1;
    const h = a[3] - a[1] + 1;
    return [w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)];
  };
  const mk = (w: number, h: number, cx: number, cy: number): Row => [
    cx - 0.5 * (w - 1),
    cy - 0.5 * (h - 1),
    cx + 0.5 * (w - 1),
    cy + 0.5 * (h - 1),
  ];
  const base: Row = [0, 0, baseSize - 1, baseSize - 1];
  const [w, h, cx, cy] = whctrs(base);
  const size = w * h;
  const out: Row[] = [];
  for (const r of ratios) {
    const ws = roundHalfEven(Math.sqrt(size / r));
    const hs = roundHalfEven(ws * r);
    const [rw, rh, rcx, rcy] = whctrs(mk(ws, hs, cx, cy));
    for (const s of scales) out.push(mk(rw * s, rh * s, rcx, rcy));
  }
  return out;
}

/**
 * torchvision AnchorGenerator.generate_anchors(scales, aspect_ratios) for one feature level, in
 * float32 as torch computes it: h_ratio = √r, w_ratio = 1/h_ratio, ws = w_ratio·size (ratio-major),
 * base = round([−ws, −hs, ws, hs] / 2). Centred on (0, 0).
 */
export function tvBaseAnchors(sizes: readonly number[], aspectRatios: readonly number[]): Row[] {
  const f = Math.fround;
  const out: Row[] = [];
  for (const r of aspectRatios) {
    const hr = f(Math.sqrt(f(r)));
    const wr = f(1 / hr);
    for (const s of sizes) {
      const ws = f(wr * f(s));
      const hs = f(hr * f(s));
      out.push([
        roundHalfEven(f(-ws / 2)),
        roundHalfEven(f(-hs / 2)),
        roundHalfEven(f(ws / 2)),
        roundHalfEven(f(hs / 2)),
      ]);
    }
  }
  return out;
}

/** torchvision AnchorGenerator(sizes, aspect_ratios): base anchors per feature level. */
export function anchorGenerator(
  sizes: readonly (readonly number[])[] = [[128, 256, 512]],
  aspectRatios: readonly (readonly number[])[] = [[0.5, 1, 2]],
): Row[][] {
  if (sizes.length !== aspectRatios.length) {
    throw new WgflowError(
      `anchorGenerator: ${sizes.length} size tuples but ${aspectRatios.length} aspect-ratio tuples (one of each per level)`,
    );
  }
  return sizes.map((s, i) => tvBaseAnchors(s, aspectRatios[i] as readonly number[]));
}

/** torchvision's per-axis stride: padded image size // feature size. Returns [sy, sx]. */
export function tvStrides(
  imageSize: readonly [number, number],
  featureSize: readonly [number, number],
): [number, number] {
  return [Math.floor(imageSize[0] / featureSize[0]), Math.floor(imageSize[1] / featureSize[1])];
}

/** Host reference of shift_anchors: [H·W·A] rows. */
export function shiftAnchorsHost(
  base: readonly (readonly number[])[],
  featureHeight: number,
  featureWidth: number,
  stride: readonly [number, number],
): Row[] {
  const out: Row[] = [];
  for (let y = 0; y < featureHeight; y++) {
    for (let x = 0; x < featureWidth; x++) {
      const sx = x * stride[1];
      const sy = y * stride[0];
      for (const b of base)
        out.push([(b[0] as number) + sx, (b[1] as number) + sy, (b[2] as number) + sx, (b[3] as number) + sy]);
    }
  }
  return out;
}

// ---------------------------------------------------------------- shift_anchors

const posInt = (attrs: Attrs, key: string): number => {
  const v = attrs[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    fail(`attribute ${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
};

function strideOf(attrs: Attrs): [number, number] {
  const v = attrs.stride;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0)) {
    fail(`attribute stride must be [sy, sx] (positive numbers), got ${JSON.stringify(v)}`);
  }
  return v as [number, number];
}

/**
 * The feature map's [H_f, W_f]: from the attributes height/width, or from a second input (the feature
 * map itself, [N, C, H_f, W_f], not read), whose sizes may be run-time sizes.
 */
function featureHW(inputs: readonly (TensorType | undefined)[], attrs: Attrs): [Dim, Dim] {
  const f = inputs[1];
  if (!f) return [posInt(attrs, 'height'), posInt(attrs, 'width')];
  const d = dimsOf(f);
  if (d.length !== 4) fail(`the feature map must be [N, C, H, W], got ${fmtType(f)}`);
  return [d[2] as Dim, d[3] as Dim];
}

registerOp({
  name: 'shift_anchors',
  kind: 'opaque',
  dynamic: true,
  infer: (inputs, attrs) => {
    const a = checkBoxes(inputs[0], 'base anchors');
    if (typeof a !== 'number')
      fail(`the base anchors must have a static count, got ${fmtType(inputs[0] as TensorType)}`);
    if (inputs.length > 2) fail(`takes [base] or [base, feature map], got ${inputs.length} inputs`);
    strideOf(attrs);
    const [h, w] = featureHW(inputs, attrs);
    return typeOf([dimMul(dimMul(h, w), a), 4], 'f32');
  },
  cpu: ({ inputs, attrs }) => {
    const b = inputs[0] as RefTensor;
    const a = b.shape[0] as number;
    const [h, w] = featureHW(inputs, attrs) as [number, number];
    const base = Array.from({ length: a }, (_, i) => Array.from(b.data.subarray(i * 4, i * 4 + 4)));
    return Float64Array.from(shiftAnchorsHost(base, h, w, strideOf(attrs)).flat());
  },
  // d out / d base: every cell's copy of anchor a contributes (only matters if the base anchors are learned).
  grad: ({ inputs, dy }) => {
    const a = (inputs[0] as Tensor).shape[0] as number;
    const cells = dimFloorDiv(dy.dims[0] as Dim, a);
    return [
      dy
        .reshape([cells, a * 4])
        .sum([0])
        .reshape([a, 4]),
      ...(inputs.length > 1 ? [null] : []),
    ];
  },
  lower: (args) => {
    const b = args.inputs[0] as LowerArgs['output'];
    const a = b.type.shape[0] as number;
    const [, w] = featureHW(
      args.inputs.map((i) => i.type),
      args.attrs,
    );
    const [sy, sx] = strideOf(args.attrs);
    const n = dimsOf(args.output.type)[0] as Dim;
    // one thread per element: t = row·4 + c, row = cell·A + anchor, cell = y·W + x
    return [
      perThread(args.name, dimMul(n, 4), (kb, t) => {
        const c = kb.let('c', K.mod(t, K.u32(4)));
        const row = kb.let('row', K.div(t, K.u32(4)));
        const anchor = a === 1 ? K.u32(0) : kb.let('anchor', K.mod(row, K.u32(a)));
        const cell = a === 1 ? row : kb.let('cell', K.div(row, K.u32(a)));
        const x = kb.let('x', K.cast('f32', modD(cell, w)));
        const y = kb.let('y', K.cast('f32', divD(cell, w)));
        const isX = K.eq(K.mod(c, K.u32(2)), K.u32(0));
        const shift = K.select(isX, K.mul(x, K.f32(sx)), K.mul(y, K.f32(sy)));
        storeOut(kb, args, t, K.add(K.load(b.buf, K.add(K.mul(anchor, K.u32(4)), c)), shift));
      }),
    ];
  },
});

// ---------------------------------------------------------------- anchors_inside

function borderOf(attrs: Attrs): number {
  const v = attrs.allowedBorder ?? 0;
  if (typeof v !== 'number' || !Number.isFinite(v))
    fail(`attribute allowedBorder must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function imageDim(attrs: Attrs, key: 'imageHeight' | 'imageWidth'): number {
  const v = attrs[key];
  if (typeof v !== 'number' || !(v > 0)) fail(`attribute ${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

registerOp({
  name: 'anchors_inside',
  kind: 'opaque',
  infer: ([b], attrs) => {
    borderOf(attrs);
    imageDim(attrs, 'imageHeight');
    imageDim(attrs, 'imageWidth');
    return { shape: [checkBoxes(b, 'anchors') as number], dtype: 'u32' };
  },
  cpu: ({ inputs, attrs }) => {
    const b = inputs[0] as RefTensor;
    const bd = borderOf(attrs);
    const h = imageDim(attrs, 'imageHeight');
    const w = imageDim(attrs, 'imageWidth');
    const n = b.shape[0] as number;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const at = (c: number): number => b.data[i * 4 + c] as number;
      out[i] = at(0) >= -bd && at(1) >= -bd && at(2) < w + bd && at(3) < h + bd ? 1 : 0;
    }
    return out;
  },
  lower: (args) => {
    const b = args.inputs[0] as LowerArgs['output'];
    const bd = borderOf(args.attrs);
    const h = imageDim(args.attrs, 'imageHeight');
    const w = imageDim(args.attrs, 'imageWidth');
    return [
      perThread(args.name, b.type.shape[0] as number, (kb, t) => {
        const base = kb.let('base', K.mul(t, K.u32(4)));
        const v = [0, 1, 2, 3].map((c) => K.load(b.buf, c === 0 ? base : K.add(base, K.u32(c)))) as [
          Expr,
          Expr,
          Expr,
          Expr,
        ];
        const ok = K.and(
          K.and(K.ge(v[0], K.f32(-bd)), K.ge(v[1], K.f32(-bd))),
          K.and(K.lt(v[2], K.f32(w + bd)), K.lt(v[3], K.f32(h + bd))),
        );
        storeOut(kb, args, t, K.select(ok, K.u32(1), K.u32(0)));
      }),
    ];
  },
});

// ---------------------------------------------------------------- DSL helpers

export interface ShiftOptions {
  /** The feature map's size, or the feature map itself ([N, C, H_f, W_f], whose sizes may be run-time sizes). */
  readonly featureHeight?: number;
  readonly featureWidth?: number;
  readonly feature?: Tensor;
  /** [sy, sx] or one stride for both axes (PFR feat_stride 16). */
  readonly stride: number | readonly [number, number];
}

/**
 * All anchors of a feature map: [H_f·W_f·A, 4]. `base` is an [A,4] tensor or host rows (a constant). With
 * `feature`, one program serves every feature size (the map's run-time H_f, W_f).
 */
export function shiftAnchors(
  g: GraphBuilder,
  base: Tensor | readonly (readonly number[])[],
  opts: ShiftOptions,
): Tensor {
  const t = Array.isArray(base)
    ? g.constant((base as readonly (readonly number[])[]).flat(), [base.length, 4])
    : (base as Tensor);
  if (t.dtype !== 'f32' || t.rank !== 2 || t.shape[1] !== 4)
    throw new WgflowError(`shiftAnchors: base anchors must be f32 [A,4], got ${fmtType(t.type)}`);
  const stride = typeof opts.stride === 'number' ? [opts.stride, opts.stride] : [opts.stride[0], opts.stride[1]];
  if (opts.feature) return g.apply('shift_anchors', [t, opts.feature], { stride });
  if (opts.featureHeight === undefined || opts.featureWidth === undefined)
    throw new WgflowError('shiftAnchors: give featureHeight and featureWidth, or the feature map (feature)');
  return g.apply('shift_anchors', [t], { height: opts.featureHeight, width: opts.featureWidth, stride });
}

/** u32 [N]: 1 for anchors fully inside an image of [H, W] (PFR anchor_target_layer, allowed_border b). */
export function anchorsInside(anchors: Tensor, imageSize: readonly [number, number], allowedBorder = 0): Tensor {
  return anchors.builder.apply('anchors_inside', [anchors], {
    imageHeight: imageSize[0],
    imageWidth: imageSize[1],
    allowedBorder,
  });
}
