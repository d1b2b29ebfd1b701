/**
 * RoIAlign of 300 RoIs → 7×7 on a 1×512×38×50 feature map (VGG16 conv5_3 of a 608×800 image, spatial
 * scale 1/16, sampling ratio 2, aligned = false; the seeded boxes of bench/detection-roi.ts).
 * - wgflow: the roi_align op (boxes are a graph constant; a timed run uploads the feature map, runs
 *   the kernel and waits, no readback);
 * - TF.js: `tf.image.cropAndResize` on the WebGPU backend, bilinear, crop 7×7, with each box converted
 *   to its normalized [y1, x1, y2, x2] form (feature-map coordinate / (size − 1)); the boxes and box
 *   indices are tensors made once, the feature map is uploaded in every timed run (NHWC);
 * - onnxruntime: the RoiAlign op (opset 17, mode avg, output_half_pixel = aligned false, sampling 2).
 * cropAndResize is not RoIAlign: it samples ONE point per output cell on a grid that spans the box
 * edge to edge, where RoIAlign averages 2×2 samples inside each bin. TF.js is therefore checked against
 * a CPU crop-and-resize reference (TF's formula), onnxruntime against wgflow.
 */
import { GraphBuilder } from '../../index.js';
import { roiAlign } from '../../ops/roi-align.js';
import { benchRois } from '../detection-roi.js';
import { seeded } from '../harness.js';
import { floatCheck } from './check.js';
import { loadOrt, ortRunner } from './ort.js';
import { loadTf, nchwToNhwc, tfRunner } from './tf.js';
import type { Prepared, Workload } from './types.js';
import { wgflowProgram } from './wgflow.js';

const C = 512;
const H = 38;
const W = 50;
const K = 300;
const P = 7;
const SCALE = 1 / 16;
const SAMPLING = 2;

/**
 * TF's crop_and_resize (bilinear, extrapolation value 0) on the CPU in float64: image NHWC [1, h, w, c],
 * normalized boxes [k, 4] (y1, x1, y2, x2) → [k, ch, cw, c].
 */
export function cpuCropAndResize(
  image: ArrayLike<number>,
  h: number,
  w: number,
  c: number,
  boxes: ArrayLike<number>,
  k: number,
  ch: number,
  cw: number,
): Float32Array {
  const out = new Float32Array(k * ch * cw * c);
  const px = (y: number, x: number, ci: number) => image[(y * w + x) * c + ci] as number;
  for (let b = 0; b < k; b++) {
    const [y1, x1, y2, x2] = [0, 1, 2, 3].map((j) => boxes[4 * b + j] as number) as [number, number, number, number];
    for (let y = 0; y < ch; y++) {
      const inY = ch > 1 ? y1 * (h - 1) + (y * (y2 - y1) * (h - 1)) / (ch - 1) : 0.5 * (y1 + y2) * (h - 1);
      if (inY < 0 || inY > h - 1) continue; // extrapolation value 0
      const top = Math.floor(inY);
      const bottom = Math.ceil(inY);
      const ly = inY - top;
      for (let x = 0; x < cw; x++) {
        const inX = cw > 1 ? x1 * (w - 1) + (x * (x2 - x1) * (w - 1)) / (cw - 1) : 0.5 * (x1 + x2) * (w - 1);
        if (inX < 0 || inX > w - 1) continue;
        const left = Math.floor(inX);
        const right = Math.ceil(inX);
        const lx = inX - left;
        const o = ((b * ch + y) * cw + x) * c;
        for (let ci = 0; ci < c; ci++) {
          const t = px(top, left, ci) + (px(top, right, ci) - px(top, left, ci)) * lx;
          const bt = px(bottom, left, ci) + (px(bottom, right, ci) - px(bottom, left, ci)) * lx;
          out[o + ci] = t + (bt - t) * ly;
        }
      }
    }
  }
  return out;
}

