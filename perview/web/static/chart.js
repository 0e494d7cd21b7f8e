// A small line chart on a canvas, the page's own: time on x, one to a few series on y, warn and
// crit thresholds, a hover read-out. However many points it holds, a draw costs about two points
// per pixel column (the min and max of each), and it draws only on an animation frame, when
// something changed.

import { formatTime, formatValue, niceTicks } from "./format.js";

const FONT = "11px system-ui, sans-serif";
const GRID_PX = 32; // about one y tick per this many pixels
const TIME_TICK_PX = 90; // about one time tick per this many pixels
const GAP_SAMPLES = 4; // a pause of this many usual intervals breaks the line
const TIME_STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

const charts = new Set(); // live charts, redrawn when the colour scheme changes

/** The server's clock as seen from here: samples carry its time, the x axis ends at its now. */
export const clock = {
  offset: 0, // seconds to add to this browser's clock
  behind: 0, // samples in a row that say the server's clock is behind the offset
  now() {
    return Date.now() / 1000 + this.offset;
  },
  /** A sample taken at `t` just arrived. A slow command's sample is older than it looks, so
   *  one sample can move the clock forward, but only several in a row move it back. */
  saw(t) {
    const offset = t - Date.now() / 1000;
    if (offset > this.offset + 2 || (offset < this.offset - 2 && ++this.behind >= 5)) this.offset = offset;
    if (offset >= this.offset - 2) this.behind = 0;
  },
};

let palette = null;

/** The stylesheet's colours for the current scheme. */
function theme() {
  if (!palette) {
    const css = getComputedStyle(document.documentElement);
    const get = (name) => css.getPropertyValue(name).trim();
    palette = {
      muted: get("--muted"), grid: get("--line"), bg: get("--bg"),
      warn: get("--warn"), crit: get("--bad"), series: [get("--s0"), get("--s1"), get("--s2")],
    };
  }
  return palette;
}

matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  palette = null;
  for (const chart of charts) chart.schedule();
});

// -- data --------------------------------------------------------------------------------------

/** Points of one series in time order, in two growable columns; old ones drop off the front. */
class Points {
  constructor() {
    this.t = new Float64Array(256);
    this.v = new Float64Array(256);
    this.head = 0;
    this.end = 0;
    this.n = 1; // samples averaged into the last point
    this.lastRaw = null; // the newest sample, before bucketing: [t, v]
  }

  get length() {
    return this.end - this.head;
  }

  clear() {
    this.head = this.end = 0;
  }

  push(t, v) {
    if (this.end === this.t.length) {
      const size = this.length;
      const capacity = size * 2 > this.t.length ? this.t.length * 2 : this.t.length;
      const t2 = new Float64Array(capacity);
      const v2 = new Float64Array(capacity);
      t2.set(this.t.subarray(this.head, this.end));
      v2.set(this.v.subarray(this.head, this.end));
      this.t = t2;
      this.v = v2;
      this.head = 0;
      this.end = size;
    }
    this.t[this.end] = t;
    this.v[this.end++] = v;
  }

