/**
 * Full inference of the small Faster R-CNN (models/frcnn: `frcnn-small`, 6 classes, RoIAlign pooling)
 * on a 384×640 canvas, image → 100 detections, with random (seeded) weights: wgflow initializes the
 * parameters, the peers get the same values (and wgflow's anchors, a model constant).
 * - wgflow: the compiled inference program (one command buffer), the detections read back;
 * - TF.js: ./frcnn-tf.ts (WebGPU ops; its NMS reads back to the host twice; cropAndResize for RoIAlign);
 * - onnxruntime: ./frcnn-onnx.ts (one ONNX model, CPU).
 * Checked against wgflow: backbone features, RPN fg probabilities and deltas (identical weights, so
 * these must agree to float32 rounding); proposals and detections are compared and reported (for
 * TF.js they differ by design after the RoI features: cropAndResize is not RoIAlign).
 */

import { GraphBuilder, getDevice, limitsFrom } from '../../index.js';
import { buildFrcnnInference } from '../../models/frcnn/index.js';
import { seeded } from '../harness.js';
import { convMatmulGflop } from './backbone-walk.js';
import { allChecks, floatCheck } from './check.js';
import { frcnnPeerConfig } from './frcnn-config.js';
import { frcnnOnnxGraph } from './frcnn-onnx.js';
import { tfFrcnnRunner } from './frcnn-tf.js';
import { loadOrt, ortRunner } from './ort.js';
import { loadTf } from './tf.js';
import type { Check, Outputs, Prepared, Workload } from './types.js';
import { wgflowProgram } from './wgflow.js';

export const FRCNN_CANVAS: readonly [number, number] = [384, 640];
const NUM_CLASSES = 6;
const DETECTION_OUTPUTS = ['det_boxes', 'det_scores', 'det_classes', 'det_count'];

/** Builds the benchmark's inference graph (also used by the profile suite). */
export async function frcnnInferenceGraph() {
  const dev = await getDevice();
  const g = new GraphBuilder();
  const m = buildFrcnnInference(g, {
    backbone: 'frcnn-small',
    numClasses: NUM_CLASSES,
    canvas: FRCNN_CANVAS,
    limits: limitsFrom(dev.limits),
    pooling: 'roi_align',
  });
  const [H, W] = FRCNN_CANVAS;
  const image = seeded(3 * H * W, 17);
  const imInfo: [number, number, number] = [H, W, 1];
  return { g, m, image, imInfo };
}

/** Proposals (valid prefix) and detections compared: counts and the largest coordinate difference. */
function compareDetections(w: Outputs, p: Outputs, peerRois: (o: Outputs, i: number, j: number) => number): string {
  const wc = (w.roi_count as ArrayLike<number>)[0] as number;
  const pc = (p.roi_count as ArrayLike<number>)[0] as number;
  let maxRoi = 0;
  for (let i = 0; i < Math.min(wc, pc); i++)
    for (let j = 0; j < 4; j++)
      maxRoi = Math.max(maxRoi, Math.abs(((w.rois as ArrayLike<number>)[5 * i + 1 + j] as number) - peerRois(p, i, j)));
  const wd = (w.det_count as ArrayLike<number>)[0] as number;
  const pd = (p.det_count as ArrayLike<number>)[0] as number;
  // detections as sets (scores of random-weight heads nearly tie, so the order is fragile): a wgflow
  // detection matches an unused peer detection of the same class with every coordinate within 0.01 px
  const at = (o: Outputs, k: string, i: number) => (o[k] as ArrayLike<number>)[i] as number;
  const used = new Uint8Array(pd);
  let matched = 0;
  for (let i = 0; i < wd; i++)
    for (let j = 0; j < pd; j++) {
      if (used[j] || at(w, 'det_classes', i) !== at(p, 'det_classes', j)) continue;
      let close = true;
      for (let c = 0; c < 4 && close; c++)
        close = Math.abs(at(w, 'det_boxes', 4 * i + c) - at(p, 'det_boxes', 4 * j + c)) < 0.01;
      if (close) {
        used[j] = 1;
        matched++;
        break;
      }
    }
  return `proposals ${wc} vs ${pc} (max |d| ${maxRoi.toExponential(1)} px over the common prefix); detections ${wd} vs ${pd}, ${matched} matched (same class, box within 0.01 px)`;
}

