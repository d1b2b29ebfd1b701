/**
 * Loads an artifact served over HTTP(S) (a browser page, or Node with fetch): the manifest, the kernels
 * and the safetensors files are fetched relative to the artifact's base URL, with the same checks as a
 * folder on Node (runtime/artifact-load.ts: sha256 of every kernel through WebCrypto, the device's
 * limits, the weights' names, shapes and dtypes).
 */
import { type ArtifactSource, type LoadedArtifact, loadArtifactFrom } from './artifact-load.js';
import type { DeviceInfo } from './device-core.js';
import { WgflowError } from './errors.js';

/** Largest file fetched for an artifact (bytes), unless `maxBytes` says otherwise. */
export const ARTIFACT_URL_MAX_BYTES = 2 * 2 ** 30;

export interface LoadArtifactUrlOptions {
  /** The device (default: the page's shared device). */
  readonly gpu?: DeviceInfo;
  /** Persistent tensors from another safetensors URL (e.g. a checkpoint of the same program). */
  readonly weightsUrl?: string | URL;
  /** The fetch to use (default: globalThis.fetch). */
  readonly fetch?: typeof fetch;
  /** Refuse a file larger than this (Content-Length, then the bytes received). */
  readonly maxBytes?: number;
  /** Time every dispatch (needs 'timestamp-query'; see LoadArtifactFromOptions.profile). */
  readonly profile?: boolean;
}

/** The artifact's base URL with a trailing slash, so that `kernels/k0.wgsl` resolves inside it. */
function baseOf(url: string | URL): URL {
  let base: URL;
  try {
    base = typeof url === 'string' ? new URL(url, (globalThis as { location?: { href: string } }).location?.href) : url;
  } catch {
    throw new WgflowError(
      `artifact URL "${String(url)}" is not a URL (outside a page it must be absolute, e.g. http://127.0.0.1:8080/art/)`,
    );
  }
  return base.href.endsWith('/') ? base : new URL(`${base.href}/`);
}

async function fetchBytes(f: typeof fetch, url: URL, what: string, maxBytes: number): Promise<Uint8Array | undefined> {
  let res: Response;
  try {
    res = await f(url);
  } catch (e) {
    throw new WgflowError(`${what} ${url.href}: fetch failed (${(e as Error).message})`);
  }
  if (res.status === 404) return undefined;
  if (!res.ok) throw new WgflowError(`${what} ${url.href}: HTTP ${res.status} ${res.statusText}`);
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  const over = (n: number) =>
    new WgflowError(`${what} ${url.href}: ${n} bytes, over the limit of ${maxBytes} (raise it with maxBytes)`);
  if (declared > maxBytes) throw over(declared);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length > maxBytes) throw over(bytes.length);
  return bytes;
}

/** The files of an artifact at a URL. */
export function artifactUrlSource(
  url: string | URL,
  opts: Pick<LoadArtifactUrlOptions, 'fetch' | 'maxBytes'> = {},
): ArtifactSource {
  const base = baseOf(url);
  const f = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const max = opts.maxBytes ?? ARTIFACT_URL_MAX_BYTES;
  return {
    location: base.href,
    where: (file) => new URL(file, base).href,
    read: (file) => fetchBytes(f, new URL(file, base), 'artifact file', max),
  };
}

/** Loads the artifact at `url` (its folder, served as static files) into a Session. */
export async function loadArtifactFromUrl(
  url: string | URL,
  opts: LoadArtifactUrlOptions = {},
): Promise<LoadedArtifact> {
  const src = artifactUrlSource(url, opts);
  let weights: { bytes: Uint8Array; where: string } | undefined;
  if (opts.weightsUrl !== undefined) {
    const u = new URL(opts.weightsUrl, src.location);
    const bytes = await fetchBytes(
      opts.fetch ?? globalThis.fetch.bind(globalThis),
      u,
      'weights file',
      opts.maxBytes ?? ARTIFACT_URL_MAX_BYTES,
    );
    if (!bytes) throw new WgflowError(`weights file ${u.href}: not found (HTTP 404)`);
    weights = { bytes, where: u.href };
  }
  return loadArtifactFrom(src, {
    ...(opts.gpu ? { gpu: opts.gpu } : {}),
    ...(weights ? { weights } : {}),
    ...(opts.profile ? { profile: true } : {}),
  });
}
