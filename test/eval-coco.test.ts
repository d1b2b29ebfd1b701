/**
 * COCO bbox evaluation (spec §8, pycocotools `COCOeval`): hand-worked cases and fast-check properties.
 * Boxes are [x, y, w, h]. Precision is tp / (tp + fp + eps), so a "perfect" 1 is 1/(1 + 2^-52) and
 * the cases compare with toBeCloseTo.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CocoAnnotation,
  type CocoDetection,
  type CocoGroundTruth,
  cocoIou,
  defaultParams,
  evaluateCoco,
  evaluateImage,
  formatCocoTable,
  linspace,
  prepareImageCategory,
} from '../eval/index.js';

const CATS = [
  { id: 1, name: 'cat' },
  { id: 2, name: 'dog' },
];

let nextId = 1;
function ann(image_id: number, bbox: number[], extra: Partial<CocoAnnotation> = {}): CocoAnnotation {
  return { id: nextId++, image_id, category_id: 1, bbox, area: bbox[2]! * bbox[3]!, iscrowd: 0, ...extra };
}
const res = (image_id: number, score: number, bbox: number[], category_id = 1): CocoDetection => ({
  image_id,
  category_id,
  bbox,
  score,
});
const dataset = (annotations: CocoAnnotation[], images = [1]): CocoGroundTruth => ({
  images: images.map((id) => ({ id })),
  annotations,
  categories: CATS,
});

const G = [0, 0, 10, 10];
const FAR = [50, 50, 10, 10];

describe('parameters', () => {
  it('IoU and recall thresholds are numpy linspace values', () => {
    const p = defaultParams(dataset([]));
    expect(p.iouThrs).toHaveLength(10);
    expect(p.iouThrs[0]).toBe(0.5);
    expect(p.iouThrs[4]).toBe(0.7);
    expect(p.iouThrs[5]).toBe(0.75);
    expect(p.iouThrs[8]).toBe(0.8999999999999999); // as np.linspace(.5, .95, 10)[8]
    expect(p.iouThrs[9]).toBe(0.95);
    expect(p.recThrs).toHaveLength(101);
    expect(p.recThrs[50]).toBe(0.5);
    expect(linspace(0, 1, 3)).toEqual([0, 0.5, 1]);
    expect(p.catIds).toEqual([1, 2]);
  });

  it('cocoIou: no +1; crowd divides by the detection area', () => {
    expect(cocoIou([0, 0, 10, 7], G, false)).toBe(0.7);
    expect(cocoIou([20, 0, 10, 10], [20, 0, 40, 40], false)).toBe(100 / 1600);
    expect(cocoIou([20, 0, 10, 10], [20, 0, 40, 40], true)).toBe(1);
    expect(cocoIou([10, 0, 10, 10], G, false)).toBe(0); // touching edges
  });
});

describe('evaluateCoco: hand-worked cases', () => {
  it('one perfect detection of a small object', () => {
    // Matched at all 10 thresholds, precision 1/(1+eps) at all 101 recall points.
    // medium/large: the gt is ignored (area 100), npig 0 → -1.
    const r = evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, G)]);
    const expected = [1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1, -1];
    r.stats.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 12));
    expect(r.ap).toBeCloseTo(1 / (1 + Number.EPSILON), 15); // up to summation order in the mean
    // Category 2 has neither gt nor dets: -1 and excluded.
    expect(r.perCategory.map((c) => c.ap)).toEqual([r.ap, -1]);
  });

  it('IoU 0.7 matches at 0.50..0.70 (>=), IoU exactly 0.5 at 0.50 only', () => {
    // det [0,0,10,7] vs gt [0,0,10,10]: IoU 70/100 = 0.7 = iouThrs[4] → TP at 5 of 10 thresholds.
    const r = evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, [0, 0, 10, 7])]);
    expect(r.ap).toBeCloseTo(0.5, 12);
    expect(r.ap50).toBeCloseTo(1, 12);
    expect(r.ap75).toBe(0);
    expect(r.ar100).toBeCloseTo(0.5, 12);
    // det [0,0,10,5]: IoU 0.5 → TP at t = 0.5 only (COCO uses >=, unlike VOC's strict >).
    const h = evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, [0, 0, 10, 5])]);
    expect(h.ap).toBeCloseTo(0.1, 12);
    expect(h.ap50).toBeCloseTo(1, 12);
    expect(h.ar100).toBeCloseTo(0.1, 12);
  });

  it('duplicates: FP; precision envelope sampled at 101 recall points', () => {
    // gts G1=[0,0,10,10], G2=[20,0,10,10]; dets .9 G1 (TP), .8 G1 (dup → FP), .7 G2 (TP).
    // rc [.5, .5, 1], pr [1, .5, 2/3] → envelope [1, 2/3, 2/3].
    // r = 0..0.50 (51 points) → 1; r = 0.51..1 (50 points) → 2/3. AP = (51 + 100/3) / 101.
    const G2 = [20, 0, 10, 10];
    const r = evaluateCoco(dataset([ann(1, G), ann(1, G2)]), [res(1, 0.9, G), res(1, 0.8, G), res(1, 0.7, G2)]);
    expect(r.ap).toBeCloseTo((51 + 100 / 3) / 101, 12);
    expect(r.ar100).toBeCloseTo(1, 12);
    // AR1: only the .9 detection → recall .5. AR10 = 1.
    expect(r.ar1).toBeCloseTo(0.5, 12);
    expect(r.ar10).toBeCloseTo(1, 12);
  });

  it('identical gt boxes: on equal IoU the later gt wins, the next det takes the other one', () => {
    const gts = [ann(1, G), ann(1, G)];
    const p = defaultParams(dataset(gts));
    const ic = prepareImageCategory(gts, [res(1, 0.9, G), res(1, 0.8, G)], 100);
    const e = evaluateImage(ic, [0, 1e10], 100, p)!;
    // t = 0: det 0 → gt 1 (later wins), det 1 → gt 0.
    expect([e.dtMatch[0], e.dtMatch[1]]).toEqual([1, 0]);
    // So both are TPs: AP ≈ 1 (VOC's argmax gives .5 here).
    expect(evaluateCoco(dataset(gts), [res(1, 0.9, G), res(1, 0.8, G)]).ap).toBeCloseTo(1, 12);
  });

  it('score ties: stable within an image (results order), images in ascending id across images', () => {
    // One image, gt G; FAR (FP) and G (TP) both score .5.
    // FAR first: rc [0, 1], pr [0, .5] → envelope .5 everywhere → AP .5. G first: AP 1.
    const gt1 = dataset([ann(1, G)]);
    expect(evaluateCoco(gt1, [res(1, 0.5, FAR), res(1, 0.5, G)]).ap).toBeCloseTo(0.5, 12);
    expect(evaluateCoco(gt1, [res(1, 0.5, G), res(1, 0.5, FAR)]).ap).toBeCloseTo(1, 12);
    // Two images with a gt each; an FP on image 1 and a TP on image 2, both .8. Images are
    // concatenated by ascending id: FP first → rc [0, .5], pr [0, .5] → envelope .5 at r ≤ .5
    // (51 points) → AP = 25.5/101, whatever the results order. TP on image 1 instead: 51/101.
    const gt2 = dataset([ann(1, G), ann(2, G)], [2, 1]);
    expect(evaluateCoco(gt2, [res(2, 0.8, G), res(1, 0.8, FAR)]).ap).toBeCloseTo(25.5 / 101, 12);
    expect(evaluateCoco(gt2, [res(1, 0.8, FAR), res(2, 0.8, G)]).ap).toBeCloseTo(25.5 / 101, 12);
    expect(evaluateCoco(gt2, [res(1, 0.8, G), res(2, 0.8, FAR)]).ap).toBeCloseTo(51 / 101, 12);
  });

  it('crowd gt: ignored, absorbs many detections (IoU = inter / det area)', () => {
    // Regular R = G; crowd C = [20,0,40,40]. dets: .9 on R (TP), .8 [20,0,10,10] and .7 [30,10,10,10]
    // inside C (crowd IoU 1 → ignored), .6 FAR (FP). npig = 1.
    // Non-ignored sequence TP, FP → rc [1, 1], envelope 1 → AP ≈ 1, AR 1.
    const dets = [res(1, 0.9, G), res(1, 0.8, [20, 0, 10, 10]), res(1, 0.7, [30, 10, 10, 10]), res(1, 0.6, FAR)];
    const crowd = evaluateCoco(dataset([ann(1, G), ann(1, [20, 0, 40, 40], { iscrowd: 1 })]), dets);
    expect(crowd.ap).toBeCloseTo(1, 12);
    expect(crowd.ar100).toBeCloseTo(1, 12);
    expect(crowd.perCategory[0]!.numGt).toBe(1);
    // Same box as a regular gt: the two dets inside have IoU 100/1600 → FPs; npig 2, one TP
    // → rc .5 reached with precision 1 → 51 of 101 points → AP 51/101, AR .5.
    const plain = evaluateCoco(dataset([ann(1, G), ann(1, [20, 0, 40, 40])]), dets);
    expect(plain.ap).toBeCloseTo(51 / 101, 12);
    expect(plain.ar100).toBeCloseTo(0.5, 12);
  });

  it('iscrowd: 0/1 and booleans mean the same; anything else is an error', () => {
    const dets = [res(1, 0.9, G), res(1, 0.8, [20, 0, 10, 10]), res(1, 0.7, [30, 10, 10, 10]), res(1, 0.6, FAR)];
    const num = evaluateCoco(dataset([ann(1, G), ann(1, [20, 0, 40, 40], { iscrowd: 1 })]), dets);
    const bool = evaluateCoco(
      dataset([ann(1, G, { iscrowd: false }), ann(1, [20, 0, 40, 40], { iscrowd: true })]),
      dets,
    );
    expect(bool.stats).toEqual(num.stats);
    expect(bool.ap).toBeCloseTo(1, 12);
    for (const bad of [2, '1', null, 0.5])
      expect(() => evaluateCoco(dataset([ann(1, G), ann(1, FAR, { iscrowd: bad as unknown as 0 })]), dets)).toThrow(
        /annotation 1: iscrowd must be 0, 1, true or false/,
      );
  });

  it('a regular match stops the search before ignored (crowd) gt', () => {
    // R = G, crowd C = [0,0,100,100]. det [0,0,10,6]: IoU .6 with R, crowd IoU 1.
    // t ≤ .6: TP on R (the crowd is never reached). t ≥ .65: R fails, the det lands on C → ignored,
    // recall 0. AP = AR = 3/10.
    const gts = [ann(1, [0, 0, 100, 100], { iscrowd: 1 }), ann(1, G)];
    const r = evaluateCoco(dataset(gts), [res(1, 0.9, [0, 0, 10, 6])]);
    expect(r.ap).toBeCloseTo(0.3, 12);
    expect(r.ar100).toBeCloseTo(0.3, 12);
    const p = defaultParams(dataset(gts));
    const e = evaluateImage(prepareImageCategory(gts, [res(1, 0.9, [0, 0, 10, 6])], 100), [0, 1e10], 100, p)!;
    expect(e.dtMatch[0]).toBe(1); // t = .5: the regular gt (index 1 in annotation order)
    expect(e.dtMatch[9]).toBe(0); // t = .95: the crowd
    expect(e.dtIgnore[9]).toBe(1);
  });

  it('area ranges: gt by annotation area, dets matched to out-of-range gt ignored', () => {
    // S = 10x10 (100, small), M = 40x40 (1600, medium), L = 100x100 (10000, large).
    // dets: .9 on S, .8 on M, nothing on L.
    // all: npig 3, rc [1/3, 2/3] at precision 1 → r = 0..0.66 (67 points) → AP 67/101, AR 2/3.
    // small: S regular, the M det lands on ignored M → ignored → AP 1. medium likewise 1.
    // large: only L regular, both dets ignored → AP 0, AR 0.
    const S = [0, 0, 10, 10];
    const M = [100, 0, 40, 40];
    const L = [200, 0, 100, 100];
    const gt = dataset([ann(1, S), ann(1, M), ann(1, L)]);
    const r = evaluateCoco(gt, [res(1, 0.9, S), res(1, 0.8, M)]);
    const expected = [67 / 101, 67 / 101, 67 / 101, 1, 1, 0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 0];
    r.stats.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 12));
    // An unmatched small FP (.95) counts in 'all' and 'small' but is ignored for medium/large.
    // small: FP then TP → rc [0, 1], pr [0, .5] → AP_S .5. all: FP, TP, TP → rc [0, 1/3, 2/3],
    // pr [0, .5, 2/3] → envelope 2/3 for r ≤ .66 → AP (67·2/3)/101.
    const r2 = evaluateCoco(gt, [res(1, 0.95, [400, 400, 10, 10]), res(1, 0.9, S), res(1, 0.8, M)]);
    expect(r2.apSmall).toBeCloseTo(0.5, 12);
    expect(r2.apMedium).toBeCloseTo(1, 12);
    expect(r2.apLarge).toBe(0);
    expect(r2.ap).toBeCloseTo((67 * 2) / 3 / 101, 12);
  });

  it('area ranges: the annotation area decides, bounds are inclusive on both sides', () => {
    // bbox 40x40 but segmentation area 900 → small only.
    const r = evaluateCoco(dataset([ann(1, [0, 0, 40, 40], { area: 900 })]), [res(1, 0.9, [0, 0, 40, 40])]);
    expect([r.apSmall, r.apMedium, r.apLarge].map((v) => Math.round(v))).toEqual([1, -1, -1]);
    // area exactly 32² = 1024 is both small and medium.
    const b = evaluateCoco(dataset([ann(1, [0, 0, 32, 32])]), [res(1, 0.9, [0, 0, 32, 32])]);
    expect(b.apSmall).toBeCloseTo(1, 12);
    expect(b.apMedium).toBeCloseTo(1, 12);
    expect(b.apLarge).toBe(-1);
  });

  it('maxDets: AR1/AR10/AR100 and the per-image cut at 100', () => {
    // gt G; dets .9 FAR (FP), .8 G (TP). AR1 = 0 (only the FP), AR10 = AR100 = 1.
    // AP (maxDets 100): rc [0, 1], pr [0, .5] → .5.
    const r = evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, FAR), res(1, 0.8, G)]);
    expect([r.ar1, r.ar10, r.ar100]).toEqual([0, 1, 1]);
    expect(r.ap).toBeCloseTo(0.5, 12);
    // 100 FPs above the TP: the TP is the 101st detection of the image → cut → AP 0, AR 0.
    const fps = Array.from({ length: 100 }, (_, i) => res(1, 0.99 - i * 1e-4, [100 + i, 100, 5, 5]));
    const cut = evaluateCoco(dataset([ann(1, G)]), [...fps, res(1, 0.5, G)]);
    expect(cut.ap).toBe(0);
    expect(cut.ar100).toBe(0);
    // With 99 FPs it is the 100th → kept: rc reaches 1 at precision 1/100.
    const kept = evaluateCoco(dataset([ann(1, G)]), [...fps.slice(0, 99), res(1, 0.5, G)]);
    expect(kept.ar100).toBe(1);
    expect(kept.ap).toBeCloseTo(0.01, 12);
    // The cut is per image: the same detections spread over two images all count.
    const two = evaluateCoco(dataset([ann(1, G)], [1, 2]), [
      ...fps.map((d) => ({ ...d, image_id: 2 })),
      res(1, 0.5, G),
    ]);
    expect(two.ar100).toBe(1);
    // Custom maxDets.
    expect(evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, FAR), res(1, 0.8, G)], { maxDets: [1, 2, 3] }).ar1).toBe(0);
  });

  it('no detections: AP 0 (not -1); a category with detections but no gt: -1, left out of the means', () => {
    const none = evaluateCoco(dataset([ann(1, G)]), []);
    expect(none.ap).toBe(0);
    expect(none.ar100).toBe(0);
    // cat 1 perfect, cat 2 (no gt) has a detection: per-category -1, overall AP still ≈ 1.
    const r = evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, G), res(1, 0.95, G, 2)]);
    expect(r.perCategory[1]!.ap).toBe(-1);
    expect(r.perCategory[1]!.numDetections).toBe(1);
    expect(r.ap).toBeCloseTo(1, 12);
    // Nothing at all: every stat -1.
    expect(evaluateCoco(dataset([]), []).stats).toEqual(Array(12).fill(-1));
    // Only crowd gt: npig 0 → -1.
    expect(evaluateCoco(dataset([ann(1, G, { iscrowd: 1 })]), [res(1, 0.9, G)]).ap).toBe(-1);
  });

  it('rejects results on unknown images; skips unknown categories', () => {
    expect(() => evaluateCoco(dataset([ann(1, G)]), [res(7, 0.9, G)])).toThrow(/image_id 7/);
    expect(evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, G), res(1, 0.99, G, 99)]).ap).toBeCloseTo(1, 12);
  });

  it('formats a Markdown table', () => {
    const t = formatCocoTable(evaluateCoco(dataset([ann(1, G)]), [res(1, 0.9, [0, 0, 10, 7])]));
    expect(t).toContain('| AP | 0.50:0.95 | all | 100 | 0.500 |');
    expect(t).toContain('| AP | 0.75 | all | 100 | 0.000 |');
    expect(t).toContain('| cat | 0.500 | 1.000 | 0.000 | 0.500 | 1 | 1 |');
    expect(t).toContain('| dog | n/a |');
  });
});

// ---------------------------------------------------------------- properties

const boxArb = fc.tuple(
  fc.integer({ min: 0, max: 60 }),
  fc.integer({ min: 0, max: 60 }),
  fc.integer({ min: 1, max: 120 }),
  fc.integer({ min: 1, max: 120 }),
);
const gtArb = fc.array(
  fc.record({ image_id: fc.integer({ min: 1, max: 3 }), category_id: fc.integer({ min: 1, max: 2 }), bbox: boxArb }),
  { maxLength: 12 },
);
const resultsArb = fc.integer({ min: 0, max: 15 }).chain((n) =>
  fc
    .tuple(
      fc.array(
        fc.record({
          image_id: fc.integer({ min: 1, max: 3 }),
          category_id: fc.integer({ min: 1, max: 2 }),
          bbox: boxArb,
        }),
        { minLength: n, maxLength: n },
      ),
      fc.uniqueArray(fc.integer({ min: 1, max: 1_000_000 }), { minLength: n, maxLength: n }),
    )
    .map(([ds, scores]) => ds.map((d, i): CocoDetection => ({ ...d, score: scores[i]! / 1e6 })))
    .chain((ds) => fc.tuple(fc.constant(ds), fc.shuffledSubarray(ds, { minLength: n, maxLength: n }))),
);
const toGt = (raw: { image_id: number; category_id: number; bbox: number[] }[], crowd: boolean[] = []) =>
  ({
    images: [{ id: 1 }, { id: 2 }, { id: 3 }],
    annotations: raw.map((a, i) => ({ ...a, id: i + 1, area: a.bbox[2]! * a.bbox[3]!, iscrowd: crowd[i] ? 1 : 0 })),
    categories: CATS,
  }) satisfies CocoGroundTruth;

describe('evaluateCoco: properties', () => {
  it('perfect detections: AP, AP50, AP75 and AR100 ≈ 1', () => {
    fc.assert(
      fc.property(
        gtArb.filter((g) => g.length > 0),
        (raw) => {
          const gt = toGt(raw);
          const dets = raw.map((a, i) => ({ ...a, score: (i + 1) / 100 }));
          const r = evaluateCoco(gt, dets);
          for (const v of [r.ap, r.ap50, r.ap75, r.ar10, r.ar100]) expect(v).toBeCloseTo(1, 12);
          for (const c of r.perCategory) {
            if (c.numGt > 0) expect(c.ap).toBeCloseTo(1, 12);
            else expect(c.ap).toBe(-1);
          }
        },
      ),
    );
  });

  it('every stat is -1 or in [0, 1]; detection order does not matter for distinct scores', () => {
    fc.assert(
      fc.property(gtArb, fc.array(fc.boolean(), { maxLength: 12 }), resultsArb, (raw, crowd, [dets, shuffled]) => {
        const gt = toGt(raw, crowd);
        const r = evaluateCoco(gt, dets);
        for (const v of [...r.stats, ...r.perCategory.flatMap((c) => [c.ap, c.ap50, c.ap75, c.ar])]) {
          if (v !== -1) {
            expect(v).toBeGreaterThanOrEqual(0);
            expect(v).toBeLessThanOrEqual(1);
          }
        }
        const s = evaluateCoco(gt, shuffled);
        expect(s.stats).toEqual(r.stats);
        expect(s.perCategory).toEqual(r.perCategory);
        expect(s.precision.every((v, i) => v === r.precision[i])).toBe(true);
        expect(s.recall.every((v, i) => v === r.recall[i])).toBe(true);
      }),
    );
  });
});
