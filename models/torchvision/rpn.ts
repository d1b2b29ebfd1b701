/**
 * torchvision's RegionProposalNetwork at inference (torchvision/models/detection/rpn.py, 0.14) over
 * the FPN levels, per image of a batch, in the DSL with its module names:
 * - RPNHead (`rpn.head.conv.0.0` 3×3 + ReLU, `cls_logits`, `bbox_pred` 1×1), shared by every level;
 *   outputs flattened as torchvision's permute_and_flatten (location-major, then anchor);
 * - AnchorGenerator: each level's base anchors (ops/anchors.ts tvBaseAnchors) shifted by
 *   image size // feature size per axis (a run-time value when the sizes are; the `pool` level of
 *   an image whose size is an odd multiple of 32 gets a stride other than 64, as in torchvision);
 * - BoxCoder decode (weights 1, clamp ln(1000/16)), then filter_proposals: per level the top
 *   min(pre_nms_top_n, anchors) logits, sigmoid, clip to the image's resized size, drop boxes under
 *   min_size (1e-3) and scores under score_thresh, NMS at nms_thresh per level (torchvision's
 *   batched_nms by level), then the post_nms_top_n best over all levels, by score.
 * Where a level has fewer anchors than pre_nms_top_n at some size of a run-time-size program, its
 * scores are padded past the anchors and the padding marked invalid, so one program serves every size.
 */
import { type Dim, dimMax, dimMin, dimMul } from '../../compiler/dims.js';
import type { GraphBuilder, Tensor } from '../../compiler/tensor.js';
import { tvBaseAnchors } from '../../ops/anchors.js';
import { decodeBoxes } from '../../ops/boxes.js';
import { arange, zerosAlong } from '../../ops/sizes.js';
import { takeAlongAxis, topk } from '../../ops/sort.js';
import { applyConv, declareConv } from './layers.js';
import { nmsByGroup } from './nms-groups.js';

export interface TvRpnOptions {
  /** Parameter prefix (`rpn`). */
  readonly prefix: string;
  readonly inChannels: number;
  /** AnchorGenerator sizes and aspect ratios, one tuple per level. */
  readonly anchorSizes: readonly (readonly number[])[];
  readonly aspectRatios: readonly (readonly number[])[];
  readonly preNmsTopN: number;
  readonly postNmsTopN: number;
  readonly nmsThresh: number;
  readonly scoreThresh: number;
  /** remove_small_boxes' min_size (torchvision 1e-3). */
  readonly minSize?: number;
  /** RPNHead's conv_depth: 3×3 conv + ReLU layers `head.conv.i.0` (1; 2 for fasterrcnn_resnet50_fpn_v2). */
  readonly convDepth?: number;
}

export interface TvProposals {
  /** f32 [B, R, 4]: each image's proposals, best first; rows ≥ its count are zeros. */
  readonly boxes: Tensor;
  /** f32 [B, R]: their objectness probabilities (−1 past the count). */
  readonly scores: Tensor;
  /** u32 [B, R]: 1 for the first count rows. */
  readonly valid: Tensor;
  /** i32 [B]. */
  readonly count: Tensor;
  /** R, the rows per image (post_nms_top_n, or fewer when fewer boxes can exist). */
  readonly capacity: number;
}

/** size // feature size as an f32 scalar tensor or number (torchvision's per-axis anchor stride). */
function strideOf(g: GraphBuilder, size: Dim, feature: Dim): Tensor | number {
  if (typeof size === 'number' && typeof feature === 'number') return Math.floor(size / feature);
  return g.sizeValue(size, 'i32').div(g.sizeValue(feature, 'i32')).cast('f32');
}

/** The anchors of one level: [H·W·A, 4], location-major (y, then x), then anchor. */
function levelAnchors(
  g: GraphBuilder,
  base: readonly (readonly number[])[],
  H: Dim,
  W: Dim,
  image: readonly [Dim, Dim],
): Tensor {
  const A = base.length;
  const sy = strideOf(g, image[0], H);
  const sx = strideOf(g, image[1], W);
  const xs = arange(g, W, 'f32').mul(sx).reshape([1, W, 1, 1]);
  const ys = arange(g, H, 'f32').mul(sy).reshape([H, 1, 1, 1]);
  const shifts = xs.mul(g.constant([1, 0, 1, 0], [1, 1, 1, 4])).add(ys.mul(g.constant([0, 1, 0, 1], [1, 1, 1, 4])));
  return shifts.add(g.constant(base.flat(), [1, 1, A, 4])).reshape([dimMul(dimMul(H, W), A), 4]);
}

/** Pads axis 1 of x [B, n, ...] with `k` rows of `value` (so that a top-k of k always exists). */
function padRows(x: Tensor, k: number, value: number): Tensor {
  const g = x.builder;
  const [B, , ...rest] = x.dims;
  const tail = rest as number[];
  const pad = zerosAlong(g, B as Dim, 2 + tail.length).add(
    g.constant(new Array<number>(k * tail.reduce((p, v) => p * v, 1)).fill(value), [1, k, ...tail]),
  );
  return g.concat([x, pad], 1);
}

