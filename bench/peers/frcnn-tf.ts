/**
 * The Faster R-CNN inference graph in TF.js ops (WebGPU backend), with wgflow's weights and anchors:
 * backbone and RPN convs, 2-way softmax, PFR box decode (+1 widths, no clamp), clip to the valid
 * region, min-size and valid-cell filters (the cell mask is computed on the host from im_info),
 * top-6000 (tf.topk), NMS 0.7 → 300 (tf.image.nonMaxSuppressionAsync: TF.js reads boxes and scores
 * back and runs NMS in JS; the +1 convention is obtained by adding 1 to x2 and y2), RoI features by
 * tf.image.cropAndResize (7×7 bilinear: TF.js has no RoIAlign or RoIPool), fc6/fc7/cls/bbox matmuls,
 * softmax, class-specific decode (weights 10, 10, 5, 5), clip to the original image, per-class NMS 0.3
 * with score > 0.05 as ONE NMS with class offsets (like wgflow's batchedNms), the first 100.
 * A timed run starts from the host image and ends with the detections in host memory (data()).
 * Proposals are the M ≤ 300 kept boxes (no fixed-capacity padding).
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type { FrcnnPeerConfig } from './frcnn-config.js';
import { validCellMask } from './frcnn-config.js';
import { hostParam, tfStack, tfStackWeights } from './stack-peers.js';
import { linearWeightForNhwc, nchwToNhwc, nhwcToNchw, oihwToHwio, type Tf, tfRunner, transpose2d } from './tf.js';
import type { Runner } from './types.js';

type T = TfCore.Tensor;

/** (x1, y1, x2, y2) [n, 4] → (y1, x1, y2 + 1, x2 + 1): TF.js's corner order, +1 pixel convention for its IoU. */
function nmsBoxes(tf: Tf, b: T): TfCore.Tensor2D {
  const n = b.shape[0] as number;
  return tf.reshape(tf.add(tf.gather(b, tf.tensor1d([1, 0, 3, 2], 'int32'), 1), tf.tensor1d([0, 0, 1, 1])), [n, 4]);
}

/** PFR bbox_transform_inv: boxes [n, 4], deltas [n, k, 4] (already divided by the weights) → [n, k, 4]. */
function decode(tf: Tf, boxes: T, deltas: T): T {
  const n = boxes.shape[0] as number;
  const k = deltas.shape[1] as number;
  const lo = tf.slice(boxes, [0, 0], [n, 2]);
  const wh = tf.add(tf.sub(tf.slice(boxes, [0, 2], [n, 2]), lo), 1);
  const ctr = tf.reshape(tf.add(lo, tf.mul(wh, 0.5)), [n, 1, 2]);
  const whr = tf.reshape(wh, [n, 1, 2]);
  const pc = tf.add(tf.mul(tf.slice(deltas, [0, 0, 0], [n, k, 2]), whr), ctr);
  const half = tf.mul(tf.mul(tf.exp(tf.slice(deltas, [0, 0, 2], [n, k, 2])), whr), 0.5);
  return tf.concat([tf.sub(pc, half), tf.add(pc, half)], 2);
}

