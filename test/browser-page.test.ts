/**
 * The detection page (examples/web, served as `wgflow serve` serves it: cli/serve.ts) in Debian's
 * headless Chromium, WebGPU on SwiftShader, driven by puppeteer-core:
 * - an frcnn-small artifact with a model config in its metadata (64×80 canvas, seeded non-zero weights)
 *   is served with the page and the browser runtime bundled from the sources;
 * - three PNGs of different sizes are fed through the page's file input: for each, the page's
 *   detections (all det_count of them, in original-image pixels) equal the Node runtime's on the same
 *   artifact and the same decoded pixels (≤ 1e-4 on boxes and scores, identical labels and counts);
 * - the page's canvas is screenshot (kept as test-results/web-page.png and web-canvas.png): the pixels on
 *   the drawn box's edges are the box's colour, which the photo does not have there;
 * - `wgflow serve` itself starts, serves the page, the runtime and the artifact, refuses a folder that
 *   is not an artifact, and stops on SIGTERM.
 * Skips with a message when /usr/bin/chromium is missing (.ci/run installs it: scripts/setup-browser.sh).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PageSite, startPageServer } from '../cli/serve.js';
import { type StaticServer, serveStatic } from '../cli/static-server.js';
import { writeArtifact } from '../compiler/artifact.js';
import { compile } from '../compiler/compile.js';
import { limitsFrom } from '../compiler/limits.js';
import { GraphBuilder } from '../compiler/tensor.js';
import { buildFrcnnInference } from '../models/frcnn/index.js';
import { loadArtifact } from '../runtime/artifact.js';
import { closeDevice, getDevice } from '../runtime/device.js';
import { type CanvasSpec, prepareImage, type RgbImage } from '../runtime/image-prep.js';
import { inferenceOptions, smallShapesConfig } from '../train/frcnn-config.js';
import { freshSeed, rand, seededWeights } from './helpers.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser page tests skipped: ${CHROMIUM} is missing (bash scripts/setup-browser.sh)`);
const RESULTS = join(REPO, 'test-results');

interface PageDetection {
  label: number;
  name: string;
  score: number;
  box: number[];
}
interface PageResult {
  name: string;
  width: number;
  height: number;
  detections: PageDetection[];
  labels: number[][];
  lineWidth: number;
  stages: { stage: string; ms: number }[] | null;
}
interface PageState {
  status: string;
  adapter: string | null;
  result: PageResult | null;
  error: string | null;
  colors: string[];
}

const root = mkdtempSync(join(tmpdir(), 'wgflow-page-'));
const CLASSES = ['circle', 'square', 'triangle'];
const config = {
  ...smallShapesConfig(CLASSES, 10),
  canvas: [64, 80] as [number, number],
  resize: { shortSide: 64, maxSize: 80 },
  proposalsTest: { minSize: 4, preNmsTopN: 300, postNmsTopN: 50 },
};

let browser: Browser;
let page: Page;
let server: StaticServer;
let site: PageSite;

afterAll(async () => {
  await browser?.close();
  await server?.close();
  site?.cleanup();
  await closeDevice();
  rmSync(root, { recursive: true, force: true });
});

/** A seeded RGB picture: smooth noise with a few filled rectangles (no alpha, no colour profile). */
function picture(width: number, height: number, seed: number): Buffer {
  const noise = rand(width * height * 3, seed, 0, 1);
  const px = Buffer.alloc(width * height * 3);
  const rects = rand(12, seed + 1, 0, 1);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) {
        let v = 90 + 60 * Math.sin((x + 3 * c) / 9) * Math.cos(y / 7) + 40 * (noise[(y * width + x) * 3 + c] as number);
        for (let r = 0; r < 3; r++) {
          const [a, b, w, h] = rects.slice(4 * r, 4 * r + 4) as [number, number, number, number];
          const x0 = a * width * 0.7;
          const y0 = b * height * 0.7;
          if (x >= x0 && x < x0 + 8 + w * width * 0.3 && y >= y0 && y < y0 + 8 + h * height * 0.3)
            v = c === r ? 230 : 30;
        }
        px[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
  return px;
}

async function decodePng(path: string): Promise<RgbImage> {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

const hex = (c: string) => [1, 3, 5].map((i) => Number.parseInt(c.slice(i, i + 2), 16));

describe.skipIf(!haveChromium)('the detection page in headless Chromium (WebGPU on SwiftShader)', () => {
  const seed = freshSeed();
  const images: string[] = [];
  /** The page's result for each image, from the first test. */
  const results = new Map<string, PageResult>();
  let artDir: string;

  beforeAll(async () => {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: false, // the flags below select the new headless mode
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu'],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 700, deviceScaleFactor: 1 });
    // the adapter's limits, from an empty page on 127.0.0.1 (navigator.gpu needs a secure context), to
    // compile for what both adapters offer
    const probeDir = join(root, 'probe');
    mkdirSync(probeDir);
    writeFileSync(join(probeDir, 'index.html'), '<!doctype html><title>probe</title>\n');
    const probeServer = await serveStatic({ '/': probeDir });
    await page.goto(probeServer.url);
    const browserLimits = (await page.evaluate(`(async () => {
      const a = await navigator.gpu?.requestAdapter();
      if (!a) return undefined;
      const l = {};
      for (const k in a.limits) l[k] = a.limits[k];
      return l;
    })()`)) as Record<string, number> | undefined;
    await probeServer.close();
    if (!browserLimits) throw new Error('Chromium gave no WebGPU adapter (flags --enable-unsafe-webgpu)');
    const dev = await getDevice();
    const both: Record<string, number> = {};
    for (const [k, v] of Object.entries(dev.limits)) both[k] = Math.min(v, browserLimits[k] ?? v);
    const limits = limitsFrom(both);
    const g = new GraphBuilder();
    const inf = buildFrcnnInference(g, inferenceOptions(config, limits));
    const spec = compile(g, { outputs: inf.outputs, limits, name: 'frcnn-infer', seed: 3 }).spec;
    const weights = seededWeights(spec, seed);
    artDir = join(root, 'art');
    await writeArtifact(artDir, {
      spec,
      name: 'frcnn-small',
      weights,
      typed: false,
      metadata: { model: 'frcnn-small', classes: CLASSES, config: JSON.parse(JSON.stringify(config)) },
    });
    for (const [w, h, k] of [
      [120, 90, 0],
      [64, 80, 1],
      [200, 150, 2],
    ] as const) {
      const path = join(root, `photo-${w}x${h}.png`);
      await sharp(picture(w, h, seed + 100 * k), { raw: { width: w, height: h, channels: 3 } })
        .png()
        .toFile(path);
      images.push(path);
    }
    ({ server, site } = await startPageServer(artDir, { port: 0 }));
    await page.goto(server.url);
    await page.waitForFunction('window.wgflow && window.wgflow.status !== "loading"', { timeout: 300_000 });
    const s = (await page.evaluate('window.wgflow')) as PageState;
    if (s.status !== 'ready') throw new Error(`the page did not load the artifact: ${s.error}`);
  }, 600_000);

  it('detects in three images through the file input, equal to the Node runtime', async () => {
    const node = await loadArtifact(artDir);
    const spec = node.manifest.metadata.config as unknown as CanvasSpec;
    const input = await page.$('#file');
    if (!input) throw new Error('the page has no #file input');
    let withDetections = 0;
    for (const path of images) {
      const img = await decodePng(path);
      const prepared = prepareImage(img, spec);
      const ref = await node.session.run({ image: prepared.data, im_info: prepared.imInfo });
      await input.uploadFile(path);
      await page.waitForFunction(
        `window.wgflow.status === 'error' || (window.wgflow.status === 'done' && window.wgflow.result.name === ${JSON.stringify(basename(path))})`,
        { timeout: 300_000 },
      );
      const s = (await page.evaluate('window.wgflow')) as PageState;
      expect(s.error, path).toBeNull();
      const r = s.result as PageResult;
      results.set(path, r);
      expect([r.width, r.height]).toEqual([img.width, img.height]);
      const count = ref.det_count?.data[0] as number;
      expect(r.detections.length, `${path} (seed ${seed})`).toBe(count);
      if (count > 0) withDetections++;
      r.detections.forEach((d, i) => {
        expect(d.label, `${path} detection ${i}`).toBe(ref.det_classes?.data[i]);
        expect(d.name).toBe(CLASSES[d.label - 1]);
        const want = ref.det_scores?.data[i] as number;
        expect(Math.abs(d.score - want), `score ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want)));
        d.box.forEach((v, j) => {
          const w = ref.det_boxes?.data[4 * i + j] as number;
          expect(Math.abs(v - w), `box ${i}[${j}]: ${v} vs ${w}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(w)));
        });
      });
    }
    node.session.destroy();
    expect(withDetections, `seed ${seed}: some image gives detections`).toBeGreaterThan(0);
  });

  it('draws the top detection: the pixels on its edges are its colour (screenshot kept)', async () => {
    // An image with only its best detection drawn (nothing else over its edges): the largest one whose
    // best score is strictly above its others (random weights can tie detections at the top, e.g.
    // degenerate boxes that NMS cannot suppress; a threshold cannot separate those).
    const uniqueTop = (r: PageResult | undefined): boolean => {
      const [a, b] = r?.detections ?? [];
      return a !== undefined && (b === undefined || a.score > b.score);
    };
    const path = [2, 0, 1].map((i) => images[i] as string).find((p) => uniqueTop(results.get(p)));
    expect(path, `seed ${seed}: an image whose best detection scores strictly above its others`).toBeDefined();
    if (!path) return;
    if (path !== images[images.length - 1]) {
      // the page keeps the last image: show the chosen one again
      await (await page.$('#file'))?.uploadFile(path);
      await page.waitForFunction(
        `window.wgflow.status === 'error' || (window.wgflow.status === 'done' && window.wgflow.result.name === ${JSON.stringify(basename(path))})`,
        { timeout: 300_000 },
      );
    }
    const first = (await page.evaluate('window.wgflow.result')) as PageResult;
    expect(first.name).toBe(basename(path));
    const top = first.detections[0];
    if (!top) return;
    // a new threshold redraws the last image without running the detector again
    await page.$eval(
      '#threshold',
      (el, v) => {
        const input = el as unknown as { value: string; dispatchEvent(e: unknown): boolean };
        input.value = String(v);
        input.dispatchEvent(new Event('change'));
      },
      top.score,
    );
    await page.waitForFunction(
      `window.wgflow.status === 'error' || (window.wgflow.status === 'done' && window.wgflow.result.threshold === ${top.score})`,
      { timeout: 120_000 },
    );
    const s = (await page.evaluate('window.wgflow')) as PageState;
    const r = s.result as PageResult;
    expect(r.labels).toHaveLength(1);
    mkdirSync(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, 'web-page.png'), fullPage: true });
    const clip = (await page.$eval('#canvas', (c) => {
      const b = c.getBoundingClientRect();
      return { x: b.left + c.clientLeft, y: b.top + c.clientTop, width: c.clientWidth, height: c.clientHeight };
    })) as { x: number; y: number; width: number; height: number };
    expect([clip.width, clip.height]).toEqual([r.width, r.height]);
    const shotPath = join(RESULTS, 'web-canvas.png');
    await page.screenshot({ path: shotPath, clip });
    const shot = await decodePng(shotPath);
    const photo = await decodePng(path);
    const color = hex(s.colors[(top.label - 1) % s.colors.length] as string);
    const [x1, y1, x2, y2] = top.box as [number, number, number, number];
    const [lx, ly, lw, lh] = r.labels[0] as [number, number, number, number];
    const px = (v: number, n: number) => Math.max(0, Math.min(n - 1, Math.floor(v)));
    // the stroke (line width ≥ 2, centred on the edge) covers pixel floor(edge) fully: no antialiasing
    const edges: [number, number][] = [
      [px(x2, r.width), px(y2, r.height)],
      [px(x1, r.width), px(y2, r.height)],
      [px(x2, r.width), px((y1 + y2) / 2, r.height)],
      [px((x1 + x2) / 2, r.width), px(y2, r.height)],
    ];
    const outside = edges.filter(([x, y]) => !(x >= lx - 1 && x <= lx + lw + 1 && y >= ly - 1 && y <= ly + lh + 1));
    expect(outside.length, 'an edge pixel outside the label').toBeGreaterThan(0);
    let differ = 0;
    for (const [x, y] of outside) {
      const at = (img: RgbImage) => Array.from(img.data.subarray(3 * (y * img.width + x), 3 * (y * img.width + x) + 3));
      expect(at(shot), `screenshot pixel (${x}, ${y}) on the box edge`).toEqual(color);
      if (at(photo).some((v, c) => v !== color[c])) differ++;
    }
    expect(differ, 'the photo itself is not the box colour there').toBeGreaterThan(0);
    console.log(`page: ${s.adapter}; screenshot ${join(RESULTS, 'web-page.png')}; stages ${JSON.stringify(r.stages)}`);
  });
});

