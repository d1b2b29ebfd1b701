/**
 * NMS within groups, then the best over all groups: torchvision's batched_nms by its per-group loop
 * (the RPN's levels, the detector's classes), done as one NMS of B·G independent problems (exact per
 * group, no coordinate offsets) followed by a top-k of the kept boxes by score.
 */
import type { Dim } from '../../compiler/dims.js';
import type { Tensor } from '../../compiler/tensor.js';
import { nms } from '../../ops/nms.js';
import { takeAlongAxis, topk } from '../../ops/sort.js';

export interface GroupBest {
  /** f32 [B, T, 4], best first; zeros past the count. */
  readonly boxes: Tensor;
  /** f32 [B, T]: the kept scores, −1 past the count. */
  readonly scores: Tensor;
  /** u32 [B, T]. */
  readonly valid: Tensor;
  /** i32 [B]. */
  readonly count: Tensor;
  /** i32 [B, T]: the group of each row. */
  readonly groups: Tensor;
}

/**
 * boxes [B, G, N, 4], scores [B, G, N] (invalid candidates −1: they sort last and suppress nothing
 * valid); NMS at `iou` within each (image, group), then the `total` best kept boxes of each image.
 */
export function nmsByGroup(boxes: Tensor, scores: Tensor, iou: number, total: number): GroupBest {
  const g = boxes.builder;
  const [B, G, N] = scores.dims as [Dim, number, number];
  const T = Math.min(total, G * N);
  const per = Math.min(N, T);
  const kept = nms(boxes, scores, { iouThreshold: iou, maxOutput: per });
  const has = kept.indices.ge(0);
  const idx = g.where(has, kept.indices, 0);
  const keptScores = g.where(has, takeAlongAxis(scores, idx), -1).reshape([B, G * per]);
  const keptBoxes = takeAlongAxis(boxes, idx).reshape([B, G * per, 4]);
  // torchvision sorts the kept boxes by score
  const best = topk(keptScores, T);
  const valid = best.values.ge(0);
  return {
    boxes: g.where(valid.reshape([B, T, 1]), takeAlongAxis(keptBoxes, best.indices), 0),
    scores: g.where(valid, best.values, -1),
    valid,
    count: valid.cast('f32').sum(1).cast('i32'),
    groups: best.indices.div(per),
  };
}
