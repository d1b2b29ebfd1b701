/**
 * Pictures and result files: detections drawn on an image (decoded back with sharp: frame pixels in the
 * class colour at the box edges, the inside untouched, the tag above the box), the loss-curve PNG (size,
 * not blank, the series colours present), and COCO results (xywh from inclusive/continuous boxes, checked
 * through eval/coco.ts: a detection equal to its ground truth scores AP 1).
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage, type RgbImage } from '../data/image.js';
import { evaluateCoco } from '../eval/coco.js';
import { toCocoResults } from '../eval/coco-results.js';
import { type Detection, detectionsFromOutputs } from '../eval/detections.js';
import { classColor, drawDetections } from '../viz/draw-detections.js';
import { logTicks, niceTicks, plotLossCurve, SERIES_COLORS } from '../viz/loss-curve.js';

const W = 120;
const H = 90;
const GREY = 100;
const grey = (): RgbImage => ({ width: W, height: H, data: new Uint8Array(W * H * 3).fill(GREY) });
const px = (img: RgbImage, x: number, y: number) => [...img.data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];

describe('drawDetections', () => {
  const dets: Detection[] = [
    { box: [20, 40, 69, 79], label: 1, score: 0.93 },
    { box: [80, 5, 110, 30], label: 2, score: 0.5 },
  ];
  const names = ['__background__', 'circle', 'square'];

  it('frames each box in its class colour on its edge pixels and leaves the rest of the image alone', async () => {
    const png = await drawDetections(grey(), dets, names, { lineWidth: 2 });
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', W, H]);
    const img = await decodeImage(png);
    const c1 = [...classColor(1)];
    const c2 = [...classColor(2)];
    expect(c1).not.toEqual(c2);
    // box 1, inclusive [20, 40, 69, 79]: columns 20 and 69, rows 40 and 79 (and the pixel inside them: width 2)
    for (const [x, y] of [
      [20, 60],
      [21, 60],
      [69, 60],
      [68, 60],
      [45, 79],
      [45, 78],
      [45, 40],
      [20, 40],
      [69, 79],
    ] as const)
      expect(px(img, x, y), `box 1 edge (${x}, ${y})`).toEqual(c1);
    // just outside and just inside the 2-pixel frame
    for (const [x, y] of [
      [19, 60],
      [70, 60],
      [22, 60],
      [67, 60],
      [45, 77],
      [45, 80],
      [45, 60],
    ] as const)
      expect(px(img, x, y), `not frame (${x}, ${y})`).toEqual([GREY, GREY, GREY]);
    // box 2 [80, 5, 110, 30]: the tag does not fit above (y1 = 5), so it is drawn inside, from the top edge down
    // (rows 5..20 hold the tag, shifted left to stay in the image)
    expect(px(img, 110, 25)).toEqual(c2);
    expect(px(img, 95, 30)).toEqual(c2);
    expect(px(img, 111, 25)).toEqual([GREY, GREY, GREY]);
    expect(px(img, 119, 6)).toEqual(c2); // the tag's right end at the image border
    // box 1's tag: a filled strip in the class colour just above the box, starting at x1
    const tagRow = 40 - 8;
    expect(px(img, 21, tagRow)).toEqual(c1);
    // the tag text is drawn (the strip is not one flat colour)
    const strip = new Set<string>();
    for (let x = 20; x < 70; x++) for (let y = 40 - 16; y < 40; y++) strip.add(px(img, x, y).join(','));
    expect(strip.size).toBeGreaterThan(3);
  });

  it('continuous boxes end one pixel earlier; minScore hides detections; bad images are rejected', async () => {
    const img = await decodeImage(
      await drawDetections(grey(), [{ box: [20, 40, 70, 80], label: 3, score: 0.9 }], names, {
        lineWidth: 1,
        boxConvention: 'continuous',
      }),
    );
    expect(px(img, 69, 60)).toEqual([...classColor(3)]);
    expect(px(img, 70, 60)).toEqual([GREY, GREY, GREY]);
    const none = await decodeImage(await drawDetections(grey(), dets, names, { minScore: 0.99 }));
    expect(none.data.every((v) => v === GREY)).toBe(true);
    await expect(drawDetections({ width: 4, height: 4, data: new Uint8Array(5) }, dets, names)).rejects.toThrow(
      /image 4×4 needs 48 RGB bytes, got 5/,
    );
  });
});

describe('plotLossCurve', () => {
  it('draws a PNG of the requested size with both series and a legend; log scale works', async () => {
    const n = 300;
    const total = Array.from({ length: n }, (_, i) => 2 * Math.exp(-i / 60) + 0.1 + 0.05 * Math.sin(i));
    const part = total.map((v) => v / 3);
    part[100] = Number.NaN; // a gap, not a crash
    for (const logY of [false, true]) {
      const png = await plotLossCurve(
        [
          { name: 'loss', values: total },
          { name: 'rpn_cls_loss', values: part, steps: part.map((_, i) => (i + 1) * 10) },
        ],
        { title: 'frcnn-small', logY, width: 640, height: 400 },
      );
      const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([640, 400]);
      const count = (c: readonly number[], tol: number) => {
        let k = 0;
        for (let i = 0; i < data.length; i += 3)
          if (
            Math.abs((data[i] as number) - (c[0] as number)) <= tol &&
            Math.abs((data[i + 1] as number) - (c[1] as number)) <= tol &&
            Math.abs((data[i + 2] as number) - (c[2] as number)) <= tol
          )
            k++;
        return k;
      };
      const white = count([255, 255, 255], 0);
      expect(white).toBeLessThan(640 * 400 * 0.97); // not blank
      expect(white).toBeGreaterThan(640 * 400 * 0.5); // mostly background
      expect(count(SERIES_COLORS[0] as readonly number[], 8)).toBeGreaterThan(200); // the lines
      expect(count(SERIES_COLORS[1] as readonly number[], 8)).toBeGreaterThan(200);
    }
  });

  it('ticks are 1/2/5 × 10^k; empty input is an error', async () => {
    expect(niceTicks(0, 2.1)).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(niceTicks(1, 3000)).toEqual([500, 1000, 1500, 2000, 2500, 3000]);
    expect(logTicks(0.05, 3)).toEqual([0.05, 0.1, 0.2, 0.5, 1, 2]);
    await expect(plotLossCurve([{ name: 'x', values: [Number.NaN] }])).rejects.toThrow(/no finite values/);
    await expect(plotLossCurve([{ name: 'x', values: [0, -1] }], { logY: true })).rejects.toThrow(
      /no positive finite values/,
    );
  });
});

describe('COCO results', () => {
  it('inclusive boxes → [x, y, x2 − x1 + 1, y2 − y1 + 1]; continuous → [x, y, x2 − x1, y2 − y1]; category ids', () => {
    const dets: Detection[][] = [[{ box: [10, 20, 39, 59], label: 1, score: 0.9 }], []];
    expect(toCocoResults(dets, [7, 8])).toEqual([{ image_id: 7, category_id: 1, bbox: [10, 20, 30, 40], score: 0.9 }]);
    expect(toCocoResults(dets, [7, 8], { boxConvention: 'continuous', categoryIds: [0, 18] })).toEqual([
      { image_id: 7, category_id: 18, bbox: [10, 20, 29, 39], score: 0.9 },
    ]);
    expect(() => toCocoResults(dets, [7])).toThrow(/2 detection lists but 1 image ids/);
    expect(() => toCocoResults([[{ box: [0, 0, 1, 1], label: 0, score: 1 }]], [1])).toThrow(/label 0 is not a class/);
    expect(() => toCocoResults(dets, [7, 8], { categoryIds: [0] })).toThrow(/label 1 has no category id/);
  });

  it('matches eval/coco.ts: detections equal to the ground truth (inclusive boxes) score AP 1, shifted ones less', () => {
    // ground truth [x, y, w, h]; the model's inclusive box of it is [x, y, x + w − 1, y + h − 1]
    const gtBoxes = [
      [10, 20, 30, 40],
      [50, 5, 12, 12],
    ];
    const gt = {
      images: [{ id: 3 }],
      categories: [{ id: 5, name: 'a' }],
      annotations: gtBoxes.map((b, i) => ({ id: i + 1, image_id: 3, category_id: 5, bbox: b, area: b[2]! * b[3]! })),
    };
    const exact: Detection[] = gtBoxes.map((b, i) => ({
      box: [b[0]!, b[1]!, b[0]! + b[2]! - 1, b[1]! + b[3]! - 1],
      label: 1,
      score: 0.9 - i * 0.1,
    }));
    const res = evaluateCoco(gt, toCocoResults([exact], [3], { categoryIds: [0, 5] }));
    expect(res.ap).toBeCloseTo(1, 10);
    // the same boxes read as continuous would be one pixel short: IoU < 1 makes AP@[.5:.95] < 1
    const short = evaluateCoco(gt, toCocoResults([exact], [3], { categoryIds: [0, 5], boxConvention: 'continuous' }));
    expect(short.ap).toBeLessThan(1);
  });

  it('detectionsFromOutputs reads the valid prefix of the fixed-capacity outputs', () => {
    const out = {
      det_boxes: { data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]) },
      det_scores: { data: Float32Array.from([0.9, 0.8, 0]) },
      det_classes: { data: Int32Array.from([2, 1, -1]) },
      det_count: { data: Int32Array.from([2]) },
    };
    expect(detectionsFromOutputs(out)).toEqual([
      { box: [1, 2, 3, 4], label: 2, score: Math.fround(0.9) },
      { box: [5, 6, 7, 8], label: 1, score: Math.fround(0.8) },
    ]);
    expect(() => detectionsFromOutputs({ ...out, det_count: { data: [4] } })).toThrow(/count 4 does not fit/);
    expect(() => detectionsFromOutputs({})).toThrow(/no output "det_boxes"/);
  });
});
