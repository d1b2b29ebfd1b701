/**
 * The runtime in a real browser (issue 17, the runtime part): Debian's Chromium, headless, WebGPU on its
 * bundled SwiftShader, driven by puppeteer-core.
 * - The browser bundle (scripts/bundle-browser.mjs) holds no `node:` import, no Dawn and no compiler
 *   code; its size is printed.
 * - An frcnn-small inference artifact (seeded non-zero weights), compiled for the limits both adapters
 *   have, is loaded from URLs in the page (loadArtifactFromUrl: sha256 of every kernel through
 *   WebCrypto, the device's limits, the weights) and run on navigator.gpu: its detections equal the Node
 *   runtime's on the same artifact and image (≤ 1e-4 on boxes and scores, identical labels and counts).
 * - A modified kernel and an artifact that needs more storage buffers per stage than SwiftShader's are
 *   refused in the page with the Node runtime's messages.
 * Skips with a message when /usr/bin/chromium is missing (.ci/run installs it: scripts/setup-browser.sh).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StaticServer, serveStatic } from '../cli/static-server.js';
import { writeArtifact } from '../compiler/artifact.js';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { generateAnchors } from '../ops/anchors.js';
import { loadArtifact } from '../runtime/artifact.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import type { HostTensor } from '../runtime/session.js';
// @ts-expect-error: a plain .mjs build script without types
import { bundleBrowserRuntime } from '../scripts/bundle-browser.mjs';
import { freshSeed, rand, seededWeights } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser tests skipped: ${CHROMIUM} is missing (bash scripts/setup-browser.sh)`);

const H = 64;
const W = 80;
const IM_INFO = [56, 72, 1];
const DET = ['det_boxes', 'det_scores', 'det_classes', 'det_count'] as const;

const root = mkdtempSync(join(tmpdir(), 'wgflow-browser-'));
let server: StaticServer;
let browser: Browser;
let page: Page;
let bundleBytes = 0;
let bundleText = '';

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await closeDevice();
  rmSync(root, { recursive: true, force: true });
});

/** Runs `fn` in the page with the bundle imported as `rt`; returns its JSON result. */
type PageResult =
  | { ok: true; outputs: Record<string, { data: number[]; shape: number[] }> }
  | { ok: false; error: string };
// The page's code is a string: vitest would rewrite a dynamic import() inside a function it transforms.
const PAGE_RUN = `async (art, img, info) => {
  try {
    const rt = await import('/web/wgflow-runtime.js');
    const loaded = await rt.loadArtifactFromUrl(art);
    const out = await loaded.session.run({ image: Float32Array.from(img), im_info: Float32Array.from(info) });
    loaded.session.destroy();
    const outputs = {};
    for (const [k, v] of Object.entries(out)) outputs[k] = { data: Array.from(v.data), shape: [...v.shape] };
    return { ok: true, outputs };
  } catch (e) {
    return { ok: false, error: e.name + ': ' + e.message };
  }
}`;
const PAGE_PROBE = `(async () => {
  const a = navigator.gpu && (await navigator.gpu.requestAdapter());
  if (!a) return undefined;
  const limits = {};
  for (const k in a.limits) limits[k] = a.limits[k];
  return { limits, name: a.info.vendor + ' ' + a.info.architecture };
})()`;

const runInPage = (artifactPath: string, image: number[], imInfo: number[]): Promise<PageResult> =>
  page.evaluate(
    `(${PAGE_RUN})(${JSON.stringify(artifactPath)}, ${JSON.stringify(image)}, ${JSON.stringify(imInfo)})`,
  ) as Promise<PageResult>;

