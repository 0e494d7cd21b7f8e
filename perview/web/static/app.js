// The page: a sidebar of sources, panes side by side or merged, one event stream for all of them.
// This module wires the parts together and owns the tab's lines on their way in (into the store,
// then to the panes); each part owns one thing:
//   connection.js  the event stream, its cursor and reconnection    sources.js   what each source is
//   sidebar.js     the list of sources                              panes.js     the panes on screen
//   urlstate.js    what the address says                            highlights.js, highlight-dialog.js
//   downloads.js   saving lines                                     clipboard.js, keyboard.js, status.js
//   metrics.js     the metrics view                                 alertsview.js the alerts view
// Every line arrives as text and is only ever put into text nodes.

import { LineStore, LINE, MARK } from "./store.js";
import { Metrics } from "./metrics.js";
import { AlertsView } from "./alertsview.js";
import { EventStream } from "./events.js";
import { api, pageCredential } from "./credential.js";
import { linked, signedIn } from "./session.js";
import { $ } from "./dom.js";
import { colorOf } from "./palette.js";
import { readState, writeState } from "./urlstate.js";
import { Highlighter } from "./highlights.js";
import { editHighlights } from "./highlight-dialog.js";
import { Connection, alreadyShown } from "./connection.js";
import { Sources } from "./sources.js";
import { NARROW, Sidebar, foldable } from "./sidebar.js";
import { Panes } from "./panes.js";
import { fullHistory, saveFile } from "./downloads.js";
import { copyText } from "./clipboard.js";
import { bindKeys } from "./keyboard.js";
import { flash, setConnection } from "./status.js";

const POLL_MS = 2000; // sidebar figures (viewers, lines per second)
const OVERLAP_LINES = 200; // lines compared after a server restart to avoid showing them twice
const HIGHLIGHTS_KEY = "perview.highlights"; // this browser's highlights, in localStorage

async function fetchSources() {
  if (pageCredential().refused) return null; // the page says how to sign in again
  try {
    const response = await api("api/sources", { cache: "no-store" });
    return response.ok ? await response.json() : null;
  } catch {
    return null; // the connection indicator already says so
  }
}

function storedHighlights() {
  try {
    return JSON.parse(localStorage.getItem(HIGHLIGHTS_KEY) || "[]");
  } catch {
    return [];
  }
}

/** What a Pane is given (its `app`), and `window.perview`, a handle for tests and benchmarks
 *  (`store`, `panes`, `show()`, `stream`, `lastIds`, `connect()`). */
class App {
  constructor(state) {
    this.state = state; // what the address said when the page loaded
    this.store = new LineStore(state.capacity);
    // On a phone a long line wraps (scrolling sideways a line at a time is no way to read it);
    // elsewhere it scrolls, unless the link or the pane's "wrap" says otherwise.
    this.options = { ...state.options, wrap: state.options.wrap || matchMedia(NARROW).matches };
    this.sources = new Sources(fetchSources);
    this.overlap = new Map(); // name -> the lines held before Perview restarted (see onSource)
    this.highlighter = new Highlighter({ changed: () => this.paneList.redraw(), note: (text) => this.highlightNote(text) });
    this.highlighter.set(state.highlights ?? storedHighlights());
    this.paneList = new Panes($("panes"), this);
    const fold = foldable($("sidebar-toggle"));
    this.sidebar = new Sidebar($("sources"), this.sources, (name) => {
      fold();
      this.show([name], "merged");
    });
    this.fold = fold;
    this.connection = new Connection({
      open: (url) => new EventStream(url, api),
      refused: () => pageCredential().refused,
      handlers: {
        status: setConnection,
        open: () => {
          this.metrics.connected();
          this.alerts.connected();
        },
        source: (info, restarted) => this.onSource(info, restarted),
        lines: (header, lines) => this.onLines(header, lines),
        state: (state) => this.onState(state),
        gap: (gap) => this.mark(gap.source, `${gap.count.toLocaleString()} lines skipped (not held any more)`),
        // What the source says of its lines: resumed, not followed.
        notice: (n) => this.mark(n.source, n.part ? `${n.part}: ${n.text}` : n.text, n.time * 1000),
        samples: (samples) => this.metrics.onSamples(samples),
        alert: (change) => this.alerts.onEvent(change),
      },
    });
    this.metrics = new Metrics({ streaming: () => this.connection.streaming, logsShown: () => this.panes.length > 0, saveUrl: () => this.saveUrl(), logsAround: (t) => this.logsAround(t) });
    this.alerts = new AlertsView({
      streaming: () => this.connection.streaming,
      metricsShown: () => this.metrics.visible,
      hideOthers: () => this.metrics.hide(),
      openSource: (name) => this.show([name], "merged"),
    });
  }

