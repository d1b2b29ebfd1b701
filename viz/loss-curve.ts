/**
 * Loss curves as a PNG (@napi-rs/canvas): one line per series over the iterations, axes with "nice"
 * ticks (1/2/5 × 10^k; on a log-scale y axis the powers of ten, plus 2× and 5× when the range is
 * under three decades), a title, axis labels and a legend. Non-finite values (and values ≤ 0 on a
 * log scale) are skipped and break the line.
 */
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';

export interface LossSeries {
  readonly name: string;
  readonly values: readonly number[];
  /** x positions (default 1, 2, …, n): e.g. the iteration of each logged value. */
  readonly steps?: readonly number[];
}

export interface LossCurveOptions {
  readonly title?: string;
  /** Image size in pixels (default 800 × 480). */
  readonly width?: number;
  readonly height?: number;
  /** Logarithmic y axis (default false). */
  readonly logY?: boolean;
  readonly xLabel?: string;
  readonly yLabel?: string;
}

/** Line colours, one per series (repeating). */
export const SERIES_COLORS: readonly (readonly [number, number, number])[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [23, 190, 207],
];

/** Ticks at 1/2/5 × 10^k covering [lo, hi] with about `target` steps. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Log-axis ticks within [lo, hi] (both > 0). */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  const dense = Math.log10(hi / lo) < 3;
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of dense ? [1, 2, 5] : [1]) {
      const v = Number((m * 10 ** e).toPrecision(12));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  return out;
}

const fmt = (v: number) =>
  v === 0 ? '0' : Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3 ? v.toExponential(0) : String(Number(v.toPrecision(4)));
const css = (c: readonly [number, number, number]) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

function text(
  ctx: SKRSContext2D,
  s: string,
  x: number,
  y: number,
  align: SKRSContext2D['textAlign'],
  base: SKRSContext2D['textBaseline'],
) {
  ctx.textAlign = align;
  ctx.textBaseline = base;
  ctx.fillText(s, x, y);
}

