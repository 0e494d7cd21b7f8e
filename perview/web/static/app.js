// The page: a sidebar of sources, panes side by side or merged, one event stream for all of them.
// Every line arrives as text and is only ever put into text nodes.

import { LineStore, LINE, MARK } from "./store.js";
import { Pane, TAG_COLORS } from "./pane.js";
import { Metrics } from "./metrics.js";
import { EventStream } from "./events.js";
import { api, pageCredential } from "./credential.js";
import { linked, signedIn } from "./session.js";

const params = new URLSearchParams(location.search);
// Lines kept in this tab. At most 1.5 million: Chromium caps a scrolling height at 33,554,432
// px, which at 18 px a row is 1.86 million rows, and the last ones would never show.
const CAPACITY = Math.min(Number(params.get("max")) || 100000, 1500000);
const HIGHLIGHT_COLORS = ["yellow", "red", "green", "blue", "magenta", "cyan"];
const RECONNECT_MIN = 500; // ms before the first attempt once a stream is lost
const RECONNECT_MAX = 5000; // ms between attempts when the server is away
const POLL_MS = 2000; // sidebar figures (viewers, lines per second)
const OVERLAP_LINES = 200; // lines compared after a server restart to avoid showing them twice

const $ = (id) => document.getElementById(id);

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// User-defined highlights: kept in this browser and carried in links.
class Highlighter {
  constructor() {
    this.rules = [];
    this.compiled = null;
  }

  set(rules) {
    this.rules = rules.filter((r) => r.pattern);
    this.compiled = this.rules.length
      ? new RegExp(this.rules.map((r) => `(${escapeRegExp(r.pattern)})`).join("|"), "gi")
      : null;
  }

  /** Append segments to `parent` as text, marking highlighted ranges. */
  render(parent, segments, styleElement) {
    for (const segment of segments) {
      const target = segment.style ? document.createElement("span") : parent;
      if (segment.style) {
        styleElement(target, segment.style);
        parent.append(target);
      }
      if (!this.compiled) {
        target.append(segment.text);
        continue;
      }
      let last = 0;
      for (const match of segment.text.matchAll(this.compiled)) {
        if (!match[0]) break;
        const rule = this.rules[match.slice(1).findIndex((g) => g !== undefined)];
        target.append(segment.text.slice(last, match.index));
        const mark = document.createElement("mark");
        mark.className = `hl hl-${rule.color}`;
        mark.textContent = match[0];
        target.append(mark);
        last = match.index + match[0].length;
      }
      target.append(segment.text.slice(last));
    }
  }
}

class App {
  constructor() {
    this.store = new LineStore(CAPACITY);
    this.panes = [];
    this.sources = new Map(); // name -> info from the API
    this.colors = new Map();
    this.lastIds = new Map(); // name -> next line id to ask for on reconnect
    this.overlap = new Map(); // name -> the lines held before Perview restarted (see onSource)
    this.epoch = null;
    this.stream = null;
    this.retry = RECONNECT_MIN;
    this.options = { time: params.get("time") === "1", numbers: params.get("numbers") === "1", wrap: params.get("wrap") === "1" };
    this.highlighter = new Highlighter();
    this.loadHighlights();
    this.metrics = new Metrics(this);
  }

  async start() {
    await signedIn;
    pageCredential().addEventListener("signed-in", () => {
      this.refresh();
      if (this.panes.length) this.connect();
    });
    await this.refresh();
    const wanted = params.getAll("source").filter((name) => this.sources.has(name));
    const names = wanted.length ? wanted : [...this.sources.keys()].slice(0, 1);
    const filter = { text: params.get("filter") || "", regex: params.get("regex") === "1", matchCase: params.get("case") === "1", invert: params.get("invert") === "1" };
    if (names.length && linked()) await this.askToStart(names);
    if (!this.panes.length) this.show(names, params.get("view") === "split" ? "split" : "merged", filter);
    this.metrics.start(params.get("metrics"));
    setInterval(() => this.refresh(), POLL_MS);
    this.bindKeys();
    $("highlight-add").addEventListener("click", () => this.editHighlights());
    $("view-split").addEventListener("click", () => this.show(this.checked(), "split"));
    $("view-merged").addEventListener("click", () => this.show(this.checked(), "merged"));
    $("help-button").addEventListener("click", () => this.toggleHelp());
    $("reload").addEventListener("click", () => this.reloadConfig());
  }

  /** Watching starts commands, so a page another site opened (which chose `?source=`) waits
   *  for the person to say so: this button, or a source chosen in the sidebar (see show()). */
  askToStart(names) {
    $("start-sources").textContent = names.map((name) => this.titleOf(name)).join(", ");
    $("start-gate").hidden = false;
    this.setConnection("not started");
    return new Promise((resolve) => {
      this.started = resolve;
      $("start").addEventListener("click", resolve, { once: true });
    });
  }

