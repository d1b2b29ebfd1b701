/**
 * A conv/pool stack read from a wgflow graph (./backbone-walk.ts), run by the peers: as TF.js ops (NHWC,
 * HWIO filters) and as ONNX nodes (NCHW), with the weights wgflow holds.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type { StackLayer } from './backbone-walk.js';
import type { OnnxBuilder } from './onnx-builder.js';
import { oihwToHwio, type Tf } from './tf.js';

/** Host weights by wgflow param name (wgflow layout). */
export type HostParams = ReadonlyMap<string, Float32Array>;

export function hostParam(params: HostParams, name: string): Float32Array {
  const p = params.get(name);
  if (!p) throw new Error(`peer weights: wgflow has no param "${name}"`);
  return p;
}

export interface TfStackWeights {
  readonly filters: ReadonlyMap<string, TfCore.Tensor4D>;
  readonly biases: ReadonlyMap<string, TfCore.Tensor1D>;
  /** Every weight tensor (to dispose, or to train). */
  readonly all: readonly TfCore.Tensor[];
}

let variableCount = 0;

/** The stack's weights as TF.js tensors (kept), or as trainable variables. */
export function tfStackWeights(
  tf: Tf,
  layers: readonly StackLayer[],
  params: HostParams,
  variables = false,
): TfStackWeights {
  const filters = new Map<string, TfCore.Tensor4D>();
  const biases = new Map<string, TfCore.Tensor1D>();
  const all: TfCore.Tensor[] = [];
  const keep = <T extends TfCore.Tensor>(t: T, name: string): T =>
    (variables ? tf.variable(t, true, `${name}_${++variableCount}`) : tf.keep(t)) as unknown as T;
  for (const l of layers) {
    if (l.kind !== 'conv') continue;
    const [o, i, kh, kw] = l.shape;
    const f = keep(tf.tensor4d(oihwToHwio(hostParam(params, l.weight), o, i, kh, kw), [kh, kw, i, o]), l.weight);
    filters.set(l.weight, f);
    all.push(f);
    if (l.bias) {
      const b = keep(tf.tensor1d(hostParam(params, l.bias)), l.bias);
      biases.set(l.bias, b);
      all.push(b);
    }
  }
  return { filters, biases, all };
}

/** TF.js 'same' max pooling equals a kernel = stride ceil-mode pool only when no padding goes before. */
function tfPool(tf: Tf, x: TfCore.Tensor4D, l: StackLayer & { kind: 'maxpool' }): TfCore.Tensor4D {
  const [kh, kw] = l.kernel;
  const [sh, sw] = l.stride;
  const [ph, pw] = l.padding;
  const [, h, w] = x.shape as [number, number, number, number];
  if (ph !== 0 || pw !== 0 || kh !== sh || kw !== sw)
    throw new Error(`TF.js peer: max pool ${l.kernel}/${l.stride} pad ${l.padding} is not supported`);
  const even = h % sh === 0 && w % sw === 0;
  if (l.ceilMode && !even && (sh !== 2 || sw !== 2))
    throw new Error(`TF.js peer: ceil-mode pool ${kh}x${kw} on ${h}x${w} has no 'same' equivalent`);
  return tf.maxPool(x, [kh, kw], [sh, sw], l.ceilMode ? 'same' : 'valid');
}

/** Runs the stack on x [N, H, W, C] (TF.js ops). */
export function tfStack(tf: Tf, x: TfCore.Tensor4D, layers: readonly StackLayer[], w: TfStackWeights): TfCore.Tensor4D {
  let h = x;
  for (const l of layers) {
    if (l.kind === 'maxpool') {
      h = tfPool(tf, h, l);
      continue;
    }
    const [, , kh, kw] = l.shape;
    const [padH, padW] = l.padding;
    const pad: 'same' | 'valid' | number =
      padH === 0 && padW === 0
        ? 'valid'
        : padH === padW && l.stride[0] === 1 && l.stride[1] === 1 && padH === (kh - 1) / 2 && padW === (kw - 1) / 2
          ? 'same'
          : padH === padW
            ? padH
            : Number.NaN;
    if (Number.isNaN(pad)) throw new Error(`TF.js peer: conv padding ${l.padding} is not supported`);
    const bias = l.bias ? w.biases.get(l.bias) : undefined;
    h = tf.fused.conv2d({
      x: h,
      filter: w.filters.get(l.weight) as TfCore.Tensor4D,
      strides: [l.stride[0], l.stride[1]],
      pad,
      ...(bias ? { bias } : {}),
      activation: l.relu ? 'relu' : 'linear',
    });
  }
  return h;
}

/** Appends the stack as ONNX nodes on input `x` (NCHW); weights become initializers. Returns the output. */
export function onnxStack(b: OnnxBuilder, x: string, layers: readonly StackLayer[], params: HostParams): string {
  let h = x;
  for (const l of layers) {
    if (l.kind === 'maxpool') {
      h = b.op('MaxPool', [h], {
        ints: {
          kernel_shape: [...l.kernel],
          strides: [...l.stride],
          pads: [l.padding[0], l.padding[1], l.padding[0], l.padding[1]],
        },
        int: { ceil_mode: l.ceilMode ? 1 : 0 },
      });
      continue;
    }
    const w = b.f32(hostParam(params, l.weight), l.shape, l.weight);
    const inputs = [h, w];
    if (l.bias) inputs.push(b.f32(hostParam(params, l.bias), [l.shape[0]], l.bias));
    h = b.op('Conv', inputs, {
      ints: {
        kernel_shape: [l.shape[2], l.shape[3]],
        strides: [...l.stride],
        pads: [l.padding[0], l.padding[1], l.padding[0], l.padding[1]],
      },
    });
    if (l.relu) h = b.op('Relu', [h]);
  }
  return h;
}
