/** wgflow: declare a model in the DSL, compile it to fused WGSL kernels, run and train it on Dawn. */
import './ops/index.js';

export { grad } from './compiler/autodiff.js';
export { type Compiled, type CompileOptions, compile, type Update } from './compiler/compile.js';
export { ShapeError, WgflowError } from './compiler/errors.js';
export { interpret } from './compiler/interpreter.js';
export { Graph, type Node } from './compiler/ir.js';
export { type DeviceLimits, limitsFrom, WEBGPU_DEFAULT_LIMITS } from './compiler/limits.js';
export { type SgdOptions, sgd, type TrainStep, trainableParams } from './compiler/optim.js';
export { registeredOps } from './compiler/registry.js';
export { type Conv2dOptions, GraphBuilder, type Init, init, type Pool2dOptions, Tensor } from './compiler/tensor.js';
export type { DType, Shape, TensorType } from './compiler/types.js';
export * as detection from './ops/detection.js';
/** torchvision.ops-style eager calls on host tensors (each compiles once, runs on the GPU). */
export * as ops from './ops/detection-eager.js';
export { clearEagerCache, type HostInput } from './ops/eager.js';
export { smoothL1, smoothL1Loss, softmaxCrossEntropy } from './ops/losses.js';
export { linear } from './ops/matmul.js';
export * from './runtime/index.js';
