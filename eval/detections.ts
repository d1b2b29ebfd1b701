/**
 * Detections of one image on the host, read from a detector's fixed-capacity outputs
 * (models/frcnn: det_boxes f32 [D, 4], det_scores f32 [D], det_classes i32 [D], det_count i32 [1];
 * the valid detections are the prefix [0, count)).
 */

export interface Detection {
  /** x1, y1, x2, y2 in original-image pixels (frcnn: inclusive pixel coordinates, as py-faster-rcnn). */
  readonly box: readonly [number, number, number, number];
  /** Class label in 1..K (0 is background). */
  readonly label: number;
  readonly score: number;
}

export interface DetectionOutputNames {
  readonly boxes: string;
  readonly scores: string;
  readonly classes: string;
  readonly count: string;
}

export const FRCNN_DETECTION_OUTPUTS: DetectionOutputNames = {
  boxes: 'det_boxes',
  scores: 'det_scores',
  classes: 'det_classes',
  count: 'det_count',
};

/** The valid detections of one run's outputs (a Session.run result or any record of `{ data }`). */
export function detectionsFromOutputs(
  outputs: Readonly<Record<string, { readonly data: ArrayLike<number> }>>,
  names: DetectionOutputNames = FRCNN_DETECTION_OUTPUTS,
): Detection[] {
  const get = (n: string) => {
    const t = outputs[n];
    if (!t) throw new Error(`detections: no output "${n}" (have: ${Object.keys(outputs).join(', ') || 'none'})`);
    return t.data;
  };
  const boxes = get(names.boxes);
  const scores = get(names.scores);
  const classes = get(names.classes);
  const count = get(names.count)[0] as number;
  if (!Number.isInteger(count) || count < 0 || count > scores.length || 4 * count > boxes.length)
    throw new Error(`detections: count ${count} does not fit ${scores.length} scores and ${boxes.length / 4} boxes`);
  const out: Detection[] = [];
  for (let i = 0; i < count; i++)
    out.push({
      box: [boxes[4 * i] as number, boxes[4 * i + 1] as number, boxes[4 * i + 2] as number, boxes[4 * i + 3] as number],
      label: classes[i] as number,
      score: scores[i] as number,
    });
  return out;
}
