/** File checks shared by the corpus worker: hashes of protected files, and the resident set of a process. */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

export const resolveIn = (dir: string, p: string): string => (isAbsolute(p) ? p : join(dir, p));

/** sha256 of a file, 'missing' when there is none, 'dir' for a folder. */
export function fileDigest(path: string): string {
  if (!existsSync(path)) return 'missing';
  if (statSync(path).isDirectory()) return 'dir';
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Resident set size of a live process in MiB (Linux /proc), or undefined once it is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
