/** Feeds for Faster R-CNN graphs in tests: fan-in scaled parameters and a zero-padded random image. */
import type { GraphBuilder } from '../compiler/tensor.js';
import { fanInValues, rand } from './helpers.js';

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
    feeds[name] = fanInValues(name, shape, s, { bias: 0.1, cls: 3, bbox: 0.5 });
  }
  return feeds;
}
