// The runtime's browser build: runtime/browser.ts bundled by esbuild into one ES module,
// dist/browser/wgflow-runtime.js (plus a .d.ts that re-exports the entry's types). runtime/device.ts
// (Dawn) is replaced by runtime/device-browser.ts (navigator.gpu). Any `node:` module, `webgpu` or
// compiler code reached from the entry fails the build, so the bundle cannot depend on Node.
// Used by scripts/build.mjs (npm run build) and by test/browser.test.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BROWSER_ENTRY = join(root, 'runtime', 'browser.ts');

/** @type {import('esbuild').Plugin} */
const browserSeam = {
  name: 'wgflow-browser-seam',
  setup(b) {
    b.onResolve({ filter: /^\.\/device\.js$/ }, (args) =>
      args.importer.startsWith(join(root, 'runtime'))
        ? { path: join(dirname(args.importer), 'device-browser.ts') }
        : undefined,
    );
    b.onResolve({ filter: /^(node:|webgpu$|koffi$|ts-morph$|sharp$|@napi-rs\/canvas$)/ }, (args) => ({
      errors: [{ text: `the browser runtime must not import "${args.path}" (from ${relative(root, args.importer)})` }],
    }));
    b.onResolve({ filter: /\/(compiler|ops|models)\// }, (args) => ({
      errors: [
        {
          text: `the browser runtime must not import compiler code "${args.path}" (from ${relative(root, args.importer)})`,
        },
      ],
    }));
    // the .js specifiers of the TypeScript sources name .ts files
    b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => ({
      path: join(dirname(args.importer), args.path.replace(/\.js$/, '.ts')),
    }));
  },
};

/**
 * Bundles the browser runtime into `outfile` (default dist/browser/wgflow-runtime.js); returns its
 * size in bytes and the inputs it holds.
 * @param {{ outfile?: string, minify?: boolean }} [opts]
 */
export async function bundleBrowserRuntime(opts = {}) {
  const outfile = opts.outfile ?? join(root, 'dist', 'browser', 'wgflow-runtime.js');
  mkdirSync(dirname(outfile), { recursive: true });
  const result = await build({
    entryPoints: [BROWSER_ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile,
    minify: opts.minify ?? false,
    sourcemap: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [browserSeam],
  });
  const out = Object.values(result.metafile.outputs)[0];
  writeFileSync(
    outfile.replace(/\.js$/, '.d.ts'),
    `// The browser runtime's types: those of its entry (runtime/browser.ts).\nexport * from '${relative(
      dirname(outfile),
      join(root, 'dist', 'runtime', 'browser.js'),
    )
      .replaceAll('\\', '/')
      .replace(/^(?!\.)/, './')}';\n`,
  );
  return { outfile, bytes: out?.bytes ?? 0, inputs: Object.keys(result.metafile.inputs) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await bundleBrowserRuntime();
  console.log(
    `browser runtime: ${relative(root, r.outfile)} (${(r.bytes / 1024).toFixed(1)} KiB, ${r.inputs.length} modules)`,
  );
}
