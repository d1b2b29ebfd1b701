/**
 * What a `.pth` pickle may name: the globals a state dict needs, as inert JavaScript values.
 *
 * - `collections.OrderedDict` → a PickleDict (called with no arguments or a list of pairs);
 * - `torch._utils._rebuild_tensor_v2` (and the older `_rebuild_tensor`) → a TensorRef: a view (offset,
 *   sizes, strides) of a StorageRef, read later, only if the tensor is in the state dict asked for;
 * - `torch._utils._rebuild_parameter` / `_rebuild_parameter_with_state` (torch.nn.Parameter) → the
 *   same TensorRef, marked as a parameter;
 * - `torch.<Type>Storage` → a StorageType marker; it is only ever a field of a persistent id
 *   ('storage', type, key, location, numel[, view]), never called.
 *
 * Anything else is refused with an error naming the global, unless the caller lists it in
 * `opaqueGlobals`: then it, and whatever it is called with or given as state, is an OpaqueValue that
 * holds nothing and runs nothing (for checkpoints that carry e.g. `argparse.Namespace` next to the
 * model's weights). Nothing named in a file is ever executed.
 */
import { WgflowError } from '../errors.js';
import {
  describeValue,
  PickleCallable,
  PickleDict,
  PickleObject,
  PickleTuple,
  type PickleValue,
  type UnpickleOptions,
} from './pickle.js';
import { ELEMENT_BYTES, type TorchDType } from './state-tensor.js';
import { checkView, type StridedView } from './strided.js';

/** torch storage classes → dtype. */
export const STORAGE_DTYPES: Readonly<Record<string, TorchDType>> = {
  DoubleStorage: 'f64',
  FloatStorage: 'f32',
  HalfStorage: 'f16',
  BFloat16Storage: 'bf16',
  LongStorage: 'i64',
  IntStorage: 'i32',
  ShortStorage: 'i16',
  CharStorage: 'i8',
  ByteStorage: 'u8',
  BoolStorage: 'bool',
};

/** A `torch.XStorage` class named in a persistent id (dtype null: a storage type this reader does not take). */
export class StorageType extends PickleObject {
  constructor(
    readonly name: string,
    readonly dtype: TorchDType | null,
  ) {
    super();
  }
  describe(): string {
    return `torch.${this.name}`;
  }
}

/** One storage of the file, or (legacy files) a view of one: elements [offset, offset + size) of storage `key`. */
export class StorageRef extends PickleObject {
  constructor(
    readonly key: string,
    readonly type: StorageType,
    readonly numel: number,
    readonly offset: number,
    readonly size: number,
  ) {
    super();
  }
  describe(): string {
    return `storage ${this.key}`;
  }
}

/** A tensor of the file: a strided view of a storage, not read yet. */
export class TensorRef extends PickleObject {
  constructor(
    readonly storage: StorageRef,
    readonly view: StridedView,
    readonly parameter: boolean,
  ) {
    super();
  }
  describe(): string {
    return this.parameter ? 'torch.nn.Parameter' : 'torch.Tensor';
  }
}

/** An allowed-but-unused global (opaqueGlobals) or a value made from one: holds nothing. */
export class OpaqueValue extends PickleObject {
  constructor(readonly qualifiedName: string) {
    super();
  }
  override setState(): void {}
  describe(): string {
    return this.qualifiedName;
  }
}

const ALLOWED = [
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch.<Type>Storage',
];

function intArg(v: PickleValue, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v))
    throw new WgflowError(`${what}: expected an int, got ${describeValue(v)}`);
  return v;
}

function intTuple(v: PickleValue, what: string): number[] {
  if (!(v instanceof PickleTuple)) throw new WgflowError(`${what}: expected a tuple of ints, got ${describeValue(v)}`);
  return v.items.map((x, i) => intArg(x, `${what}[${i}]`));
}

function arity(args: readonly PickleValue[], counts: readonly number[], fn: string, where: string): void {
  if (!counts.includes(args.length))
    throw new WgflowError(`${where}: ${fn} takes ${counts.join(' or ')} arguments, got ${args.length}`);
}

