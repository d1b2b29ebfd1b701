/**
 * The wgflow package's root folder and version, found from this module's location: `cli/` in a clone
 * (run through tsx), `dist/cli/` in the installed package. Shipped files (scripts/setup-gpu.sh) and
 * clone-only ones (bench/) are looked up from there.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'wgflow') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`wgflow: no package.json of wgflow above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The folder holding wgflow's package.json. */
export const PACKAGE_ROOT = findRoot();

/** The `version` of wgflow's package.json. */
export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