export function tvRpn(
  levels: readonly Tensor[],
  image: { readonly padded: readonly [Dim, Dim]; readonly sizes: Tensor },
  o: TvRpnOptions,
): TvProposals {
  const first = levels[0];
  if (!first) throw new RangeError('tvRpn: no feature levels');
  if (o.anchorSizes.length !== levels.length || o.aspectRatios.length !== levels.length)
    throw new RangeError(`tvRpn: ${levels.length} levels, ${o.anchorSizes.length} anchor size tuples`);
  const g = first.builder;
  const B = first.dims[0] as Dim;
  const C = o.inChannels;
  const bases = o.anchorSizes.map((s, l) => tvBaseAnchors(s, o.aspectRatios[l] as readonly number[]));
  const A = (bases[0] as readonly unknown[]).length;
  if (bases.some((b) => b.length !== A)) throw new RangeError('tvRpn: every level needs the same anchor count');
  const convs = Array.from({ length: o.convDepth ?? 1 }, (_, i) =>
    declareConv(g, `${o.prefix}.head.conv.${i}.0`, C, C, 3, { bias: true }),
  );
  const cls = declareConv(g, `${o.prefix}.head.cls_logits`, C, A, 1, { bias: true });
  const box = declareConv(g, `${o.prefix}.head.bbox_pred`, C, 4 * A, 1, { bias: true });
  // [B, 4] = (w, h, w, h) of each image's resized size (h, w): the clip bounds
  const hi = image.sizes.gather(g.constant([1, 0, 1, 0], [4], 'i32'), 1).reshape([B, 1, 4]);
  const minSize = o.minSize ?? 1e-3;
  const K = Math.min(
    o.preNmsTopN,
    Math.max(...levels.map((p) => dimMax(dimMul(dimMul(p.dims[2] as Dim, p.dims[3] as Dim), A)))),
  );

  const perLevel = levels.map((p, l) => {
    const [, , H, W] = p.dims as [Dim, Dim, Dim, Dim];
    const M = dimMul(dimMul(H, W), A);
    const t = convs.reduce((x, c) => applyConv(x, c, { padding: 1 }).relu(), p);
    const logits = applyConv(t, cls).reshape([B, A, 1, H, W]).transpose([0, 3, 4, 1, 2]).reshape([B, M]);
    const deltas = applyConv(t, box)
      .reshape([B, A, 4, H, W])
      .transpose([0, 3, 4, 1, 2])
      .reshape([dimMul(B, M), 4]);
    const anchors = levelAnchors(g, bases[l] as readonly (readonly number[])[], H, W, image.padded)
      .reshape([1, M, 4])
      .add(zerosAlong(g, B, 3))
      .reshape([dimMul(B, M), 4]);
    const proposals = decodeBoxes(deltas.stopGradient(), anchors).reshape([B, M, 4]);
    // torchvision's min(pre_nms_top_n, anchors): k_l, padded past the anchors where a size has fewer
    const k = Math.min(o.preNmsTopN, dimMax(M));
    const padded = dimMin(M) < k;
    const top = topk(padded ? padRows(logits.stopGradient(), k, -3e38) : logits.stopGradient(), k);
    const inRange = padded ? top.indices.lt(g.sizeValue(M, 'i32')) : null;
    const boxes = takeAlongAxis(padded ? padRows(proposals, k, 0) : proposals, top.indices)
      .maximum(0)
      .minimum(hi);
    const ws = boxes.slice([0, 0, 2], [B, k, 3]).sub(boxes.slice([0, 0, 0], [B, k, 1]));
    const hs = boxes.slice([0, 0, 3], [B, k, 4]).sub(boxes.slice([0, 0, 1], [B, k, 2]));
    const prob = top.values.sigmoid();
    let ok = ws.ge(minSize).mul(hs.ge(minSize)).reshape([B, k]).mul(prob.ge(o.scoreThresh));
    if (inRange) ok = ok.mul(inRange);
    const scores = g.where(ok, prob, -1);
    // every level to K rows (invalid), so that the levels stack into one NMS of B·L problems
    return k === K ? { boxes, scores } : { boxes: padRows(boxes, K - k, 0), scores: padRows(scores, K - k, -1) };
  });
  const L = levels.length;
  const boxes = g.concat(
    perLevel.map((v) => v.boxes.reshape([B, 1, K, 4])),
    1,
  );
  const scores = g.concat(
    perLevel.map((v) => v.scores.reshape([B, 1, K])),
    1,
  );
  const R = Math.min(o.postNmsTopN, L * K);
  const best = nmsByGroup(boxes, scores, o.nmsThresh, R);
  return {
    boxes: best.boxes,
    scores: best.scores,
    valid: best.valid,
    count: best.count,
    capacity: R,
  };
}
