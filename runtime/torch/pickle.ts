/**
 * A restricted Python unpickler: it turns pickle bytes (protocols 0–5) into plain data and NEVER runs
 * anything named by the file. Every GLOBAL / STACK_GLOBAL / INST is resolved through the caller's
 * `resolveGlobal`, which returns a value for the few names it allows and undefined for the rest: an
 * unknown name is refused at once, with an error naming the global. REDUCE, NEWOBJ, INST and OBJ only
 * call `PickleCallable`s the policy handed out (JavaScript objects written for that purpose, which check
 * their arguments); BUILD only sets state on values that accept it (a dict records it as attributes).
 * Dicts are Maps, so keys such as "__proto__" are plain data. Every error is a WgflowError naming
 * `source`, the byte offset and the opcode.
 *
 * Why our own and not an npm package (evaluated 2026-12): `pickleparser` 0.2.1 (last release
 * 2024-12) lets a name resolver restrict globals, but REDUCE calls whatever value is on the stack
 * (`func(...args)`), BUILD does `Object.assign(obj, state)` on plain objects (prototype pollution from
 * a "__proto__" key) and calls `obj.__setstate__` if present, NEWOBJ/OBJ `Reflect.construct` any value,
 * errors are plain Errors without the global or offset, and reading past the end gives a RangeError.
 * `jpickle` 0.4.1 resolves globals from a fixed table of JS functions, uses the deprecated `new Buffer`
 * on binary strings (Node only), and has no way to refuse a global with a message. Neither offers
 * persistent-id hooks with the checks torch storages need. A state dict needs about 50 opcodes and
 * four globals; a small reader whose every step is checked is easier to trust than either.
 */
import { WgflowError } from '../errors.js';

/** Base of values made by the policy (tensors, storages, opaque records); the unpickler treats them as data. */
export abstract class PickleObject {
  /** BUILD on this value; the default refuses. */
  setState(_state: PickleValue, where: string): void {
    throw new WgflowError(`${where}: BUILD (set state) on ${this.describe()} is not allowed`);
  }
  /** For messages, e.g. "torch.FloatStorage". */
  abstract describe(): string;
}

/** A global the policy allows to be called (REDUCE / NEWOBJ / INST / OBJ). `call` must check its arguments. */
export class PickleCallable extends PickleObject {
  constructor(
    readonly qualifiedName: string,
    readonly call: (args: readonly PickleValue[], where: string) => PickleValue,
  ) {
    super();
  }
  describe(): string {
    return this.qualifiedName;
  }
}

/** A Python tuple. */
export class PickleTuple {
  constructor(readonly items: readonly PickleValue[]) {}
}

/** A Python dict (insertion order kept, as Python 3.7+ and OrderedDict do). Attributes set by BUILD go to `attributes`. */
export class PickleDict {
  readonly entries = new Map<PickleKey, PickleValue>();
  readonly attributes = new Map<string, PickleValue>();
  constructor(readonly className = 'dict') {}
}

/** Values usable as dict keys (compared by identity for tuples, as Map does). */
export type PickleKey = null | boolean | number | bigint | string | PickleTuple;

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleTuple
  | PickleValue[]
  | PickleDict
  | PickleObject;

export interface UnpickleOptions {
  /** Names the data in errors (e.g. "checkpoint model.pth, entry archive/data.pkl"). */
  readonly source: string;
  /** The value a GLOBAL `module.name` pushes, or undefined to refuse it. */
  readonly resolveGlobal: (module: string, name: string) => PickleValue | undefined;
  /** The value of a persistent id (PERSID / BINPERSID); absent: persistent ids are refused. */
  readonly persistentLoad?: (pid: PickleValue, where: string) => PickleValue;
  /** Why a refused global is refused (appended to the message). */
  readonly refusalHint?: (qualifiedName: string) => string;
}

export interface Unpickled {
  readonly value: PickleValue;
  /** Byte offset just after the STOP opcode (where a following pickle starts). */
  readonly end: number;
}

/** A Python-ish description of a value's type, for messages. */
export function describeValue(v: PickleValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PickleTuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PickleDict) return v.className;
  return v.describe();
}

