/** DSL functions of the detection ops (graph-building; for host-tensor calls see detection-eager.ts). */
export { anchorGenerator, anchorsInside, generateAnchors, shiftAnchors, tvBaseAnchors } from './anchors.js';
export { boxArea, boxConvert, boxIou, clipBoxes, decodeBoxes, encodeBoxes, smallBoxMask } from './boxes.js';
export { batchedNms, type NmsOptions, type NmsResult, nms, splitPacked } from './nms.js';
export { roiAlign } from './roi-align.js';
export { roiPool } from './roi-pool.js';
export { argsort, sortValues, topk } from './sort.js';
