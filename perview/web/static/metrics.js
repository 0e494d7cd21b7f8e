// The metrics view: per host, live charts of its key figures and of every custom series; and in
// the sidebar, a CPU sparkline per host. History comes from api/metrics/{id}; live samples from
// the page's one event stream (app.js hands them to onSamples).

import { Chart, clock } from "./chart.js";
import { formatValue, levelOf } from "./format.js";
import { api, pageCredential } from "./credential.js";
import { $, el } from "./dom.js";
import { setConnection } from "./status.js";

const RANGES = { "5m": 300, "1h": 3600, "24h": 86400, "7d": 7 * 86400 };
const RANGE_LABELS = { "5m": "5 minutes", "1h": "1 hour", "24h": "24 hours", "7d": "7 days" };
const POINTS = 600; // points asked for over a range: about one per pixel column of a wide chart
const POLL_MS = 5000; // series states (a failing command says so without a sample), new series
// Without an event stream (a config of metrics alone has no source to stream), polls bring the
// samples: as often as the system's default sampling interval.
const SAMPLE_POLL_MS = 2000;
const SPARK_SPAN = 600; // seconds of CPU in a sidebar sparkline
const SPARK_STEP = 2;
const RESYNC_AFTER_MS = 10000; // a stream silent this long missed samples: fetch history again
// Series charted as a host's key figures (or deliberately left out); every other is custom.
const SYSTEM = /^(cpu|cpu\.core:.*|load\.(1m|5m|15m)|mem\.used(_bytes)?|swap\.used|disk\.(used|read|write):.*|net\.(rx|tx):.*)$/;
// A source's lines per minute by level (the server's log.SOURCE.LEVEL series): a chart per
// source and level, each with its own limits, errors first.
const LOG = /^log\.(.+)\.(error|warning)$/;
const LOG_TITLES = { error: "Errors per minute", warning: "Warnings per minute" };

const stepOf = (range) => Math.max(1, RANGES[range] / POINTS);

/** The URL path of a series id ("host/name"): each part encoded, as names hold "/" and ":". */
function seriesPath(id) {
  const slash = id.indexOf("/");
  return `${encodeURIComponent(id.slice(0, slash))}/${encodeURIComponent(id.slice(slash + 1))}`;
}

async function history(id, since, step) {
  const response = await api(`api/metrics/${seriesPath(id)}?since=${Math.floor(since)}&step=${step}`, { cache: "no-store" });
  if (!response.ok) return [];
  return (await response.json()).points;
}

/** The charts of one host: [{key, title, names, labels}], key figures first, then custom ones. */
function groupsOf(names) {
  const has = new Set(names);
  const groups = [];
  const add = (key, title, parts) => {
    const present = parts.filter(([name]) => has.has(name));
    if (!present.length) return;
    const labels = present.length > 1 ? present.map(([, label]) => label) : [""];
    groups.push({ key, title, names: present.map(([name]) => name), labels });
  };
  const suffixes = (...prefixes) => [...new Set(names.flatMap((n) => prefixes.filter((p) => n.startsWith(p)).map((p) => n.slice(p.length))))].sort();
  add("cpu", "CPU", [["cpu"]]);
  add("load", "Load", [["load.1m", "1m"], ["load.5m", "5m"], ["load.15m", "15m"]]);
  add("mem", "Memory", [["mem.used", "used"], ["swap.used", "swap"]]);
  for (const mount of suffixes("disk.used:")) add(`disk.used:${mount}`, `Disk use ${mount}`, [[`disk.used:${mount}`]]);
  for (const disk of suffixes("disk.read:", "disk.write:")) add(`disk.io:${disk}`, `Disk I/O ${disk}`, [[`disk.read:${disk}`, "read"], [`disk.write:${disk}`, "write"]]);
  for (const nic of suffixes("net.rx:", "net.tx:")) add(`net:${nic}`, `Network ${nic}`, [[`net.rx:${nic}`, "in"], [`net.tx:${nic}`, "out"]]);
  const logs = names.map((n) => n.match(LOG)).filter(Boolean);
  for (const source of [...new Set(logs.map(([, source]) => source))].sort()) {
    for (const level of Object.keys(LOG_TITLES)) add(`log:${source}.${level}`, `${LOG_TITLES[level]}: ${source}`, [[`log.${source}.${level}`]]);
  }
  for (const name of names.filter((n) => !SYSTEM.test(n) && !LOG.test(n)).sort()) add(`custom:${name}`, name, [[name]]);
  return groups;
}

const hostOrder = (a, b) => (a === "local" ? -1 : b === "local" ? 1 : a.localeCompare(b));