/** Plots the series; returns PNG bytes. */
export async function plotLossCurve(series: readonly LossSeries[], opts: LossCurveOptions = {}): Promise<Buffer> {
  const W = opts.width ?? 800;
  const H = opts.height ?? 480;
  if (!(Number.isInteger(W) && Number.isInteger(H) && W >= 200 && H >= 150))
    throw new Error(`plotLossCurve: size ${W}×${H} must be whole pixels, at least 200×150`);
  const logY = opts.logY ?? false;
  const usable = (v: number) => Number.isFinite(v) && (!logY || v > 0);
  const points = series.map((s, si) => {
    if (s.steps && s.steps.length !== s.values.length)
      throw new Error(`plotLossCurve: series "${s.name}" has ${s.values.length} values but ${s.steps.length} steps`);
    return s.values.map((v, i) => [s.steps ? (s.steps[i] as number) : i + 1, v, si] as const);
  });
  const all = points.flat().filter(([x, y]) => Number.isFinite(x) && usable(y));
  if (all.length === 0)
    throw new Error(
      `plotLossCurve: no ${logY ? 'positive finite' : 'finite'} values to plot in ${series.length} series`,
    );
  let [xlo, xhi] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [ylo, yhi] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (xhi === xlo) [xlo, xhi] = [xlo - 1, xhi + 1];
  if (logY) {
    if (yhi / ylo < 10) [ylo, yhi] = [10 ** Math.floor(Math.log10(ylo)), 10 ** Math.ceil(Math.log10(yhi))];
    if (yhi === ylo) [ylo, yhi] = [ylo / 10, yhi * 10];
    const pad = 10 ** (0.04 * Math.log10(yhi / ylo));
    [ylo, yhi] = [ylo / pad, yhi * pad];
  } else {
    if (yhi === ylo) [ylo, yhi] = [ylo - 1, yhi + 1];
    const pad = (yhi - ylo) * 0.05;
    [ylo, yhi] = [ylo >= 0 && ylo - pad < 0 ? 0 : ylo - pad, yhi + pad];
  }
  const ty = (v: number) => (logY ? Math.log10(v) : v);
  const [tylo, tyhi] = [ty(ylo), ty(yhi)];
  const m = { left: 72, right: 20, top: opts.title ? 40 : 16, bottom: 52 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const X = (x: number) => m.left + ((x - xlo) / (xhi - xlo)) * pw;
  const Y = (y: number) => m.top + ph - ((ty(y) - tylo) / (tyhi - tylo)) * ph;

  const canvas = createCanvas(W, H);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = 'rgb(255, 255, 255)';
  ctx.fillRect(0, 0, W, H);
  ctx.font = '12px "DejaVu Sans", sans-serif';
  // grid and ticks
  ctx.lineWidth = 1;
  const xt = niceTicks(xlo, xhi);
  const yt = logY ? logTicks(ylo, yhi) : niceTicks(ylo, yhi);
  ctx.strokeStyle = 'rgb(225, 225, 225)';
  for (const x of xt) {
    ctx.beginPath();
    ctx.moveTo(Math.round(X(x)) + 0.5, m.top);
    ctx.lineTo(Math.round(X(x)) + 0.5, m.top + ph);
    ctx.stroke();
  }
  for (const y of yt) {
    ctx.beginPath();
    ctx.moveTo(m.left, Math.round(Y(y)) + 0.5);
    ctx.lineTo(m.left + pw, Math.round(Y(y)) + 0.5);
    ctx.stroke();
  }
  ctx.fillStyle = 'rgb(40, 40, 40)';
  for (const x of xt) text(ctx, fmt(x), X(x), m.top + ph + 6, 'center', 'top');
  for (const y of yt) text(ctx, fmt(y), m.left - 6, Y(y), 'right', 'middle');
  // axes
  ctx.strokeStyle = 'rgb(40, 40, 40)';
  ctx.strokeRect(m.left + 0.5, m.top + 0.5, pw, ph);
  text(ctx, opts.xLabel ?? 'iteration', m.left + pw / 2, H - 18, 'center', 'middle');
  ctx.save();
  ctx.translate(16, m.top + ph / 2);
  ctx.rotate(-Math.PI / 2);
  text(ctx, `${opts.yLabel ?? 'loss'}${logY ? ' (log scale)' : ''}`, 0, 0, 'center', 'middle');
  ctx.restore();
  if (opts.title) {
    ctx.font = 'bold 15px "DejaVu Sans", sans-serif';
    text(ctx, opts.title, W / 2, 20, 'center', 'middle');
    ctx.font = '12px "DejaVu Sans", sans-serif';
  }
  // lines (clipped to the plot area)
  ctx.save();
  ctx.beginPath();
  ctx.rect(m.left, m.top, pw, ph);
  ctx.clip();
  ctx.lineWidth = 2;
  points.forEach((pts, si) => {
    ctx.strokeStyle = css(SERIES_COLORS[si % SERIES_COLORS.length] as readonly [number, number, number]);
    ctx.beginPath();
    let pen = false;
    for (const [x, y] of pts) {
      if (!Number.isFinite(x) || !usable(y)) {
        pen = false;
        continue;
      }
      if (pen) ctx.lineTo(X(x), Y(y));
      else ctx.moveTo(X(x), Y(y));
      pen = true;
    }
    ctx.stroke();
  });
  ctx.restore();
  // legend (top right, inside the plot)
  if (series.length > 0) {
    const rowH = 18;
    const lw = Math.max(...series.map((s) => ctx.measureText(s.name).width)) + 44;
    const lx = m.left + pw - lw - 8;
    const ly = m.top + 8;
    ctx.fillStyle = 'rgba(255, 255, 255, 0.85)';
    ctx.fillRect(lx, ly, lw, series.length * rowH + 8);
    ctx.strokeStyle = 'rgb(160, 160, 160)';
    ctx.lineWidth = 1;
    ctx.strokeRect(lx + 0.5, ly + 0.5, lw, series.length * rowH + 8);
    series.forEach((s, si) => {
      const y = ly + 4 + rowH * si + rowH / 2;
      ctx.strokeStyle = css(SERIES_COLORS[si % SERIES_COLORS.length] as readonly [number, number, number]);
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.moveTo(lx + 8, y);
      ctx.lineTo(lx + 32, y);
      ctx.stroke();
      ctx.fillStyle = 'rgb(40, 40, 40)';
      text(ctx, s.name, lx + 38, y, 'left', 'middle');
    });
  }
  return canvas.encode('png');
}
