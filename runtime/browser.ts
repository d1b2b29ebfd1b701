/**
 * The runtime's browser entry (`wgflow/runtime` under the `browser` condition; built into one ES module
 * by scripts/build-browser.mjs, where runtime/device-browser.ts replaces runtime/device.ts). It runs
 * compiled artifacts on `navigator.gpu`, loaded from URLs. Nothing here reads files or imports `node:`
 * modules; checkpoints, files and Dawn stay in the Node entry (runtime/index.ts).
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
export { closeDevice, type DeviceInfo, getDevice, NO_ADAPTER_HELP } from './device.js';
export { type DimJson, evalDim, type SizeEnv, type SymbolSpec } from './dims.js';
export { WgflowError } from './errors.js';
export { initialValues, uniformStream } from './init.js';
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
