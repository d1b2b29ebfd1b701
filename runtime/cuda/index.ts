/** The CUDA runtime: runs a ProgramSpec's CUDA kernels through libcuda (koffi); imports no compiler code. */
export {
  type CudaDeviceInfo,
  CudaDriver,
  type CudaDriverOptions,
  type CuFunction,
  type CuModule,
  closeCudaDrivers,
  type DevicePtr,
  getCudaDriver,
  type KernelArgs,
  NO_CUDA_HELP,
} from './driver.js';
export { type CudaLaunch, checkCudaSection, chooseModules, cudaProgramOf, launchOf } from './launch.js';
export type { CudaKernelEntry, CudaModuleSpec, CudaProgramSection } from './program.js';
export { cudaSectionFile, readCudaSection } from './read.js';
export { CudaSession, type CudaSessionOptions } from './session.js';
