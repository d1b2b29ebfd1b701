/**
 * Where the CLI writes: the output folder is checked before any work (an existing file, or a parent
 * that is a file, is a clear error, not EEXIST/ENOTDIR later), and `detect` picks one picture name per
 * input that never names an input file nor another output (two `same.png` in different folders get
 * `same.png` and `same-2.png`).
 */
import { realpathSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { WgflowError } from '../compiler/errors.js';

/** Makes the output folder `dir` (and its parents); `flag` names the option in errors. */
export async function makeOutputDir(dir: string, flag = '--out'): Promise<void> {
  let s: ReturnType<typeof statSync> | undefined;
  try {
    s = statSync(dir);
  } catch {
    s = undefined;
  }
  if (s && !s.isDirectory()) throw new WgflowError(`${flag} ${dir}: exists and is not a folder (give a folder)`);
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOTDIR' || code === 'EEXIST'
        ? 'a part of the path is a file, not a folder'
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
          ? 'permission denied'
          : (code ?? (e as Error).message);
    throw new WgflowError(`${flag} ${dir}: cannot make the output folder (${why})`);
  }
}

const canonical = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
};

/** The absolute path `name` will have in `out` (out may not exist yet: its real parent then). */
function target(out: string, name: string): string {
  return join(canonical(out), name);
}

/**
 * One output picture per input, in order: `<stem>.png` in `out`, or `<stem>-<k>.png` (k the input's
 * 1-based position, then further numbers) when that name is an input file or an earlier output.
 * `reserved` are other names the command writes in `out` (e.g. detections.json).
 */
export function pictureNames(images: readonly string[], out: string, reserved: readonly string[]): string[] {
  const inputs = new Set(images.map(canonical));
  const taken = new Set(reserved.map((r) => target(out, r)));
  for (const r of reserved)
    if (inputs.has(target(out, r)))
      throw new WgflowError(`--out ${out}: an input is ${join(out, r)}, which detect writes; choose another --out`);
  return images.map((path, k) => {
    const stem = basename(path, extname(path));
    let name = `${stem}.png`;
    for (let n = k + 1; taken.has(target(out, name)) || inputs.has(target(out, name)); n++) name = `${stem}-${n}.png`;
    taken.add(target(out, name));
    return name;
  });
}
