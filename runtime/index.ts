/** Runtime-only entry point: executes compiled programs; imports no compiler code. */

export { type AtomicWriteOptions, atomicTempPath, writeFileAtomic } from './atomic-file.js';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  type CheckpointInfo,
  type LoadedCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
export { closeDevice, type DeviceInfo, getDevice, NO_ADAPTER_HELP, quietly } from './device.js';
export { WgflowError } from './errors.js';
export { initialValues, uniformStream } from './init.js';
export type { BufferSpec, InitSpec, KernelSpec, ProgramSpec, ProgramStats, StepSpec, TensorSpec } from './program.js';
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
export { type Feed, type HostTensor, type RunOptions, Session, type TypedArray } from './session.js';