function trunkCheck(w: Outputs, p: Outputs, extra: string): Check {
  const c = allChecks('vs wgflow', [
    floatCheck('features', w, p, ['features'], 1e-3),
    floatCheck('RPN fg', w, p, ['rpn_fg'], 1e-3),
    floatCheck('RPN deltas', w, p, ['rpn_deltas'], 1e-3),
  ]);
  return { ...c, result: `${c.result}; ${extra}` };
}

export const frcnnWorkload: Workload = {
  id: 'frcnn',
  name: `Faster R-CNN small inference ${FRCNN_CANVAS[0]}x${FRCNN_CANVAS[1]}, 6 classes (image -> 100 detections)`,
  warmup: 1,
  runs: 5,
  async prepare(): Promise<Prepared> {
    const { g, m, image, imInfo } = await frcnnInferenceGraph();
    const outputs = {
      ...m.outputs,
      features: m.features,
      rpn_fg: m.rpn.fgProb,
      rpn_deltas: m.rpn.deltas,
      anchors: m.rpn.anchors,
    };
    const wg = await wgflowProgram(g, outputs, () => ({ image, im_info: imInfo }), {
      name: 'frcnn-infer',
      timedOutputs: DETECTION_OUTPUTS,
      seed: 1,
    });
    const params = new Map<string, Float32Array>();
    for (const p of wg.session.spec.persistent)
      params.set(p.name, (await wg.session.read(p.name)).data as Float32Array);
    const anchors = (await wg.session.run({ image, im_info: imInfo }, { outputs: ['anchors'] })).anchors
      ?.data as Float32Array;
    const cfg = frcnnPeerConfig(g, m, NUM_CLASSES, anchors, params);

    const tf = await loadTf();
    const ort = await loadOrt();
    return {
      gflop: convMatmulGflop(g.graph),
      wgflow: wg.runner,
      tf: {
        runner: tfFrcnnRunner(tf, cfg, image, imInfo),
        check: (w, p) =>
          trunkCheck(
            w,
            p,
            compareDetections(w, p, (o, i, j) => (o.rois as ArrayLike<number>)[4 * i + j] as number),
          ),
      },
      ort:
        typeof ort === 'string'
          ? { unavailable: ort }
          : {
              runner: await ortRunner(ort, frcnnOnnxGraph(cfg), 'frcnn', {
                image: { dtype: 'float32', data: image, shape: [1, 3, FRCNN_CANVAS[0], FRCNN_CANVAS[1]] },
                im_info: { dtype: 'float32', data: Float32Array.from(imInfo), shape: [3] },
              }),
              check: (w, p) =>
                trunkCheck(
                  w,
                  p,
                  compareDetections(w, p, (o, i, j) => (o.rois as ArrayLike<number>)[4 * i + j] as number),
                ),
            },
      notes: [
        `Faster R-CNN: frcnn-small (models/frcnn, current definition: ${cfg.backbone.filter((l) => l.kind === 'conv').length} backbone convs, stride ${cfg.stride}, ${cfg.N} anchors) with RoIAlign pooling, seeded random weights shared by all three; a timed run is image upload -> detections in host memory; TF.js uses cropAndResize for the RoI features (no RoIAlign in TF.js), its two NMS calls read back to the host (TF.js has no GPU NMS), and its valid-cell mask is computed on the host; ORT runs the whole graph (RoiAlign, TopK, NonMaxSuppression) in one ONNX model; GFLOP = conv + matmul work`,
      ],
    };
  },
};