  async start() {
    await signedIn;
    pageCredential().addEventListener("signed-in", () => {
      this.refresh();
      if (this.panes.length) this.connect();
    });
    await this.refresh();
    const wanted = this.state.sources.filter((name) => this.sources.has(name));
    const names = wanted.length ? wanted : this.sources.names().slice(0, 1);
    if (names.length && linked()) await this.askToStart(names);
    if (!this.panes.length) this.show(names, this.state.split ? "split" : "merged", this.state.filter);
    this.metrics.start(this.state.metrics);
    this.alerts.start();
    setInterval(() => this.refresh(), POLL_MS);
    bindKeys({
      activePane: () => this.paneList.active(document.activeElement),
      followAll: () => this.panes.forEach((p) => p.jumpToEnd()),
      toggleHelp: () => ($("help").hidden = !$("help").hidden),
      closeHelp: () => ($("help").hidden = true),
    });
    $("highlight-add").addEventListener("click", () => editHighlights(this.highlighter.rules, (rules) => this.setHighlights(rules)));
    for (const mode of ["split", "merged"]) {
      $(`view-${mode}`).addEventListener("click", () => {
        this.fold();
        this.show(this.sidebar.checked(), mode);
      });
    }
    $("help-button").addEventListener("click", () => ($("help").hidden = !$("help").hidden));
    $("reload").addEventListener("click", () => this.reloadConfig());
  }

  /** Watching starts commands, so a page another site opened (which chose `?source=`) waits
   *  for the person to say so: this button, or a source chosen in the sidebar (see show()). */
  askToStart(names) {
    $("start-sources").textContent = names.map((name) => this.titleOf(name)).join(", ");
    $("start-gate").hidden = false;
    setConnection("not started");
    return new Promise((resolve) => {
      this.started = resolve;
      $("start").addEventListener("click", resolve, { once: true });
    });
  }

  async refresh() {
    if (await this.sources.refresh()) this.sidebar.render();
  }

  // -- what a pane asks of the page ------------------------------------------------------------

  get panes() {
    return this.paneList.list;
  }

  colorOf(name) {
    return colorOf(name);
  }

  titleOf(name) {
    return this.sources.titleOf(name);
  }

  show(names, mode, filter = {}) {
    if (!names.length) return;
    $("start-gate").hidden = true;
    this.started?.();
    this.metrics.hide();
    this.alerts.hide();
    this.paneList.show(names, mode, filter);
    this.connect();
    this.sidebar.tick(this.paneList.wanted());
    this.saveUrl();
  }

  /** Every recorded source's logs around `t` (a chart's moment), in the first pane (a pane of
   *  the first source if none is open). */
  logsAround(t) {
    if (!this.panes.length) this.show(this.sources.names().slice(0, 1), "merged");
    this.metrics.hide();
    this.panes[0]?.history.around(t);
  }

  closePane(pane) {
    this.paneList.close(pane);
    this.connect();
    this.sidebar.tick(this.paneList.wanted());
    this.saveUrl();
  }