/** One chart with its caption (title, legend, latest value) and the reason a series fails. */
class Card {
  constructor(view, host, group) {
    this.view = view;
    this.ids = group.names.map((name) => `${host}/${name}`);
    this.gen = 0;
    const first = view.series.get(this.ids[0]);
    const single = this.ids.length === 1;
    this.chart = new Chart({
      lines: group.labels,
      unit: first.unit,
      warn: single ? first.warn : null,
      crit: single ? first.crit : null,
      range: RANGES[view.range],
      step: stepOf(view.range),
    });
    this.chart.canvas.dataset.testid = "chart-canvas";
    this.chart.onPick = (t) => view.page.logsAround?.(t);
    this.chart.canvas.setAttribute("role", "img");
    this.chart.canvas.ariaLabel = `${group.title} of ${host}`;
    this.legend = el("span", { className: "legend" });
    this.entries = group.labels.map((label, line) => {
      const value = el("span", { className: "value" });
      if (single) return { value };
      this.legend.append(el("span", { className: "entry" }, el("i", { className: `swatch swatch-${line}` }), `${label} `, value));
      return { value };
    });
    this.latest = el("span", { className: "latest", dataset: { testid: "chart-value" } });
    if (single) this.latest.append(this.entries[0].value);
    this.error = el("div", { className: "chart-error", hidden: true, dataset: { testid: "chart-error" } });
    this.root = el(
      "figure",
      { className: "chart", dataset: { testid: "chart", series: this.ids[0], ids: this.ids.join(" "), level: "ok" } },
      el("figcaption", {}, el("span", { className: "title", textContent: group.title }), this.legend, this.latest),
      this.chart.root,
      this.error,
    );
    this.update();
  }

  destroy() {
    this.chart.destroy();
    this.root.remove();
  }

  async load() {
    const gen = ++this.gen;
    const span = RANGES[this.view.range];
    const step = stepOf(this.view.range);
    this.chart.setRange(span, step);
    const since = clock.now() - span;
    const results = await Promise.all(this.ids.map((id) => history(id, since, step).catch(() => null)));
    if (gen !== this.gen) return; // a newer range was chosen meanwhile
    results.forEach((points, line) => points && this.chart.setData(line, points));
    this.update();
  }

  /** Caption, thresholds, level and errors from the series' latest state. */
  update() {
    const failing = [];
    let level = "ok";
    const rank = { ok: 0, warn: 1, crit: 2 };
    this.ids.forEach((id, line) => {
      const info = this.view.series.get(id);
      if (!info) return;
      const latest = this.chart.latest(line);
      const value = latest ? latest[1] : info.value;
      const lineLevel = levelOf(value, info.warn, info.crit);
      if (rank[lineLevel] > rank[level]) level = lineLevel;
      const entry = this.entries[line].value;
      entry.textContent = formatValue(value, info.unit);
      entry.className = `value level-${lineLevel}`;
      if (info.state === "failing") failing.push(this.ids.length > 1 ? `${info.name}: ${info.reason}` : info.reason || "failing");
    });
    const first = this.view.series.get(this.ids[0]);
    if (first && this.ids.length === 1) {
      this.chart.setThresholds(first.warn, first.crit);
      const limits = [first.warn !== null && `warn ${formatValue(first.warn, first.unit)}`, first.crit !== null && `crit ${formatValue(first.crit, first.unit)}`].filter(Boolean);
      this.root.title = limits.join(", ");
    }
    this.root.dataset.level = level;
    this.root.dataset.state = failing.length ? "failing" : "ok";
    this.error.hidden = !failing.length;
    this.error.textContent = failing.join("; ");
  }
}

/** A host in the sidebar: its name, latest CPU and memory, a CPU sparkline, and why its series
 *  fail when they do (an unreachable host, a command that errs). */
class HostItem {
  constructor(view, host) {
    this.view = view;
    this.host = host;
    this.figures = el("span", { className: "figures", dataset: { testid: "host-figures" } });
    const name = el("button", { type: "button", className: "name", textContent: host, title: "show this host's metrics" });
    name.addEventListener("click", () => view.show(null, host));
    this.reason = el("span", { className: "reason", hidden: true, dataset: { testid: "host-reason" } });
    this.root = el("li", { className: "host", dataset: { testid: "host-item", host } }, name, this.figures, this.reason);
    this.spark = null;
  }

  /** Add the sparkline once the host has a CPU series. */
  update() {
    if (!this.spark && this.view.series.has(`${this.host}/cpu`)) {
      this.spark = new Chart({ unit: "%", range: SPARK_SPAN, step: SPARK_STEP, spark: true });
      Object.assign(this.spark.canvas.dataset, { testid: "sparkline", host: this.host });
      this.spark.canvas.setAttribute("role", "img");
      this.spark.canvas.ariaLabel = `CPU of ${this.host}, last ${SPARK_SPAN / 60} minutes`;
      this.root.append(this.spark.root);
      this.load();
    }
    const value = (name) => this.view.series.get(`${this.host}/${name}`)?.value;
    const parts = [];
    if (value("cpu") !== undefined) parts.push(`cpu ${formatValue(value("cpu"), "%")}`);
    if (value("mem.used") !== undefined) parts.push(`mem ${formatValue(value("mem.used"), "%")}`);
    this.figures.textContent = parts.join(" · ");
    const reasons = new Set();
    for (const info of this.view.series.values()) if (info.host === this.host && info.state === "failing" && info.reason) reasons.add(info.reason);
    this.reason.textContent = [...reasons].join("; ");
    this.reason.hidden = !reasons.size;
  }

