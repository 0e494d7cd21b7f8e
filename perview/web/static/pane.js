// A log pane: a toolbar and a virtual list that puts only the rows on screen into the DOM, so a
// pane holding 100,000 lines costs no more to draw than one holding 50. It follows new lines
// until the reader scrolls up, and then counts what is waiting below.

import { segments, styleElement } from "./ansi.js";
import { el } from "./dom.js";
import { shownText } from "./downloads.js";
import { LineFilter } from "./filter.js";
import { LINE, MARK, View } from "./store.js";
import { ERROR, WARNING, isHead, levelOf } from "./levels.js";
import { termFor } from "./fields.js";
import { drawJson, fieldsList, levelControls, levelMark } from "./levelui.js";
import { HistoryView } from "./searchview.js";

const OVERSCAN = 20; // rows drawn beyond the visible ones, so fast scrolling shows no blank

function toggle(label, title, testid) {
  return el("button", { type: "button", className: "toggle", textContent: label, title, dataset: { testid }, ariaPressed: "false" });
}

export class Pane {
  constructor(app, sources, settings = {}) {
    this.app = app;
    this.store = app.store;
    this.sources = new Set(sources);
    this.view = new View();
    this.settings = { text: "", regex: false, matchCase: false, invert: false, level: "", ...settings };
    this.options = { time: false, numbers: false, wrap: false, raw: false, ...app.options };
    this.filter = new LineFilter(this.store, this);
    this.liveFrom = 0; // lines from here on are new to the reader; earlier ones are re-filtered
    this.following = true;
    this.unseen = 0;
    this.matches = 0;
    this.dirty = false;
    this.scrolledTo = null; // where scrollToEnd() last scrolled, until its scroll event comes
    this.prefix = null; // rows before each line, in wrap mode
    this.drawn = new Map(); // seq -> its row element, reused while it stays on screen
    this.foldedLines = new Map(); // head seq of a folded entry -> how many lines it hides
    this.current = null; // the line a jump or a click went to: keys act on its entry
    this.drewInFrame = false; // drawn since the last animation frame began: the next waits for one
    this.build();
    this.applyFilter();
  }

