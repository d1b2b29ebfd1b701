// The detection page: loads the artifact served under ./artifact/ with wgflow's browser runtime
// (./runtime/wgflow-runtime.js, `wgflow serve` puts both there), runs it on navigator.gpu for each image
// the user picks or drops, and draws boxes, class names and scores. The preprocessing is the model's
// (the artifact's metadata.config through the runtime's prepareImage, as in Node), so the detections
// equal the Node runtime's on the same image. Times: decode and preprocessing on the CPU, the session's
// run (upload, every dispatch, read-back), GPU time per model stage when the adapter has timestamp
// queries, and drawing.
//
// window.wgflow is the page's state for scripts and tests: {status, adapter, model, result, error}.
import * as rt from './runtime/wgflow-runtime.js';

const $ = (id) => document.getElementById(id);
/** One colour per class (class k uses COLORS[(k - 1) % COLORS.length]). */
const COLORS = ['#ff2d2d', '#00c853', '#2962ff', '#ffab00', '#d500f9', '#00b8d4', '#ff6d00', '#aeea00'];
/** Largest decoded image the page accepts (pixels); larger ones are refused before any copy. */
const MAX_PIXELS = 40e6;

const state = { status: 'loading', adapter: null, model: null, result: null, error: null, colors: COLORS };
window.wgflow = state;

let loaded;
let profile = false;
let busy = Promise.resolve();
/** The last image and its detections, redrawn when the threshold changes. */
let last;

function showError(e) {
  state.status = 'error';
  state.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  $('status').textContent = state.error;
  $('status').className = 'error';
}

function row(cells, numeric = []) {
  const tr = document.createElement('tr');
  cells.forEach((c, i) => {
    const td = document.createElement('td');
    td.textContent = c;
    if (numeric.includes(i)) td.className = 'num';
    tr.append(td);
  });
  return tr;
}

/** RGB bytes of a decoded image (createImageBitmap → canvas → getImageData). */
async function decode(blob) {
  const bitmap = await createImageBitmap(blob);
  const { width, height } = bitmap;
  if (width * height > MAX_PIXELS) {
    bitmap.close();
    throw new Error(`the image is ${width}×${height}, over the ${MAX_PIXELS / 1e6} megapixels this page decodes`);
  }
  const c = new OffscreenCanvas(width, height);
  const ctx = c.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    data[j] = rgba[i];
    data[j + 1] = rgba[i + 1];
    data[j + 2] = rgba[i + 2];
  }
  return { bitmap, image: { width, height, data } };
}

/** Every detection the program returned (det_count of them), in original-image pixels. */
function detectionsOf(out, classes) {
  const n = out.det_count.data[0];
  return Array.from({ length: n }, (_, d) => {
    const label = out.det_classes.data[d];
    return {
      label,
      name: classes?.[label - 1] ?? `class ${label}`,
      score: out.det_scores.data[d],
      box: Array.from(out.det_boxes.data.subarray(4 * d, 4 * d + 4)),
    };
  });
}

function draw(bitmap, detections, threshold) {
  const canvas = $('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  const line = Math.max(2, Math.round(Math.min(bitmap.width, bitmap.height) / 160));
  ctx.lineWidth = line;
  ctx.font = `${Math.max(12, 6 * line)}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  const drawn = detections.filter((d) => d.score >= threshold);
  const labels = [];
  for (const d of drawn) {
    const [x1, y1, x2, y2] = d.box;
    const color = COLORS[(d.label - 1) % COLORS.length];
    ctx.strokeStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${d.name} ${d.score.toFixed(2)}`;
    const w = ctx.measureText(text).width + 6;
    const h = Math.max(12, 6 * line) + 4;
    const ty = y1 - h >= 0 ? y1 - h : y1;
    ctx.fillStyle = color;
    ctx.fillRect(x1, ty, w, h);
    labels.push([x1, ty, w, h]);
    ctx.fillStyle = '#fff';
    ctx.fillText(text, x1 + 3, ty + 2);
  }
  return { drawn, labels, lineWidth: line };
}

