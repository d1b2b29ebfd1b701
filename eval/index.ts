/**
 * Detection evaluation (spec §8): PASCAL VOC (`voc_eval.py`) and COCO (`pycocotools` bbox), host-side.
 */
export {
  type CocoCategoryResult,
  type CocoEvalOptions,
  type CocoEvalResult,
  type CocoSummaryLine,
  evaluateCoco,
  summarizeCoco,
} from './coco.js';
export { accumulate, type CocoAccumulation, searchsortedLeft } from './coco-accumulate.js';
export { evaluateImage, type ImageCategory, type ImageEval, prepareImageCategory } from './coco-match.js';
export {
  type CocoAnnotation,
  type CocoCategory,
  type CocoDetection,
  type CocoGroundTruth,
  type CocoImage,
  type CocoParams,
  defaultParams,
  linspace,
} from './coco-params.js';
export { type LoadedCocoResult, loadCocoResults } from './coco-results.js';
export { formatCocoTable, formatVocTable } from './format.js';
export { cocoIou, vocIou } from './iou.js';
export { stableOrderDesc } from './sort.js';
export {
  evaluateVoc,
  type ImageId,
  type VocClassResult,
  type VocDetection,
  type VocEvalOptions,
  type VocEvalResult,
  type VocGroundTruth,
  vocAp,
} from './voc.js';