  // -- sources and the sidebar -----------------------------------------------------------------

  colorOf(name) {
    if (!this.colors.has(name)) this.colors.set(name, this.colors.size % TAG_COLORS);
    return this.colors.get(name);
  }

  titleOf(name) {
    return this.sources.get(name)?.title || name;
  }

  async refresh() {
    if (pageCredential().refused) return; // the page says how to sign in again
    let list;
    try {
      const response = await api("api/sources", { cache: "no-store" });
      if (!response.ok) return;
      list = await response.json();
    } catch {
      return; // the connection indicator already says so
    }
    const now = performance.now();
    for (const info of list) {
      const old = this.sources.get(info.name);
      if (old && old.polledAt) info.rate = ((info.lines - old.lines) * 1000) / (now - old.polledAt);
      info.polledAt = now;
      this.sources.set(info.name, { ...old, ...info });
    }
    this.renderSidebar();
  }

  renderSidebar() {
    const list = $("sources");
    const checked = new Set(this.checked());
    const groups = new Map();
    for (const info of this.sources.values()) {
      const group = info.group || "";
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(info);
    }
    const shown = new Set(this.panes.flatMap((p) => [...p.sources]));
    const nodes = [];
    for (const [group, infos] of groups) {
      if (group) nodes.push(Object.assign(document.createElement("h3"), { textContent: group }));
      for (const info of infos) nodes.push(this.sourceItem(info, checked.has(info.name) || shown.has(info.name)));
    }
    list.replaceChildren(...nodes);
  }

  sourceItem(info, checked) {
    const item = document.createElement("li");
    item.dataset.testid = "source-item";
    item.dataset.source = info.name;
    const box = Object.assign(document.createElement("input"), { type: "checkbox", checked, title: "select for side by side or merged" });
    box.dataset.testid = "source-select";
    const name = Object.assign(document.createElement("button"), { type: "button", className: `name tag-text-${this.colorOf(info.name)}`, textContent: this.titleOf(info.name) });
    name.addEventListener("click", () => this.show([info.name], "merged"));
    const state = document.createElement("span");
    state.className = `state state-${info.state}`;
    state.dataset.testid = "source-state";
    state.textContent = describeState(info);
    state.title = info.summary;
    const detail = document.createElement("span");
    detail.className = "detail";
    const hosts = info.hosts?.length ? info.hosts.join(", ") + " · " : "";
    const rate = info.rate ? ` · ${Math.round(info.rate)}/s` : "";
    detail.textContent = `${hosts}${info.viewers} watching${rate}`;
    item.append(box, name, state, detail);
    return item;
  }

  checked() {
    return [...document.querySelectorAll('[data-testid="source-select"]:checked')].map((box) => box.closest("li").dataset.source);
  }

  // -- panes -----------------------------------------------------------------------------------

  show(names, mode, filter = {}) {
    if (!names.length) return;
    $("start-gate").hidden = true;
    this.started?.();
    this.metrics.hide();
    for (const pane of this.panes) pane.destroy();
    this.panes = [];
    const groups = mode === "split" ? names.map((n) => [n]) : [names];
    for (const group of groups) {
      const pane = new Pane(this, group, filter);
      this.panes.push(pane);
      $("panes").append(pane.root);
    }
    this.mode = mode;
    $("panes").dataset.count = String(this.panes.length);
    this.connect();
    this.renderSidebar();
    this.saveUrl();
  }

  closePane(pane) {
    this.panes = this.panes.filter((p) => p !== pane);
    pane.destroy();
    $("panes").dataset.count = String(this.panes.length);
    this.connect();
    this.saveUrl();
  }

  // -- the event stream ------------------------------------------------------------------------

  wanted() {
    return [...new Set(this.panes.flatMap((p) => [...p.sources]))];
  }