  async load() {
    const points = await history(`${this.host}/cpu`, clock.now() - SPARK_SPAN, SPARK_STEP).catch(() => null);
    if (points) this.spark.setData(0, points);
  }
}

export class Metrics {
  /** `page`: streaming() (whether live samples come over the event stream), logsShown() (whether
   *  log panes are open), saveUrl() (the view changed), logsAround(t) (a chart's moment was
 *  clicked: the recorded logs around it). */
  constructor(page) {
    this.page = page;
    this.series = new Map(); // id -> what api/metrics says of it, value and at kept current
    this.cards = new Map(); // chart key ("local cpu") -> Card
    this.sections = new Map(); // host -> its section of the view
    this.hosts = new Map(); // host -> HostItem
    this.targets = new Map(); // series id -> [[chart, line, card], ...] its samples go to
    this.range = "5m";
    this.rangeChosen = false; // by a link or by the user; until then it follows the data held
    this.visible = false;
    this.lastSample = 0;
    this.polledAt = 0;
    this.refreshing = null;
    this.root = $("metrics");
    this.rangeSelect = el("select", { dataset: { testid: "range" }, title: "time range" });
    for (const [value, label] of Object.entries(RANGE_LABELS)) this.rangeSelect.append(new Option(label, value, false, value === this.range));
    this.rangeSelect.addEventListener("change", () => this.setRange(this.rangeSelect.value));
    this.hostSections = el("div", { className: "metrics-hosts" });
    this.empty = el("p", { className: "metrics-empty", hidden: true, dataset: { testid: "metrics-empty" }, textContent: "No metrics yet. Perview samples this machine unless the config says system_metrics = false; [metrics.NAME] adds your own." });
    this.root.append(el("div", { className: "metrics-bar" }, el("label", {}, "last ", this.rangeSelect)), this.empty, this.hostSections);
  }

  async start(range) {
    $("view-metrics").addEventListener("click", () => this.show());
    $("view-logs").addEventListener("click", () => this.hide());
    await this.refresh();
    this.rangeChosen = range in RANGES;
    if (range !== null || !this.page.logsShown()) this.show(range);
    setInterval(() => this.poll(), SAMPLE_POLL_MS);
  }

  /** The smallest range that shows all the data held: 5 minutes just after a first start, 7
   *  days once history reaches back that far. */
  fittingRange() {
    let oldest = Infinity;
    let newest = -Infinity;
    for (const info of this.series.values()) {
      if (info.oldest !== null && info.oldest !== undefined) oldest = Math.min(oldest, info.oldest);
      if (info.at !== null) newest = Math.max(newest, info.at);
    }
    const held = newest - oldest; // both the server's times: no clock of this browser's involved
    return Object.keys(RANGES).find((range) => RANGES[range] >= held) || "7d";
  }

  // -- the series ------------------------------------------------------------------------------

  async refresh() {
    let list;
    try {
      const response = await api("api/metrics", { cache: "no-store" });
      if (!response.ok) throw new Error(response.statusText);
      list = await response.json();
    } catch {
      if (!this.streaming()) setConnection("reconnecting"); // else the stream says
      return;
    }
    if (!this.streaming()) setConnection("live");
    const polling = !this.streaming();
    const fresh = [];
    const known = this.series.size;
    for (const info of list) {
      const old = this.series.get(info.id);
      if (polling && old && info.at !== null && info.at !== old.at) fresh.push([info.id, info.at, info.value]);
      this.series.set(info.id, info);
    }
    if (fresh.length) this.onSamples(fresh);
    if (this.series.size !== known && !this.rangeChosen) {
      // New series may hold older history (a rate such as CPU appears a sample after the
      // others): the range grows to show it, and never shrinks under the reader's eyes.
      const fitting = this.fittingRange();
      if (RANGES[fitting] > RANGES[this.range]) {
        this.useRange(fitting);
        if (this.visible) this.page.saveUrl();
      }
    }
    if (this.series.size !== known) this.sync();
    for (const card of this.cards.values()) card.update();
    for (const item of this.hosts.values()) item.update();
  }

  refreshSoon() {
    this.refreshing ??= this.refresh().finally(() => (this.refreshing = null));
  }