/** RoIs [k, 5] (batch, x1, y1, x2, y2) in image pixels → normalized [k, 4] (y1, x1, y2, x2) on an h×w map. */
export function normalizedBoxes(rois: ArrayLike<number>, k: number, scale: number, h: number, w: number): Float32Array {
  const o = new Float32Array(k * 4);
  for (let i = 0; i < k; i++) {
    o[4 * i] = ((rois[5 * i + 2] as number) * scale) / (h - 1);
    o[4 * i + 1] = ((rois[5 * i + 1] as number) * scale) / (w - 1);
    o[4 * i + 2] = ((rois[5 * i + 4] as number) * scale) / (h - 1);
    o[4 * i + 3] = ((rois[5 * i + 3] as number) * scale) / (w - 1);
  }
  return o;
}

export const roiAlignWorkload: Workload = {
  id: 'roialign',
  name: `RoIAlign ${K} RoIs -> ${P}x${P} on 1x${C}x${H}x${W} (TF.js: cropAndResize)`,
  // ≈ 11 flops per sample and channel (as bench/detection-roi.ts); memory-bound, indicative only
  gflop: (K * C * P * P * SAMPLING * SAMPLING * 11) / 1e9,
  warmup: 2,
  runs: 11,
  async prepare(): Promise<Prepared> {
    const rois = benchRois();
    const x = seeded(C * H * W, 17);
    const g = new GraphBuilder();
    const y = roiAlign(g.input('x', [1, C, H, W]), g.constant(rois, [K, 5]), {
      outputSize: P,
      spatialScale: SCALE,
      samplingRatio: SAMPLING,
      aligned: false,
    });
    const wg = await wgflowProgram(g, { y }, () => ({ x }), { name: 'roialign' });

    const tf = await loadTf();
    const xNhwc = nchwToNhwc(x, C, H, W);
    const nb = normalizedBoxes(rois, K, SCALE, H, W);
    const tfBoxes = tf.keep(tf.tensor2d(nb, [K, 4]));
    const tfBoxInd = tf.keep(tf.tensor1d(new Int32Array(K), 'int32'));
    const tfFn = () => ({
      y: tf.image.cropAndResize(tf.tensor4d(xNhwc, [1, H, W, C]), tfBoxes, tfBoxInd, [P, P], 'bilinear'),
    });

    const ort = await loadOrt();
    const boxes4 = new Float32Array(K * 4);
    for (let i = 0; i < K; i++) for (let j = 0; j < 4; j++) boxes4[4 * i + j] = rois[5 * i + 1 + j] as number;
    const graph = {
      inputs: [{ name: 'x', shape: [1, C, H, W] }],
      outputs: [{ name: 'y', shape: [K, C, P, P] }],
      initializers: [
        { name: 'rois', shape: [K, 4], data: boxes4 },
        { name: 'batch', shape: [K], data: new BigInt64Array(K) },
      ],
      nodes: [
        {
          op: 'RoiAlign',
          inputs: ['x', 'rois', 'batch'],
          outputs: ['y'],
          int: { output_height: P, output_width: P, sampling_ratio: SAMPLING },
          float: { spatial_scale: SCALE },
          string: { mode: 'avg', coordinate_transformation_mode: 'output_half_pixel' },
        },
      ],
    };
    return {
      wgflow: wg.runner,
      tf: {
        runner: tfRunner(tf, tfFn, undefined, () => {
          tfBoxes.dispose();
          tfBoxInd.dispose();
        }),
        check: (_w, p) =>
          floatCheck('CPU crop-and-resize reference', { y: cpuCropAndResize(xNhwc, H, W, C, nb, K, P, P) }, p),
      },
      ort:
        typeof ort === 'string'
          ? { unavailable: ort }
          : {
              runner: await ortRunner(ort, graph, 'roialign', {
                x: { dtype: 'float32', data: x, shape: [1, C, H, W] },
              }),
              check: (w, p) => floatCheck('vs wgflow', w, p),
            },
      notes: [
        'RoIAlign: TF.js has no RoIAlign; its peer is tf.image.cropAndResize (bilinear, 7x7, boxes normalized by (size - 1) in feature-map coordinates), which samples ONE point per output cell on an edge-to-edge grid where RoIAlign averages 2x2 samples inside each bin, so it is checked against a CPU crop-and-resize reference, not against wgflow; ORT RoiAlign (avg, output_half_pixel, sampling 2) is checked against wgflow; GFLOP/s counts RoIAlign work (11 flops per sample and channel)',
      ],
    };
  },
};
