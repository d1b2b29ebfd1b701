/**
 * The eager detection API against torchvision itself (python3-torchvision, run once on seeded inputs):
 * - box coding in torchvision's argument order: `ops.encodeBoxes(referenceBoxes, proposals)` is
 *   `BoxCoder.encode_single(reference_boxes, proposals)`, `ops.decodeBoxes(relCodes, boxes)` is
 *   `BoxCoder.decode_single(rel_codes, boxes)` (per-class [N,4K] codes included), with the RPN's and the
 *   RoI head's weights and the bbox_xform_clip clamp;
 * - `ops.clipBoxes` on [N,4K] is `clip_boxes_to_image` on each of the K boxes;
 * - `ops.batchedNms` with negative coordinates is torchvision's per-class loop (`_batched_nms_vanilla`),
 *   where torchvision's own coordinate trick (offsets of class · (max + 1)) is not.
 * Inputs are plain nested arrays, as a user passes them. Without python3 + torchvision the test says so
 * and checks nothing (the same checks against the CPU references are in boxes/nms.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import * as ops from '../ops/detection-eager.js';
import { clearEagerCache } from '../ops/eager.js';
import { freshSeed, rand, randInt } from './helpers.js';

const PYTHON = '/usr/bin/python3';

const ORACLE = `
import json, sys, torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import boxes as B
q = json.load(sys.stdin)
t = lambda x, dt=torch.float32: torch.tensor(x, dtype=dt)
out = {}
for name, w in (('rpn', (1.0, 1.0, 1.0, 1.0)), ('head', (10.0, 10.0, 5.0, 5.0))):
    coder = BoxCoder(w)
    out['encode_' + name] = coder.encode_single(t(q['gt']), t(q['anchors'])).tolist()
    out['decode_' + name] = coder.decode_single(t(q['codes']), t(q['anchors'])).reshape(len(q['anchors']), -1).tolist()
k4 = t(q['perclass'])
out['clip'] = B.clip_boxes_to_image(k4.reshape(k4.shape[0], -1, 4), tuple(q['size'])).reshape(k4.shape[0], -1).tolist()
nb, ns, nc = t(q['nms_boxes']), t(q['nms_scores']), t(q['nms_classes'], torch.int64)
out['vanilla'] = B._batched_nms_vanilla(nb, ns, nc, q['iou']).tolist()
out['trick'] = B._batched_nms_coordinate_trick(nb, ns, nc, q['iou']).tolist()
json.dump(out, sys.stdout)
`;

function haveTorchvision(): boolean {
  if (!existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8', timeout: 120_000 });
  return r.status === 0;
}

/** N random boxes x1 < x2, y1 < y2 inside [lo, lo + span). */
function boxes(n: number, seed: number, lo: number, span: number): number[][] {
  const u = rand(n * 4, seed, 0, 1);
  return Array.from({ length: n }, (_, k) => {
    const [a, b, c, d] = u.slice(4 * k, 4 * k + 4) as [number, number, number, number];
    const x1 = lo + a * span * 0.7;
    const y1 = lo + b * span * 0.7;
    return [x1, y1, x1 + 1 + c * span * 0.3, y1 + 1 + d * span * 0.3];
  });
}

const rows = (flat: ArrayLike<number>, cols: number) =>
  Array.from({ length: flat.length / cols }, (_, i) => Array.from(flat).slice(i * cols, (i + 1) * cols));

/**
 * |got − want| ≤ rtol · max(1, |want|, scale): `scale[i][j]`, where given, is the size of the terms whose
 * difference the value is (a float32 result near 0 from two large terms carries their rounding).
 */
function expectClose(got: number[][], want: number[][], rtol: number, what: string, scale?: number[][]) {
  expect(got.length, what).toBe(want.length);
  got.forEach((r, i) =>
    r.forEach((v, j) => {
      const w = (want[i] as number[])[j] as number;
      const s = scale ? ((scale[i] as number[])[j] as number) : 0;
      expect(Math.abs(v - w), `${what}[${i}][${j}]: ${v} vs ${w}`).toBeLessThanOrEqual(
        rtol * Math.max(1, Math.abs(w), s),
      );
    }),
  );
}

/**
 * The magnitude of the terms of each decoded coordinate, in float64: x1 = ctr − w/2 and x2 = ctr + w/2 are
 * sums of |ctr| and w/2 (BoxCoder.decode_single, dw/dh clamped at ln(1000/16)).
 */
