/**
 * PyTorch weights without Python: state dicts from `.pth` files (the zip and legacy formats of
 * torch.save) and from safetensors files with torchvision's key names, all in one structure, and
 * their mapping onto a model's expected tensors. readStateDict (bytes) runs anywhere; loadStateDict
 * (a path) is its Node wrapper.
 */
export type { StateDictFormat } from './archive.js';
export { loadStateDict } from './load.js';
export { type ExpectedTensor, type MapStateDictOptions, mapStateDict, type PrefixRule } from './map.js';
export { type LoadedStateDict, type ReadStateDictOptions, readStateDict, STATE_DICT_ENTRIES } from './read.js';
export {
  type StateDict,
  type StateTensor,
  type TorchDataOf,
  type TorchDType,
  type TorchTensorData,
  toFloat32,
} from './state-tensor.js';
