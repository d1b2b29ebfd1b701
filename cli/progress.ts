/**
 * A one-line progress bar for long steps (training, evaluation, data generation): redrawn in place on a
 * terminal, printed as a plain line every `every` updates (and at the end) otherwise (CI logs, pipes).
 */
export class Progress {
  private readonly t0 = performance.now();
  private lastDraw = 0;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly every = 50,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = stream.isTTY === true;
  }

  /** `done` of `total` finished; `detail` is appended (loss terms, lr…). */
  update(done: number, detail = ''): void {
    const now = performance.now();
    const last = done >= this.total;
    if (this.tty ? now - this.lastDraw < 100 && !last : done % this.every !== 0 && !last) return;
    this.lastDraw = now;
    const el = (now - this.t0) / 1000;
    const rate = done / Math.max(el, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    const width = 24;
    const fill = Math.round((width * done) / Math.max(this.total, 1));
    const bar = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`;
    const line = `${this.label} ${bar} ${done}/${this.total} ${rate.toFixed(2)} it/s ETA ${fmt(eta)} ${detail}`;
    if (this.tty) this.stream.write(`\r\x1b[2K${line}${last ? '\n' : ''}`);
    else this.stream.write(`${line}\n`);
  }
}

function fmt(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const r = Math.round(s % 60);
  return m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}
