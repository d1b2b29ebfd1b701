/**
 * One compiled frcnn-small inference program for every image size: the image input is [1, 3, H, W]
 * with run-time H and W, and each run must equal the program compiled for that exact static canvas
 * (float outputs within 1e-5 relative, proposals and detections identical), with no pipeline created
 * after the first run.
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder, type Tensor } from '../compiler/tensor.js';
import { buildFrcnnInference, type FrcnnOptions } from '../models/frcnn/index.js';
import { getDevice } from '../runtime/device.js';
import { type HostTensor, pipelineCount, Session } from '../runtime/session.js';
import { modelFeeds } from './frcnn-feeds.js';
import { freshSeed, rand, relError } from './helpers.js';

const K = 4;
/** The demo's test-time proposal counts; 1000 pre-NMS boxes need H, W ≥ 96 (12×12 cells × 9 anchors). */
const OPTIONS: Omit<FrcnnOptions, 'canvas'> = {
  backbone: 'frcnn-small',
  numClasses: K,
  proposals: { minSize: 4, preNmsTopN: 1000, postNmsTopN: 100 },
};
const BOUNDS = { H: { min: 96, max: 160 }, W: { min: 96, max: 200 } };
/** Odd and even sizes, both bounds, the demo's 128×160. */
const SIZES: readonly (readonly [number, number])[] = [
  [128, 160],
  [96, 96],
  [160, 200],
  [113, 97],
  [150, 131],
  [99, 187],
];

function build(g: GraphBuilder, canvas: FrcnnOptions['canvas']): Record<string, Tensor> {
  const m = buildFrcnnInference(g, { ...OPTIONS, canvas });
  return { ...m.outputs, fg: m.rpn.fgProb, probs: m.detections.probs };
}

describe('frcnn-small inference over run-time image sizes', () => {
  it('the image-size symbols are checked: too small a lower bound for the pre-NMS count is refused', () => {
    const g = new GraphBuilder();
    const canvas = [g.dim('H', { min: 64, max: 160 }), g.dim('W', { min: 64, max: 200 })] as const;
    expect(() => buildFrcnnInference(g, { ...OPTIONS, canvas })).toThrow(
      /proposal layer: pre-NMS top 1000 of .* anchors: the smallest feature map \(8×8, 576 anchors\) has fewer/,
    );
  });

  it(`one program runs ${SIZES.length} image sizes, creating no pipeline after the first run, equal to the static programs`, async () => {
    const seed = freshSeed();
    const dev = await getDevice();
    const limits = limitsFrom(dev.limits);
    const g = new GraphBuilder();
    const outs = build(g, [g.dim('H', BOUNDS.H), g.dim('W', BOUNDS.W)]);
    const { spec } = compile(g, { outputs: outs, limits });
    expect(spec.symbols?.map((s) => s.name)).toEqual(['H', 'W']);
    const params = modelFeeds(g, seed, [1, 1, 1]);
    const initial: Record<string, number[]> = {};
    for (const n of g.graph.nodes)
      if (n.op === 'param') initial[n.name as string] = params[n.name as string] as number[];
    const session = await Session.create(spec, { gpu: dev, initial });

    const feedsAt = SIZES.map(([h, w], k) => ({
      image: { data: rand([1, 3, h, w], seed + 101 * (k + 1)), shape: [1, 3, h, w] },
      im_info: { data: [h, w, 1 + k / 10], shape: [3] },
    }));
    const poly: Record<string, HostTensor>[] = [];
    let afterFirst = -1;
    for (const [k, f] of feedsAt.entries()) {
      poly.push(await session.run(f));
      if (k === 0) afterFirst = pipelineCount();
    }
    expect(pipelineCount(), 'pipelines created after the first run').toBe(afterFirst);
    session.destroy();

    for (const [k, [h, w]] of SIZES.entries()) {
      const gs = new GraphBuilder();
      const so = build(gs, [h, w]);
      const stat = await Session.create(compile(gs, { outputs: so, limits }).spec, { gpu: dev, initial });
      const want = await stat.run({
        image: feedsAt[k]?.image.data as number[],
        im_info: feedsAt[k]?.im_info.data as number[],
      });
      stat.destroy();
      const got = poly[k] as Record<string, HostTensor>;
      const at = `${h}×${w} (seed ${seed})`;
      console.log(
        `${at}: roi_count ${want.roi_count?.data[0]} det_count ${want.det_count?.data[0]} score0 ${want.det_scores?.data[0]} / ${got.det_scores?.data[0]}`,
      );
      expect(want.roi_count?.data[0], `proposals at ${at}`).toBeGreaterThan(10);
      expect(want.det_count?.data[0], `detections at ${at}`).toBeGreaterThan(0);
      for (const name of Object.keys(so)) {
        const a = got[name] as HostTensor;
        const b = want[name] as HostTensor;
        expect(a.shape, `${name} shape at ${at}`).toEqual(b.shape);
        if (so[name]?.dtype === 'f32') expect(relError(a.data, b.data), `${name} at ${at}`).toBeLessThanOrEqual(1e-5);
        else expect(Array.from(a.data), `${name} at ${at}`).toEqual(Array.from(b.data));
      }
    }
  });
});
