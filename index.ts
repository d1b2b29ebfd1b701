/**
 * wgflow: declare a model in the DSL, compile it to fused WGSL kernels, run and train it on Dawn; and
 * Faster R-CNN as a library: {@link loadDetector}, {@link train}, {@link evaluate}, the dataset loaders
 * and the eager torchvision-style {@link ops}. A deployed artifact needs only `wgflow/runtime`.
 *
 * @packageDocumentation
 */
import './ops/index.js';

export { grad } from './compiler/autodiff.js';
export { type Compiled, type CompileOptions, compile, type Update } from './compiler/compile.js';
export { type Dim, SymDim } from './compiler/dims.js';
export { fail, ShapeError, WgflowError } from './compiler/errors.js';
export { type Feeds, type InterpretFeed, interpret } from './compiler/interpreter.js';
export { type Attrs, type AttrValue, Graph, type Node } from './compiler/ir.js';
/** The target-neutral kernel ASTs the compiler renders to WGSL and CUDA C. */
export type * as kernelAst from './compiler/kernel/ast.js';
/** Builds the kernels of an op's `lower` rule (expressions, statements, {@link kernel.KernelBuilder}). */
export * as kernel from './compiler/kernel/build.js';
export { type DeviceLimits, limitsFrom, WEBGPU_DEFAULT_LIMITS } from './compiler/limits.js';
export { type SgdOptions, sgd, type TrainStep, trainableParams } from './compiler/optim.js';
// ---- third-party ops: the registration API, the kernel builder and the kernel kit
export {
  type BufArg,
  type CpuArgs,
  type ExprArgs,
  type GradArgs,
  type LowerArgs,
  type OpDef,
  type OpKind,
  type RefTensor,
  registeredOps,
  registerOp,
} from './compiler/registry.js';
export {
  type Conv2dOptions,
  GraphBuilder,
  type Init,
  init,
  type Pool2dOptions,
  type ScalarLike,
  Tensor,
} from './compiler/tensor.js';
export type { TargetName, TuningTables } from './compiler/tuning.js';
export type { DimShape, DType, Shape, TensorType } from './compiler/types.js';
// ---- datasets
export { type CocoOptions, loadCoco } from './data/coco.js';
export { DatasetError, type DatasetLocation, type DatasetProblem, type DatasetWarning } from './data/errors.js';
export {
  type DecodeImageOptions,
  decodeImage,
  IMAGE_LIMITS,
  type ImageLimits,
  imageSize,
  type ResizeRule,
  type RgbImage,
  resizeScale,
  type ToFloatOptions,
} from './data/image.js';
export { type DecodedImage, type ImageInput, toRgbImage } from './data/image-input.js';
export { type DatasetArgs, openDataset } from './data/open.js';
export {
  generateShapesDataset,
  SHAPE_CLASSES,
  type ShapeObject,
  type ShapesDatasetInfo,
  type ShapesDatasetOptions,
  type ShapeTexture,
} from './data/shapes.js';
export { BACKGROUND, type BoxConvention, type DetectionDataset, type DetectionSample } from './data/types.js';
export { loadVoc, VOC_CLASSES, type VocOptions } from './data/voc.js';
// ---- evaluation (VOC and COCO, pycocotools semantics)
export * from './eval/index.js';
// ---- Faster R-CNN: the model builders (DSL), the run configuration, training, detection
export {
  type Backbone,
  type BackboneBuildOptions,
  buildFrcnnInference,
  type DetectionOptions,
  type Detections,
  type FrcnnInference,
  type FrcnnOptions,
  type HeadSpec,
  ParamMap,
  type ParamSource,
  type ProposalOptions,
  type Proposals,
  type RoiHeadOutputs,
  type RoiPooling,
  type RpnOutputs,
} from './models/frcnn/index.js';
export type { StepSchedule } from './models/frcnn/schedule.js';
export {
  buildFrcnnTraining,
  type FrcnnTraining,
  type FrcnnTrainingMode,
  type FrcnnTrainingOptions,
} from './models/frcnn/train.js';
export { TV_DETECTION_MODELS, type TvDetectionModel } from './models/torchvision/detector.js';
export type { Row, ShiftOptions } from './ops/anchors.js';
export type { BoxFormat, CodingOptions, DecodeOptions } from './ops/boxes.js';
export * as detection from './ops/detection.js';
/** torchvision.ops-style eager calls on host tensors (each compiles once, runs on the GPU). */
export * as ops from './ops/detection-eager.js';
export {
  clearEagerCache,
  type HostInput,
  type NestedArray,
  type NumericArray,
  type ShapedArray,
  type TensorLike,
} from './ops/eager.js';
export { EAGER_LIMITS, type EagerLimitOptions } from './ops/eager-limits.js';
/** Shared kernel helpers for an op's `lower` rule (launchers, epilogue stores, index helpers, IoU, rounding). */
export * as kit from './ops/kit/index.js';
export { type Reduction, smoothL1, smoothL1Loss, softmaxCrossEntropy } from './ops/losses.js';
export { linear } from './ops/matmul.js';
export type { RoiAlignOptions } from './ops/roi-align.js';
export type { RoiPoolOptions, Rounding } from './ops/roi-pool.js';
export type { AnchorTargetOptions, ProposalTargetOptions } from './ops/targets.js';
export { upsampleNearest } from './ops/upsample.js';
export * from './runtime/index.js';
export {
  type CheckpointDetectorOptions,
  DETECTOR_MODELS,
  type DetectionResult,
  type DetectOptions,
  type Detector,
  type LoadDetectorOptions,
  loadDetector,
} from './train/detector.js';
export { type EvaluateOptions, type EvaluationResult, evaluate } from './train/evaluate.js';
export { type CanvasSpec, canvasScale, type PreparedImage, prepareImage } from './train/feed.js';
export { type FrcnnRunConfig, smallShapesConfig, vgg16VocConfig } from './train/frcnn-config.js';
export { type Detection, FrcnnDetector } from './train/frcnn-detector.js';
export {
  FrcnnTrainer,
  type IterationReport,
  type ProposalBank,
  type TrainerStageOptions,
  type TrainRunOptions,
} from './train/frcnn-trainer.js';
export {
  FRCNN_MODEL_NAMES,
  type FrcnnModelName,
  parseCanvas,
  type RunConfigOptions,
  runConfigFor,
  TRAINING_MODES,
  type TrainingMode,
} from './train/run-config.js';
export {
  fasterrcnnMobilenetV3Large320Fpn,
  fasterrcnnMobilenetV3LargeFpn,
  fasterrcnnResnet50Fpn,
  fasterrcnnResnet50FpnV2,
  TorchvisionDetector,
  type TorchvisionDetectorOptions,
} from './train/torchvision-detector.js';
export { TRAIN_DEFAULTS, type TrainOptions, type TrainResult, train } from './train/train.js';
