// History in a pane: a search bar under its toolbar, and the results over its live view until
// "back to live". What is searched is each source's history as the API names it: its record, or
// for an unrecorded `file` source its files (here or on a host), read in place. The live view goes on underneath (its lines, its filter, where it was
// scrolled, whether it followed), so going back finds it as it was, with what came meanwhile.
// Three things show here: a search's matches (newest first, as the server finds them), the lines
// around one of them (in time for a record, in its file for a file's), and every recorded source
// around a moment (a click on a chart).

import { api } from "./credential.js";
import { el } from "./dom.js";
import {
  AROUND_SECONDS, Around, CONTEXT_SECONDS, RANGES, SOURCE_LINES, defaultRange,
  fileLinesUrl, fileWhere, historyUrl, markerText, matchesOf, mergeByTime, progressText, rangeParams, recordsOf, searchUrl, shownText,
} from "./search.js";

const SCOPES = { pane: "this pane's sources", all: "every source with history" };
const NOT_RECORDED = 'not recorded: add record = "7d" to its config to keep its history';

/** "10:03:12.345", with the day in front when it is not today. */
function stamp(at) {
  const t = new Date(at * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const time = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
  const today = new Date().toDateString() === t.toDateString();
  return today ? time : `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${time}`;
}

export class HistoryView {
  /** `pane`: the Pane whose sources a search is for, and under whose toolbar this sits. */
  constructor(pane) {
    this.pane = pane;
    this.app = pane.app;
    this.abort = null; // the request under way, if any
    this.saved = null; // the results a context view came from, to go back to
    this.build();
  }

  build() {
    this.input = el("input", { type: "search", placeholder: "search history and files (Enter)", dataset: { testid: "history-search" }, spellcheck: false, title: "a substring, or re: and a regular expression (RE2)" });
    this.scope = el("select", { dataset: { testid: "history-scope" }, title: "which sources to search" });
    for (const [value, label] of Object.entries(SCOPES)) this.scope.append(new Option(label, value));
    this.range = el("select", { dataset: { testid: "history-range" }, title: "the time range searched" });
    for (const [value, label] of Object.entries(RANGES)) this.range.append(new Option(label, value, false, value === "1h"));
    this.from = el("input", { type: "datetime-local", step: 1, hidden: true, dataset: { testid: "history-from" }, title: "from" });
    this.to = el("input", { type: "datetime-local", step: 1, hidden: true, dataset: { testid: "history-to" }, title: "to (empty: now)" });
    this.rangeChosen = false; // until the person picks one, each search starts from defaultRange
    this.range.addEventListener("change", () => {
      this.rangeChosen = true;
      const custom = this.range.value === "custom";
      this.from.hidden = !custom;
      this.to.hidden = !custom;
      if (custom && !this.from.value) this.from.value = localInput(Date.now() / 1000 - 3600);
    });
    const go = el("button", { type: "submit", textContent: "search", dataset: { testid: "history-go" } });
    this.bar = el("form", { className: "history-bar", dataset: { testid: "history-bar" } }, this.input, this.scope, this.range, this.from, this.to, go);
    this.bar.addEventListener("submit", (e) => {
      e.preventDefault();
      this.search();
    });
    this.status = el("span", { className: "history-status", role: "status", dataset: { testid: "history-status" } });
    this.note = el("span", { className: "history-note", hidden: true, dataset: { testid: "history-note" } });
    this.backToResults = el("button", { type: "button", textContent: "← results", hidden: true, dataset: { testid: "history-back-results" }, title: "back to the search's results" });
    this.backToResults.addEventListener("click", () => this.restoreResults());
    const live = el("button", { type: "button", className: "back-to-live", textContent: "back to live", dataset: { testid: "back-to-live" } });
    live.addEventListener("click", () => this.close());
    this.rows = el("div", { className: "history-rows", dataset: { testid: "history-results" } });
    this.rows.addEventListener("click", (e) => {
      const row = e.target.closest?.(".hline");
      if (row?.record && !row.classList.contains("mark")) this.showAround(row.record);
    });
    this.root = el("div", { className: "history", hidden: true, dataset: { testid: "history" } },
      el("div", { className: "history-head" }, this.backToResults, this.status, this.note, live),
      this.rows);
  }

  get open() {
    return !this.root.hidden;
  }

  /** Back to the live view, as it was: whatever was under way stops. */
  close() {
    this.stop();
    this.saved = null;
    this.root.hidden = true;
    this.rows.replaceChildren();
    this.pane.root.classList.remove("searching");
    this.pane.schedule();
  }

  stop() {
    this.abort?.abort();
    this.abort = null;
  }

  /** Show the results area (empty), and return the signal of a new request. */
  begin(status) {
    this.stop();
    this.abort = new AbortController();
    this.root.hidden = false;
    this.pane.root.classList.add("searching");
    this.rows.replaceChildren();
    this.rows.scrollTop = 0;
    this.say(status);
    this.tell("");
    this.backToResults.hidden = true;
    return this.abort.signal;
  }

  say(text) {
    this.status.textContent = text;
  }

  tell(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  // -- a search --------------------------------------------------------------------------------

  async search() {
    const q = this.input.value;
    if (!q) return;
    if (!this.rangeChosen) {
      const names = this.scope.value === "pane" ? [...this.pane.sources] : this.app.sources.names();
      this.range.value = defaultRange(names.map((name) => this.app.sources.historyOf(name)));
    }
    let range;
    try {
      range = rangeParams(this.range.value, { from: this.from.value, to: this.to.value });
    } catch (error) {
      this.begin(error.message);
      this.stop();
      return;
    }
    const signal = this.begin("searching…");
    this.saved = null;
    this.q = q;
    try {
      let sources = [];
      if (this.scope.value === "pane") {
        const names = [...this.pane.sources];
        sources = names.filter((name) => this.app.sources.historyOf(name) !== "none");
        const missing = names.filter((name) => !sources.includes(name));
        if (missing.length) this.tell(`${missing.map((n) => this.app.titleOf(n)).join(", ")}: ${NOT_RECORDED}`);
        if (!sources.length) {
          this.say("nothing to search: no source of this pane is recorded");
          return;
        }
      }
      const response = await api(searchUrl({ q, sources, range }), { signal, cache: "no-store" });
      if (!response.ok) {
        this.say(`search refused: ${(await response.text()).replace(/^perview: /, "").trim()}`);
        return;
      }
      for await (const batch of recordsOf(response)) {
        const rows = [];
        for (const record of batch) {
          if (record.type === "progress" || record.type === "total") this.say(progressText(record));
          else rows.push(this.row(record, record.match ? q : ""));
        }
        this.rows.append(...rows);
      }
    } catch (error) {
      if (!signal.aborted) this.say(`search failed: ${error.message}`);
    }
  }

  // -- the lines around a result ---------------------------------------------------------------

  async showAround(record) {
    const saved = this.saved ?? { rows: [...this.rows.children], status: this.status.textContent, note: this.note.textContent, scroll: this.rows.scrollTop };
    const who = record.part ? `${record.source}/${record.part}` : record.source;
    const when = record.from === "file" ? fileWhere(record) : stamp(record.at);
    const signal = this.begin(`the lines around ${when} in ${this.app.titleOf(record.source)}…`);
    this.saved = saved;
    this.backToResults.hidden = false;
    if (record.from === "file") {
      await this.showInFile(record, who, signal);
      return;
    }
    const around = new Around(record);
    try {
      const response = await api(historyUrl(record.source, record.at - CONTEXT_SECONDS, record.at + CONTEXT_SECONDS), { signal, cache: "no-store" });
      if (!response.ok) {
        this.say(`${who}: ${(await response.text()).replace(/^perview: /, "").trim()}`);
        return;
      }
      read: for await (const batch of recordsOf(response)) {
        for (const r of batch) if (around.push(r)) break read;
      }
      this.rows.append(...around.records.map((r, i) => {
        const row = this.row(r, i === around.index ? this.q : "");
        if (i === around.index) row.classList.add("current");
        return row;
      }));
      this.say(around.found ? `the lines around ${stamp(record.at)} in ${who}, oldest first` : `${who}: that line is not in its history any more`);
      this.rows.querySelector(".current")?.scrollIntoView({ block: "center" });
    } catch (error) {
      if (!signal.aborted) this.say(`failed: ${error.message}`);
    }
  }

  /** A file's result among the lines around it in its file (read in place, here or on its host). */
  async showInFile(record, who, signal) {
    try {
      const response = await api(fileLinesUrl(record), { signal, cache: "no-store" });
      if (!response.ok) {
        this.say(`${who}: ${(await response.text()).replace(/^perview: /, "").trim()}`);
        return;
      }
      let found = false;
      for await (const batch of recordsOf(response)) {
        this.rows.append(...batch.map((r) => {
          const target = r.type === "line" && r.line === record.line;
          const row = this.row(r, target ? this.q : "");
          if (target) {
            row.classList.add("current");
            found = true;
          }
          return row;
        }));
      }
      this.say(found ? `the lines around ${fileWhere(record)} in ${who}, as in its file` : `${who}: that line is not in ${record.file} any more`);
      this.rows.querySelector(".current")?.scrollIntoView({ block: "center" });
    } catch (error) {
      if (!signal.aborted) this.say(`failed: ${error.message}`);
    }
  }

  restoreResults() {
    const saved = this.saved;
    if (!saved) return;
    this.stop();
    this.saved = null;
    this.backToResults.hidden = true;
    this.rows.replaceChildren(...saved.rows);
    this.say(saved.status);
    this.tell(saved.note);
    this.rows.scrollTop = saved.scroll;
  }

  // -- every recorded source around a moment ---------------------------------------------------

  /** The logs of every recorded source from AROUND_SECONDS before `t` (epoch seconds, the
   *  server's clock) to as long after, merged in time order, the moment marked among them. */
  async around(t) {
    const signal = this.begin(`the logs around ${stamp(t)}…`);
    this.saved = null;
    this.q = ""; // nothing to mark in the lines around it
    const names = this.app.sources.names();
    const missing = names.filter((name) => this.app.sources.historyOf(name) !== "recorded");
    const cut = [];
    try {
      const lists = await Promise.all(names.filter((n) => !missing.includes(n)).map(async (name) => {
        const response = await api(historyUrl(name, t - AROUND_SECONDS, t + AROUND_SECONDS), { signal, cache: "no-store" });
        if (response.status === 404) {
          missing.push(name);
          response.body?.cancel().catch(() => {});
          return [];
        }
        if (!response.ok) throw new Error(`${name}: ${(await response.text()).trim()}`);
        const records = [];
        let lines = 0;
        read: for await (const batch of recordsOf(response)) {
          for (const r of batch) {
            records.push(r);
            if (r.type === "line" && ++lines >= SOURCE_LINES) {
              cut.push(name);
              break read;
            }
          }
        }
        return records;
      }));
      const recorded = names.filter((n) => !missing.includes(n));
      const notes = [];
      if (missing.length) notes.push(`${missing.map((n) => this.app.titleOf(n)).join(", ")}: ${NOT_RECORDED}`);
      if (cut.length) notes.push(`${cut.join(", ")}: only the first ${SOURCE_LINES.toLocaleString("en")} lines`);
      this.tell(notes.join("; "));
      if (!recorded.length) {
        this.say("no source is recorded, so there are no logs of that moment");
        return;
      }
      const merged = mergeByTime(lists);
      const rows = merged.map((r) => this.row(r, ""));
      const moment = el("div", { className: "hline moment", dataset: { testid: "history-moment" }, textContent: `── ${stamp(t)}, the moment chosen ──` });
      const after = merged.findIndex((r) => (r.at ?? -Infinity) >= t);
      rows.splice(after < 0 ? rows.length : after, 0, moment);
      this.rows.append(...rows);
      const lines = merged.filter((r) => r.type === "line").length;
      this.say(`${lines.toLocaleString("en")} lines of ${recorded.map((n) => this.app.titleOf(n)).join(", ")} from ${stamp(t - AROUND_SECONDS)} to ${stamp(t + AROUND_SECONDS)}`);
      moment.scrollIntoView({ block: "center" });
    } catch (error) {
      if (!signal.aborted) this.say(`failed: ${error.message}`);
    }
  }

  // -- rows ------------------------------------------------------------------------------------

  /** A record's row: a line (its match marked where `q` is given), or a marker. Text goes into
   *  text nodes only. */
  row(record, q) {
    if (record.type !== "line") {
      const row = el("div", { className: "hline mark", dataset: { testid: "history-marker", type: record.type } });
      if (record.at !== undefined) row.append(el("span", { className: "ts", textContent: stamp(record.at) }));
      row.append(markerText(record));
      return row;
    }
    const who = this.app.titleOf(record.source) + (record.part ? `@${record.part}` : "");
    const text = el("span", { className: "text" });
    const shown = shownText(record);
    let last = 0;
    for (const [start, end] of matchesOf(q, shown)) {
      text.append(shown.slice(last, start), el("mark", { className: "found", textContent: shown.slice(start, end), dataset: { testid: "history-match" } }));
      last = end;
    }
    text.append(shown.slice(last));
    const where = record.from === "file"
      ? el("span", { className: "ts file", textContent: fileWhere(record), title: record.file })
      : el("span", { className: "ts", textContent: stamp(record.at) });
    const dataset = { testid: "history-line", source: record.source, line: String(record.line) };
    if (record.from === "file") dataset.file = record.file;
    const row = el("div", { className: record.match ? "hline" : "hline context", title: "show the lines around this one", dataset },
      where,
      el("span", { className: `tag tag-${this.app.colorOf(record.part ? `${record.source}@${record.part}` : record.source)}`, textContent: who }),
      text);
    row.record = record;
    return row;
  }
}

/** A datetime-local input's value for epoch seconds `t` (this browser's local time). */
function localInput(t) {
  const d = new Date(t * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
