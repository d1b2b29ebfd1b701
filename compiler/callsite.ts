import { dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

// The package root is one level above compiler/ (source) or dist/compiler (built).
const compilerDir = dirname(fileURLToPath(import.meta.url));
const packageRoot = dirname(compilerDir);
const internalDirs = [`${packageRoot}${sep}compiler${sep}`, `${packageRoot}${sep}ops${sep}`];

/**
 * The first stack frame outside wgflow's compiler/ and ops/ folders, as "file:line:col"
 * (relative to the working directory when inside it). Models and examples count as user code.
 */
export function userCallSite(): string {
  const stack = new Error().stack ?? '';
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?[^\s()]+):(\d+):(\d+)\)?\s*$/.exec(line.trim());
    if (!m) continue;
    let file = m[1] as string;
    if (file.startsWith('file://')) file = fileURLToPath(file);
    if (file.startsWith('node:') || file.includes(`${sep}node_modules${sep}`)) continue;
    if (internalDirs.some((d) => file.startsWith(d))) continue;
    const cwd = process.cwd() + sep;
    const shown = file.startsWith(cwd) ? file.slice(cwd.length) : file;
    return `${shown}:${m[2]}:${m[3]}`;
  }
  return '';
}
