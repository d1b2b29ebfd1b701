/**
 * A tiny Faster R-CNN training setup for end-to-end tests (resume, CLI, SIGKILL): a generated shapes
 * dataset of 64×80 PNG images and the frcnn-small configuration at that canvas, with fewer proposals and
 * smaller sampling batches so a training step takes a fraction of a second on lavapipe.
 */
import { generateShapesDataset } from '../data/shapes.js';
import { type FrcnnRunConfig, smallShapesConfig } from '../train/frcnn-config.js';

export const TINY_CANVAS = [64, 80] as const;
export const TINY_MAX_OBJECTS = 3;

/** Writes `count` 64×80 PNG shapes images (VOC layout, splits train/test) under `dir`; returns the class names. */
export async function makeTinyShapes(dir: string, split: { train: number; test: number }): Promise<string[]> {
  const info = await generateShapesDataset(dir, {
    count: split.train + split.test,
    seed: 5,
    size: { width: TINY_CANVAS[1], height: TINY_CANVAS[0] },
    maxObjects: TINY_MAX_OBJECTS,
    imageFormat: 'png',
    splits: split,
  });
  return info.classes;
}

/** frcnn-small at 64×80 with small proposal counts and sampling batches. */
export function tinyConfig(classes: readonly string[], iterations: number): FrcnnRunConfig {
  const base = smallShapesConfig(classes, iterations);
  return {
    ...base,
    canvas: [TINY_CANVAS[0], TINY_CANVAS[1]],
    resize: { shortSide: TINY_CANVAS[0], maxSize: TINY_CANVAS[1] },
    maxGt: TINY_MAX_OBJECTS,
    proposalsTrain: { minSize: 4, preNmsTopN: 300, postNmsTopN: 64 },
    proposalsTest: { minSize: 4, preNmsTopN: 300, postNmsTopN: 32 },
    anchorBatch: 64,
    roiBatch: 32,
  };
}
