/**
 * Markdown tables of evaluation results, for the CLI and reports.
 */
import type { CocoEvalResult } from './coco.js';
import type { VocEvalResult } from './voc.js';

const pct = (v: number) => (Number.isNaN(v) ? 'n/a' : (100 * v).toFixed(1));
const fixed3 = (v: number) => (v === -1 ? 'n/a' : v.toFixed(3));

/** Per-class AP (in %) with ground-truth and detection counts, then the mAP row. */
export function formatVocTable(r: VocEvalResult): string {
  const metric = r.use07 ? 'VOC07 11-point' : 'area under curve';
  const rows = [
    `| class | AP (%) | gt | difficult | dets | TP | FP |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: |`,
    ...r.perClass.map(
      (c) => `| ${c.name} | ${pct(c.ap)} | ${c.npos} | ${c.numDifficult} | ${c.numDetections} | ${c.tp} | ${c.fp} |`,
    ),
    `| **mAP** | **${pct(r.map)}** | | | | | |`,
  ];
  return `AP: ${metric}, IoU > ${r.iouThreshold}${r.plusOne ? ', +1 box convention' : ''}\n\n${rows.join('\n')}\n`;
}

/** The 12 summary numbers as pycocotools prints them, then per-category AP, AP50, AP75, AR. */
export function formatCocoTable(r: CocoEvalResult): string {
  const iou = (t: number | undefined) => (t === undefined ? '0.50:0.95' : t.toFixed(2));
  const summary = [
    '| metric | IoU | area | maxDets | value |',
    '| --- | --- | --- | ---: | ---: |',
    ...r.lines.map((l) => `| ${l.kind} | ${iou(l.iouThr)} | ${l.area} | ${l.maxDets} | ${fixed3(l.value)} |`),
  ];
  const perCat = [
    '| category | AP | AP50 | AP75 | AR | gt | dets |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...r.perCategory.map(
      (c) =>
        `| ${c.name} | ${fixed3(c.ap)} | ${fixed3(c.ap50)} | ${fixed3(c.ap75)} | ${fixed3(c.ar)} | ${c.numGt} | ${c.numDetections} |`,
    ),
  ];
  return `${summary.join('\n')}\n\n${perCat.join('\n')}\n`;
}
