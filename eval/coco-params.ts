/**
 * COCO JSON shapes and the evaluation parameters of pycocotools' `Params` for iouType 'bbox'.
 */

export interface CocoImage {
  id: number;
  file_name?: string;
  width?: number;
  height?: number;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** `[x, y, w, h]`. */
  bbox: ArrayLike<number>;
  /** Used for the area ranges; pycocotools requires it, here it defaults to `w * h`. */
  area?: number;
  /** Crowd regions are ignored ground truth that any number of detections may match: 0/1 or a boolean. */
  iscrowd?: 0 | 1 | boolean;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
}

/** The parts of a COCO instances JSON the evaluation reads. */
export interface CocoGroundTruth {
  images: readonly CocoImage[];
  annotations: readonly CocoAnnotation[];
  categories: readonly CocoCategory[];
}

/** One entry of a COCO results JSON. */
export interface CocoDetection {
  image_id: number;
  category_id: number;
  /** `[x, y, w, h]`. */
  bbox: ArrayLike<number>;
  score: number;
}

export interface CocoParams {
  imgIds: number[];
  catIds: number[];
  iouThrs: number[];
  recThrs: number[];
  /** Ascending; the last one bounds the detections per image and category. */
  maxDets: number[];
  areaRng: [number, number][];
  areaRngLbl: string[];
}

/** `np.linspace(start, stop, num)` bit for bit: `i * step + start`, the last value set to `stop`. */
export function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  const y = Array.from({ length: num }, (_, i) => i * step + start);
  if (num > 1) y[num - 1] = stop;
  return y;
}

/** pycocotools `Params.setDetParams` with the ids of the ground truth (sorted, unique). */
export function defaultParams(gt: CocoGroundTruth, maxDets: readonly number[] = [1, 10, 100]): CocoParams {
  const uniq = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
  return {
    imgIds: uniq(gt.images.map((i) => i.id)),
    catIds: uniq(gt.categories.map((c) => c.id)),
    iouThrs: linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0, 1, Math.round((1 - 0) / 0.01) + 1),
    maxDets: [...maxDets].sort((a, b) => a - b),
    areaRng: [
      [0 ** 2, 1e5 ** 2],
      [0 ** 2, 32 ** 2],
      [32 ** 2, 96 ** 2],
      [96 ** 2, 1e5 ** 2],
    ],
    areaRngLbl: ['all', 'small', 'medium', 'large'],
  };
}
