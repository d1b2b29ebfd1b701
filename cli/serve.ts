/**
 * `wgflow serve ARTIFACT_DIR`: the detection page (examples/web in a clone, dist/web in the package) on
 * 127.0.0.1, with the runtime's browser build under /runtime/ and the artifact under /artifact/. The
 * artifact's manifest is checked first (a folder that is not an artifact is refused, not served). In a
 * clone the browser runtime is bundled fresh from the sources into a temporary folder; the installed
 * package serves its dist/browser.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WgflowError } from '../compiler/errors.js';
import { readArtifactManifest } from '../runtime/artifact.js';
import type { ArtifactManifest } from '../runtime/artifact-manifest.js';
import { PACKAGE_ROOT } from './package-root.js';
import { type StaticServer, serveStatic } from './static-server.js';

export interface PageSite {
  /** URL prefix → folder, for serveStatic. */
  readonly roots: Readonly<Record<string, string>>;
  readonly manifest: ArtifactManifest;
  /** Removes the temporary runtime bundle, if one was made. */
  readonly cleanup: () => void;
}

const BUNDLE_SCRIPT = join(PACKAGE_ROOT, 'scripts', 'bundle-browser.mjs');
const BROWSER_ENTRY = join(PACKAGE_ROOT, 'runtime', 'browser.ts');

/** The page's folder: examples/web in a clone, dist/web in the installed package. */
export function pageFolder(): string {
  for (const dir of [join(PACKAGE_ROOT, 'examples', 'web'), join(PACKAGE_ROOT, 'dist', 'web')])
    if (existsSync(join(dir, 'index.html'))) return dir;
  throw new WgflowError(`serve: the detection page is missing (no examples/web or dist/web under ${PACKAGE_ROOT})`);
}

/** The folders the page, its runtime and the artifact are served from. */
export async function pageSite(artifactDir: string): Promise<PageSite> {
  const dir = resolve(artifactDir);
  const manifest = await readArtifactManifest(dir);
  const config = manifest.metadata.config as { canvas?: unknown; resize?: unknown; pixel?: unknown } | undefined;
  if (!config?.canvas || !config.resize || !config.pixel)
    throw new WgflowError(
      `serve: artifact ${dir} has no image preprocessing in its metadata (config.canvas, resize, pixel): the page runs detector artifacts written by \`wgflow compile\``,
    );
  const page = pageFolder();
  if (existsSync(BUNDLE_SCRIPT) && existsSync(BROWSER_ENTRY)) {
    const tmp = mkdtempSync(join(tmpdir(), 'wgflow-serve-'));
    const { bundleBrowserRuntime } = (await import(pathToFileURL(BUNDLE_SCRIPT).href)) as {
      bundleBrowserRuntime: (o: { outfile: string }) => Promise<{ bytes: number }>;
    };
    await bundleBrowserRuntime({ outfile: join(tmp, 'wgflow-runtime.js') });
    return {
      roots: { '/': page, '/runtime/': tmp, '/artifact/': dir },
      manifest,
      cleanup: () => rmSync(tmp, { recursive: true, force: true }),
    };
  }
  const built = join(PACKAGE_ROOT, 'dist', 'browser');
  if (!existsSync(join(built, 'wgflow-runtime.js')))
    throw new WgflowError(`serve: the browser runtime ${join(built, 'wgflow-runtime.js')} is missing (npm run build)`);
  return { roots: { '/': page, '/runtime/': built, '/artifact/': dir }, manifest, cleanup: () => {} };
}

/** Starts the page's server; resolves with it (close it, then call site.cleanup). */
export async function startPageServer(
  artifactDir: string,
  opts: { port?: number } = {},
): Promise<{ server: StaticServer; site: PageSite }> {
  const site = await pageSite(artifactDir);
  try {
    const server = await serveStatic(site.roots, opts.port !== undefined ? { port: opts.port } : {});
    return { server, site };
  } catch (e) {
    site.cleanup();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new WgflowError(`serve: port ${opts.port} on 127.0.0.1 is in use (pick another with --port)`);
    throw e;
  }
}

/** The CLI command: serves until SIGINT/SIGTERM. */
export async function serveCommand(artifactDir: string, opts: { port: number }): Promise<void> {
  const { server, site } = await startPageServer(artifactDir, { port: opts.port });
  console.log(
    `wgflow serve: ${site.manifest.name} at ${server.url} (the page needs a browser with WebGPU; Ctrl-C stops)`,
  );
  await new Promise<void>((done) => {
    const stop = () => done();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const closed = server.close();
  server.server.closeAllConnections(); // a browser's keep-alive connections would hold it open
  await closed;
  site.cleanup();
}
