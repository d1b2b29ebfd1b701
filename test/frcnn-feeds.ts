/** Feeds for Faster R-CNN graphs in tests: fan-in scaled parameters and a zero-padded random image. */
import type { GraphBuilder } from '../compiler/tensor.js';
import { numel } from '../compiler/types.js';
import { rand } from './helpers.js';

/** Parameters with a fan-in scaled uniform distribution (activations stay O(1), scores well spread). */
export function modelFeeds(g: GraphBuilder, seed: number, imInfo: readonly number[]): Record<string, number[]> {
  const feeds: Record<string, number[]> = {};
  let k = 0;
  for (const n of g.graph.nodes) {
    if (n.op !== 'param' && n.op !== 'input') continue;
    const name = n.name as string;
    const s = seed + 7919 * k++;
    const shape = n.type.shape;
    if (n.op === 'input') {
      if (name === 'im_info') feeds[name] = [...imInfo];
      else if (name === 'image') {
        const [, C, H, W] = shape as [number, number, number, number];
        const r = rand(shape, s);
        // zero padding outside the valid region, as the loader produces
        for (let c = 0; c < C; c++)
          for (let y = 0; y < H; y++)
            for (let x = 0; x < W; x++)
              if (y >= (imInfo[0] as number) || x >= (imInfo[1] as number)) r[(c * H + y) * W + x] = 0;
        feeds[name] = r;
      } else feeds[name] = rand(shape, s);
      continue;
    }
    if (shape.length === 1) {
      feeds[name] = rand(shape, s, -0.1, 0.1);
      continue;
    }
    const fanIn = numel(shape) / (shape[0] as number);
    let gain = Math.SQRT2;
    if (name.startsWith('rpn.cls_score') || name.startsWith('cls_score')) gain = 3;
    if (name.startsWith('rpn.bbox_pred') || name.startsWith('bbox_pred')) gain = 0.5;
    const a = (Math.sqrt(3) * gain) / Math.sqrt(fanIn);
    feeds[name] = rand(shape, s, -a, a);
  }
  return feeds;
}