export function tfFrcnnRunner(
  tf: Tf,
  cfg: FrcnnPeerConfig,
  image: Float32Array,
  imInfo: readonly [number, number, number],
): Runner {
  const [Hc, Wc] = cfg.canvas;
  const [Hf, Wf] = cfg.feature;
  const { A, N, channels: C, pooled: P, hidden, numClasses: K } = cfg;
  const K1 = K + 1;
  const p = (n: string) => hostParam(cfg.params, n);
  const stackW = tfStackWeights(tf, cfg.backbone, cfg.params);
  const rpnConv = (name: string, cout: number, cin: number, k: number) => ({
    w: tf.keep(tf.tensor4d(oihwToHwio(p(`${name}.weight`), cout, cin, k, k), [k, k, cin, cout])),
    b: tf.keep(tf.tensor1d(p(`${name}.bias`))),
  });
  const rpnC = p('rpn.conv.bias').length;
  const rc = rpnConv('rpn.conv', rpnC, C, 3);
  const rcls = rpnConv('rpn.cls_score', 2 * A, rpnC, 1);
  const rbox = rpnConv('rpn.bbox_pred', 4 * A, rpnC, 1);
  const lin = (name: string, out: number, inF: number, fromPooled = false) => ({
    w: tf.keep(
      tf.tensor2d(
        fromPooled
          ? linearWeightForNhwc(p(`${name}.weight`), out, C, P, P)
          : transpose2d(p(`${name}.weight`), out, inF),
        [inF, out],
      ),
    ),
    b: tf.keep(tf.tensor1d(p(`${name}.bias`))),
  });
  const fc6 = lin(cfg.fc.fc6, hidden, C * P * P, true);
  const fc7 = lin(cfg.fc.fc7, hidden, hidden);
  const cls = lin(cfg.fc.cls, K1, hidden);
  const bbox = lin(cfg.fc.bbox, 4 * K1, hidden);
  const anchors = tf.keep(tf.tensor2d(cfg.anchors, [N, 4]));
  const keptTensors: T[] = [...stackW.all, rc.w, rc.b, rcls.w, rcls.b, rbox.w, rbox.b];
  for (const l of [fc6, fc7, cls, bbox]) keptTensors.push(l.w, l.b);
  keptTensors.push(anchors);
  const imageNhwc = nchwToNhwc(image, 3, Hc, Wc);
  const [vh, vw, scale] = imInfo;
  const { preNmsTopN, postNmsTopN, nmsThreshold, minSize } = cfg.proposals;
  const preN = Math.min(preNmsTopN, N);
  const R = Math.min(postNmsTopN, preN);
  const wts = cfg.bboxWeights;

  const fn = async () => {
    const x = tf.tensor4d(imageNhwc, [1, Hc, Wc, 3]);
    const feat = tfStack(tf, x, cfg.backbone, stackW);
    const h = tf.fused.conv2d({ x: feat, filter: rc.w, bias: rc.b, strides: 1, pad: 'same', activation: 'relu' });
    const clsMap = tf.fused.conv2d({ x: h, filter: rcls.w, bias: rcls.b, strides: 1, pad: 'valid' });
    // channel c = (bg/fg)·A + a → [Hf, Wf, 2, A] → [Hf, Wf, A, 2]
    const logits = tf.reshape(tf.transpose(tf.reshape(clsMap, [Hf, Wf, 2, A]), [0, 1, 3, 2]), [N, 2]);
    const fg = tf.reshape(tf.slice(tf.softmax(logits), [0, 1], [N, 1]), [N]);
    const deltas = tf.reshape(tf.fused.conv2d({ x: h, filter: rbox.w, bias: rbox.b, strides: 1, pad: 'valid' }), [
      N,
      4,
    ]);
    // decode, clip to the valid region
    const hi = tf.tensor1d([vw - 1, vh - 1, vw - 1, vh - 1]);
    const boxes = tf.minimum(tf.maximum(tf.reshape(decode(tf, anchors, tf.reshape(deltas, [N, 1, 4])), [N, 4]), 0), hi);
    // min size (inclusive widths) and valid cells
    const wh = tf.add(tf.sub(tf.slice(boxes, [0, 2], [N, 2]), tf.slice(boxes, [0, 0], [N, 2])), 1);
    const big = tf.all(tf.greaterEqual(wh, minSize * scale), 1);
    const keep = tf.logicalAnd(big, tf.greater(tf.tensor1d(validCellMask(cfg, vh, vw)), 0));
    const scores = tf.where(keep, fg, tf.fill([N], -1));
    const top = tf.topk(scores, preN);
    const preBoxes = tf.gather(boxes, top.indices);
    // NMS: boxes with score −1 (removed) are excluded by the score threshold
    const kept = await tf.image.nonMaxSuppressionAsync(
      nmsBoxes(tf, preBoxes),
      top.values as TfCore.Tensor1D,
      R,
      nmsThreshold,
      -0.5,
    );
    const M = kept.shape[0];
    const rois = tf.gather(preBoxes, kept);
    // RoI features: crop-and-resize on the stride-s feature map (normalized by (size − 1))
    const s = 1 / cfg.stride;
    const toNorm = tf.tensor1d([s / (Hf - 1), s / (Wf - 1), s / (Hf - 1), s / (Wf - 1)]);
    const norm = tf.mul(tf.gather(rois, tf.tensor1d([1, 0, 3, 2], 'int32'), 1), toNorm) as TfCore.Tensor2D;
    const crops = tf.image.cropAndResize(feat, norm, tf.zeros([M], 'int32') as TfCore.Tensor1D, [P, P], 'bilinear');
    const flat = tf.reshape(crops, [M, P * P * C]);
    const h6 = tf.relu(tf.add(tf.matMul(flat, fc6.w), fc6.b));
    const h7 = tf.relu(tf.add(tf.matMul(h6, fc7.w), fc7.b));
    const probs = tf.softmax(tf.add(tf.matMul(h7, cls.w), cls.b));
    const pred = tf.div(tf.reshape(tf.add(tf.matMul(h7, bbox.w), bbox.b), [M, K1, 4]), tf.tensor1d([...wts]));
    // class boxes in original-image coordinates, clipped to the original image
    const oh = Math.trunc(vh / scale + 0.5);
    const ow = Math.trunc(vw / scale + 0.5);
    const clipped = tf.minimum(
      tf.maximum(decode(tf, tf.div(rois, scale), pred), 0),
      tf.tensor1d([ow - 1, oh - 1, ow - 1, oh - 1]),
    );
    const boxesK = tf.reshape(tf.slice(clipped, [0, 1, 0], [M, K, 4]), [M * K, 4]);
    const scoresK = tf.reshape(tf.slice(probs, [0, 1], [M, K]), [M * K]) as TfCore.Tensor1D;
    const classes = tf.tensor1d(
      Int32Array.from({ length: M * K }, (_, i) => (i % K) + 1),
      'int32',
    );
    const offsets = tf.reshape(tf.mul(tf.cast(classes, 'float32'), tf.add(tf.max(boxesK), 1)), [M * K, 1]);
    const { maxDetections, nmsThreshold: detIou, scoreThreshold } = cfg.detections;
    const det = await tf.image.nonMaxSuppressionAsync(
      nmsBoxes(tf, tf.add(boxesK, offsets)),
      scoresK,
      maxDetections,
      detIou,
      scoreThreshold,
    );
    return {
      det_boxes: tf.gather(boxesK, det),
      det_scores: tf.gather(scoresK, det),
      det_classes: tf.gather(classes, det),
      det_count: tf.tensor1d([det.shape[0]], 'int32'),
      features: feat,
      rpn_fg: fg,
      rpn_deltas: deltas,
      rois,
      roi_count: tf.tensor1d([M], 'int32'),
    };
  };
  return tfRunner(
    tf,
    fn,
    (name, d, shape) =>
      name === 'features' ? nhwcToNchw(d, shape[3] as number, shape[1] as number, shape[2] as number) : d,
    () => tf.dispose(keptTensors),
    ['det_boxes', 'det_scores', 'det_classes', 'det_count'],
  );
}