  /** The first index whose time is at least `t`. */
  lowerBound(t) {
    let lo = this.head;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  dropBefore(t) {
    this.head = Math.max(this.head, this.lowerBound(t) - 1);
  }

  last() {
    return this.length ? [this.t[this.end - 1], this.v[this.end - 1]] : null;
  }

  /** The usual time between points (a median of the last few gaps), for breaking the line. */
  interval() {
    const gaps = [];
    for (let i = this.end - 1; i > this.head && gaps.length < 15; i--) gaps.push(this.t[i] - this.t[i - 1]);
    gaps.sort((a, b) => a - b);
    return gaps.length ? gaps[gaps.length >> 1] : 0;
  }
}

// -- the chart ---------------------------------------------------------------------------------

export class Chart {
  /** `lines`: labels of the series drawn (colours follow the theme's --s0, --s1, --s2);
   *  `spark`: a bare sparkline, no axes and no read-out. */
  constructor({ lines = [""], unit = "", warn = null, crit = null, range = 3600, step = 6, spark = false } = {}) {
    this.labels = lines;
    this.data = lines.map(() => new Points());
    this.unit = unit;
    this.warn = warn;
    this.crit = crit;
    this.range = range;
    this.step = step;
    this.spark = spark;
    this.width = 0;
    this.height = 0;
    this.hoverX = null;
    this.scheduled = false;
    this.buffer = new Float64Array(4096);
    this.canvas = document.createElement("canvas");
    this.root = document.createElement("div");
    this.root.className = spark ? "spark" : "plot";
    this.root.append(this.canvas);
    if (!spark) {
      this.readout = document.createElement("div");
      this.readout.className = "readout";
      this.readout.dataset.testid = "readout";
      this.readout.hidden = true;
      this.root.append(this.readout);
      this.canvas.addEventListener("mousemove", (e) => {
        this.hoverX = e.offsetX;
        this.schedule();
      });
      this.canvas.addEventListener("mouseleave", () => {
        this.hoverX = null;
        this.schedule();
      });
      // A click picks the moment under the cursor (`onPick(t)`, the server's epoch seconds).
      this.canvas.addEventListener("click", (e) => {
        if (this.onPick && this.frame) this.onPick(this.timeAt(e.offsetX));
      });
    }
    this.resizeObserver = new ResizeObserver(([entry]) => {
      this.width = entry.contentRect.width;
      this.height = entry.contentRect.height;
      this.schedule();
    });
    this.resizeObserver.observe(this.canvas);
    charts.add(this);
  }

  destroy() {
    this.resizeObserver.disconnect();
    charts.delete(this);
    this.root.remove();
  }

  /** A new time range: the points held are dropped, history for it is on its way. */
  setRange(range, step) {
    this.range = range;
    this.step = step;
    for (const data of this.data) data.clear();
    this.schedule();
  }

  setThresholds(warn, crit) {
    if (warn === this.warn && crit === this.crit) return;
    this.warn = warn;
    this.crit = crit;
    this.schedule();
  }

  /** History for one line, as [[t, v], ...] in time order; samples already appended that are
   *  newer than the history's last point are kept (they arrived while it was being fetched). */
  setData(line, points) {
    const data = this.data[line];
    const newest = points.length ? points[points.length - 1][0] : -Infinity;
    const kept = [];
    for (let i = data.head; i < data.end; i++) if (data.t[i] > newest) kept.push([data.t[i], data.v[i]]);
    data.clear();
    for (const [t, v] of points) data.push(t, v);
    for (const [t, v] of kept) data.push(t, v);
    data.n = 1;
    if (points.length && (data.lastRaw === null || newest > data.lastRaw[0])) data.lastRaw = points[points.length - 1];
    this.schedule();
  }

  /** A live sample: averaged into the last point while it falls in the same step. */
  append(line, t, v) {
    const data = this.data[line];
    const bucket = Math.floor(t / this.step) * this.step;
    const last = data.last();
    if (last && bucket < last[0]) return; // older than what is held: history has it
    if (last && bucket === last[0]) {
      data.v[data.end - 1] = (last[1] * data.n + v) / (data.n + 1);
      data.n++;
    } else {
      data.push(bucket, v);
      data.n = 1;
    }
    data.lastRaw = [t, v];
    if (data.t[data.head] < bucket - this.range - 2 * this.step) data.dropBefore(bucket - this.range - this.step);
    this.schedule();
  }