/** Opcode byte → name (pickletools' names). */
const NAMES = new Map<number, string>([
  [0x28, 'MARK'],
  [0x2e, 'STOP'],
  [0x30, 'POP'],
  [0x31, 'POP_MARK'],
  [0x32, 'DUP'],
  [0x46, 'FLOAT'],
  [0x49, 'INT'],
  [0x4a, 'BININT'],
  [0x4b, 'BININT1'],
  [0x4c, 'LONG'],
  [0x4d, 'BININT2'],
  [0x4e, 'NONE'],
  [0x50, 'PERSID'],
  [0x51, 'BINPERSID'],
  [0x52, 'REDUCE'],
  [0x53, 'STRING'],
  [0x54, 'BINSTRING'],
  [0x55, 'SHORT_BINSTRING'],
  [0x56, 'UNICODE'],
  [0x58, 'BINUNICODE'],
  [0x61, 'APPEND'],
  [0x62, 'BUILD'],
  [0x63, 'GLOBAL'],
  [0x64, 'DICT'],
  [0x7d, 'EMPTY_DICT'],
  [0x65, 'APPENDS'],
  [0x67, 'GET'],
  [0x68, 'BINGET'],
  [0x69, 'INST'],
  [0x6a, 'LONG_BINGET'],
  [0x6c, 'LIST'],
  [0x5d, 'EMPTY_LIST'],
  [0x6f, 'OBJ'],
  [0x70, 'PUT'],
  [0x71, 'BINPUT'],
  [0x72, 'LONG_BINPUT'],
  [0x73, 'SETITEM'],
  [0x74, 'TUPLE'],
  [0x29, 'EMPTY_TUPLE'],
  [0x75, 'SETITEMS'],
  [0x47, 'BINFLOAT'],
  [0x80, 'PROTO'],
  [0x81, 'NEWOBJ'],
  [0x82, 'EXT1'],
  [0x83, 'EXT2'],
  [0x84, 'EXT4'],
  [0x85, 'TUPLE1'],
  [0x86, 'TUPLE2'],
  [0x87, 'TUPLE3'],
  [0x88, 'NEWTRUE'],
  [0x89, 'NEWFALSE'],
  [0x8a, 'LONG1'],
  [0x8b, 'LONG4'],
  [0x42, 'BINBYTES'],
  [0x43, 'SHORT_BINBYTES'],
  [0x8c, 'SHORT_BINUNICODE'],
  [0x8d, 'BINUNICODE8'],
  [0x8e, 'BINBYTES8'],
  [0x8f, 'EMPTY_SET'],
  [0x90, 'ADDITEMS'],
  [0x91, 'FROZENSET'],
  [0x92, 'NEWOBJ_EX'],
  [0x93, 'STACK_GLOBAL'],
  [0x94, 'MEMOIZE'],
  [0x95, 'FRAME'],
  [0x96, 'BYTEARRAY8'],
  [0x97, 'NEXT_BUFFER'],
  [0x98, 'READONLY_BUFFER'],
]);

