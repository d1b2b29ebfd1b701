/** A small CNN for tests and examples: conv-ReLU-pool-conv-ReLU-pool-linear on 1×16×16 images, 4 classes. */
import { type GraphBuilder, init, linear, type Tensor } from '../index.js';

export const IMAGE = 16;
export const CLASSES = 4;

/** Declares the model; returns the logits for an input batch. */
export function smallCnn(g: GraphBuilder, x: Tensor): Tensor {
  const conv = (h: Tensor, name: string, cin: number, cout: number) => {
    const w = g.param(`${name}.weight`, [cout, cin, 3, 3], init.he());
    const b = g.param(`${name}.bias`, [cout], init.zeros());
    return h
      .conv2d(w, { padding: 1 })
      .add(b.reshape([1, cout, 1, 1]))
      .relu();
  };
  let h = conv(x, 'conv1', 1, 8).maxPool2d({ kernel: 2 });
  h = conv(h, 'conv2', 8, 16).maxPool2d({ kernel: 2 });
  const flat = h.reshape([x.shape[0] as number, 16 * (IMAGE / 4) * (IMAGE / 4)]);
  const w = g.param('fc.weight', [CLASSES, 16 * (IMAGE / 4) * (IMAGE / 4)], init.xavier());
  const b = g.param('fc.bias', [CLASSES], init.zeros());
  return linear(flat, w, b);
}
