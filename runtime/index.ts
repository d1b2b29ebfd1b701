/** Runtime-only entry point: executes compiled programs; imports no compiler code. */

export { artifactDirSource, type LoadArtifactOptions, loadArtifact, readArtifactManifest } from './artifact.js';
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
export { quietly } from './device.js';
export * from './portable.js';
export { type ReadSafetensorsOptions, readSafetensors, writeSafetensors } from './safetensors.js';
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
