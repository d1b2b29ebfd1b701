/**
 * The Faster R-CNN inference graph as an ONNX model (opset 17) for onnxruntime's CPU provider, with
 * wgflow's weights and anchors, following models/frcnn (PFR conventions): backbone and RPN convs,
 * 2-way softmax, decode (+1 widths, no clamp), clip to the valid region from im_info, min-size and
 * valid-cell filters (computed in the graph from im_info), TopK 6000, NonMaxSuppression 0.7 → 300
 * (the +1 convention by adding 1 to x2 and y2; removed boxes, score −1, excluded by score_threshold),
 * RoiAlign 7×7 (avg, output_half_pixel = aligned false, sampling 2, like wgflow's roi_align pooling),
 * fc6/fc7 (Gemm) + ReLU, cls/bbox, softmax, class-specific decode (÷ 10, 10, 5, 5) in original-image
 * coordinates, clip, per-class NonMaxSuppression 0.3 with score > 0.05 (classes as NMS batches), and
 * the 100 best by TopK. Proposal count and detections are data-dependent (no fixed capacity).
 * ONNX NMS takes [y1, x1, y2, x2] corners; its IoU is symmetric in x and y, so (x1, y1, x2, y2) rows
 * give the same result.
 */
import type { FrcnnPeerConfig } from './frcnn-config.js';
import { OnnxBuilder } from './onnx-builder.js';
import type { OnnxGraph } from './onnx-encode.js';
import { hostParam, onnxStack } from './stack-peers.js';

/** PFR decode of boxes [n, 4] with deltas [n, k, 4] (already divided by the weights) → [n, k, 4]. */
function decode(b: OnnxBuilder, boxes: string, deltas: string): string {
  const lo = b.reshape(b.slice(boxes, 1, 0, 2), [-1, 1, 2]);
  const hi = b.reshape(b.slice(boxes, 1, 2, 4), [-1, 1, 2]);
  const wh = b.add(b.sub(hi, lo), b.f32([1], [1]));
  const ctr = b.add(lo, b.mul(wh, b.f32([0.5], [1])));
  const pc = b.add(b.mul(b.slice(deltas, 2, 0, 2), wh), ctr);
  const half = b.mul(b.mul(b.op('Exp', [b.slice(deltas, 2, 2, 4)]), wh), b.f32([0.5], [1]));
  return b.op('Concat', [b.sub(pc, half), b.add(pc, half)], { int: { axis: 2 } });
}

/** Clip [.., 4] boxes to [0, w − 1] × [0, h − 1] with hw a [2] tensor (h, w). */
function clip(b: OnnxBuilder, boxes: string, hw: string): string {
  const hi = b.sub(b.op('Gather', [hw, b.i64([1, 0, 1, 0])], { int: { axis: 0 } }), b.f32([1], [1]));
  return b.op('Min', [b.op('Max', [boxes, b.f32([0], [1])]), hi]);
}