  /** Whether live samples come over the event stream (else they are polled). */
  streaming() {
    return this.page.streaming();
  }

  poll() {
    if (pageCredential().refused) return; // the page says how to sign in again
    const now = Date.now();
    if (!this.streaming() || (this.visible && now - this.polledAt >= POLL_MS)) {
      this.polledAt = now;
      this.refreshSoon();
    }
  }

  /** The stream (re)opened: after a silence, charts missed samples and are fetched again. */
  connected() {
    if (this.lastSample && Date.now() - this.lastSample > RESYNC_AFTER_MS) {
      for (const card of this.cards.values()) card.load();
      for (const item of this.hosts.values()) if (item.spark) item.load();
    }
  }

  onSamples(samples) {
    this.lastSample = Date.now();
    const touched = new Set();
    let newest = -Infinity;
    let unknown = false;
    for (const [id, t, v] of samples) {
      const info = this.series.get(id);
      if (!info) {
        unknown = true;
        continue;
      }
      Object.assign(info, { value: v, at: t, state: "ok", reason: null });
      for (const [chart, line, card] of this.targets.get(id) || []) {
        chart.append(line, t, v);
        touched.add(card);
      }
      newest = Math.max(newest, t);
    }
    if (newest > -Infinity) clock.saw(newest);
    for (const card of touched) card.update();
    for (const item of this.hosts.values()) item.update(); // the sidebar's figures are live too
    if (unknown) this.refreshSoon();
  }

  // -- the view --------------------------------------------------------------------------------

  /** Make the sidebar and (when shown) the view match the series known. */
  sync() {
    const byHost = new Map();
    for (const info of this.series.values()) {
      if (!byHost.has(info.host)) byHost.set(info.host, []);
      byHost.get(info.host).push(info.name);
    }
    const hosts = [...byHost.keys()].sort(hostOrder);
    for (const host of hosts) if (!this.hosts.has(host)) this.hosts.set(host, new HostItem(this, host));
    $("hosts").replaceChildren(...hosts.map((host) => this.hosts.get(host).root));
    $("hosts-box").hidden = !hosts.length;
    this.empty.hidden = this.series.size > 0;

    if (this.visible) {
      const wanted = new Set();
      for (const host of hosts) {
        let section = this.sections.get(host);
        if (!section) {
          section = el("section", { className: "metrics-host", dataset: { testid: "metrics-host", host } }, el("h2", { textContent: host }), el("div", { className: "charts" }));
          this.sections.set(host, section);
        }
        const cards = groupsOf(byHost.get(host)).map((group) => {
          const key = `${host} ${group.key}`;
          wanted.add(key);
          let card = this.cards.get(key);
          if (card && card.ids.join(" ") !== group.names.map((n) => `${host}/${n}`).join(" ")) {
            card.destroy(); // a series joined it (swap appeared, say): start it again
            card = null;
          }
          if (!card) {
            card = new Card(this, host, group);
            this.cards.set(key, card);
            card.load();
          }
          return card.root;
        });
        section.lastChild.replaceChildren(...cards);
      }
      for (const [key, card] of this.cards) if (!wanted.has(key)) card.destroy(), this.cards.delete(key);
      this.hostSections.replaceChildren(...hosts.map((host) => this.sections.get(host)));
    }

    this.targets = new Map();
    const target = (id, ...entry) => {
      if (!this.targets.has(id)) this.targets.set(id, []);
      this.targets.get(id).push(entry);
    };
    for (const card of this.cards.values()) card.ids.forEach((id, line) => target(id, card.chart, line, card));
    for (const item of this.hosts.values()) if (item.spark) target(`${item.host}/cpu`, item.spark, 0, item);
  }

  /** Show the metrics view (with this range, scrolled to this host); the log panes are only
   *  hidden, so they keep their lines, filters and scroll position. */
  show(range = null, host = null) {
    this.useRange(range in RANGES ? range : this.rangeChosen ? this.range : this.fittingRange());
    this.visible = true;
    $("panes").hidden = true;
    this.root.hidden = false;
    $("view-metrics").ariaPressed = "true";
    $("view-logs").ariaPressed = "false";
    this.sync();
    if (host) this.sections.get(host)?.scrollIntoView({ block: "start" });
    this.page.saveUrl();
  }

  hide() {
    if (!this.visible) return;
    this.visible = false;
    this.root.hidden = true;
    $("panes").hidden = false;
    $("view-metrics").ariaPressed = "false";
    $("view-logs").ariaPressed = "true";
    this.page.saveUrl();
  }

  setRange(range) {
    if (!(range in RANGES)) return;
    this.rangeChosen = true;
    this.useRange(range);
    this.page.saveUrl();
  }

  useRange(range) {
    if (range === this.range) return;
    this.range = range;
    this.rangeSelect.value = range;
    for (const card of this.cards.values()) card.load();
  }
}