function rebuildTensor(args: readonly PickleValue[], fn: string, where: string): TensorRef {
  const what = `${where}: ${fn}`;
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof StorageRef))
    throw new WgflowError(
      `${what}: argument 1 must be a storage (persistent id), got ${describeValue(storage ?? null)}`,
    );
  if (requiresGrad !== undefined && typeof requiresGrad !== 'boolean')
    throw new WgflowError(`${what}: requires_grad must be a bool, got ${describeValue(requiresGrad)}`);
  const view = {
    offset: intArg(offset ?? null, `${what} storage_offset`),
    shape: intTuple(size ?? null, `${what} size`),
    stride: intTuple(stride ?? null, `${what} stride`),
  };
  checkView(view, what);
  return new TensorRef(storage, view, false);
}

function rebuildParameter(args: readonly PickleValue[], fn: string, where: string): TensorRef {
  const [data, requiresGrad] = args;
  if (!(data instanceof TensorRef))
    throw new WgflowError(`${where}: ${fn}: argument 1 must be a tensor, got ${describeValue(data ?? null)}`);
  if (typeof requiresGrad !== 'boolean')
    throw new WgflowError(`${where}: ${fn}: requires_grad must be a bool, got ${describeValue(requiresGrad ?? null)}`);
  return new TensorRef(data.storage, data.view, true);
}

function orderedDict(args: readonly PickleValue[], where: string): PickleDict {
  arity(args, [0, 1], 'collections.OrderedDict', where);
  const d = new PickleDict('OrderedDict');
  const items = args[0];
  if (items === undefined) return d;
  // Python 2's OrderedDict.__reduce__ passed its items as a list of [key, value] pairs.
  if (!Array.isArray(items))
    throw new WgflowError(
      `${where}: collections.OrderedDict(items): items must be a list, got ${describeValue(items)}`,
    );
  for (const pair of items) {
    const kv = Array.isArray(pair) ? pair : pair instanceof PickleTuple ? pair.items : null;
    const k = kv?.[0];
    if (kv?.length !== 2 || (typeof k !== 'string' && typeof k !== 'number'))
      throw new WgflowError(`${where}: collections.OrderedDict(items): each item must be a (key, value) pair`);
    d.entries.set(k, kv[1] as PickleValue);
  }
  return d;
}

const CALLABLES: Readonly<Record<string, (args: readonly PickleValue[], where: string) => PickleValue>> = {
  'collections.OrderedDict': orderedDict,
  'torch._utils._rebuild_tensor_v2': (args, where) => {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    arity(args, [6, 7], '_rebuild_tensor_v2', where);
    return rebuildTensor(args, '_rebuild_tensor_v2', where);
  },
  'torch._utils._rebuild_tensor': (args, where) => {
    arity(args, [4], '_rebuild_tensor', where);
    return rebuildTensor(args, '_rebuild_tensor', where);
  },
  'torch._utils._rebuild_parameter': (args, where) => {
    // (data, requires_grad, backward_hooks)
    arity(args, [3], '_rebuild_parameter', where);
    return rebuildParameter(args, '_rebuild_parameter', where);
  },
  'torch._utils._rebuild_parameter_with_state': (args, where) => {
    // (data, requires_grad, backward_hooks, state): state holds Python attributes set on the Parameter.
    arity(args, [4], '_rebuild_parameter_with_state', where);
    return rebuildParameter(args, '_rebuild_parameter_with_state', where);
  },
};

/** Why a name is refused, when the name says more than "not allowed". */
function refusalHint(q: string): string {
  if (q.startsWith('__torch__.'))
    return ' (a TorchScript archive: load it in Python and save model.state_dict() with torch.save)';
  if (/^(torchvision\.|torch\.nn\.modules\.)/.test(q))
    return ' (the file holds a pickled nn.Module, not a state dict: save model.state_dict() instead)';
  if (/^torch\._utils\._rebuild_(qtensor|sparse|meta|wrapper|device|xla)/.test(q))
    return ' (quantized, sparse, meta and other special tensors are not supported)';
  return ` (allowed: ${ALLOWED.join(', ')})`;
}

