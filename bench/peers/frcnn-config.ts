/**
 * What the Faster R-CNN peers need to know about the wgflow model they reimplement: sizes, the
 * conv stacks read from the compiled graph, the weights and anchors wgflow holds, and the settings
 * of the proposal layer and the post-processing (models/frcnn/rpn.ts and head.ts describe the
 * semantics the peers follow: PFR's +1 box widths, decode without clamp, clip to the valid region,
 * min-size and valid-cell filters, top-N, NMS, RoI head, per-class NMS, top 100).
 */

import type { GraphBuilder } from '../../index.js';
import {
  BBOX_WEIGHTS,
  cellThresholds,
  DETECTIONS_DEFAULT,
  type DetectionOptions,
  type FrcnnInference,
  PROPOSALS_TEST,
  type ProposalOptions,
} from '../../models/frcnn/index.js';
import { type StackLayer, walkStack } from './backbone-walk.js';
import { type HostParams, hostParam } from './stack-peers.js';

export interface FrcnnPeerConfig {
  readonly canvas: readonly [number, number];
  readonly feature: readonly [number, number];
  /** Anchors per cell. */
  readonly A: number;
  /** Anchors in all: Hf·Wf·A. */
  readonly N: number;
  readonly stride: number;
  readonly channels: number;
  readonly pooled: number;
  readonly hidden: number;
  readonly numClasses: number;
  /** [N, 4] (x1, y1, x2, y2), read from wgflow's program. */
  readonly anchors: Float32Array;
  readonly proposals: ProposalOptions;
  readonly detections: DetectionOptions;
  readonly bboxWeights: readonly number[];
  /** Cell y (x) exists when validH (validW) ≥ rowT[y] (colT[x]). */
  readonly rowT: readonly number[];
  readonly colT: readonly number[];
  /** The backbone stack (image → features). */
  readonly backbone: readonly StackLayer[];
  readonly params: HostParams;
  /** Param names of the head's linear layers ([out, in] each). */
  readonly fc: { readonly fc6: string; readonly fc7: string; readonly cls: string; readonly bbox: string };
}

export function frcnnPeerConfig(
  g: GraphBuilder,
  m: FrcnnInference,
  numClasses: number,
  anchors: Float32Array,
  params: HostParams,
): FrcnnPeerConfig {
  const [Hc, Wc] = [m.image.shape[2] as number, m.image.shape[3] as number];
  const { numAnchors: A } = m.rpn;
  const [Hf, Wf] = [m.rpn.featureHeight, m.rpn.featureWidth];
  if (typeof Hf !== 'number' || typeof Wf !== 'number')
    throw new Error('frcnn peer config: the TF.js peer takes a static canvas (no run-time sizes)');
  const b = m.backbone;
  const fc = { fc6: b.head.fc6.name, fc7: b.head.fc7.name, cls: 'cls_score', bbox: 'bbox_pred' };
  for (const n of Object.values(fc)) hostParam(params, `${n}.weight`); // split weights (VGG16's fc6) are not supported
  return {
    canvas: [Hc, Wc],
    feature: [Hf, Wf],
    A,
    N: Hf * Wf * A,
    stride: b.stride,
    channels: b.channels,
    pooled: b.head.pooled,
    hidden: b.head.hidden,
    numClasses,
    anchors,
    proposals: PROPOSALS_TEST,
    detections: DETECTIONS_DEFAULT,
    bboxWeights: BBOX_WEIGHTS,
    rowT: cellThresholds(Hf, (n) => b.featureSize(n, Wc)[0], Hc),
    colT: cellThresholds(Wf, (n) => b.featureSize(Hc, n)[1], Wc),
    backbone: walkStack(g.graph, m.image.node.id, m.features.node.id),
    params,
    fc,
  };
}

/** 1 for the anchors of cells inside the valid image's feature map (host side; depends on im_info only). */
export function validCellMask(cfg: FrcnnPeerConfig, validH: number, validW: number): Float32Array {
  const [Hf, Wf] = cfg.feature;
  const m = new Float32Array(cfg.N);
  for (let y = 0; y < Hf; y++)
    for (let x = 0; x < Wf; x++) {
      const ok = validH >= (cfg.rowT[y] as number) && validW >= (cfg.colT[x] as number) ? 1 : 0;
      for (let a = 0; a < cfg.A; a++) m[(y * Wf + x) * cfg.A + a] = ok;
    }
  return m;
}
