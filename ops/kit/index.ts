/**
 * The kernel kit: the helpers every op lowering shares (the GEMM generator, launchers, index helpers, epilogue stores,
 * IoU references and their kernel emitters, rounding). Exported as `kit` from 'wgflow' for third-party ops.
 */

export {
  CUDA_GEMM,
  chooseSplitK,
  chooseTile,
  chooseTileSplitK,
  type GemmBlock,
  type GemmProblem,
  type GemmTile,
  type GemmTuning,
  gemmKernel,
  type SplitK,
  splitKInto,
  splitKSum,
  tileCost,
  tileFits,
  tileThreads,
  WEBGPU_GEMM,
} from './gemm.js';
export { orZero } from './guard.js';
export { divC, divD, modC, modD, sizeI32, unflatten, unravel } from './indexing.js';
export { type Box, boxAreaF32, type IouF32Options, iouF32, iouF64 } from './iou.js';
export { type BoxK, emitArea, emitIou, emitOne } from './iou-emit.js';
export { linearGroups, perThread, threadIndex, WG } from './launch.js';
export { cRound, roundHalfEven } from './rounding.js';
export { storeOut } from './store.js';