  async act(names, action) {
    for (const name of names) {
      const response = await api(`api/sources/${encodeURIComponent(name)}/${action}`, { method: "POST" });
      if (!response.ok) this.mark(name, `${action} refused: ${(await response.text()).trim()}`);
    }
    this.refresh();
  }

  async downloadFull(names) {
    try {
      saveFile(`${names.join("+")}-history.log`, await fullHistory(api, names));
    } catch (error) {
      this.mark(error.source ?? names[0], `save refused: ${error.message}`);
    }
  }

  saveFile(name, text) {
    saveFile(name, text);
  }

  async copyLink() {
    if (await copyText(location.href.split("?")[0] + `?${this.query()}`)) flash("link copied");
  }

  query() {
    const pane = this.panes[0];
    return writeState({
      sources: this.paneList.wanted(),
      split: this.panes.length > 1,
      filter: pane?.settings,
      metrics: this.metrics.visible ? this.metrics.range : null,
      highlights: this.highlighter.rules,
    });
  }

  saveUrl() {
    history.replaceState(null, "", `?${this.query()}`);
  }

  // -- the stream's news -----------------------------------------------------------------------

  get stream() {
    return this.connection.stream;
  }

  get lastIds() {
    return this.connection.cursor.next;
  }

  connect() {
    this.connection.connect(this.paneList.wanted());
  }

  onSource(info, restarted) {
    if (restarted) {
      // A new server cannot resume our ids, and a restarted source sends what it holds again
      // (a file's last lines): remember our last lines, to drop the part we already show.
      this.overlap.set(info.name, this.tailOf(info.name, OVERLAP_LINES));
      this.mark(info.name, "Perview restarted: lines written while it was down may be missing");
    }
    this.sources.merge(info);
    this.sidebar.render();
  }

  tailOf(source, count) {
    const store = this.store;
    const found = [];
    for (let seq = store.next - 1; seq >= store.first && found.length < count; seq--) {
      const slot = store.slot(seq);
      if (store.kind[slot] === LINE && store.sources[store.source[slot]] === source) found.push(store.text(seq));
    }
    return found.reverse();
  }

  onLines(header, event) {
    const held = this.overlap.get(header.source);
    let skip = 0;
    if (held) {
      this.overlap.delete(header.source);
      skip = alreadyShown(held, event.lines.slice(1, 1 + held.length));
    }
    const arrived = header.time * 1000; // the server's clock: the same after a reload
    // header.levels: one letter a line (levels.js); absent: not classified.
    const first = this.store.pushEvent(event, header.source, header.part, header.id, arrived, header.levels, skip);
    this.paneList.distribute(this.store, first);
  }

  onState(state) {
    if (this.sources.setState(state)) this.sidebar.render();
    if (state.history && state.state === "running") return;
    this.mark(state.source, state.summary, state.at * 1000); // the server's words and time
  }

  mark(source, text, time = Date.now()) {
    const first = this.store.next;
    this.store.push(text, source, "", 0, time, MARK);
    this.paneList.distribute(this.store, first);
  }

  // -- the header's actions --------------------------------------------------------------------

  /** An operator's reload: the config file applied again, or its errors shown. */
  async reloadConfig() {
    const response = await api("api/reload", { method: "POST" });
    if (response.ok) {
      flash(`config reloaded: ${(await response.json()).summary}`);
      this.refresh();
    } else {
      flash((await response.text()).trim(), 8000);
    }
  }

  setHighlights(rules) {
    localStorage.setItem(HIGHLIGHTS_KEY, JSON.stringify(rules));
    this.highlighter.set(rules);
    this.paneList.redraw();
    this.saveUrl();
  }

  /** Why regex highlights are off ("": they are not), on the highlights button and for a while
   *  in the header. */
  highlightNote(text) {
    const button = $("highlight-add");
    button.classList.toggle("invalid", Boolean(text));
    button.title = text || "highlight words in every pane";
    if (text) flash(text, 8000);
  }
}

window.perview = new App(readState(location.search));
window.perview.start();