describe('wgflow serve', () => {
  const tsx = join(REPO, 'node_modules', '.bin', 'tsx');
  const cli = join(REPO, 'cli', 'wgflow.ts');

  it('refuses a folder that is not an artifact, with one line', () => {
    const r = spawnSync(tsx, [cli, 'serve', root, '--port', '0'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^wgflow: .*manifest\.json/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it.skipIf(!haveChromium)(
    'serves the page, the runtime and the artifact; stops on SIGTERM',
    async () => {
      const child: ChildProcess = spawn(tsx, [cli, 'serve', join(root, 'art'), '--port', '0'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stderr?.on('data', (d) => {
        out += String(d);
      });
      const url = await new Promise<string>((ok, bad) => {
        child.stdout?.on('data', (d) => {
          out += String(d);
          const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) ok(m[1] as string);
        });
        child.once('exit', (code) => bad(new Error(`wgflow serve exited ${code}: ${out}`)));
      });
      for (const [path, type] of [
        ['', /text\/html/],
        ['app.js', /javascript/],
        ['runtime/wgflow-runtime.js', /javascript/],
        ['artifact/manifest.json', /json/],
      ] as const) {
        const res = await fetch(new URL(path, url));
        expect(res.status, path).toBe(200);
        expect(res.headers.get('content-type'), path).toMatch(type);
      }
      expect((await fetch(new URL('artifact/../../etc/passwd', url))).status).not.toBe(200);
      const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    },
    180_000,
  );
});
