/**
 * Draws detections on an image with @napi-rs/canvas and encodes a PNG: one colour per class
 * (classColor), a frame of `lineWidth` pixels drawn INSIDE the box (so the box's own edge pixels carry
 * the colour: for an inclusive box, columns x1 and x2 and rows y1 and y2), and a filled tag above the
 * box (inside it when there is no room) reading "name 0.93". Rectangles are whole pixels (no
 * antialiasing); lower scores are drawn first, so the best detection ends on top.
 */
import { createCanvas, ImageData } from '@napi-rs/canvas';
import type { RgbImage } from '../data/image.js';
import type { BoxConvention } from '../data/types.js';
import type { Detection } from '../eval/detections.js';

export interface DrawDetectionsOptions {
  /** Frame thickness in pixels (default: 2, or more on large images). */
  readonly lineWidth?: number;
  /** Tag font size in pixels (default 12). */
  readonly fontSize?: number;
  /** Detections under this score are not drawn (default 0). */
  readonly minScore?: number;
  /** Convention of the boxes (default 'inclusive', the frcnn outputs'). */
  readonly boxConvention?: BoxConvention;
}

/** Tableau-like palette: distinct, saturated colours. */
const PALETTE: readonly (readonly [number, number, number])[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
  [0, 0, 255],
  [255, 0, 255],
  [0, 128, 128],
  [128, 0, 0],
  [0, 255, 0],
  [255, 215, 0],
];

/** The colour of class `label` (label 1 is PALETTE[0]; the palette repeats after 16 classes). */
export function classColor(label: number): readonly [number, number, number] {
  const n = PALETTE.length;
  return PALETTE[(((label - 1) % n) + n) % n] as readonly [number, number, number];
}

const css = (c: readonly [number, number, number]) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

/** Inclusive pixel bounds of a box, clipped to the image; undefined when nothing is inside. */
function pixelBox(
  box: Detection['box'],
  conv: BoxConvention,
  W: number,
  H: number,
): { x1: number; y1: number; x2: number; y2: number } | undefined {
  const last = conv === 'inclusive' ? 0 : 1;
  const x1 = Math.max(0, Math.round(box[0]));
  const y1 = Math.max(0, Math.round(box[1]));
  const x2 = Math.min(W - 1, Math.round(box[2]) - last);
  const y2 = Math.min(H - 1, Math.round(box[3]) - last);
  return x2 >= x1 && y2 >= y1 ? { x1, y1, x2, y2 } : undefined;
}

/** Draws `dets` on a copy of `image`; classNames[label] names each class (index 0: background). Returns PNG bytes. */
export async function drawDetections(
  image: RgbImage,
  dets: readonly Detection[],
  classNames: readonly string[],
  opts: DrawDetectionsOptions = {},
): Promise<Buffer> {
  const { width: W, height: H } = image;
  if (!(Number.isInteger(W) && Number.isInteger(H) && W > 0 && H > 0) || image.data.length !== W * H * 3)
    throw new Error(`drawDetections: image ${W}×${H} needs ${W * H * 3} RGB bytes, got ${image.data.length}`);
  const canvas = createCanvas(W, H);
  const ctx = canvas.getContext('2d');
  const rgba = new Uint8ClampedArray(W * H * 4);
  for (let i = 0; i < W * H; i++) {
    rgba[4 * i] = image.data[3 * i] as number;
    rgba[4 * i + 1] = image.data[3 * i + 1] as number;
    rgba[4 * i + 2] = image.data[3 * i + 2] as number;
    rgba[4 * i + 3] = 255;
  }
  ctx.putImageData(new ImageData(rgba, W, H), 0, 0);
  const lw = Math.max(1, Math.round(opts.lineWidth ?? Math.max(2, Math.min(W, H) / 200)));
  const fontSize = opts.fontSize ?? 12;
  const conv = opts.boxConvention ?? 'inclusive';
  ctx.font = `${fontSize}px "DejaVu Sans", sans-serif`;
  ctx.textBaseline = 'top';
  const shown = dets.filter((d) => d.score >= (opts.minScore ?? 0)).sort((a, b) => a.score - b.score);
  for (const d of shown) {
    const b = pixelBox(d.box, conv, W, H);
    if (!b) continue;
    const color = classColor(d.label);
    const bw = b.x2 - b.x1 + 1;
    const bh = b.y2 - b.y1 + 1;
    const t = Math.min(lw, Math.ceil(bw / 2), Math.ceil(bh / 2));
    ctx.fillStyle = css(color);
    ctx.fillRect(b.x1, b.y1, bw, t); // top
    ctx.fillRect(b.x1, b.y2 - t + 1, bw, t); // bottom
    ctx.fillRect(b.x1, b.y1, t, bh); // left
    ctx.fillRect(b.x2 - t + 1, b.y1, t, bh); // right
    const text = `${classNames[d.label] ?? `class ${d.label}`} ${d.score.toFixed(2)}`;
    const pad = 2;
    const tw = Math.ceil(ctx.measureText(text).width) + 2 * pad;
    const th = fontSize + 2 * pad;
    const tx = Math.max(0, Math.min(b.x1, W - tw));
    const ty = b.y1 - th >= 0 ? b.y1 - th : b.y1;
    ctx.fillRect(tx, ty, tw, th);
    const luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2];
    ctx.fillStyle = luminance > 150 ? 'rgb(0, 0, 0)' : 'rgb(255, 255, 255)';
    ctx.fillText(text, tx + pad, ty + pad);
  }
  return canvas.encode('png');
}