describe.skipIf(!haveChromium)('the runtime in headless Chromium (WebGPU on SwiftShader)', () => {
  let browserLimits: Record<string, number>;
  let adapter: string;
  const seed = freshSeed();
  const image = rand([1, 3, H, W], seed);
  let reference: Record<string, HostTensor>;

  beforeAll(async () => {
    const b = await bundleBrowserRuntime({ outfile: join(root, 'web', 'wgflow-runtime.js') });
    bundleBytes = b.bytes;
    bundleText = readFileSync(b.outfile, 'utf8');
    console.log(`browser runtime bundle: ${(bundleBytes / 1024).toFixed(1)} KiB, ${b.inputs.length} modules`);
    writeFileSync(join(root, 'web', 'index.html'), '<!doctype html><html><body>wgflow browser test</body></html>\n');
    server = await serveStatic({ '/': root });
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: false, // the flags below select the new headless mode
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu'],
    });
    page = await browser.newPage();
    await page.goto(`${server.url}web/index.html`);
    const probe = (await page.evaluate(PAGE_PROBE)) as { limits: Record<string, number>; name: string } | undefined;
    if (!probe) throw new Error('Chromium gave no WebGPU adapter (flags --enable-unsafe-webgpu, secure context)');
    browserLimits = probe.limits;
    adapter = probe.name;
    // Compile for what both adapters offer (SwiftShader: 10 storage buffers per stage).
    const dev = await getDevice();
    const both: Record<string, number> = {};
    for (const [k, v] of Object.entries(dev.limits)) both[k] = Math.min(v, browserLimits[k] ?? v);
    const limits = limitsFrom(both);
    const g = new GraphBuilder();
    const inf = buildFrcnnInference(g, {
      backbone: 'frcnn-small',
      numClasses: 3,
      canvas: [H, W],
      limits,
      baseAnchors: generateAnchors(16, [0.5, 1, 2], [1, 2, 4]),
      proposals: { minSize: 4, preNmsTopN: 300, postNmsTopN: 50 },
    });
    const spec = compile(g, { outputs: inf.outputs, limits, name: 'frcnn-infer', seed: 3 }).spec;
    const weights = seededWeights(spec, seed);
    await writeArtifact(join(root, 'art'), { spec, name: 'frcnn-small', weights, typed: false });
    const node = await loadArtifact(join(root, 'art'));
    reference = await node.session.run({ image, im_info: IM_INFO });
    node.session.destroy();
  }, 600_000);

  it('the bundle imports nothing of Node, Dawn or the compiler', () => {
    expect(bundleText).not.toMatch(/from\s*["']node:|import\(\s*["']node:|require\(/);
    expect(bundleText).not.toMatch(/from\s*["']webgpu["']/);
    expect(bundleText).toContain('navigator');
    expect(bundleBytes).toBeGreaterThan(10_000);
  });

  it('runs an frcnn-small artifact from URLs on navigator.gpu with the Node runtime’s detections', async () => {
    const r = await runInPage('/art/', image, IM_INFO);
    expect(r, adapter).toMatchObject({ ok: true });
    if (!r.ok) return;
    const count = reference.det_count?.data[0] as number;
    expect(count, `seed ${seed}: the image gives detections`).toBeGreaterThan(0);
    expect(r.outputs.det_count?.data).toEqual(Array.from(reference.det_count?.data ?? []));
    expect(r.outputs.det_classes?.data).toEqual(Array.from(reference.det_classes?.data ?? []));
    for (const k of DET) expect(r.outputs[k]?.shape, k).toEqual([...(reference[k]?.shape ?? [])]);
    for (const k of ['det_boxes', 'det_scores', 'rois'] as const) {
      const want = reference[k]?.data as Float32Array;
      const got = r.outputs[k]?.data as number[];
      expect(got.length, k).toBe(want.length);
      let worst = 0;
      for (let i = 0; i < want.length; i++)
        worst = Math.max(
          worst,
          Math.abs((got[i] as number) - (want[i] as number)) / Math.max(1, Math.abs(want[i] as number)),
        );
      expect(worst, `${k} (seed ${seed})`).toBeLessThanOrEqual(1e-4);
    }
  });

  it('refuses a modified kernel and an artifact that needs more than the adapter has, as on Node', async () => {
    cpSync(join(root, 'art'), join(root, 'tampered'), { recursive: true });
    const m = JSON.parse(readFileSync(join(root, 'tampered', 'manifest.json'), 'utf8'));
    const kfile = join(root, 'tampered', m.kernels[0].file);
    writeFileSync(kfile, `${readFileSync(kfile, 'utf8')}\n// edited\n`);
    const t = await runInPage('/tampered/', image, IM_INFO);
    expect(t).toMatchObject({
      ok: false,
      error: expect.stringMatching(/WgflowError: .*was modified or is corrupt: sha256/),
    });

    cpSync(join(root, 'art'), join(root, 'greedy'), { recursive: true });
    const need = (browserLimits.maxStorageBuffersPerShaderStage as number) + 1;
    m.limits.maxStorageBuffersPerShaderStage = need;
    writeFileSync(join(root, 'greedy', 'manifest.json'), JSON.stringify(m));
    const gr = await runInPage('/greedy/', image, IM_INFO);
    expect(gr).toMatchObject({
      ok: false,
      error: expect.stringMatching(
        new RegExp(
          `cannot run on this device .*maxStorageBuffersPerShaderStage needs ≥ ${need}, the device has ${need - 1}`,
          's',
        ),
      ),
    });
  });
});

describe('the browser seam', () => {
  it('device-browser exports what device exports (the bundle swaps one for the other)', async () => {
    const node = await import('../runtime/device.js');
    const web = await import('../runtime/device-browser.js');
    expect(Object.keys(web).sort()).toEqual(Object.keys(node).sort());
    for (const k of Object.keys(node))
      expect(typeof (web as Record<string, unknown>)[k], k).toBe(typeof (node as Record<string, unknown>)[k]);
  });

  it('without navigator.gpu the browser device refuses with its own message', async () => {
    const web = await import('../runtime/device-browser.js');
    await expect(web.getDevice()).rejects.toThrow(/No WebGPU adapter was found: this browser has no WebGPU/);
  });

  it('artifact file names stay inside the artifact (the same rule for folders and URLs)', async () => {
    const { artifactFileName } = await import('../runtime/artifact-load.js');
    expect(artifactFileName('a', 'kernels/k0.wgsl', 'kernel file')).toBe('kernels/k0.wgsl');
    for (const bad of ['../x.wgsl', 'kernels/../../x', '/etc/passwd', 'C:/x', 'kernels\\x', 'a//b', './x', ''])
      expect(() => artifactFileName('a', bad, 'kernel file'), bad).toThrow(/is outside the artifact directory/);
  });
});
