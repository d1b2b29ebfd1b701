/**
 * What the runtime's Node entry (runtime/index.ts) and its browser entry (runtime/browser.ts) both
 * export: loading artifacts from any source or URL, sessions, safetensors bytes, typed tensors. Nothing
 * here reads files; `./device.js` is Dawn on Node and navigator.gpu in the browser bundle.
 */
export {
  type ArtifactSource,
  artifactFileName,
  artifactLimitShortfalls,
  type LoadArtifactFromOptions,
  type LoadedArtifact,
  loadArtifactFrom,
  readManifestFrom,
} from './artifact-load.js';
export {
  ARTIFACT_CONSTANTS_FILE,
  ARTIFACT_FORMAT,
  ARTIFACT_KERNEL_DIR,
  ARTIFACT_LIMIT_NAMES,
  ARTIFACT_MANIFEST_FILE,
  ARTIFACT_MAX_DISPATCH_WORKGROUPS,
  ARTIFACT_VERSION,
  ARTIFACT_WEIGHTS_FILE,
  type ArtifactKernel,
  type ArtifactLimits,
  type ArtifactManifest,
  type ArtifactPersistent,
  type ArtifactTensor,
  type JsonValue,
  type ParseManifestOptions,
  parseArtifactManifest,
} from './artifact-manifest.js';
export {
  ARTIFACT_URL_MAX_BYTES,
  artifactUrlSource,
  type LoadArtifactUrlOptions,
  loadArtifactFromUrl,
} from './artifact-url.js';
export { closeDevice, type DeviceInfo, getDevice, NO_ADAPTER_HELP } from './device.js';
export { type DimJson, evalDim, type SizeEnv, type SymbolSpec } from './dims.js';
export { WgflowError } from './errors.js';
export {
  type CanvasSpec,
  canvasScale,
  IMAGENET_MEAN_RGB,
  IMAGENET_STD_RGB,
  PFR_PIXEL_MEANS_BGR,
  type PreparedImage,
  prepareImage,
  type ResizeRule,
  type RgbImage,
  resizeBilinear,
  resizeScale,
  type ToFloatOptions,
  toFloat32,
} from './image-prep.js';
export { initialValues, uniformStream } from './init.js';
export {
  canProfile,
  type DispatchTiming,
  type KernelTotal,
  kernelPattern,
  type StageTime,
  type StepProfile,
  stageTimes,
  topKernels,
} from './profile.js';
export type {
  BufferSpec,
  DTypeName,
  GridJson,
  InitSpec,
  KernelSpec,
  ProgramSpec,
  ProgramStats,
  StepSpec,
  TensorSpec,
  ValueRange,
} from './program.js';
export {
  decodeSafetensors,
  encodeSafetensors,
  SAFETENSORS_MAX_HEADER_BYTES,
  type SafeTensor,
  type SafetensorsContents,
  type SafetensorsDType,
  type TensorsToWrite,
  type TensorToWrite,
} from './safetensors-codec.js';
export {
  type Feed,
  type HostTensor,
  pipelineCount,
  type RunOptions,
  Session,
  type ShapedFeed,
  type TypedArray,
} from './session.js';
export {
  type AnyTypedTensor,
  type ArrayOf,
  isTypedTensor,
  TYPED_TENSOR,
  type TypedTensor,
  typedTensor,
} from './typed-tensor.js';