  connect() {
    // The old stream stays open until the new one is live, so its sources keep a viewer
    // throughout and are not stopped and restarted by a change of view.
    const previous = this.stream;
    clearTimeout(this.reconnectTimer);
    const names = this.wanted();
    if (!names.length) {
      previous?.close();
      return;
    }
    const query = new URLSearchParams(names.map((n) => ["source", n]));
    query.set("metrics", "1"); // live samples for the charts ride on the same stream
    const known = names.filter((n) => this.lastIds.has(n)).map((n) => `${n}:${this.lastIds.get(n)}`);
    if (this.epoch && known.length) query.set("since", `${this.epoch}/${known.join(",")}`);
    const stream = new EventStream(`api/events?${query}`, api);
    this.stream = stream;
    this.setConnection("connecting");
    stream.addEventListener("open", () => {
      this.retry = RECONNECT_MIN;
      this.setConnection("live");
      if (previous !== stream) previous?.close();
      this.metrics.connected();
    });
    stream.addEventListener("error", () => {
      previous?.close();
      if (this.stream !== stream) return;
      if (pageCredential().refused) {
        this.setConnection("signed out"); // until a new credential ("signed-in" reconnects)
        return;
      }
      // Reconnect with our own cursor (in the query, not Last-Event-ID): the set of sources may
      // have changed since, and each source's cursor is kept apart.
      this.setConnection("reconnecting");
      this.reconnectTimer = setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, RECONNECT_MAX);
    });
    // Only the newest stream counts: the one it replaces may still deliver what the new one
    // will resend from its cursor.
    const current = (handler) => (e) => this.stream === stream && handler(e);
    stream.addEventListener("source", current((e) => this.onSource(JSON.parse(e.data))));
    stream.addEventListener("lines", current((e) => this.onLines(e.lines)));
    stream.addEventListener("state", current((e) => this.onState(JSON.parse(e.data))));
    stream.addEventListener("metric", current((e) => this.metrics.onSamples(JSON.parse(e.data).samples)));
    stream.addEventListener("gap", current((e) => {
      const gap = JSON.parse(e.data);
      this.lastIds.set(gap.source, gap.id + gap.count);
      this.mark(gap.source, `${gap.count.toLocaleString()} lines skipped (not held any more)`);
    }));
    stream.addEventListener("notice", current((e) => {
      const notice = JSON.parse(e.data); // what the source says of its lines: resumed, not followed
      this.mark(notice.source, notice.host ? `${notice.host}: ${notice.text}` : notice.text, notice.time * 1000);
    }));
  }

  setConnection(state) {
    const el = $("connection");
    el.textContent = state;
    el.dataset.state = state;
  }

  onSource(info) {
    if (this.epoch && info.epoch !== this.epoch) {
      // A new server cannot resume our ids, and a restarted source sends what it holds again
      // (a file's last lines): remember our last lines, to drop the part we already show.
      this.lastIds.clear();
      this.overlap.set(info.name, this.tailOf(info.name, OVERLAP_LINES));
      this.mark(info.name, "Perview restarted: lines written while it was down may be missing");
    }
    this.epoch = info.epoch;
    this.sources.set(info.name, { ...this.sources.get(info.name), ...info });
    this.renderSidebar();
  }

  tailOf(source, count) {
    const store = this.store;
    const found = [];
    for (let seq = store.next - 1; seq >= store.first && found.length < count; seq--) {
      const slot = store.slot(seq);
      if (store.kind[slot] === LINE && store.sources[store.source[slot]] === source) found.push(store.text[slot]);
    }
    return found.reverse();
  }

  /** How many of `lines` the page already shows: the longest end of `held` they start with. */
  alreadyShown(held, lines) {
    for (let k = Math.min(held.length, lines.length); k > 0; k--) {
      let same = true;
      for (let i = 0; i < k && same; i++) same = held[held.length - k + i] === lines[i];
      if (same) return k;
    }
    return 0;
  }

  /** A `lines` event's data lines: a JSON header, then the log lines. */
  onLines([head, ...lines]) {
    const header = JSON.parse(head);
    const held = this.overlap.get(header.source);
    if (held) {
      this.overlap.delete(header.source);
      const skip = this.alreadyShown(held, lines);
      lines = lines.slice(skip);
      header.id += skip;
    }
    const arrived = header.time * 1000; // the server's clock: the same after a reload
    const first = this.store.next;
    for (let i = 0; i < lines.length; i++) this.store.push(lines[i], header.source, header.host, header.id + i, arrived, LINE);
    this.lastIds.set(header.source, header.id + lines.length);
    this.distribute(first);
  }

  onState(state) {
    const info = this.sources.get(state.source);
    if (info) {
      Object.assign(info, { state: state.state, status: state.status, reason: state.reason, by: state.by, summary: state.summary });
      this.renderSidebar();
    }
    if (state.history && state.state === "running") return;
    this.mark(state.source, state.summary, state.at * 1000); // the server's words and time
  }

  mark(source, text, time = Date.now()) {
    const first = this.store.next;
    this.store.push(text, source, "", 0, time, MARK);
    this.distribute(first);
  }

  distribute(first) {
    for (const pane of this.panes) {
      for (let seq = Math.max(first, this.store.first); seq < this.store.next; seq++) pane.consider(seq);
      pane.added();
    }
  }

  // -- actions ---------------------------------------------------------------------------------

  async act(names, action) {
    for (const name of names) {
      const response = await api(`api/sources/${encodeURIComponent(name)}/${action}`, { method: "POST" });
      if (!response.ok) this.mark(name, `${action} refused: ${(await response.text()).trim()}`);
    }
    this.refresh();
  }

  /** An operator's reload: the config file applied again, or its errors shown. */
  async reloadConfig() {
    const response = await api("api/reload", { method: "POST" });
    if (response.ok) {
      this.flash(`config reloaded: ${(await response.json()).summary}`);
      this.refresh();
    } else {
      this.flash((await response.text()).trim(), 8000);
    }
  }

  async downloadFull(names) {
    const parts = [];
    for (const name of names) {
      const response = await api(`api/sources/${encodeURIComponent(name)}/text?follow=0&backlog=1000000000`);
      if (!response.ok) {
        this.mark(name, `save refused: ${(await response.text()).trim()}`);
        return;
      }
      parts.push(await response.text());
    }
    this.saveFile(`${names.join("+")}-history.log`, parts.join(""));
  }

  saveFile(name, text) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  linkParams() {
    const query = new URLSearchParams();
    for (const name of this.wanted()) query.append("source", name);
    if (this.panes.length > 1) query.set("view", "split");
    const pane = this.panes[0];
    if (pane?.settings.text) {
      query.set("filter", pane.settings.text);
      if (pane.settings.regex) query.set("regex", "1");
      if (pane.settings.matchCase) query.set("case", "1");
      if (pane.settings.invert) query.set("invert", "1");
    }
    if (this.metrics.visible) query.set("metrics", this.metrics.range);
    if (this.highlighter.rules.length) query.set("hl", this.highlighter.rules.map((r) => `${r.color}:${r.pattern}`).join("\n"));
    return query;
  }

  saveUrl() {
    history.replaceState(null, "", `?${this.linkParams()}`);
  }

  async copyLink() {
    const url = location.href.split("?")[0] + `?${this.linkParams()}`;
    try {
      await navigator.clipboard.writeText(url);
      this.flash("link copied");
    } catch {
      prompt("Copy this link:", url);
    }
  }

  flash(text, ms = 1500) {
    const note = $("flash");
    note.textContent = text;
    note.hidden = false;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => (note.hidden = true), ms);
  }

  // -- highlights ------------------------------------------------------------------------------

  loadHighlights() {
    let rules = [];
    const fromLink = params.get("hl");
    if (fromLink) {
      rules = fromLink.split("\n").map((rule) => {
        const [color, ...rest] = rule.split(":");
        return { color: HIGHLIGHT_COLORS.includes(color) ? color : "yellow", pattern: rest.join(":") };
      });
    } else {
      try {
        rules = JSON.parse(localStorage.getItem("perview.highlights") || "[]");
      } catch {
        rules = [];
      }
    }
    this.highlighter.set(rules);
  }

  editHighlights() {
    const dialog = $("highlights");
    const list = $("highlight-list");
    const row = (rule = { pattern: "", color: HIGHLIGHT_COLORS[list.children.length % HIGHLIGHT_COLORS.length] }) => {
      const li = document.createElement("li");
      const pattern = Object.assign(document.createElement("input"), { value: rule.pattern, placeholder: "text to highlight" });
      pattern.dataset.testid = "highlight-pattern";
      const color = document.createElement("select");
      color.dataset.testid = "highlight-color";
      for (const name of HIGHLIGHT_COLORS) color.append(new Option(name, name, false, name === rule.color));
      li.append(pattern, color);
      list.append(li);
    };
    list.replaceChildren();
    for (const rule of this.highlighter.rules) row(rule);
    row();
    $("highlight-more").onclick = () => row();
    $("highlight-save").onclick = () => {
      const rules = [...list.children].map((li) => ({ pattern: li.querySelector("input").value, color: li.querySelector("select").value })).filter((r) => r.pattern);
      localStorage.setItem("perview.highlights", JSON.stringify(rules));
      this.highlighter.set(rules);
      for (const pane of this.panes) pane.redraw();
      dialog.close();
      this.saveUrl();
    };
    dialog.showModal();
  }

  // -- keyboard --------------------------------------------------------------------------------

  activePane() {
    return this.panes.find((p) => p.root.contains(document.activeElement)) || this.panes[0];
  }

  bindKeys() {
    document.addEventListener("keydown", (e) => {
      const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
      if (e.key === "Escape") {
        $("help").hidden = true;
        return;
      }
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      const pane = this.activePane();
      if (e.key === "/" && pane) {
        e.preventDefault();
        pane.filterInput.focus();
      } else if (e.key === "End" && pane) {
        e.preventDefault();
        for (const p of this.panes) p.jumpToEnd();
      } else if (e.key === "?") {
        this.toggleHelp();
      }
    });
  }

  toggleHelp() {
    $("help").hidden = !$("help").hidden;
  }
}

/** The sidebar's short badge; its tooltip is the server's whole summary. */
function describeState(info) {
  if (info.state === "exited") return info.status < 0 ? "killed" : `exited ${info.status}`;
  return info.state;
}

window.perview = new App();
window.perview.start();
