/**
 * A small static file server on 127.0.0.1 (for `wgflow serve` and the browser tests): GET/HEAD of
 * regular files under its roots only (no `..`, no symlink out of a root, no listing), with the content
 * types a page, its module and an artifact need. 127.0.0.1 is a secure context, so WebGPU is available.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, sep } from 'node:path';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
};

export interface StaticServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** Serves each root under its URL prefix (e.g. { '/': pageDir, '/artifact/': artifactDir }). */
export async function serveStatic(
  roots: Readonly<Record<string, string>>,
  opts: { port?: number; host?: string } = {},
): Promise<StaticServer> {
  const mounts = await Promise.all(
    Object.entries(roots)
      .sort(([a], [b]) => b.length - a.length)
      .map(async ([prefix, dir]) => [prefix.endsWith('/') ? prefix : `${prefix}/`, await realpath(dir)] as const),
  );
  const server = createServer(async (req, res) => {
    const fail = (code: number, text: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${text}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'method not allowed');
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return fail(400, 'bad URL');
    }
    if (path.endsWith('/')) path += 'index.html';
    const mount = mounts.find(([prefix]) => path.startsWith(prefix));
    if (!mount || path.split('/').some((s) => s === '..' || s.includes('\\'))) return fail(404, 'not found');
    const [prefix, dir] = mount;
    try {
      const file = await realpath(join(dir, path.slice(prefix.length)));
      if (!(file === dir || file.startsWith(dir + sep))) return fail(404, 'not found');
      const s = await stat(file);
      if (!s.isFile()) return fail(404, 'not found');
      res.writeHead(200, {
        'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        'content-length': s.size,
        'cache-control': 'no-store',
      });
      if (req.method === 'HEAD') return res.end();
      createReadStream(file).pipe(res);
    } catch {
      fail(404, 'not found');
    }
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((ok, bad) => {
    server.once('error', bad);
    server.listen(opts.port ?? 0, host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/`,
    server,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