function showTimes(times, stages) {
  const t = $('times');
  t.replaceChildren(row(['decode (CPU)', `${times.decode.toFixed(1)} ms`], [1]));
  t.append(row(['preprocess (CPU)', `${times.preprocess.toFixed(1)} ms`], [1]));
  t.append(row(['run: upload, dispatches, read-back', `${times.run.toFixed(1)} ms`], [1]));
  if (stages)
    for (const s of stages)
      t.append(row([`  GPU ${s.stage} (${s.dispatches} dispatches)`, `${s.ms.toFixed(2)} ms`], [1]));
  else t.append(row(['  GPU time per stage', 'needs timestamp-query'], []));
  t.append(row(['draw', `${times.draw.toFixed(1)} ms`], [1]));
}

function showDetections(drawn, all) {
  const t = $('detections');
  t.replaceChildren(row(['class', 'score', 'box (x1, y1, x2, y2)']));
  for (const d of drawn) t.append(row([d.name, d.score.toFixed(3), d.box.map((v) => v.toFixed(1)).join(', ')], [1]));
  if (drawn.length < all.length) t.append(row([`${all.length - drawn.length} more below the threshold`, '', '']));
}

async function detect(blob, name) {
  const meta = loaded.manifest.metadata;
  state.status = 'running';
  $('status').className = '';
  $('status').textContent = `detecting in ${name}…`;
  const times = {};
  let t = performance.now();
  const { bitmap, image } = await decode(blob);
  times.decode = performance.now() - t;
  t = performance.now();
  const prepared = rt.prepareImage(image, meta.config);
  times.preprocess = performance.now() - t;
  t = performance.now();
  const out = await loaded.session.run({ image: prepared.data, im_info: prepared.imInfo });
  times.run = performance.now() - t;
  const stages = profile ? rt.stageTimes(loaded.session.lastRunProfile, loaded.session.spec.kernels) : null;
  const detections = detectionsOf(out, meta.classes);
  last = { blob, name, detections, times, stages };
  show(bitmap, image, last);
}

/** Draws an image's detections at the current threshold, and publishes the result. */
function show(bitmap, image, { name, detections, times, stages }) {
  const t = performance.now();
  const threshold = Number($('threshold').value);
  const { drawn, labels, lineWidth } = draw(bitmap, detections, threshold);
  bitmap.close();
  times.draw = performance.now() - t;
  showTimes(times, stages);
  showDetections(drawn, detections);
  state.result = {
    name,
    width: image.width,
    height: image.height,
    detections,
    threshold,
    labels,
    lineWidth,
    times,
    stages,
  };
  state.status = 'done';
  $('status').textContent =
    `${name}: ${image.width}×${image.height}, ${drawn.length} detection(s) ≥ ${threshold} (of ${detections.length})`;
}

/** A new threshold redraws the last image's detections (the detector does not run again). */
async function redraw() {
  if (!last) return;
  state.status = 'drawing';
  const { bitmap, image } = await decode(last.blob);
  show(bitmap, image, last);
}

function queue(blob, name) {
  busy = busy.then(() => detect(blob, name)).catch(showError);
  return busy;
}

function queueRedraw() {
  busy = busy.then(redraw).catch(showError);
  return busy;
}

async function main() {
  const gpu = await rt.getDevice();
  profile = rt.canProfile(gpu.device);
  const t = performance.now();
  loaded = await rt.loadArtifactFromUrl('artifact/', { gpu, profile });
  const m = loaded.manifest;
  const config = m.metadata.config;
  if (!config?.canvas || !config.resize || !config.pixel)
    throw new Error('this artifact has no image preprocessing in its metadata (config): use one from `wgflow compile`');
  state.adapter = gpu.adapterName;
  state.model = { name: m.name, canvas: config.canvas, classes: m.metadata.classes ?? null, profile };
  $('about').textContent =
    `${m.name} (${m.kernels.length} kernels, canvas ${config.canvas.join('×')}) loaded in ` +
    `${(performance.now() - t).toFixed(0)} ms on ${gpu.adapterName}` +
    `${profile ? '' : ' (no timestamp queries: no per-stage GPU times)'}`;
  state.status = 'ready';
  $('file').addEventListener('change', () => {
    const f = $('file').files?.[0];
    if (f) queue(f, f.name);
  });
  $('threshold').addEventListener('change', queueRedraw);
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files?.[0];
    if (f) queue(f, f.name);
  });
}

main().catch(showError);
