/**
 * Gradient rules for TF.js's training peer. tfjs-core's Node bundle (the file `@tensorflow/tfjs-core`
 * resolves to in Node) registers no gradients: the union package `@tensorflow/tfjs` does that with
 * `tfjs-core/dist/register_all_gradients`, an ES module tree Node cannot load from tfjs-core alone
 * (extensionless imports). These are tfjs-core 4.22's own rules (dist/gradients/*_grad.js), written
 * with the public ops, for the kernels the training step records: Add, Mul, BatchMatMul, Reshape,
 * MaxPool, LogSoftmax, Sum, Mean, Neg, Cast, Relu, Conv2D (with gradients recorded, TF.js runs fused
 * conv2d + bias + ReLU unfused). Registered once.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type { Tf } from './tf.js';

type T = TfCore.Tensor;

let registered = false;

export function registerTrainingGradients(tf: Tf): void {
  if (registered) return;
  registered = true;
  const bu = tf.backend_util;
  const reduceTo = (dy: T, shape: number[], out: number[]) => {
    const axes = bu.getReductionAxes(shape, out);
    return tf.reshape(axes.length > 0 ? tf.sum(dy, axes) : dy, shape);
  };
  const broadcastBack = (dy: T, x: T, axis: number | number[]) => {
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const shape = x.shape.slice();
    for (const a of axes) shape[a] = 1;
    return { expanded: tf.mul(tf.reshape(dy, shape), tf.ones(x.shape, 'float32')), axes };
  };
  const rules: TfCore.GradConfig[] = [
    {
      kernelName: 'Add',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy, saved) => {
        const [a, b] = saved as [T, T];
        const out = bu.assertAndGetBroadcastShape(a.shape, b.shape);
        return { a: () => reduceTo(dy as T, a.shape, out), b: () => reduceTo(dy as T, b.shape, out) };
      },
    },
    {
      kernelName: 'Multiply',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy, saved) => {
        const [a, b] = saved as [T, T];
        const out = bu.assertAndGetBroadcastShape(a.shape, b.shape);
        return {
          a: () => reduceTo(tf.mul(dy as T, tf.cast(b, 'float32')), a.shape, out),
          b: () => reduceTo(tf.mul(dy as T, tf.cast(a, 'float32')), b.shape, out),
        };
      },
    },
    {
      kernelName: 'BatchMatMul',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy, saved, attrs) => {
        const [a, b] = saved as [T, T];
        const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
        if (transposeA || transposeB) throw new Error('TF.js peer gradients: transposed matMul not needed');
        return { a: () => tf.matMul(dy as T, b, false, true), b: () => tf.matMul(a, dy as T, true, false) };
      },
    },
    {
      kernelName: 'Reshape',
      inputsToSave: ['x'],
      gradFunc: (dy, saved) => {
        const [x] = saved as [T];
        return { x: () => tf.reshape(dy as T, x.shape) };
      },
    },
    {
      kernelName: 'MaxPool',
      inputsToSave: ['x'],
      outputsToSave: [true],
      gradFunc: (dy, saved, attrs) => {
        const [x, y] = saved as [T, T];
        const { filterSize, strides, pad } = attrs as { filterSize: number; strides: number; pad: 'same' | 'valid' };
        return {
          x: () =>
            tf.engine().runKernel('MaxPoolGrad', { dy: dy as T, input: x, output: y }, {
              filterSize,
              strides,
              pad,
            } as unknown as TfCore.NamedAttrMap) as T,
        };
      },
    },
    {
      kernelName: 'LogSoftmax',
      outputsToSave: [true],
      gradFunc: (dy, saved, attrs) => {
        const [value] = saved as [T];
        const { axis } = attrs as { axis: number };
        return { logits: () => tf.sub(dy as T, tf.mul(tf.sum(dy as T, axis, true), tf.exp(value))) };
      },
    },
    {
      kernelName: 'Sum',
      inputsToSave: ['x'],
      gradFunc: (dy, saved, attrs) => {
        const [x] = saved as [T];
        return { x: () => broadcastBack(dy as T, x, (attrs as { axis: number | number[] }).axis).expanded };
      },
    },
    {
      kernelName: 'Mean',
      inputsToSave: ['x'],
      gradFunc: (dy, saved, attrs) => {
        const [x] = saved as [T];
        return {
          x: () => {
            const { expanded, axes } = broadcastBack(dy as T, x, (attrs as { axis: number | number[] }).axis);
            const size = axes.reduce((s, a) => s * (x.shape[a] as number), 1);
            return tf.div(expanded, size);
          },
        };
      },
    },
    { kernelName: 'Neg', gradFunc: (dy) => ({ x: () => tf.neg(dy as T) }) },
    { kernelName: 'Cast', gradFunc: (dy) => ({ x: () => tf.clone(dy as T) }) },
    {
      kernelName: 'Relu',
      inputsToSave: ['x'],
      gradFunc: (dy, saved) => {
        const [x] = saved as [T];
        return { x: () => tf.mul(dy as T, tf.cast(tf.step(x), 'float32')) };
      },
    },
    {
      kernelName: 'Conv2D',
      inputsToSave: ['x', 'filter'],
      gradFunc: (dy, saved, attrs) => {
        const [x, filter] = saved as [T, T];
        const { strides, pad, dataFormat } = attrs as { strides: unknown; pad: unknown; dataFormat: unknown };
        const run = (kernel: string, inputs: Record<string, T>, extra: Record<string, unknown>) =>
          tf.engine().runKernel(kernel, inputs, {
            strides,
            pad,
            dataFormat,
            dimRoundingMode: undefined,
            ...extra,
          } as unknown as TfCore.NamedAttrMap) as T;
        return {
          x: () => run('Conv2DBackpropInput', { dy: dy as T, filter }, { inputShape: x.shape }),
          filter: () => run('Conv2DBackpropFilter', { x, dy: dy as T }, { filterShape: filter.shape }),
        };
      },
    },
  ];
  for (const r of rules) if (!tf.getGradient(r.kernelName)) tf.registerGradient(r);
}
