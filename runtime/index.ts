/** Runtime-only entry point: executes compiled programs; imports no compiler code. */

export {
  type ArtifactSource,
  artifactDirSource,
  artifactFileName,
  artifactLimitShortfalls,
  type LoadArtifactFromOptions,
  type LoadArtifactOptions,
  type LoadedArtifact,
  loadArtifact,
  loadArtifactFrom,
  readArtifactManifest,
  readManifestFrom,
} from './artifact.js';
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
  parseArtifactManifest,
} from './artifact-manifest.js';
export {
  ARTIFACT_URL_MAX_BYTES,
  artifactUrlSource,
  type LoadArtifactUrlOptions,
  loadArtifactFromUrl,
} from './artifact-url.js';
export { type AtomicWriteOptions, atomicTempPath, writeFileAtomic } from './atomic-file.js';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  CHECKPOINT_GROWTH_LIMIT,
  CHECKPOINT_MAX_ABS_WEIGHT,
  type CheckpointInfo,
  checkpointWeightBound,
  ExplodedStateError,
  type LoadedCheckpoint,
  loadCheckpoint,
  NonFiniteStateError,
  type SaveCheckpointOptions,
  type SavedCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
export { closeDevice, type DeviceInfo, getDevice, NO_ADAPTER_HELP, quietly } from './device.js';
export { type DimJson, evalDim, type SizeEnv, type SymbolSpec } from './dims.js';
export { WgflowError } from './errors.js';
export { initialValues, uniformStream } from './init.js';
export {
  canProfile,
  type DispatchTiming,
  type KernelTotal,
  kernelPattern,
  type StepProfile,
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
} from './program.js';
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  SAFETENSORS_MAX_HEADER_BYTES,
  type SafeTensor,
  type SafetensorsContents,
  type SafetensorsDType,
  type TensorsToWrite,
  type TensorToWrite,
  writeSafetensors,
} from './safetensors.js';
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
  type ExpectedTensor,
  type LoadedStateDict,
  loadStateDict,
  type MapStateDictOptions,
  mapStateDict,
  type PrefixRule,
  type ReadStateDictOptions,
  readStateDict,
  STATE_DICT_ENTRIES,
  type StateDict,
  type StateDictFormat,
  type StateTensor,
  type TorchDataOf,
  type TorchDType,
  type TorchTensorData,
  toFloat32,
} from './torch/index.js';
export {
  type ArtifactSignature,
  loadTypedArtifact,
  type SignatureTensor,
  type TypedArtifact,
  type TypedTensorRecord,
} from './typed-artifact.js';
export {
  type AnyTypedTensor,
  type ArrayOf,
  isTypedTensor,
  TYPED_TENSOR,
  type TypedTensor,
  typedTensor,
} from './typed-tensor.js';
