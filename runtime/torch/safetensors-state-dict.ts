/**
 * A safetensors file read as a torch state dict: the same structure as the torch formats (torch's
 * dtype, raw values, contiguous), so weights exported with torchvision's key names load the same way.
 * The header is validated by parseSafetensorsHeader; each tensor is copied once into its own buffer.
 */
import { parseSafetensorsHeader } from '../safetensors-header.js';
import {
  copyToBuffer,
  ELEMENT_BYTES,
  type StateDict,
  type StateTensor,
  type TorchDType,
  typedView,
} from './state-tensor.js';

const DTYPES: Readonly<Record<string, TorchDType>> = {
  F64: 'f64',
  F32: 'f32',
  F16: 'f16',
  BF16: 'bf16',
  I64: 'i64',
  I32: 'i32',
  I16: 'i16',
  I8: 'i8',
  U8: 'u8',
  BOOL: 'bool',
};
const ITEM_BYTES = Object.fromEntries(Object.entries(DTYPES).map(([k, d]) => [k, ELEMENT_BYTES[d]]));

export function readSafetensorsStateDict(bytes: Uint8Array, name: string): StateDict {
  const { entries, data } = parseSafetensorsHeader(bytes, name, ITEM_BYTES);
  const out: StateDict = new Map();
  for (const e of entries) {
    const dtype = DTYPES[e.dtype] as TorchDType;
    const values = typedView(dtype, copyToBuffer(data.subarray(e.begin, e.end)));
    out.set(e.name, { dtype, shape: [...e.shape], data: values } as StateTensor);
  }
  return out;
}
