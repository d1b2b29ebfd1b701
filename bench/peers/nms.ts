/**
 * NMS 6000 → 300 at IoU 0.7 (Faster R-CNN's test-time RPN setting) on 6000 seeded boxes: corners in
 * [0, 800)², sizes in [8, 208) (as bench/detection-nms.ts), seeded scores. Every library gets the same
 * float32 boxes and scores from the host, and every timed run ends with the kept indices in host memory:
 * - wgflow: the `nms` op wholly on the GPU (sorted runs, one greedy walk against the kept boxes) in one command buffer, then
 *   the kept indices and their count read back;
 * - TF.js: `tf.image.nonMaxSuppressionAsync` — TF.js has no GPU NMS: it reads the boxes and scores to
 *   the host and runs its JS implementation (here the tensors were just made from host arrays, so no GPU
 *   round trip), then `data()` of the result;
 * - onnxruntime: the NonMaxSuppression op (opset 17) on the CPU.
 * TF.js suppresses at IoU ≥ 0.7, wgflow and onnxruntime at IoU > 0.7; the kept lists are compared
 * exactly (no IoU on these boxes is exactly 0.7), and wgflow's against ops/nms.ts's CPU reference.
 */
import { GraphBuilder } from '../../index.js';
import { cpuNms, nms } from '../../ops/nms.js';
import { seeded } from '../harness.js';
import { indexListCheck, prefix } from './check.js';
import { loadOrt, ortRunner } from './ort.js';
import { loadTf, tfRunner } from './tf.js';
import type { Outputs, Prepared, Workload } from './types.js';
import { wgflowProgram } from './wgflow.js';

const N = 6000;
const KEEP = 300;
const IOU = 0.7;

/** The benchmark's boxes (x1, y1, x2, y2) and scores, float32. */
export function nmsBenchInputs(): { boxes: Float32Array; scores: Float32Array } {
  const xy = seeded(N * 2, 17);
  const wh = seeded(N * 2, 18);
  const scores = seeded(N, 19);
  const boxes = new Float32Array(N * 4);
  for (let i = 0; i < N; i++) {
    const x1 = ((xy[2 * i] as number) + 1) * 400;
    const y1 = ((xy[2 * i + 1] as number) + 1) * 400;
    boxes[4 * i] = x1;
    boxes[4 * i + 1] = y1;
    boxes[4 * i + 2] = x1 + ((wh[2 * i] as number) + 1) * 100 + 8;
    boxes[4 * i + 3] = y1 + ((wh[2 * i + 1] as number) + 1) * 100 + 8;
  }
  return { boxes, scores };
}

/** (x1, y1, x2, y2) rows → (y1, x1, y2, x2) rows (TF.js's and ONNX's corner order). */
export function yxBoxes(b: ArrayLike<number>, n: number): Float32Array {
  const o = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    o[4 * i] = b[4 * i + 1] as number;
    o[4 * i + 1] = b[4 * i] as number;
    o[4 * i + 2] = b[4 * i + 3] as number;
    o[4 * i + 3] = b[4 * i + 2] as number;
  }
  return o;
}

export const nmsWorkload: Workload = {
  id: 'nms',
  name: `NMS ${N}->${KEEP} (IoU ${IOU}), result read back`,
  warmup: 2,
  runs: 15,
  async prepare(): Promise<Prepared> {
    const { boxes, scores } = nmsBenchInputs();
    const yx = yxBoxes(boxes, N);
    const g = new GraphBuilder();
    const r = nms(g.input('boxes', [N, 4]), g.input('scores', [N]), { iouThreshold: IOU, maxOutput: KEEP });
    const wg = await wgflowProgram(g, { indices: r.indices, count: r.count }, () => ({ boxes, scores }), {
      name: 'nms',
      timedOutputs: ['indices', 'count'],
    });
    const kept = (o: Outputs) => prefix(o.indices as ArrayLike<number>, (o.count as ArrayLike<number>)[0] as number);

    const tf = await loadTf();
    const tfFn = async () => ({
      indices: await tf.image.nonMaxSuppressionAsync(tf.tensor2d(yx, [N, 4]), tf.tensor1d(scores), KEEP, IOU),
    });

    const ort = await loadOrt();
    const graph = {
      inputs: [
        { name: 'boxes', shape: [1, N, 4] },
        { name: 'scores', shape: [1, 1, N] },
      ],
      outputs: [{ name: 'selected', shape: ['selected', 3], dtype: 'int64' as const }],
      initializers: [
        { name: 'max_out', shape: [1], data: BigInt64Array.from([BigInt(KEEP)]) },
        { name: 'iou', shape: [1], data: Float32Array.from([IOU]) },
      ],
      nodes: [{ op: 'NonMaxSuppression', inputs: ['boxes', 'scores', 'max_out', 'iou'], outputs: ['selected'] }],
    };
    return {
      wgflow: wg.runner,
      wgflowCheck: (w) =>
        indexListCheck(
          'CPU reference (ops/nms.ts)',
          cpuNms(boxes, scores, { iouThreshold: IOU, maxOutput: KEEP }),
          kept(w),
        ),
      tf: {
        runner: tfRunner(tf, tfFn, undefined, undefined, ['indices']),
        check: (w, p) => indexListCheck('kept list vs wgflow', kept(w), Array.from(p.indices as ArrayLike<number>)),
      },
      ort:
        typeof ort === 'string'
          ? { unavailable: ort }
          : {
              runner: await ortRunner(ort, graph, 'nms', {
                boxes: { dtype: 'float32', data: yx, shape: [1, N, 4] },
                scores: { dtype: 'float32', data: scores, shape: [1, 1, N] },
              }),
              check: (w, p) => {
                const sel = p.selected as ArrayLike<number>;
                const list = Array.from({ length: sel.length / 3 }, (_, i) => sel[3 * i + 2] as number);
                return indexListCheck('kept list vs wgflow', kept(w), list);
              },
            },
      notes: [
        'NMS: wgflow runs the whole NMS on the GPU and reads the kept indices back in every timed run; TF.js has no GPU NMS (nonMaxSuppressionAsync reads boxes/scores to the host and runs JS; its inputs are host-made tensors here, so no GPU round trip); TF.js suppresses at IoU >= 0.7, wgflow/ORT at > 0.7 (identical lists here)',
      ],
    };
  },
};