  /** The newest sample of a line: [t, v] or null. */
  latest(line = 0) {
    const data = this.data[line];
    return data.length ? data.lastRaw || data.last() : null;
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  // -- drawing ---------------------------------------------------------------------------------

  /** The lowest and highest value of every line within [t0, t1] (one point beyond each end
   *  included, as the line runs to it). */
  extent(t0, t1) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const data of this.data) {
      const first = Math.max(data.head, data.lowerBound(t0) - 1);
      const last = Math.min(data.end, data.lowerBound(t1) + 1);
      for (let i = first; i < last; i++) {
        const v = data.v[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    return [lo, hi];
  }

  /** Reduce a line to at most two points per pixel column (its min and max, in the order they
   *  came), as x and value pairs in this.buffer; NaN x marks a break. Returns the pair count. */
  decimate(data, t0, t1, x0, scale) {
    const gap = Math.max(this.step, data.interval()) * GAP_SAMPLES;
    const first = Math.max(data.head, data.lowerBound(t0) - 1);
    const last = Math.min(data.end, data.lowerBound(t1) + 1);
    let n = 0;
    const emit = (x, v) => {
      if (2 * n + 2 > this.buffer.length) {
        const bigger = new Float64Array(this.buffer.length * 2);
        bigger.set(this.buffer);
        this.buffer = bigger;
      }
      this.buffer[2 * n] = x;
      this.buffer[2 * n + 1] = v;
      n++;
    };
    let column = null;
    let minV = 0;
    let maxV = 0;
    let minI = 0;
    let maxI = 0;
    const flush = () => {
      if (column === null) return;
      const x = x0 + column + 0.5;
      if (minI === maxI) emit(x, minV);
      else if (minI < maxI) emit(x, minV), emit(x, maxV);
      else emit(x, maxV), emit(x, minV);
    };
    for (let i = first; i < last; i++) {
      const t = data.t[i];
      const v = data.v[i];
      if (i > first && t - data.t[i - 1] > gap) {
        flush();
        column = null;
        emit(NaN, 0);
      }
      const c = Math.floor((t - t0) * scale);
      if (c !== column) {
        flush();
        column = c;
        minV = maxV = v;
        minI = maxI = i;
      } else if (v < minV) {
        minV = v;
        minI = i;
      } else if (v > maxV) {
        maxV = v;
        maxI = i;
      }
    }
    flush();
    return n;
  }

  draw() {
    const w = this.width;
    const h = this.height;
    if (!w || !h) return; // hidden: drawn again when it is shown
    const dpr = window.devicePixelRatio || 1;
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (this.canvas.width !== pw || this.canvas.height !== ph) {
      this.canvas.width = pw;
      this.canvas.height = ph;
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    const colors = theme();
    const t1 = clock.now();
    const t0 = t1 - this.range;

    // The value axis: from zero (or below) to the highest value, thresholds near it included.
    let [lo, hi] = this.extent(t0, t1);
    if (lo > hi) [lo, hi] = [0, 1];
    for (const limit of [this.warn, this.crit]) if (limit !== null && limit <= Math.max(hi, 0) * 2) hi = Math.max(hi, limit);
    lo = Math.min(lo, 0);
    if (this.unit === "%") hi = Math.max(hi, 100);
    if (hi - lo < 1e-9) hi = lo + 1;
    const top = this.spark ? 1 : 8;
    const bottom = this.spark ? h - 1 : h - 18;
    const { ticks } = this.spark ? { ticks: [] } : niceTicks(lo, hi, Math.max(2, Math.floor((bottom - top) / GRID_PX)));
    if (ticks.length) {
      lo = Math.min(lo, ticks[0]);
      hi = Math.max(hi, ticks[ticks.length - 1]);
    }
    const labels = ticks.map((v) => formatValue(v, this.unit));
    const left = this.spark ? 0 : Math.ceil(Math.max(0, ...labels.map((l) => ctx.measureText(l).width))) + 8;
    const right = this.spark ? w : w - 6;
    const y = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
    const scale = (right - left) / this.range;
    const x = (t) => left + (t - t0) * scale;

    if (!this.spark) this.drawAxes(ctx, colors, { ticks, labels, left, right, bottom, t0, t1, y, x });

    const bands = this.bands(colors, y, top, bottom);
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 1, right - left, bottom - top + 2);
    ctx.clip();
    ctx.lineJoin = "round";
    ctx.lineWidth = this.spark ? 1.25 : 1.5;
    for (let line = this.data.length - 1; line >= 0; line--) {
      const n = this.decimate(this.data[line], t0, t1, left, scale);
      const path = this.path(n, y);
      const color = colors.series[line % colors.series.length];
      const area = this.data.length === 1 ? this.area(n, y, bottom) : null;
      for (const [from, to, band] of bands) {
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, from, right - left, to - from);
        ctx.clip();
        ctx.strokeStyle = band || color;
        ctx.fillStyle = band || color;
        if (area) {
          ctx.globalAlpha = 0.14;
          ctx.fill(area);
          ctx.globalAlpha = 1;
        }
        ctx.stroke(path.line);
        ctx.fill(path.dots);
        ctx.restore();
      }
    }
    ctx.restore();
    if (!this.spark) this.drawThresholds(ctx, colors, { left, right, top, bottom, y });
    this.frame = { left, right, t0 }; // for timeAt(), between draws
    if (!this.spark) this.drawHover(ctx, colors, { left, right, top, bottom, t0, x, y });
    const latest = this.latest(0);
    this.canvas.dataset.points = String(this.data[0].length);
    this.canvas.dataset.last = latest ? String(latest[1]) : "";
    this.canvas.dataset.lastAt = latest ? String(latest[0]) : "";
  }

  /** Horizontal bands [from, to, colour] of the plot: above crit, warn to crit, the rest (whose
   *  colour, null, is the line's own). */
  bands(colors, y, top, bottom) {
    const cuts = [];
    if (this.crit !== null) cuts.push([y(this.crit), colors.crit]);
    if (this.warn !== null && (this.crit === null || this.warn < this.crit)) cuts.push([y(this.warn), colors.warn]);
    const bands = [];
    let from = top - 2;
    for (const [at, color] of cuts) {
      const to = Math.min(Math.max(at, top - 2), bottom + 2);
      if (to > from) bands.push([from, to, color]);
      from = Math.max(from, to);
    }
    bands.push([from, bottom + 2, null]);
    return bands;
  }

  path(n, y) {
    const line = new Path2D();
    const dots = new Path2D();
    const b = this.buffer;
    const dot = (i) => {
      dots.moveTo(b[2 * i] + 2, y(b[2 * i + 1]));
      dots.arc(b[2 * i], y(b[2 * i + 1]), 2, 0, 2 * Math.PI);
    };
    let run = 0;
    for (let i = 0; i < n; i++) {
      const px = b[2 * i];
      if (Number.isNaN(px)) {
        if (run === 1) dot(i - 1);
        run = 0;
        continue;
      }
      const py = y(b[2 * i + 1]);
      if (run === 0) line.moveTo(px, py);
      else line.lineTo(px, py);
      run++;
    }
    if (run === 1) dot(n - 1);
    return { line, dots };
  }

  area(n, y, bottom) {
    const area = new Path2D();
    const b = this.buffer;
    let start = null;
    let lastX = 0;
    for (let i = 0; i <= n; i++) {
      const px = i < n ? b[2 * i] : NaN;
      if (Number.isNaN(px)) {
        if (start !== null) {
          area.lineTo(lastX, bottom);
          area.lineTo(start, bottom);
          area.closePath();
        }
        start = null;
        continue;
      }
      if (start === null) {
        start = px;
        area.moveTo(px, y(b[2 * i + 1]));
      } else {
        area.lineTo(px, y(b[2 * i + 1]));
      }
      lastX = px;
    }
    return area;
  }

  drawAxes(ctx, colors, { ticks, labels, left, right, bottom, t0, t1, y, x }) {
    ctx.lineWidth = 1;
    ctx.strokeStyle = colors.grid;
    ctx.fillStyle = colors.muted;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    ctx.beginPath();
    ticks.forEach((v, i) => {
      const py = Math.round(y(v)) + 0.5;
      ctx.moveTo(left, py);
      ctx.lineTo(right, py);
      ctx.fillText(labels[i], left - 5, py);
    });
    ctx.stroke();

    // Time ticks at round local times.
    const wanted = ((right - left) / TIME_TICK_PX) || 1;
    const step = TIME_STEPS.find((s) => this.range / s <= wanted) || Math.ceil(this.range / wanted / 86400) * 86400;
    const zone = new Date(t1 * 1000).getTimezoneOffset() * 60;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.beginPath();
    for (let t = Math.ceil((t0 - zone) / step) * step + zone; t <= t1; t += step) {
      const px = Math.round(x(t)) + 0.5;
      ctx.moveTo(px, bottom);
      ctx.lineTo(px, bottom + 4);
      const label = formatTime(t, step);
      const half = ctx.measureText(label).width / 2;
      if (px - half >= left - 4 && px + half <= right + 6) ctx.fillText(label, px, bottom + 5);
    }
    ctx.moveTo(left, bottom + 0.5);
    ctx.lineTo(right, bottom + 0.5);
    ctx.stroke();
  }

  /** Thresholds: dashed lines in their colour, named at the left on a backing that keeps the
   *  name legible where the data line crosses it. */
  drawThresholds(ctx, colors, { left, right, top, bottom, y }) {
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    for (const [limit, name, color] of [[this.warn, "warn", colors.warn], [this.crit, "crit", colors.crit]]) {
      if (limit === null) continue;
      const py = Math.round(y(limit)) + 0.5;
      if (py < top - 1 || py > bottom + 1) continue;
      ctx.save();
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(left, py);
      ctx.lineTo(right, py);
      ctx.stroke();
      const label = `${name} ${formatValue(limit, this.unit)}`;
      ctx.globalAlpha = 0.85;
      ctx.fillStyle = colors.bg;
      ctx.fillRect(left + 3, py - 14, ctx.measureText(label).width + 4, 13);
      ctx.globalAlpha = 1;
      ctx.fillStyle = color;
      ctx.fillText(label, left + 5, py - 1);
      ctx.restore();
    }
  }

  /** The time at `px` pixels from the canvas's left, as the last draw placed it. */
  timeAt(px) {
    const { left, right, t0 } = this.frame;
    const x = Math.min(Math.max(px, left), right);
    return t0 + ((x - left) / (right - left)) * this.range;
  }

  /** A moment in the read-out: seconds in short ranges, the day in long ones. */
  when(t) {
    if (this.range > 86400) return `${formatTime(t, 86400)} ${formatTime(t, 60)}`;
    return formatTime(t, this.step < 60 ? 1 : 60);
  }

  /** The cursor: a vertical line at the point nearest to it in time, that point's dots, and
   *  the read-out. It snaps to the data wherever the cursor is on the chart (over the axis, or
   *  where the range reaches back before the first sample), so it never reads out nothing
   *  while there is something to read. */
  drawHover(ctx, colors, { left, right, top, bottom, t0, x, y }) {
    if (this.hoverX === null) {
      this.readout.hidden = true;
      return;
    }
    const hx = Math.min(Math.max(this.hoverX, left), right);
    const t = t0 + ((hx - left) / (right - left)) * this.range;
    const found = this.data.map((data) => {
      const first = data.lowerBound(t0);
      if (first >= data.end) return null;
      const i = Math.min(data.lowerBound(t), data.end - 1);
      const j = i > first && t - data.t[i - 1] < data.t[i] - t ? i - 1 : i;
      return [data.t[j], data.v[j]];
    });
    const held = found.filter(Boolean);
    if (!held.length) {
      this.readout.textContent = "no data yet";
    } else {
      const nearest = held.reduce((a, b) => (Math.abs(b[0] - t) < Math.abs(a[0] - t) ? b : a));
      const px = Math.round(x(nearest[0])) + 0.5;
      ctx.strokeStyle = colors.muted;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, bottom);
      ctx.stroke();
      found.forEach((point, line) => {
        if (!point) return;
        ctx.fillStyle = colors.series[line % colors.series.length];
        ctx.beginPath();
        ctx.arc(x(point[0]), y(point[1]), 3, 0, 2 * Math.PI);
        ctx.fill();
      });
      const values = found.map((point, line) => (point ? `${this.labels[line] ? this.labels[line] + " " : ""}${formatValue(point[1], this.unit)}` : null)).filter(Boolean);
      this.readout.textContent = `${this.when(nearest[0])}  ${values.join("  ")}`;
    }
    this.readout.hidden = false;
    const width = this.readout.offsetWidth;
    const at = hx + 12 + width > right ? hx - 12 - width : hx + 12;
    this.readout.style.left = `${Math.max(0, at)}px`;
  }
}