  build() {
    const names = [...this.sources];
    this.filterInput = el("input", { type: "search", placeholder: "filter (/)", value: this.settings.text, dataset: { testid: "filter" }, spellcheck: false });
    this.regexButton = toggle(".*", "regular expression", "filter-regex");
    this.caseButton = toggle("Aa", "match case", "filter-case");
    this.invertButton = toggle("!", "invert: hide matching lines", "filter-invert");
    this.count = el("span", { className: "count", dataset: { testid: "match-count" } });
    // Why the filter does not filter (a bad pattern, one too slow), where the reader is looking.
    this.filterNote = el("span", { className: "filter-note", hidden: true, role: "status", dataset: { testid: "filter-note" } });
    const tags = el("span", { className: "tags" }, ...names.map((name) => el("span", { className: `tag tag-${this.app.colorOf(name)}`, textContent: this.app.titleOf(name) })));
    const menu = el("span", { className: "actions" },
      this.optionButton("time", "time", "show arrival times", "opt-time"),
      this.optionButton("numbers", "#", "show line numbers", "opt-numbers"),
      this.optionButton("wrap", "wrap", "wrap long lines", "opt-wrap"),
      this.optionButton("raw", "raw", "show JSON lines as they came, not as fields", "opt-raw"),
      this.action("fields", "list the most common fields and values, to filter by one", "fields-button", () => this.toggleFields()),
      this.action("stop", "stop the source", "stop", () => this.app.act(names, "stop")),
      this.action("restart", "restart the source", "restart", () => this.app.act(names, "restart")),
      this.action("clear", "clear this view (the lines stay on the server)", "clear", () => this.clear()),
      this.action("save", "download the lines shown, as plain text (colour codes removed)", "download-shown", () => this.downloadShown()),
      this.action("save all", "download all the server holds of this view's sources, as plain text (colour codes removed)", "download-full", () => this.app.downloadFull(names)),
      this.action("link", "copy a link that reopens this view", "copy-link", () => this.app.copyLink()),
    );
    if (this.app.panes.length > 0) menu.append(this.action("×", "close this pane", "close-pane", () => this.app.closePane(this)));
    for (const [button, key] of [[this.regexButton, "regex"], [this.caseButton, "matchCase"], [this.invertButton, "invert"]]) {
      button.ariaPressed = String(this.settings[key]);
      button.addEventListener("click", () => {
        this.settings[key] = !this.settings[key];
        button.ariaPressed = String(this.settings[key]);
        this.applyFilter();
      });
    }
    this.filterInput.addEventListener("input", () => {
      this.settings.text = this.filterInput.value;
      this.applyFilter();
    });
    this.filterInput.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        this.filterInput.value = "";
        this.settings.text = "";
        this.applyFilter();
        this.filterInput.blur();
      }
    });
    const toolbar = el("div", { className: "toolbar" }, tags, this.filterInput, this.regexButton, this.caseButton, this.invertButton, levelControls(this), this.filterNote, this.count, menu);
    this.spacer = el("div", { className: "spacer" });
    this.rows = el("div", { className: "rows" });
    this.viewport = el("div", { className: "viewport", tabIndex: 0, dataset: { testid: "log" } }, this.spacer, this.rows);
    this.viewport.classList.toggle("wrap", this.options.wrap);
    this.newLines = el("button", { type: "button", className: "new-lines", hidden: true, dataset: { testid: "new-lines" } });
    this.newLines.addEventListener("click", () => this.jumpToEnd());
    this.viewport.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.rows.addEventListener("click", (e) => this.onRowClick(e));
    this.fieldsBox = el("div", { className: "fields-box", hidden: true });
    this.history = new HistoryView(this);
    this.root = el("section", { className: "pane", dataset: { testid: "pane", sources: names.join(",") } }, toolbar, this.history.bar, this.fieldsBox, el("div", { className: "body" }, this.viewport, this.newLines, this.history.root));
    this.resizeObserver = new ResizeObserver(() => {
      this.prefix = null;
      this.schedule();
    });
    this.resizeObserver.observe(this.viewport);
  }

  optionButton(key, label, title, testid) {
    const button = toggle(label, title, testid);
    button.ariaPressed = String(this.options[key]);
    button.addEventListener("click", () => {
      this.options[key] = !this.options[key];
      button.ariaPressed = String(this.options[key]);
      this.viewport.classList.toggle("wrap", this.options.wrap);
      this.prefix = null;
      this.redraw();
    });
    return button;
  }

  action(label, title, testid, handler) {
    const button = el("button", { type: "button", textContent: label, title, dataset: { testid } });
    button.addEventListener("click", handler);
    return button;
  }

  destroy() {
    this.history.stop();
    this.filter.destroy();
    this.resizeObserver.disconnect();
    this.root.remove();
  }

  // -- data ------------------------------------------------------------------------------------

  applyFilter() {
    this.filter.set(this.settings);
    this.foldedLines.clear(); // counted again as the lines are offered
    this.view.clear();
    this.matches = 0;
    const store = this.store;
    this.liveFrom = store.next;
    this.filter.prepare(this.firstHeld(), store.next);
    for (let seq = this.firstHeld(); seq < store.next; seq++) this.consider(seq);
    this.filter.prepared();
    this.prefix = null;
    this.unseen = 0;
    this.filter.pump();
    this.schedule();
    this.app.saveUrl();
  }

  /** Say why the filter is not filtering (empty: it is), next to the filter box. */
  note(text) {
    this.filterNote.textContent = text;
    this.filterNote.hidden = !text;
    this.filterInput.classList.toggle("invalid", Boolean(text));
    this.filterInput.title = text;
  }

  /** A new line (or mark) is in the store: offered to the filter if it is ours. */
  consider(seq) {
    const store = this.store;
    if (this.sources.has(store.sources[store.source[store.slot(seq)]])) this.filter.offer(seq);
  }

  /** The filter passed a line (or a mark): it goes at the end of the view. */
  show(seq, isLine) {
    if (isLine) this.matches++;
    this.view.push(seq);
    if (this.prefix) this.appendPrefix(seq);
    if (!this.following && seq >= this.liveFrom) this.unseen++;
  }

  firstHeld() {
    return Math.max(this.store.first, this.clearedAt ?? 0);
  }

  /** Lines of an entry held back until a later line of it passed the filter: into their places. */
  showEarlier(seqs) {
    const first = this.firstHeld();
    const held = seqs.filter((seq) => seq >= first);
    this.view.insert(held);
    this.matches += held.length;
    this.prefix = null;
    if (!this.following) this.unseen += held.filter((seq) => seq >= this.liveFrom).length;
  }

  /** `count` more lines of the folded entry `head` came (or were found): its mark says so. */
  fold(head, count) {
    this.foldedLines.set(head, (this.foldedLines.get(head) ?? 0) + count);
    this.drawn.delete(head);
  }

  /** Fold the entry headed by `head`, or unfold it: its continuation lines leave the view or
   *  come back in their places. */
  toggleFold(head) {
    const entries = this.filter.entries;
    const lines = entries.continuations(head).filter((seq) => seq >= this.firstHeld());
    if (entries.folded.has(head)) {
      entries.folded.delete(head);
      this.foldedLines.delete(head);
      const missing = lines.filter((seq) => this.view.at(this.view.indexOf(seq)) !== seq);
      this.view.insert(missing);
      this.matches += missing.length;
    } else {
      if (!lines.length) return;
      entries.folded.add(head);
      this.matches -= this.view.remove(new Set(lines));
      this.foldedLines.set(head, lines.length);
    }
    this.prefix = null;
    this.drawn.delete(head);
    this.schedule();
  }

  /** Fold or unfold the entry of the current line (or of the first line on screen). */
  toggleCurrentFold() {
    const seq = this.current ?? this.view.at(this.lineAtRow(Math.floor(this.viewport.scrollTop / (this.rowHeight || 18))));
    if (seq === undefined || !this.store.has(seq)) return;
    const head = this.filter.entries.headOf(seq);
    if (head >= 0) this.toggleFold(head);
  }

  onRowClick(e) {
    const mark = e.target.closest?.(".lv");
    const row = e.target.closest?.(".line");
    if (!mark || !row || !row.dataset.seq) return;
    const seq = Number(row.dataset.seq);
    if (!this.store.has(seq)) return;
    this.setCurrent(seq);
    const head = this.filter.entries.headOf(seq);
    if (head >= 0) this.toggleFold(head);
  }

  setCurrent(seq) {
    if (this.current !== null) this.drawn.delete(this.current);
    this.current = seq;
    this.drawn.delete(seq);
  }

  /** Go to the next (direction 1) or previous (-1) entry at `level` ("warning": warnings and
   *  worse; "error") from the current line, or from the rows on screen; false if there is none. */
  jump(direction, level) {
    const minimum = level === "error" ? ERROR : WARNING;
    const view = this.view;
    const store = this.store;
    if (!view.length) return false;
    let i;
    if (this.current !== null && view.at(view.indexOf(this.current)) === this.current) {
      i = view.indexOf(this.current);
    } else {
      this.metrics();
      const top = this.lineAtRow(Math.floor(this.viewport.scrollTop / this.rowHeight));
      const bottom = this.lineAtRow(Math.floor((this.viewport.scrollTop + this.viewport.clientHeight) / this.rowHeight));
      i = direction > 0 ? top - 1 : Math.min(bottom + 1, view.length);
    }
    for (i += direction; i >= 0 && i < view.length; i += direction) {
      const seq = view.at(i);
      const mark = store.level[store.slot(seq)];
      if (store.kind[store.slot(seq)] === LINE && isHead(mark) && levelOf(mark) >= minimum) break;
    }
    if (i < 0 || i >= view.length) {
      this.app.flash?.(`no ${direction > 0 ? "later" : "earlier"} ${level === "error" ? "error" : "warning or error"}`);
      return false;
    }
    this.setCurrent(view.at(i));
    this.following = false;
    this.metrics();
    if (this.options.wrap && !this.prefix) this.buildPrefix();
    const row = this.options.wrap ? this.prefix[i] : i;
    this.viewport.scrollTop = Math.max(0, row * this.rowHeight - this.viewport.clientHeight / 3);
    this.schedule();
    return true;
  }

  toggleFields() {
    if (!this.fieldsBox.hidden) {
      this.fieldsBox.hidden = true;
      return;
    }
    const texts = [];
    for (let i = Math.max(0, this.view.length - 2000); i < this.view.length; i++) {
      const seq = this.view.at(i);
      if (this.store.kind[this.store.slot(seq)] === LINE) texts.push(this.store.plainText(seq));
    }
    this.fieldsBox.replaceChildren(fieldsList(texts, (key, value) => {
      const term = termFor(key, value);
      this.settings.text = this.settings.text ? `${this.settings.text} ${term}` : term;
      this.filterInput.value = this.settings.text;
      this.fieldsBox.hidden = true;
      this.applyFilter();
    }));
    this.fieldsBox.hidden = false;
  }

  /** The filter's worker has answered: what it passed is in the view. */
  settled() {
    this.added();
  }

  added() {
    const dropped = this.view.trim(this.store.first);
    if (dropped) this.prefix = null;
    this.filter.pump();
    this.schedule();
  }

  clear() {
    this.clearedAt = this.store.next;
    this.view.clear();
    this.matches = 0;
    this.prefix = null;
    this.schedule();
  }

  // -- drawing ---------------------------------------------------------------------------------

  schedule() {
    if (this.dirty) return;
    this.dirty = true;
    // The first line after a quiet spell is drawn at once (as soon as this event is handled);
    // while lines keep coming they are gathered, one draw per animation frame: a second draw
    // before the next frame builds rows that frame's draw replaces before they are ever shown
    // (during a burst whose handling outlasts a frame, most of them). Following scrolls in
    // the animation frame, where the page is laid out anyway: a scroll needs layout, and
    // scrolling in render() cost one of its own (2 layouts a line at 20 lines/s, now 1).
    if (!this.drewInFrame) {
      queueMicrotask(() => this.draw());
      requestAnimationFrame(() => this.scrollToEnd());
    } else {
      requestAnimationFrame(() => {
        this.draw();
        this.scrollToEnd();
      });
    }
  }

  draw() {
    this.dirty = false;
    if (!this.drewInFrame) {
      this.drewInFrame = true;
      requestAnimationFrame(() => (this.drewInFrame = false)); // asked now: runs in the next frame
    }
    this.render();
  }

  metrics() {
    if (!this.rowHeight) {
      const probe = el("div", { className: "line", textContent: "0".repeat(100) });
      probe.style.position = "absolute";
      probe.style.visibility = "hidden";
      this.rows.append(probe);
      this.rowHeight = probe.getBoundingClientRect().height || 18;
      this.charWidth = probe.getBoundingClientRect().width / 100 || 8;
      probe.remove();
    }
    const width = this.viewport.clientWidth - 16;
    this.columns = Math.max(20, Math.floor(width / this.charWidth));
  }

  rowsOf(seq) {
    const extra = 2 + (this.options.time ? 13 : 0) + (this.options.numbers ? 9 : 0) + (this.sources.size > 1 ? 12 : 0);
    return Math.max(1, Math.ceil((this.store.plainText(seq).length + extra) / this.columns));
  }

  appendPrefix(seq) {
    const n = this.view.length;
    if (this.prefix.length <= n) {
      const bigger = new Float64Array(this.prefix.length * 2 + 2);
      bigger.set(this.prefix);
      this.prefix = bigger;
    }
    this.prefix[n] = this.prefix[n - 1] + this.rowsOf(seq);
  }

  buildPrefix() {
    const n = this.view.length;
    this.prefix = new Float64Array(n + 1024);
    for (let i = 0; i < n; i++) this.prefix[i + 1] = this.prefix[i] + this.rowsOf(this.view.at(i));
  }

  lineAtRow(row) {
    if (!this.options.wrap) return Math.min(row, this.view.length);
    let lo = 0;
    let hi = this.view.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.prefix[mid] <= row) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  render() {
    this.metrics();
    if (this.options.wrap && !this.prefix) this.buildPrefix();
    const total = this.options.wrap ? this.prefix[this.view.length] : this.view.length;
    // Layout is only read before anything changes: while following, the rows drawn are those at
    // the bottom as it will be once scrollToEnd() has run (the spacer is the content's height).
    const height = this.viewport.clientHeight;
    const scrolled = this.viewport.scrollTop;
    this.spacer.style.height = `${total * this.rowHeight}px`;
    const bottom = Math.max(0, total * this.rowHeight - height);
    const top = Math.floor((this.following ? bottom : scrolled) / this.rowHeight);
    const visible = Math.ceil(height / this.rowHeight);
    const first = this.lineAtRow(Math.max(0, top - OVERSCAN));
    const firstRow = this.options.wrap ? this.prefix[first] : first;
    const lastRow = top + visible + OVERSCAN;
    // Rows already on screen are kept, not rebuilt: while following, a draw only removes the
    // rows that scrolled off the top and appends the new ones.
    const drawn = new Map();
    for (let i = first, row = firstRow; i < this.view.length && row < lastRow; i++) {
      const seq = this.view.at(i);
      drawn.set(seq, this.drawn.get(seq) ?? this.lineElement(seq));
      row += this.options.wrap ? this.prefix[i + 1] - this.prefix[i] : 1;
    }
    this.rows.style.transform = `translateY(${firstRow * this.rowHeight}px)`;
    const rows = [...drawn.values()];
    while (this.rows.firstChild && this.rows.firstChild !== rows[0] && !this.keeps(drawn)) {
      this.rows.firstChild.remove();
    }
    const kept = this.rows.children;
    const inOrder = kept.length <= rows.length && [...kept].every((node, i) => node === rows[i]);
    if (inOrder) this.rows.append(...rows.slice(kept.length));
    else this.rows.replaceChildren(...rows);
    this.drawn = drawn;
    this.updateStatus();
  }

  /** Scroll to the last row, if following. */
  scrollToEnd() {
    if (!this.following) return;
    const bottom = this.viewport.scrollHeight - this.viewport.clientHeight;
    if (Math.abs(this.viewport.scrollTop - bottom) > 1) {
      this.scrolledTo = bottom; // its scroll event is ours, not the reader's
      this.viewport.scrollTop = bottom;
    }
  }

  /** Is the first row on screen one that stays? */
  keeps(drawn) {
    const seq = Number(this.rows.firstChild.dataset.seq);
    return drawn.get(seq) === this.rows.firstChild;
  }

  /** Draw every row anew (what a row shows has changed: options, highlights). */
  redraw() {
    this.drawn.clear();
    this.schedule();
  }

  lineElement(seq) {
    const store = this.store;
    const slot = store.slot(seq);
    const source = store.sources[store.source[slot]];
    const line = el("div", { className: "line", dataset: { testid: store.kind[slot] === MARK ? "marker" : "line", id: String(store.idOf(seq)), source, seq: String(seq) } });
    if (this.options.time) {
      const t = new Date(store.timeOf(seq));
      line.append(el("span", { className: "ts", textContent: t.toTimeString().slice(0, 8) + "." + String(t.getMilliseconds()).padStart(3, "0") }));
    }
    if (this.options.numbers) line.append(el("span", { className: "num", textContent: String(store.idOf(seq) || "") }));
    const part = store.parts[store.part[slot]]; // a host of a merged source, a file of a glob
    if (this.sources.size > 1 || part) {
      const label = this.sources.size === 1 ? part : part ? this.app.sources.partTagOf(source, part) : this.app.titleOf(source);
      line.append(el("span", { className: `tag tag-${this.app.colorOf(part ? `${source}@${part}` : source)}`, textContent: label }));
    }
    if (store.kind[slot] === MARK) {
      line.classList.add("mark");
      line.append(el("span", { className: "lv", textContent: " " }));
      // A notice may quote what a command or a far host said: its controls are marks too.
      const note = el("span");
      this.app.highlighter.render(note, segments(store.text(seq)), styleElement);
      line.append(note);
      return line;
    }
    const mark = store.level[slot];
    line.append(levelMark(mark, this.foldedLines.get(seq)));
    if (seq === this.current) line.classList.add("current");
    if (!isHead(mark)) line.classList.add("cont");
    const body = el("span", { className: "text" });
    if (this.options.raw || !drawJson(body, store.text(seq), mark, this.app.highlighter)) {
      this.app.highlighter.render(body, segments(store.text(seq)), styleElement);
    }
    line.append(body);
    return line;
  }

  updateStatus() {
    const filtered = this.filter.filtering ? `${this.matches} matching` : `${this.matches} lines`;
    this.count.textContent = filtered;
    this.newLines.hidden = this.following || this.unseen === 0;
    if (!this.newLines.hidden) this.newLines.textContent = `${this.unseen.toLocaleString()} new lines ↓`;
  }

  onScroll() {
    // Scroll events come a frame later, one for several scrolls: only one that ends where
    // scrollToEnd() put it is ours (the rows are drawn already); the reader's, even right
    // after ours, pauses following.
    const ours = this.scrolledTo !== null && Math.abs(this.viewport.scrollTop - this.scrolledTo) <= 1;
    this.scrolledTo = null;
    if (ours) return;
    const atBottom = this.viewport.scrollTop + this.viewport.clientHeight >= this.viewport.scrollHeight - this.rowHeight / 2;
    if (atBottom && !this.following) this.jumpToEnd();
    else if (!atBottom) this.following = false;
    this.schedule();
  }

  jumpToEnd() {
    this.following = true;
    this.unseen = 0;
    this.schedule();
  }

  downloadShown() {
    this.app.saveFile(`${[...this.sources].join("+")}.log`, shownText(this.store, this.view));
  }
}
