/**
 * Reading a user's file safely: regular files only (a FIFO, a device such as /dev/zero, a socket or a
 * folder is refused before any read, so nothing waits forever or reads without end), and a size limit
 * checked before the bytes are read. Every refusal is a WgflowError naming the file, what it is for,
 * and the rule. Node-only (the runtime's browser build reads URLs instead).
 */
import { open, stat } from 'node:fs/promises';
import { WgflowError } from './errors.js';

/** Default size limits, bytes; each reader takes `maxBytes` to raise its own. */
export const INPUT_LIMITS = {
  /** An encoded image (PNG/JPEG). */
  imageBytes: 256 * 2 ** 20,
  /** A JSON or XML text: an annotation file, a manifest, a COCO file. */
  textBytes: 1024 * 2 ** 20,
  /** A weights or checkpoint file (.safetensors, .pth). */
  weightsBytes: 16 * 2 ** 30,
} as const;

export interface InputFileOptions {
  /** What the file is, for messages: 'image', 'checkpoint', 'COCO annotations', … */
  readonly what: string;
  /** Refuse files larger than this many bytes (checked before reading). */
  readonly maxBytes: number;
}

const kindOf = (s: Awaited<ReturnType<typeof stat>>): string =>
  s.isDirectory()
    ? 'a folder'
    : s.isFIFO()
      ? 'a named pipe'
      : s.isCharacterDevice()
        ? 'a character device'
        : s.isBlockDevice()
          ? 'a block device'
          : s.isSocket()
            ? 'a socket'
            : 'not a regular file';

const mib = (n: number) => `${(n / 2 ** 20).toFixed(n < 2 ** 20 ? 3 : 1)} MiB`;

/** Checks that `path` is a regular file within the limit; returns its size. */
export async function checkInputFile(path: string, opts: InputFileOptions): Promise<number> {
  let s: Awaited<ReturnType<typeof stat>>;
  try {
    s = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? String(e));
    throw new WgflowError(`${path}: cannot read the ${opts.what}: ${why}`);
  }
  if (!s.isFile()) throw new WgflowError(`${path}: the ${opts.what} must be a regular file, this is ${kindOf(s)}`);
  if (s.size > opts.maxBytes)
    throw new WgflowError(
      `${path}: the ${opts.what} is ${mib(s.size)}, over the limit of ${mib(opts.maxBytes)} (raise it with the reader's maxBytes option)`,
    );
  return s.size;
}

/** Reads a regular file of at most `maxBytes` (never a pipe or a device). */
export async function readInputFile(path: string, opts: InputFileOptions): Promise<Uint8Array> {
  const size = await checkInputFile(path, opts);
  const fh = await open(path, 'r');
  try {
    // Read what stat promised and no more: a file that grows while we read cannot exceed the limit.
    const buf = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return off === size ? buf : buf.subarray(0, off);
  } catch (e) {
    throw new WgflowError(`${path}: reading the ${opts.what} failed: ${(e as Error).message}`);
  } finally {
    await fh.close();
  }
}

/** Reads a regular text file (UTF-8; a leading byte-order mark is dropped). */
export async function readInputText(path: string, opts: InputFileOptions): Promise<string> {
  const text = new TextDecoder('utf-8').decode(await readInputFile(path, opts));
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
