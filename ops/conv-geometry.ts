/**
 * Geometry shared by conv2d (ops/conv2d.ts) and its backward ops (ops/conv2d-grad.ts): the
 * {stride, padding, dilation, groups} attributes, output sizes, the checked sizes of one
 * convolution and a float64 walk over its taps.
 */
import { type Dim, dimAdd, dimFloorDiv, dimMin } from '../compiler/dims.js';
import { fail } from '../compiler/errors.js';
import { type Attrs, fmtValue } from '../compiler/ir.js';
import { type DimShape, fmtShape, type Shape } from '../compiler/types.js';

export interface Conv2dAttrs {
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  readonly dh: number;
  readonly dw: number;
  readonly groups: number;
}

/** Output extent along one axis: floor((in + 2·pad − dil·(k−1) − 1) / stride) + 1 (≤ 0 when the kernel does not fit). */
export function conv2dOutSize(inSize: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((inSize + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}

/** {@link conv2dOutSize} of an extent that may be a run-time size (a size expression then). */
export function conv2dOutDim(inSize: Dim, k: number, stride: number, pad: number, dil: number): Dim {
  if (typeof inSize === 'number') return conv2dOutSize(inSize, k, stride, pad, dil);
  return dimAdd(dimFloorDiv(dimAdd(inSize, 2 * pad - dil * (k - 1) - 1), stride), 1);
}

function pairOf(attrs: Attrs, key: string, min: number): [number, number] {
  const v = attrs[key];
  if (
    !Array.isArray(v) ||
    v.length !== 2 ||
    !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= min)
  ) {
    fail(`attribute ${key} must be a pair of integers ≥ ${min}, got ${fmtValue(v)}`);
  }
  return [v[0] as number, v[1] as number];
}

export function conv2dAttrs(attrs: Attrs): Conv2dAttrs {
  const [sh, sw] = pairOf(attrs, 'stride', 1);
  const [ph, pw] = pairOf(attrs, 'padding', 0);
  const [dh, dw] = pairOf(attrs, 'dilation', 1);
  const groups = attrs.groups;
  if (typeof groups !== 'number' || !Number.isInteger(groups) || groups < 1) {
    fail(`attribute groups must be a positive integer, got ${fmtValue(groups)}`);
  }
  return { sh, sw, ph, pw, dh, dw, groups };
}

/**
 * Every size of a convolution, after the shape rule's checks. With `D = Dim`, N, H, W, OH and OW may be
 * run-time sizes (channels and kernel sizes are static).
 */
export interface Conv2dDims<D extends Dim = number> extends Conv2dAttrs {
  readonly N: D;
  readonly C: number;
  readonly H: D;
  readonly W: D;
  readonly O: number;
  readonly KH: number;
  readonly KW: number;
  readonly OH: D;
  readonly OW: D;
  /** Channels per group: C / groups and O / groups. */
  readonly Cg: number;
  readonly Og: number;
}

/**
 * The sizes of convolving x (NCHW, rank 4) with w (OIHW, rank 4) under attributes a, after checking
 * that they agree; `names` says what the errors call x and w.
 */
export function checkConv2dDims(
  x: Shape,
  w: Shape,
  a: Conv2dAttrs,
  names: { readonly x: string; readonly w: string } = { x: 'input', w: 'weight' },
): Conv2dDims {
  return checkConv2dDimsDyn(x, w, a, names) as Conv2dDims;
}

/**
 * {@link checkConv2dDims} where the batch and spatial sizes of x may be run-time sizes; channels and the
 * weight are static, and the output must be at least 1×1 for the smallest input.
 */
export function checkConv2dDimsDyn(
  x: DimShape,
  w: DimShape,
  a: Conv2dAttrs,
  names: { readonly x: string; readonly w: string } = { x: 'input', w: 'weight' },
): Conv2dDims<Dim> {
  const [N, C, H, W] = x as [Dim, Dim, Dim, Dim];
  if (typeof C !== 'number' || !w.every((d) => typeof d === 'number'))
    fail(`channels and the weight must be static sizes, got ${names.x} ${fmtShape(x)} and ${names.w} ${fmtShape(w)}`);
  const [O, I, KH, KW] = w as [number, number, number, number];
  if (C % a.groups !== 0) {
    fail(`input channels ${C} (${names.x} ${fmtShape(x)}) are not divisible by groups=${a.groups}`);
  }
  if (O % a.groups !== 0) {
    fail(`output channels ${O} (${names.w} ${fmtShape(w)}) are not divisible by groups=${a.groups}`);
  }
  if (I !== C / a.groups) {
    fail(
      `channel mismatch: ${names.w} ${fmtShape(w)} has ${I} input channels, but ${names.x} ${fmtShape(x)} has C/groups = ${C}/${a.groups} = ${C / a.groups}`,
    );
  }
  const OH = conv2dOutDim(H, KH, a.sh, a.ph, a.dh);
  const OW = conv2dOutDim(W, KW, a.sw, a.pw, a.dw);
  if (dimMin(OH) <= 0 || dimMin(OW) <= 0) {
    const [oh, ow] = [conv2dOutSize(dimMin(H), KH, a.sh, a.ph, a.dh), conv2dOutSize(dimMin(W), KW, a.sw, a.pw, a.dw)];
    fail(
      `output size ${oh}x${ow} ≤ 0: kernel ${KH}x${KW} with dilation ${a.dh}x${a.dw} does not fit ${names.x} ${dimMin(H)}x${dimMin(W)} padded by ${a.ph}x${a.pw}`,
    );
  }
  return { ...a, N, C, H, W, O, KH, KW, OH, OW, Cg: C / a.groups, Og: O / a.groups };
}

/**
 * Calls f(xi, wi, yi) with the flat indices into x, w and y of every tap of the forward convolution
 * that lands inside x, in the order (n, o, oh, ow, ci, kh, kw).
 */
export function forEachConv2dTap(d: Conv2dDims, f: (xi: number, wi: number, yi: number) => void): void {
  const { N, C, H, W, O, KH, KW, OH, OW, Cg, Og } = d;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const yi = ((n * O + o) * OH + oh) * OW + ow;
          for (let ci = 0; ci < Cg; ci++) {
            const c = g * Cg + ci;
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * d.sh - d.ph + kh * d.dh;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * d.sw - d.pw + kw * d.dw;
                if (iw < 0 || iw >= W) continue;
                f(((n * C + c) * H + ih) * W + iw, ((o * Cg + ci) * KH + kh) * KW + kw, yi);
              }
            }
          }
        }
      }
    }
  }
}
