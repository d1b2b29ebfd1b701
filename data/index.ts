/** Datasets: synthetic shapes, PASCAL VOC and COCO loaders, image decode/resize/flip. */
export { type CocoOptions, loadCoco, parseJsonFile } from './coco.js';
export {
  type BadDataOptions,
  DatasetError,
  type DatasetLocation,
  type DatasetProblem,
  type DatasetWarning,
} from './errors.js';
export * from './image.js';
export {
  generateShapesDataset,
  type RenderedShapes,
  Rng,
  renderShapesImage,
  SHAPE_CLASSES,
  type ShapeClass,
  type ShapeObject,
  type ShapesDatasetInfo,
  type ShapesDatasetOptions,
  type ShapesRenderOptions,
  type ShapeTexture,
  vocXml,
} from './shapes.js';
export * from './types.js';
export { loadVoc, readVocSplit, VOC_CLASSES, type VocOptions } from './voc.js';
