/**
 * Crash-safe file replacement: the bytes go to a temp file in the same directory (same filesystem,
 * so the rename is atomic), the temp file is fsynced, renamed over the target, and the directory is
 * fsynced where the platform allows it. A crash at any point leaves either the old file or the new
 * one, never a partial file (at worst a stray `<name>.tmp-*` file next to it).
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /**
   * Test hook: called with the temp path after the data is written and fsynced, before the rename.
   * Throwing from it behaves like a failure at that point (the temp file is removed, the target untouched).
   */
  readonly beforeRename?: (tempPath: string) => void | Promise<void>;
}

/** The temp-file name writeFileAtomic uses for `path` (same directory; unique per call). */
export function atomicTempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

export async function writeFileAtomic(path: string, bytes: Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = atomicTempPath(path);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      let off = 0;
      while (off < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.length - off);
        off += bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await opts.beforeRename?.(tmp);
    await rename(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
  await syncDir(dirname(path));
}

/** fsync a directory so the rename itself is durable; a no-op where directories cannot be opened/synced (Windows). */
async function syncDir(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES' && code !== 'ENOTSUP') throw e;
  } finally {
    await fh?.close();
  }
}