export function frcnnOnnxGraph(cfg: FrcnnPeerConfig): OnnxGraph {
  const b = new OnnxBuilder();
  const [Hc, Wc] = cfg.canvas;
  const [Hf, Wf] = cfg.feature;
  const { A, N, pooled: P, numClasses: K } = cfg;
  const K1 = K + 1;
  const p = (n: string) => hostParam(cfg.params, n);
  const conv = (x: string, name: string, k: number, relu: boolean) => {
    const w = p(`${name}.weight`);
    const bias = p(`${name}.bias`);
    const cout = bias.length;
    const y = b.op('Conv', [x, b.f32(w, [cout, w.length / (cout * k * k), k, k]), b.f32(bias, [cout])], {
      ints: { kernel_shape: [k, k], pads: k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0], strides: [1, 1] },
    });
    return relu ? b.op('Relu', [y]) : y;
  };
  const gemm = (x: string, name: string) =>
    b.op(
      'Gemm',
      [
        x,
        b.f32(p(`${name}.weight`), [p(`${name}.bias`).length, p(`${name}.weight`).length / p(`${name}.bias`).length]),
        b.f32(p(`${name}.bias`), [p(`${name}.bias`).length]),
      ],
      {
        int: { transB: 1 },
      },
    );

  const features = b.op('Identity', [onnxStack(b, 'image', cfg.backbone, cfg.params)], {}, 'features');
  // RPN
  const h = conv(features, 'rpn.conv', 3, true);
  const logits = b.reshape(
    b.op('Transpose', [b.reshape(conv(h, 'rpn.cls_score', 1, false), [2, A, Hf, Wf])], {
      ints: { perm: [2, 3, 1, 0] },
    }),
    [N, 2],
  );
  const fg = b.op(
    'Reshape',
    [b.slice(b.op('Softmax', [logits], { int: { axis: -1 } }), 1, 1, 2), b.i64([N])],
    {},
    'rpn_fg',
  );
  const deltas = b.op(
    'Reshape',
    [
      b.op('Transpose', [b.reshape(conv(h, 'rpn.bbox_pred', 1, false), [A, 4, Hf, Wf])], {
        ints: { perm: [2, 3, 0, 1] },
      }),
      b.i64([N, 4]),
    ],
    {},
    'rpn_deltas',
  );
  // proposals
  const validHW = b.slice('im_info', 0, 0, 2);
  const scale = b.slice('im_info', 0, 2, 3);
  const boxes = clip(
    b,
    b.reshape(decode(b, b.f32(cfg.anchors, [N, 4]), b.reshape(deltas, [N, 1, 4])), [N, 4]),
    validHW,
  );
  const wh = b.add(b.sub(b.slice(boxes, 1, 2, 4), b.slice(boxes, 1, 0, 2)), b.f32([1], [1]));
  const big = b.op(
    'ReduceMin',
    [b.cast(b.op('GreaterOrEqual', [wh, b.mul(scale, b.f32([cfg.proposals.minSize], [1]))]), 1)],
    { int: { keepdims: 0 }, ints: { axes: [1] } },
  );
  const rowOk = b.reshape(b.cast(b.op('GreaterOrEqual', [b.slice('im_info', 0, 0, 1), b.f32(cfg.rowT, [Hf])]), 1), [
    Hf,
    1,
    1,
  ]);
  const colOk = b.reshape(b.cast(b.op('GreaterOrEqual', [b.slice('im_info', 0, 1, 2), b.f32(cfg.colT, [Wf])]), 1), [
    1,
    Wf,
    1,
  ]);
  const cellOk = b.reshape(b.mul(b.mul(rowOk, colOk), b.f32(new Array<number>(A).fill(1), [1, 1, A])), [N]);
  const scores = b.op('Where', [b.cast(b.mul(big, cellOk), 9), fg, b.f32([-1], [1])]);
  const preN = Math.min(cfg.proposals.preNmsTopN, N);
  const R = Math.min(cfg.proposals.postNmsTopN, preN);
  const [topV, topI] = b.multi('TopK', [scores, b.i64([preN])], 2, { int: { axis: 0, largest: 1, sorted: 1 } }) as [
    string,
    string,
  ];
  const preBoxes = b.op('Gather', [boxes, topI], { int: { axis: 0 } });
  const plus1 = b.f32([0, 0, 1, 1], [4]);
  const sel = b.op('NonMaxSuppression', [
    b.reshape(b.add(preBoxes, plus1), [1, preN, 4]),
    b.reshape(topV, [1, 1, preN]),
    b.i64([R]),
    b.f32([cfg.proposals.nmsThreshold], [1]),
    b.f32([-0.5], [1]),
  ]);
  const keep = b.reshape(b.slice(sel, 1, 2, 3), [-1]);
  const rois = b.op('Gather', [preBoxes, keep], { int: { axis: 0 } }, 'rois');
  b.op('Shape', [keep], {}, 'roi_count');
  // head
  const pooled = b.op('RoiAlign', ['features', rois, b.mul(keep, b.i64([0], [1]))], {
    int: { output_height: P, output_width: P, sampling_ratio: 2 },
    float: { spatial_scale: 1 / cfg.stride },
    string: { mode: 'avg', coordinate_transformation_mode: 'output_half_pixel' },
  });
  const flat = b.op('Flatten', [pooled], { int: { axis: 1 } });
  const h6 = b.op('Relu', [gemm(flat, cfg.fc.fc6)]);
  const h7 = b.op('Relu', [gemm(h6, cfg.fc.fc7)]);
  const probs = b.op('Softmax', [gemm(h7, cfg.fc.cls)], { int: { axis: -1 } });
  const pred = b.div(b.reshape(gemm(h7, cfg.fc.bbox), [-1, K1, 4]), b.f32(cfg.bboxWeights, [4]));
  const origHW = b.cast(b.cast(b.add(b.div(validHW, scale), b.f32([0.5], [1])), 6), 1);
  const clipped = clip(b, decode(b, b.div(rois, scale), pred), origHW); // [M, K1, 4]
  // per-class NMS: classes 1..K as NMS batches
  const boxesK = b.op('Transpose', [b.slice(clipped, 1, 1, K1)], { ints: { perm: [1, 0, 2] } }); // [K, M, 4]
  const scoresK = b.op('Transpose', [b.slice(probs, 1, 1, K1)], { ints: { perm: [1, 0] } }); // [K, M]
  const { maxDetections: D, nmsThreshold, scoreThreshold } = cfg.detections;
  const det = b.op('NonMaxSuppression', [
    b.add(boxesK, plus1),
    b.op('Unsqueeze', [scoresK, b.i64([1])]),
    b.i64([D]),
    b.f32([nmsThreshold], [1]),
    b.f32([scoreThreshold], [1]),
  ]); // [T, 3] = (class − 1, 0, box)
  const pairs = b.op('Concat', [b.slice(det, 1, 0, 1), b.slice(det, 1, 2, 3)], { int: { axis: 1 } }); // [T, 2]
  const detScores = b.op('GatherND', [scoresK, pairs]); // [T]
  const k = b.op('Min', [b.op('Shape', [detScores]), b.i64([D])]);
  const [bestV, bestI] = b.multi('TopK', [detScores, k], 2, { int: { axis: 0, largest: 1, sorted: 1 } }) as [
    string,
    string,
  ];
  const bestPairs = b.op('Gather', [pairs, bestI], { int: { axis: 0 } });
  b.op('Identity', [bestV], {}, 'det_scores');
  b.op('GatherND', [boxesK, bestPairs], {}, 'det_boxes');
  b.op('Add', [b.reshape(b.slice(bestPairs, 1, 0, 1), [-1]), b.i64([1], [1])], {}, 'det_classes');
  b.op('Shape', [bestV], {}, 'det_count');
  return b.graph(
    [
      { name: 'image', shape: [1, 3, Hc, Wc] },
      { name: 'im_info', shape: [3] },
    ],
    [
      { name: 'det_boxes', shape: ['D', 4] },
      { name: 'det_scores', shape: ['D'] },
      { name: 'det_classes', shape: ['D'], dtype: 'int64' },
      { name: 'det_count', shape: [1], dtype: 'int64' },
      { name: 'features', shape: [1, cfg.channels, Hf, Wf] },
      { name: 'rpn_fg', shape: [N] },
      { name: 'rpn_deltas', shape: [N, 4] },
      { name: 'rois', shape: ['M', 4] },
      { name: 'roi_count', shape: [1], dtype: 'int64' },
    ],
  );
}
