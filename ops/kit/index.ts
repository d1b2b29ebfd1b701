/**
 * The kernel kit: the helpers every op lowering shares (launchers, index helpers, epilogue stores,
 * IoU references, rounding). Exported as `kit` from 'wgflow' for third-party ops.
 */

export { sizeI32, unflatten, unravel } from './indexing.js';
export { type Box, boxAreaF32, type IouF32Options, iouF32, iouF64 } from './iou.js';
export { linearGroups, perThread, threadIndex, WG } from './launch.js';
export { cRound, roundHalfEven } from './rounding.js';
export { storeOut } from './store.js';