function decodeScale(codes: number[][], anchors: number[][], weights: readonly number[]): number[][] {
  const clip = Math.log(1000 / 16);
  const [wx, wy, ww, wh] = weights as [number, number, number, number];
  return codes.map((row, i) => {
    const [x1, y1, x2, y2] = anchors[i] as [number, number, number, number];
    const aw = x2 - x1;
    const ah = y2 - y1;
    return row.map((_, j) => {
      const k = j - (j % 4);
      const [dx, dy, dw, dh] = row.slice(k, k + 4) as [number, number, number, number];
      const x = j % 2 === 0;
      const ctr = x ? (dx / wx) * aw + x1 + 0.5 * aw : (dy / wy) * ah + y1 + 0.5 * ah;
      const half = 0.5 * Math.exp(Math.min(x ? dw / ww : dh / wh, clip)) * (x ? aw : ah);
      return Math.abs(ctr) + half;
    });
  });
}

afterAll(async () => {
  await clearEagerCache();
});

describe('eager detection ops against torchvision', () => {
  it('box coding order, clipBoxes on [N,4K], batchedNms with negative coordinates', async () => {
    if (!haveTorchvision()) {
      console.warn(`torchvision-order.test: no ${PYTHON} with torch and torchvision; nothing was compared`);
      return;
    }
    const seed = freshSeed();
    const n = 37;
    const anchors = boxes(n, seed, -20, 200);
    const gt = boxes(n, seed + 1, -20, 200);
    // deltas up to ±6, so some dw/dh pass the clamp ln(1000/16) ≈ 4.14; 3 classes of codes
    const codes = rows(rand(n * 12, seed + 2, -6, 6), 12);
    const perclass = rows(rand(n * 12, seed + 3, -50, 250), 12);
    // dense boxes of both signs, 4 classes; coordinates on a 1/8 grid, so the shifted ones are exact in
    // float32 and every IoU equals the unshifted one bit for bit (no decision within rounding of `iou`)
    const nmsBoxes = boxes(300, seed + 4, -120, 160).map((b) => b.map((v) => Math.round(v * 8) / 8));
    const nmsScores = rand(300, seed + 5, 0, 1);
    const nmsClasses = randInt(300, seed + 6, 0, 4);
    const iou = 0.4;
    const size: [number, number] = [150, 180];
    const r = spawnSync(PYTHON, ['-c', ORACLE], {
      input: JSON.stringify({
        anchors,
        gt,
        codes,
        perclass,
        size,
        nms_boxes: nmsBoxes,
        nms_scores: nmsScores,
        nms_classes: nmsClasses,
        iou,
      }),
      encoding: 'utf8',
      timeout: 300_000,
      maxBuffer: 64 * 2 ** 20,
    });
    expect(r.status, r.stderr).toBe(0);
    const tv = JSON.parse(r.stdout) as Record<string, number[][] & number[]>;

    for (const [name, weights] of [
      ['rpn', [1, 1, 1, 1]],
      ['head', [10, 10, 5, 5]],
    ] as const) {
      const enc = await ops.encodeBoxes(gt, anchors, { weights });
      expectClose(rows(enc.data, 4), tv[`encode_${name}`] as number[][], 2e-5, `encode ${name}`);
      // the swapped order is a different (wrong) answer: the test tells the two apart
      const swapped = await ops.encodeBoxes(anchors, gt, { weights });
      expect(rows(swapped.data, 4)[0]).not.toEqual(rows(enc.data, 4)[0]);
      const dec = await ops.decodeBoxes(codes, anchors, { weights });
      expect(dec.shape).toEqual([n, 12]);
      expectClose(
        rows(dec.data, 12),
        tv[`decode_${name}`] as number[][],
        2e-5,
        `decode ${name}`,
        decodeScale(codes, anchors, weights),
      );
    }
    const clipped = await ops.clipBoxes(perclass, size);
    expect(clipped.shape).toEqual([n, 12]);
    expectClose(rows(clipped.data, 12), tv.clip as number[][], 0, 'clip');

    const kept = Array.from(await ops.batchedNms(nmsBoxes, nmsScores, nmsClasses, iou));
    expect(kept).toEqual(tv.vanilla);
    // torchvision's own offsets let classes overlap on these boxes (so the comparison can fail)
    expect(tv.trick).not.toEqual(tv.vanilla);
  });
});
