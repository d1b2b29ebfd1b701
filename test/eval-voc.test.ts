/**
 * VOC evaluation (spec §8, py-faster-rcnn `voc_eval.py`): hand-worked cases and fast-check properties.
 * Boxes are [x1, y1, x2, y2]; most cases use `plusOne: false` so the IoUs are plain ratios.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluateVoc, formatVocTable, type VocDetection, type VocGroundTruth, vocAp, vocIou } from '../eval/index.js';

const A = [0, 0, 10, 10];
const B = [20, 0, 30, 10];
const FAR = [50, 50, 60, 60];
const det = (imageId: string, classId: number, score: number, box: number[]): VocDetection => ({
  imageId,
  classId,
  score,
  box,
});
const gt = (imageId: string, classId: number, box: number[], difficult = false): VocGroundTruth => ({
  imageId,
  classId,
  box,
  difficult,
});
const noPlusOne = { plusOne: false };

describe('vocIou', () => {
  it('uses the +1 convention when asked', () => {
    // 10x10 box [0,0,9,9] vs 10x5 box [0,0,9,4]: inter 50, union 100.
    expect(vocIou([0, 0, 9, 9], [0, 0, 9, 4], true)).toBe(0.5);
    // Without +1: 9x9 vs 9x4 → 36 / 81.
    expect(vocIou([0, 0, 9, 9], [0, 0, 9, 4], false)).toBeCloseTo(36 / 81, 15);
    expect(vocIou(A, FAR, false)).toBe(0);
  });
});

describe('vocAp', () => {
  it('11-point and area-under-curve differ (rec .5,.5,1; prec 1,.5,2/3)', () => {
    const rec = [0.5, 0.5, 1];
    const prec = [1, 0.5, 2 / 3];
    // Area: envelope [1, 2/3, 2/3] → 0.5·1 + 0.5·2/3 = 5/6.
    expect(vocAp(rec, prec, false)).toBeCloseTo(5 / 6, 12);
    // 11-point: t = 0..0.5 (6 points) → 1, t = 0.6..1 (5 points) → 2/3 → (6 + 10/3) / 11 = 28/33.
    expect(vocAp(rec, prec, true)).toBeCloseTo(28 / 33, 12);
  });

  it('11-point uses np.arange thresholds: recall 0.3 is below t = 0.30000000000000004', () => {
    // rec reaches exactly 0.3 with precision 1, nothing more: points t = 0, 0.1, 0.2 → 3/11.
    expect(vocAp([0.3], [1], true)).toBeCloseTo(3 / 11, 12);
    expect(vocAp([0.3], [1], false)).toBeCloseTo(0.3, 12);
  });

  it('is 0 for an empty curve', () => {
    expect(vocAp([], [], true)).toBe(0);
    expect(vocAp([], [], false)).toBe(0);
  });
});

describe('evaluateVoc: hand-worked cases', () => {
  it('duplicate detection is a FP; AUC 5/6 vs 11-point 28/33', () => {
    // gt A, B. d1 .9 on A → TP; d2 .8 on A again → FP (duplicate); d3 .7 on B → TP.
    // rec = [.5, .5, 1], prec = [1, .5, 2/3].
    const dets = [det('i', 0, 0.9, A), det('i', 0, 0.8, A), det('i', 0, 0.7, B)];
    const gts = [gt('i', 0, A), gt('i', 0, B)];
    const auc = evaluateVoc(dets, gts, ['cat'], noPlusOne);
    const c = auc.perClass[0]!;
    expect([c.npos, c.tp, c.fp, c.ignored]).toEqual([2, 2, 1, 0]);
    expect(c.recall).toEqual([0.5, 0.5, 1]);
    expect(c.precision[0]).toBe(1);
    expect(c.precision[1]).toBe(0.5);
    expect(c.precision[2]).toBeCloseTo(2 / 3, 15);
    expect(c.ap).toBeCloseTo(5 / 6, 12);
    expect(auc.map).toBeCloseTo(5 / 6, 12);
    const v07 = evaluateVoc(dets, gts, ['cat'], { ...noPlusOne, use07: true });
    expect(v07.perClass[0]!.ap).toBeCloseTo(28 / 33, 12);
  });

  it('IoU exactly 0.5 is not a match (strict >)', () => {
    // gt [0,0,10,10] (area 100), det [0,0,10,5] (area 50): IoU = 50/100 = 0.5 → FP, AP 0.
    const gts = [gt('i', 0, A)];
    const dets = [det('i', 0, 0.9, [0, 0, 10, 5])];
    const r = evaluateVoc(dets, gts, ['cat'], noPlusOne);
    expect([r.perClass[0]!.tp, r.perClass[0]!.fp]).toEqual([0, 1]);
    expect(r.perClass[0]!.ap).toBe(0);
    // Same boxes with threshold 0.49: a TP, AP 1.
    expect(evaluateVoc(dets, gts, ['cat'], { ...noPlusOne, iouThreshold: 0.49 }).perClass[0]!.ap).toBe(1);
    // +1 convention: [0,0,9,9] vs [0,0,9,4] is 50/100 = 0.5 → FP too.
    const r1 = evaluateVoc([det('i', 0, 0.9, [0, 0, 9, 4])], [gt('i', 0, [0, 0, 9, 9])], ['cat']);
    expect(r1.perClass[0]!.ap).toBe(0);
  });

  it('the +1 convention can decide a match', () => {
    // gt [0,0,9,9], det [0,0,9,4.5]: +1 → 10·5.5 / 100 = 0.55 (TP); no +1 → 9·4.5 / 81 = 0.5 (FP).
    const gts = [gt('i', 0, [0, 0, 9, 9])];
    const dets = [det('i', 0, 0.9, [0, 0, 9, 4.5])];
    expect(evaluateVoc(dets, gts, ['cat'], { plusOne: true }).perClass[0]!.ap).toBe(1);
    expect(evaluateVoc(dets, gts, ['cat'], { plusOne: false }).perClass[0]!.ap).toBe(0);
  });

  it('difficult ground truth: not counted in npos, its detections are neither TP nor FP', () => {
    // gt A (regular), B (difficult). d1 .9 on B → ignored; d2 .8 on A → TP; d3 .7 on B → ignored
    // (even though B was "hit" before); d4 .6 far → FP. npos 1.
    // rec = [0, 1, 1, 1], prec = [0, 1, 1, .5] → AP 1 both ways.
    const gts = [gt('i', 0, A), gt('i', 0, B, true)];
    const dets = [det('i', 0, 0.9, B), det('i', 0, 0.8, A), det('i', 0, 0.7, B), det('i', 0, 0.6, FAR)];
    const r = evaluateVoc(dets, gts, ['cat'], noPlusOne);
    const c = r.perClass[0]!;
    expect([c.npos, c.numDifficult, c.tp, c.fp, c.ignored]).toEqual([1, 1, 1, 1, 2]);
    expect(c.recall).toEqual([0, 1, 1, 1]);
    expect(c.precision).toEqual([0, 1, 1, 0.5]);
    expect(c.ap).toBe(1);
    expect(evaluateVoc(dets, gts, ['cat'], { ...noPlusOne, use07: true }).perClass[0]!.ap).toBeCloseTo(1, 12);
  });

  it("difficult as VOC XML's 0/1 counts as the booleans; anything else is an error", () => {
    const dets = [det('i', 0, 0.9, B), det('i', 0, 0.8, A), det('i', 0, 0.7, B), det('i', 0, 0.6, FAR)];
    const bools = evaluateVoc(dets, [gt('i', 0, A), gt('i', 0, B, true)], ['cat'], noPlusOne);
    const flags = evaluateVoc(
      dets,
      [
        { ...gt('i', 0, A), difficult: 0 },
        { ...gt('i', 0, B), difficult: 1 },
      ],
      ['cat'],
      noPlusOne,
    );
    expect(flags).toEqual(bools);
    expect(flags.perClass[0]!.numDifficult).toBe(1);
    // a 1 read as "not difficult" would count B: npos 2, and d3 (a second hit on B) an FP instead of ignored
    const plain = evaluateVoc(dets, [gt('i', 0, A), gt('i', 0, B)], ['cat'], noPlusOne).perClass[0]!;
    expect([plain.npos, plain.fp]).toEqual([2, 2]);
    expect([flags.perClass[0]!.npos, flags.perClass[0]!.fp]).toEqual([1, 1]);
    for (const bad of [2, '1', null, Number.NaN, -1])
      expect(() =>
        evaluateVoc(dets, [{ ...gt('i', 0, A), difficult: bad as unknown as 0 }], ['cat'], noPlusOne),
      ).toThrow(/ground truth 0: difficult must be 0, 1, true or false/);
  });

  it('a difficult box that overlaps best hides a regular one (np.argmax over all gt)', () => {
    // Regular A = [0,0,10,10], difficult D = [0,0,10,11]; det = [0,0,10,11] has IoU 1 with D and
    // 100/110 with A → best is D → ignored, A stays unmatched: AP 0.
    const gts = [gt('i', 0, A), gt('i', 0, [0, 0, 10, 11], true)];
    const r = evaluateVoc([det('i', 0, 0.9, [0, 0, 10, 11])], gts, ['cat'], noPlusOne);
    expect([r.perClass[0]!.tp, r.perClass[0]!.fp, r.perClass[0]!.ignored]).toEqual([0, 0, 1]);
    expect(r.perClass[0]!.ap).toBe(0);
  });

  it('score ties keep input order (stable sort)', () => {
    // gt A. FAR (FP) and A (TP) both score .5.
    // FAR first: rec [0, 1], prec [0, .5] → envelope .5 → AP .5.
    // A first:   rec [1, 1], prec [1, .5] → AP 1.
    const gts = [gt('i', 0, A)];
    const fpFirst = evaluateVoc([det('i', 0, 0.5, FAR), det('i', 0, 0.5, A)], gts, ['cat'], noPlusOne);
    const tpFirst = evaluateVoc([det('i', 0, 0.5, A), det('i', 0, 0.5, FAR)], gts, ['cat'], noPlusOne);
    expect(fpFirst.perClass[0]!.ap).toBe(0.5);
    expect(tpFirst.perClass[0]!.ap).toBe(1);
  });

  it('no detections: AP 0', () => {
    const r = evaluateVoc([], [gt('i', 0, A)], ['cat'], noPlusOne);
    expect(r.perClass[0]!.ap).toBe(0);
    expect(evaluateVoc([], [gt('i', 0, A)], ['cat'], { use07: true }).perClass[0]!.ap).toBe(0);
    expect(r.map).toBe(0);
  });

  it('class without (non-difficult) ground truth: AP NaN, left out of the mAP', () => {
    // class 0: perfect (AP 1). class 1: one detection, no gt. class 2: only a difficult gt.
    const dets = [det('i', 0, 0.9, A), det('i', 1, 0.8, B), det('i', 2, 0.7, B)];
    const gts = [gt('i', 0, A), gt('i', 2, B, true)];
    const r = evaluateVoc(dets, gts, ['a', 'b', 'c'], noPlusOne);
    expect(r.perClass.map((c) => c.npos)).toEqual([1, 0, 0]);
    expect(r.perClass[0]!.ap).toBe(1);
    expect(r.perClass[1]!.ap).toBeNaN();
    expect(r.perClass[1]!.fp).toBe(1);
    expect(r.perClass[2]!.ap).toBeNaN();
    expect(r.perClass[2]!.ignored).toBe(1);
    expect(r.map).toBe(1);
    expect(evaluateVoc([], [], ['a']).map).toBeNaN();
  });

  it('two images, two classes: ground truth is per image and per class', () => {
    // Image a: class 0 at A. Image b: class 0 at A, class 1 at [0,0,20,20].
    // class 0: .9 on b/A TP, .8 on a/A TP → AP 1.
    // class 1: .95 on a (no class-1 gt there) FP, .5 on b TP → rec [0,1], prec [0,.5] → AP .5
    //          (11-point: every t has max prec .5 → .5). A class-0 det on b at the class-1 box
    //          does not touch class 1. mAP = .75.
    const big = [0, 0, 20, 20];
    const dets = [det('b', 0, 0.9, A), det('a', 0, 0.8, A), det('a', 1, 0.95, big), det('b', 1, 0.5, big)];
    const gts = [gt('a', 0, A), gt('b', 0, A), gt('b', 1, big)];
    for (const use07 of [false, true]) {
      const r = evaluateVoc(dets, gts, ['x', 'y'], { ...noPlusOne, use07 });
      expect(r.perClass[0]!.ap).toBeCloseTo(1, 12);
      expect(r.perClass[1]!.ap).toBeCloseTo(0.5, 12);
      expect(r.map).toBeCloseTo(0.75, 12);
    }
  });

  it('identical ground-truth boxes: the first gt is always the best (np.argmax), so the 2nd det is a FP', () => {
    // Two gts at A, two dets at A: d1 → gt 0 TP, d2 → gt 0 again → FP. rec [.5, .5], prec [1, .5]
    // → AP = .5 (COCO's matching gives 1 here, see eval-coco.test.ts).
    const r = evaluateVoc([det('i', 0, 0.9, A), det('i', 0, 0.8, A)], [gt('i', 0, A), gt('i', 0, A)], ['c'], noPlusOne);
    expect([r.perClass[0]!.tp, r.perClass[0]!.fp]).toEqual([1, 1]);
    expect(r.perClass[0]!.ap).toBe(0.5);
  });

  it('formats a Markdown table', () => {
    const r = evaluateVoc([det('i', 0, 0.9, A), det('i', 1, 0.8, B)], [gt('i', 0, A)], ['cat', 'dog'], noPlusOne);
    const t = formatVocTable(r);
    expect(t).toContain('AP: area under curve, IoU > 0.5');
    expect(t).toContain('| cat | 100.0 | 1 | 0 | 1 | 1 | 0 |');
    expect(t).toContain('| dog | n/a | 0 | 0 | 1 | 0 | 1 |');
    expect(t).toContain('| **mAP** | **100.0** |');
  });

  it('rejects bad input', () => {
    expect(() => evaluateVoc([det('i', 3, 0.5, A)], [], ['a'])).toThrow(/classId/);
    expect(() => evaluateVoc([det('i', 0, Number.NaN, A)], [], ['a'])).toThrow(/score/);
    expect(() => evaluateVoc([], [gt('i', 0, [1, 2, 3])], ['a'])).toThrow(/4 numbers/);
  });
});

// ---------------------------------------------------------------- properties

const boxArb = fc
  .tuple(
    fc.integer({ min: 0, max: 60 }),
    fc.integer({ min: 0, max: 60 }),
    fc.integer({ min: 1, max: 40 }),
    fc.integer({ min: 1, max: 40 }),
  )
  .map(([x, y, w, h]) => [x, y, x + w, y + h]);
const gtArb = fc.record({
  imageId: fc.constantFrom('a', 'b', 'c'),
  classId: fc.integer({ min: 0, max: 1 }),
  box: boxArb,
  difficult: fc.boolean(),
});
const detsArb = (n: number) =>
  fc
    .tuple(
      fc.array(
        fc.record({ imageId: fc.constantFrom('a', 'b', 'c'), classId: fc.integer({ min: 0, max: 1 }), box: boxArb }),
        {
          minLength: n,
          maxLength: n,
        },
      ),
      fc.uniqueArray(fc.integer({ min: 0, max: 1_000_000 }), { minLength: n, maxLength: n }),
    )
    .map(([ds, scores]) => ds.map((d, i): VocDetection => ({ ...d, score: scores[i]! / 1e6 })));
const CLASSES = ['x', 'y'];

describe('evaluateVoc: properties', () => {
  it('perfect detections give AP 1 (both metrics, any plusOne)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(gtArb, {
          minLength: 1,
          maxLength: 12,
          selector: (g) => `${g.imageId}/${g.classId}/${g.box.join()}`,
        }),
        fc.boolean(),
        fc.boolean(),
        (gtsRaw, use07, plusOne) => {
          const gts = gtsRaw.map((g) => ({ ...g, difficult: false }));
          const dets = gts.map((g, i) => ({
            imageId: g.imageId,
            classId: g.classId,
            box: g.box,
            score: (i + 1) / 100,
          }));
          const r = evaluateVoc(dets, gts, CLASSES, { use07, plusOne });
          for (const c of r.perClass) {
            if (c.npos > 0) expect(c.ap).toBeCloseTo(1, 12);
            else expect(c.ap).toBeNaN();
          }
          expect(r.map).toBeCloseTo(1, 12);
        },
      ),
    );
  });

  it('AP is in [0, 1] (NaN only without ground truth) and detection order does not matter for distinct scores', () => {
    const detsAndShuffled = fc
      .integer({ min: 0, max: 15 })
      .chain((n) =>
        detsArb(n).chain((ds) => fc.tuple(fc.constant(ds), fc.shuffledSubarray(ds, { minLength: n, maxLength: n }))),
      );
    fc.assert(
      fc.property(fc.array(gtArb, { maxLength: 10 }), detsAndShuffled, fc.boolean(), (gts, [dets, shuffled], use07) => {
        const r = evaluateVoc(dets, gts, CLASSES, { use07 });
        for (const c of r.perClass) {
          if (c.npos === 0) expect(c.ap).toBeNaN();
          else {
            expect(c.ap).toBeGreaterThanOrEqual(0);
            expect(c.ap).toBeLessThanOrEqual(1 + 1e-12);
          }
          expect(c.tp + c.fp + c.ignored).toBe(c.numDetections);
        }
        expect(evaluateVoc(shuffled, gts, CLASSES, { use07 })).toEqual(r);
      }),
    );
  });
});
