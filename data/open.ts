/**
 * Opens a detection dataset the way `wgflow train` / `wgflow eval` (and the library's `train()` and
 * `evaluate()`) name one: a PASCAL VOC folder, or COCO JSON with an image folder.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WgflowError } from '../compiler/errors.js';
import { loadCoco } from './coco.js';
import type { DetectionDataset } from './types.js';
import { loadVoc } from './voc.js';

export interface DatasetArgs {
  /** VOC root (Annotations/, JPEGImages/, ImageSets/Main/), or the image folder with `coco`. */
  readonly dataset: string;
  /** VOC image set, e.g. 'train' or 'test'. */
  readonly split: string;
  /** COCO annotation file; images are under --dataset. */
  readonly coco?: string;
  readonly skipBad?: boolean;
  /** Training drops VOC 'difficult' objects (PFR); evaluation keeps them flagged. */
  readonly forTraining: boolean;
}

/** `.png` when JPEGImages holds PNG files and no JPEG (the shapes generator's PNG mode), else `.jpg`. */
export function vocImageExt(root: string): string {
  const dir = join(root, 'JPEGImages');
  if (!existsSync(dir)) return '.jpg';
  let png = false;
  for (const f of readdirSync(dir)) {
    if (/\.jpe?g$/i.test(f)) return '.jpg';
    if (/\.png$/i.test(f)) png = true;
  }
  return png ? '.png' : '.jpg';
}

/**
 * The VOC folder (images `.jpg`, or `.png` when JPEGImages holds only PNG) or, with `coco`, the COCO
 * annotations (inclusive pixel boxes, as py-faster-rcnn reads COCO).
 */
export async function openDataset(a: DatasetArgs): Promise<DetectionDataset> {
  if (!existsSync(a.dataset)) throw new WgflowError(`dataset folder ${a.dataset} does not exist`);
  if (!statSync(a.dataset).isDirectory())
    throw new WgflowError(
      `dataset ${a.dataset} is not a folder (--dataset names the VOC root, or the COCO image folder)`,
    );
  if (a.coco)
    return loadCoco(a.coco, {
      imageDir: a.dataset,
      boxConvention: 'inclusive',
      ...(a.skipBad ? { skipBad: true } : {}),
    });
  if (!existsSync(join(a.dataset, 'Annotations')))
    throw new WgflowError(
      `${a.dataset} is not a PASCAL VOC folder (no Annotations/); for COCO JSON pass --coco FILE with --dataset IMAGE_DIR`,
    );
  return loadVoc(a.dataset, {
    split: a.split,
    imageExt: vocImageExt(a.dataset),
    difficult: a.forTraining ? 'drop' : 'keep',
    ...(a.skipBad ? { skipBad: true } : {}),
  });
}