/** The unpickler policy for torch files (see the file comment); `opaqueGlobals` as "module.name". */
export function torchGlobals(
  opaqueGlobals: readonly string[] = [],
): Pick<UnpickleOptions, 'resolveGlobal' | 'refusalHint'> {
  const opaque = new Set(opaqueGlobals);
  return {
    resolveGlobal(module, name) {
      const q = `${module}.${name}`;
      if (Object.hasOwn(CALLABLES, q)) return new PickleCallable(q, CALLABLES[q] as (typeof CALLABLES)[string]);
      if (module === 'torch' && /^[A-Z][A-Za-z0-9]*Storage$/.test(name))
        return new StorageType(name, Object.hasOwn(STORAGE_DTYPES, name) ? (STORAGE_DTYPES[name] as TorchDType) : null);
      if (opaque.has(q)) return new PickleCallable(q, () => new OpaqueValue(q));
      return undefined;
    },
    refusalHint,
  };
}

/**
 * The persistent-id hook for torch storages: ('storage', type, key, location, numel) in zip files,
 * plus a view (view_key, offset, size) or None in legacy files. One StorageRef per key (and view), so
 * tensors that share a storage share its StorageRef; a key seen with two types is an error.
 */
export function storageLoader(): {
  persistentLoad: NonNullable<UnpickleOptions['persistentLoad']>;
  storages: Map<string, StorageRef>;
} {
  const storages = new Map<string, StorageRef>();
  const views = new Map<string, StorageRef>();
  const persistentLoad = (pid: PickleValue, where: string): StorageRef => {
    const bad = (msg: string): never => {
      throw new WgflowError(`${where}: persistent id ${msg}`);
    };
    if (!(pid instanceof PickleTuple)) return bad(`is a ${describeValue(pid)}, expected a ('storage', ...) tuple`);
    const [tag, type, key, location, numel, view] = pid.items;
    if (tag !== 'storage') return bad(`tag ${JSON.stringify(tag)} is not 'storage'`);
    if (pid.items.length !== 5 && pid.items.length !== 6) return bad(`has ${pid.items.length} fields, expected 5 or 6`);
    if (!(type instanceof StorageType)) return bad(`storage type is a ${describeValue(type ?? null)}`);
    if (typeof key !== 'string') return bad(`key is a ${describeValue(key ?? null)}, expected str`);
    if (typeof location !== 'string') return bad(`location of storage ${key} is not a str`);
    const n = intArg(numel ?? null, `${where}: storage ${key} numel`);
    if (n < 0) return bad(`storage ${key} has negative numel ${n}`);
    let root = storages.get(key);
    if (root === undefined) {
      root = new StorageRef(key, type, n, 0, n);
      storages.set(key, root);
    } else if (root.type.name !== type.name || root.numel !== n)
      return bad(`storage ${key} is ${type.describe()} × ${n} here, ${root.type.describe()} × ${root.numel} before`);
    if (view === undefined || view === null) return root;
    // Legacy storage views: (view_key, offset, size) in elements of the root storage.
    if (!(view instanceof PickleTuple) || view.items.length !== 3) return bad(`view of storage ${key} is malformed`);
    const [viewKey, offset, size] = view.items;
    if (typeof viewKey !== 'string') return bad(`view key of storage ${key} is not a str`);
    const o = intArg(offset ?? null, `${where}: view ${viewKey} offset`);
    const s = intArg(size ?? null, `${where}: view ${viewKey} size`);
    if (o < 0 || s < 0 || o + s > n)
      return bad(`view ${viewKey} [${o}, ${o + s}) is outside storage ${key} of ${n} elements`);
    const known = views.get(viewKey);
    if (known) return known;
    const v = new StorageRef(key, type, n, o, s);
    views.set(viewKey, v);
    return v;
  };
  return { persistentLoad, storages };
}

/** Bytes of storage `ref`'s root (null dtype: unsupported type, reported by the caller). */
export function storageBytes(ref: StorageRef): number {
  return ref.type.dtype === null ? 0 : ref.numel * ELEMENT_BYTES[ref.type.dtype];
}
