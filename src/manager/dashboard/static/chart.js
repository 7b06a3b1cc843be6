// A small line chart on <canvas>: a fixed time window, several series, gaps for missing values, dashed
// lines for secondary series. Drawing ~4 charts × 300 points once a second costs well under a millisecond,
// which is why there is no chart library here (see docs/dashboard.md).

// No red: red means failure on this page, not a series.
const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#4f46e5'];

/** A colour per key that stays the same from one tick to the next. */
export function colourFor(key) {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

/**
 * Axis ticks from 0 to at least `max`: the finest step of 1, 2 or 5 × 10^k that needs at most `target` + 1
 * intervals, so labels never repeat
 * (`2, 2, 1, 1, 0`) nor round oddly (`1.0, 0.8, 0.5, 0.3`). `integer` data (counts) never gets a fractional
 * step. `decimals` is how many digits every label needs.
 * @returns {{ max: number, step: number, ticks: number[], decimals: number }}
 */
export function niceTicks(max, { integer = false, target = 4 } = {}) {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const exp = Math.pow(10, Math.floor(Math.log10(top / (target + 1))));
  let step = 10 * exp;
  for (const m of [1, 2, 5, 10]) {
    const s = integer ? Math.max(1, Math.round(m * exp)) : m * exp;
    if (Math.ceil(top / s - 1e-9) <= target + 1) {
      step = s;
      break;
    }
  }
  // Rounded to the step's own digits so 0.1 + 0.2 shows as 0.3, not 0.30000000000000004.
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const round = (v) => Number(v.toFixed(decimals));
  const count = Math.max(1, Math.ceil(top / step - 1e-9));
  const ticks = Array.from({ length: count + 1 }, (_, i) => round(i * step));
  return { max: ticks[ticks.length - 1], step, ticks, decimals };
}

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{ windowS?: number, integer?: boolean, format?: (v: number, decimals: number) => string }} options
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.windowS = options.windowS ?? 120;
    this.integer = options.integer ?? false;
    this.format = options.format ?? ((v, decimals) => v.toFixed(decimals));
    /** @type {{ times: number[], series: { key: string, label: string, values: (number|null)[], dashed?: boolean, colour?: string }[] }} */
    this.data = { times: [], series: [] };
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(canvas);
  }

  setData(data) {
    this.data = data;
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (w === 0 || h === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const styles = getComputedStyle(canvas);
    const ink = styles.getPropertyValue('--chart-ink').trim() || '#555';
    const grid = styles.getPropertyValue('--chart-grid').trim() || '#e5e7eb';
    const pad = { l: 48, r: 8, t: 8, b: 20 };
    const pw = w - pad.l - pad.r;
    const ph = h - pad.t - pad.b;
    const { times, series } = this.data;
    const end = times.length ? times[times.length - 1] : Date.now();
    const start = end - this.windowS * 1000;
    let max = 0;
    for (const s of series)
      for (let i = 0; i < s.values.length; i++) {
        const v = s.values[i];
        if (v != null && times[i] >= start && v > max) max = v;
      }
    const axis = niceTicks(max, { integer: this.integer });
    max = axis.max;
    this.canvas.dataset.ticks = axis.ticks.map((v) => this.format(v, axis.decimals)).join(',');
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = ink;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const v of axis.ticks) {
      const y = pad.t + ph - (ph * v) / max;
      ctx.beginPath();
      ctx.moveTo(pad.l, Math.round(y) + 0.5);
      ctx.lineTo(pad.l + pw, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(this.format(v, axis.decimals), pad.l - 6, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let s = this.windowS; s >= 0; s -= this.windowS / 4) {
      const x = pad.l + pw * (1 - s / this.windowS);
      ctx.fillText(s === 0 ? 'now' : `-${s}s`, Math.min(Math.max(x, pad.l + 12), pad.l + pw - 12), pad.t + ph + 5);
    }
    const xOf = (t) => pad.l + ((t - start) / (end - start || 1)) * pw;
    const yOf = (v) => pad.t + ph - (v / max) * ph;
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.l, pad.t - 2, pw, ph + 4);
    ctx.clip();
    for (const s of series) {
      ctx.strokeStyle = s.colour ?? colourFor(s.key);
      ctx.lineWidth = 1.75;
      ctx.setLineDash(s.dashed ? [5, 4] : []);
      ctx.beginPath();
      let pen = false;
      for (let i = 0; i < times.length; i++) {
        const v = s.values[i];
        if (v == null || times[i] < start - 1000) {
          pen = false;
          continue;
        }
        const x = xOf(times[i]);
        const y = yOf(v);
        if (pen) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        pen = true;
      }
      ctx.stroke();
    }
    ctx.restore();
  }
}
