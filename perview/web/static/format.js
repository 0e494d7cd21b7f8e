// Numbers, units and moments as the charts show them, and the levels thresholds give values.

const PREFIXES = ["", "K", "M", "G", "T", "P"]; // decimal, as disks and links are sold

function trim(n, digits) {
  const text = n.toFixed(digits);
  return digits ? text.replace(/\.?0+$/, "") : text;
}

function number(n) {
  const a = Math.abs(n);
  return trim(n, a >= 100 ? 0 : a >= 10 ? 1 : 2);
}

/** A value with its unit: "42%", "1.2 MB/s", "3.4k", "42 req". */
export function formatValue(v, unit = "") {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (unit === "%") return `${number(v)}%`;
  if (unit === "B" || unit.startsWith("B/")) {
    let i = 0;
    while (Math.abs(v) >= 1000 && i < PREFIXES.length - 1) {
      v /= 1000;
      i++;
    }
    return `${number(v)} ${PREFIXES[i]}${unit}`;
  }
  let text = number(v);
  const a = Math.abs(v);
  if (a >= 1e4) {
    const i = Math.min(Math.floor(Math.log10(a) / 3), 4);
    text = trim(v / 1000 ** i, 1) + ["", "k", "M", "G", "T"][i];
  }
  return unit ? `${text} ${unit}` : text;
}

const pad2 = (n) => String(n).padStart(2, "0");
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** A moment (epoch seconds) at the precision `step` (seconds) calls for. */
export function formatTime(t, step) {
  const d = new Date(t * 1000);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  if (step < 60) return `${hm}:${pad2(d.getSeconds())}`;
  if (step < 86400) return hm;
  return `${DAYS[d.getDay()]} ${d.getDate()}`;
}

/** What a value means against its thresholds: "ok", "warn" or "crit" (as the server says). */
export function levelOf(v, warn, crit) {
  if (v === null || v === undefined) return "ok";
  if (crit !== null && crit !== undefined && v >= crit) return "crit";
  if (warn !== null && warn !== undefined && v >= warn) return "warn";
  return "ok";
}

/** Round tick values covering [lo, hi], about `count` of them. */
export function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const first = Math.floor(lo / step);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks = [];
  for (let i = first; i <= last; i++) ticks.push(i * step);
  return { ticks, step };
}