/** Opcodes that exist but that this reader does not take (nothing a state dict needs), with the reason. */
const REFUSED: Readonly<Record<string, string>> = {
  EXT1: 'extension registry codes are not supported',
  EXT2: 'extension registry codes are not supported',
  EXT4: 'extension registry codes are not supported',
  EMPTY_SET: 'sets are not supported',
  ADDITEMS: 'sets are not supported',
  FROZENSET: 'sets are not supported',
  NEXT_BUFFER: 'out-of-band buffers are not supported',
  READONLY_BUFFER: 'out-of-band buffers are not supported',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Two's-complement little-endian integer bytes → number (when safe) or bigint. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
  if ((b[b.length - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.length);
  return intValue(v);
}

function intValue(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function isKey(v: PickleValue): v is PickleKey {
  return v === null || typeof v !== 'object' || v instanceof PickleTuple;
}

/** Unpickles one pickle starting at `start`; see the file comment for what is allowed. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions, start = 0): Unpickled {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  let opAt = start;
  let opName = '';
  // As Python's unpickler: MARK saves the current stack and starts a new one.
  let stack: PickleValue[] = [];
  const marks: PickleValue[][] = [];
  const memo = new Map<number, PickleValue>();
  const where = () => `${opts.source}: pickle byte ${opAt} (${opName})`;
  const fail = (msg: string): never => {
    throw new WgflowError(`${where()}: ${msg}`);
  };

  const need = (n: number) => {
    if (pos + n > bytes.length)
      fail(`truncated: needs ${n} more bytes at byte ${pos}, the data ends at ${bytes.length}`);
  };
  const u8 = () => {
    need(1);
    return bytes[pos++] as number;
  };
  const take = (n: number | bigint): Uint8Array => {
    if (typeof n === 'bigint' || !Number.isSafeInteger(n) || n < 0) fail(`bad length ${n}`);
    const len = n as number;
    need(len);
    const out = bytes.subarray(pos, pos + len);
    pos += len;
    return out;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? v : Number(v);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail(`truncated: no end of line after byte ${pos}`);
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const text = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  };

  const pop = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop() as PickleValue;
  };
  const top = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1] as PickleValue;
  };
  /** Items pushed since the last MARK (which is removed). */
  const popMark = (): PickleValue[] => {
    const items = stack;
    const prev = marks.pop();
    if (prev === undefined) fail('no MARK to pop to');
    stack = prev as PickleValue[];
    return items;
  };
  const push = (v: PickleValue) => {
    stack.push(v);
  };

  const resolve = (module: string, name: string): PickleValue => {
    const v = opts.resolveGlobal(module, name);
    if (v === undefined) {
      const q = `${module}.${name}`;
      fail(`refused global ${q}: not one a state dict needs${opts.refusalHint ? opts.refusalHint(q) : ''}`);
    }
    return v as PickleValue;
  };
  const callable = (f: PickleValue, what: string): PickleCallable => {
    if (!(f instanceof PickleCallable)) fail(`${what} of ${describeValue(f)}, which is not callable here`);
    return f as PickleCallable;
  };
  const tupleItems = (v: PickleValue, what: string): readonly PickleValue[] => {
    if (!(v instanceof PickleTuple)) fail(`${what}: expected a tuple of arguments, got ${describeValue(v)}`);
    return (v as PickleTuple).items;
  };
  const setItem = (d: PickleValue, k: PickleValue, v: PickleValue) => {
    if (!(d instanceof PickleDict)) fail(`SETITEM on ${describeValue(d)}, not a dict`);
    if (!isKey(k)) fail(`unhashable dict key of type ${describeValue(k)}`);
    (d as PickleDict).entries.set(k as PickleKey, v);
  };
  const memoIndex = (i: number | bigint): number => {
    if (typeof i !== 'number' || !Number.isSafeInteger(i) || i < 0) fail(`bad memo index ${i}`);
    return i as number;
  };
  const get = (i: number) => {
    if (!memo.has(i)) fail(`memo entry ${i} was never stored`);
    push(memo.get(i) as PickleValue);
  };
  const put = (i: number) => {
    memo.set(i, top());
  };
  const textInt = (s: string): number | bigint => {
    const t = s.trim().replace(/L$/, '');
    if (!/^[+-]?\d+$/.test(t)) fail(`bad integer literal ${JSON.stringify(s)}`);
    return intValue(BigInt(t));
  };

  for (;;) {
    opAt = pos;
    if (pos >= bytes.length) {
      opName = 'end';
      fail(`truncated: the data ends at byte ${bytes.length} before the STOP opcode`);
    }
    const op = u8();
    opName = NAMES.get(op) ?? `0x${op.toString(16).padStart(2, '0')}`;
    switch (opName) {
      case 'PROTO': {
        const p = u8();
        if (p > 5) fail(`protocol ${p} is newer than the highest known (5)`);
        break;
      }
      case 'FRAME':
        take(8);
        break;
      case 'STOP': {
        const value = pop();
        return { value, end: pos };
      }
      case 'MARK':
        marks.push(stack);
        stack = [];
        break;
      case 'POP':
        if (stack.length === 0 && marks.length > 0) popMark();
        else pop();
        break;
      case 'POP_MARK':
        popMark();
        break;
      case 'DUP':
        push(top());
        break;
      // Constants and numbers.
      case 'NONE':
        push(null);
        break;
      case 'NEWTRUE':
        push(true);
        break;
      case 'NEWFALSE':
        push(false);
        break;
      case 'BININT':
        need(4);
        push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 'BININT1':
        push(u8());
        break;
      case 'BININT2':
        need(2);
        push(view.getUint16(pos, true));
        pos += 2;
        break;
      case 'INT': {
        const s = line();
        if (s === '01') push(true);
        else if (s === '00') push(false);
        else push(textInt(s));
        break;
      }
      case 'LONG':
        push(textInt(line()));
        break;
      case 'LONG1':
        push(decodeLong(take(u8())));
        break;
      case 'LONG4':
        push(decodeLong(take(u32())));
        break;
      case 'BINFLOAT':
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 'FLOAT': {
        const s = line().trim();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s)) fail(`bad float literal ${JSON.stringify(s)}`);
        push(v);
        break;
      }
      // Strings and bytes (Python 2 byte strings are decoded as UTF-8, as torch.load does).
      case 'BINUNICODE':
        push(text(take(u32())));
        break;
      case 'SHORT_BINUNICODE':
        push(text(take(u8())));
        break;
      case 'BINUNICODE8':
        push(text(take(u64())));
        break;
      case 'UNICODE':
        push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))));
        break;
      case 'BINSTRING': {
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        push(text(take(n)));
        break;
      }
      case 'SHORT_BINSTRING':
        push(text(take(u8())));
        break;
      case 'STRING': {
        const s = line().trim();
        const q = s[0];
        if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail(`bad STRING literal ${s}`);
        push(
          s
            .slice(1, -1)
            .replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) =>
              e[0] === 'x' ? String.fromCharCode(Number.parseInt(e.slice(1), 16)) : e === 'n' ? '\n' : e,
            ),
        );
        break;
      }
      case 'BINBYTES':
        push(take(u32()).slice());
        break;
      case 'SHORT_BINBYTES':
        push(take(u8()).slice());
        break;
      case 'BINBYTES8':
      case 'BYTEARRAY8':
        push(take(u64()).slice());
        break;
      // Containers.
      case 'EMPTY_TUPLE':
        push(new PickleTuple([]));
        break;
      case 'TUPLE1':
        push(new PickleTuple([pop()]));
        break;
      case 'TUPLE2': {
        const b = pop();
        push(new PickleTuple([pop(), b]));
        break;
      }
      case 'TUPLE3': {
        const c = pop();
        const b = pop();
        push(new PickleTuple([pop(), b, c]));
        break;
      }
      case 'TUPLE':
        push(new PickleTuple(popMark()));
        break;
      case 'EMPTY_LIST':
        push([]);
        break;
      case 'LIST':
        push(popMark());
        break;
      case 'APPEND': {
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail(`APPEND to ${describeValue(list)}, not a list`);
        (list as PickleValue[]).push(v);
        break;
      }
      case 'APPENDS': {
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail(`APPENDS to ${describeValue(list)}, not a list`);
        (list as PickleValue[]).push(...items);
        break;
      }
      case 'EMPTY_DICT':
        push(new PickleDict());
        break;
      case 'DICT': {
        const items = popMark();
        if (items.length % 2) fail('odd number of items for a dict');
        const d = new PickleDict();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i] as PickleValue, items[i + 1] as PickleValue);
        push(d);
        break;
      }
      case 'SETITEM': {
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 'SETITEMS': {
        const items = popMark();
        if (items.length % 2) fail('odd number of items for SETITEMS');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i] as PickleValue, items[i + 1] as PickleValue);
        break;
      }
      // Memo.
      case 'PUT':
        put(memoIndex(textInt(line())));
        break;
      case 'BINPUT':
        put(u8());
        break;
      case 'LONG_BINPUT':
        put(u32());
        break;
      case 'MEMOIZE':
        put(memo.size);
        break;
      case 'GET':
        get(memoIndex(textInt(line())));
        break;
      case 'BINGET':
        get(u8());
        break;
      case 'LONG_BINGET':
        get(u32());
        break;
      // Names and calls: only what the policy allows.
      case 'GLOBAL': {
        const module = line();
        push(resolve(module, line()));
        break;
      }
      case 'STACK_GLOBAL': {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          fail(`STACK_GLOBAL needs two strings, got ${describeValue(module)} and ${describeValue(name)}`);
        push(resolve(module as string, name as string));
        break;
      }
      case 'REDUCE':
      case 'NEWOBJ': {
        const args = pop();
        const f = callable(pop(), opName);
        push(f.call(tupleItems(args, `${opName} of ${f.qualifiedName}`), where()));
        break;
      }
      case 'NEWOBJ_EX': {
        const kwargs = pop();
        const args = pop();
        const f = callable(pop(), 'NEWOBJ_EX');
        if (!(kwargs instanceof PickleDict) || kwargs.entries.size > 0)
          fail(`NEWOBJ_EX of ${f.qualifiedName} with keyword arguments is not supported`);
        push(f.call(tupleItems(args, `NEWOBJ_EX of ${f.qualifiedName}`), where()));
        break;
      }
      case 'INST': {
        const module = line();
        const f = callable(resolve(module, line()), 'INST');
        push(f.call(popMark(), where()));
        break;
      }
      case 'OBJ': {
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        const f = callable(items[0] as PickleValue, 'OBJ');
        push(f.call(items.slice(1), where()));
        break;
      }
      case 'BUILD': {
        const state = pop();
        const obj = top();
        if (obj instanceof PickleDict) {
          if (!(state instanceof PickleDict)) fail(`BUILD of a ${obj.className} with ${describeValue(state)} state`);
          for (const [k, v] of (state as PickleDict).entries) {
            if (typeof k !== 'string') fail(`BUILD of a ${obj.className}: attribute name of type ${describeValue(k)}`);
            obj.attributes.set(k as string, v);
          }
        } else if (obj instanceof PickleObject) obj.setState(state, where());
        else fail(`BUILD on ${describeValue(obj)} is not allowed`);
        break;
      }
      case 'PERSID':
      case 'BINPERSID': {
        if (!opts.persistentLoad) fail('persistent ids are not allowed here');
        const pid = opName === 'PERSID' ? line() : pop();
        push((opts.persistentLoad as NonNullable<UnpickleOptions['persistentLoad']>)(pid, where()));
        break;
      }
      default:
        if (REFUSED[opName]) fail(REFUSED[opName] as string);
        fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}: not a pickle, or corrupt`);
    }
  }
}
