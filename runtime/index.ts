/** Runtime-only entry point: executes compiled programs; imports no compiler code. */
export { closeDevice, type DeviceInfo, getDevice, NO_ADAPTER_HELP, quietly } from './device.js';
export { WgflowError } from './errors.js';
export { initialValues, uniformStream } from './init.js';
export type { BufferSpec, InitSpec, KernelSpec, ProgramSpec, ProgramStats, StepSpec, TensorSpec } from './program.js';
export { type Feed, type HostTensor, type RunOptions, Session, type TypedArray } from './session.js';
