// Entries and levels in a pane's filter, without a browser: a match anywhere in a traceback shows
// all of it, a minimum level hides whole entries, a folded entry shows its head alone.
import { test } from "node:test";
import assert from "node:assert/strict";

import { LineFilter } from "../../perview/web/static/filter.js";
import { ENTRY_HELD } from "../../perview/web/static/entries.js";
import { markAt } from "../../perview/web/static/levels.js";
import { LINE, LineStore, MARK, View } from "../../perview/web/static/store.js";

/** A pane as the filter and its entries see it, with a real View. */
function pane(store) {
  return {
    view: new View(),
    folds: new Map(),
    shown() {
      return Array.from({ length: this.view.length }, (_, i) => store.text(this.view.at(i)));
    },
    show(seq) {
      this.view.push(seq);
    },
    showEarlier(seqs) {
      this.view.insert(seqs);
    },
    fold(head, count) {
      this.folds.set(head, (this.folds.get(head) ?? 0) + count);
    },
    firstHeld: () => store.first,
    settled() {},
    note() {},
  };
}

const PYTHON = [
  ["INFO starting", "I"],
  ["ERROR query failed", "E"],
  ["Traceback (most recent call last):", "e"],
  ['  File "db.py", line 42', "e"],
  ["psycopg2.errors.UndefinedTable: users", "e"],
  ["INFO retrying", "I"],
  ["WARNING slow", "W"],
];

function setUp(settings, lines = PYTHON, { source = () => "app", capacity = 1000 } = {}) {
  const store = new LineStore(capacity);
  const view = pane(store);
  const filter = new LineFilter(store, view, { start() {}, stop() {}, cancel() {} });
  filter.set({ text: "", regex: false, matchCase: false, invert: false, ...settings });
  const letters = lines.map(([, l]) => l).join("");
  lines.forEach(([text], i) => filter.offer(store.push(text, source(i), "", i + 1, 0, LINE, markAt(letters, i))));
  return { store, view, filter };
}

test("a filter that matches a line inside a traceback shows the whole entry, head first", () => {
  const { view } = setUp({ text: "UndefinedTable" });
  assert.deepEqual(view.shown(), PYTHON.slice(1, 5).map(([t]) => t));
});

test("lines of an entry after the match are shown as they come", () => {
  const { view } = setUp({ text: "query failed" });
  assert.deepEqual(view.shown(), PYTHON.slice(1, 5).map(([t]) => t));
});

test("in a merged pane, the held lines of an entry go back among the other source's lines", () => {
  const lines = [["ERROR a", "E"], ["b xx 1", "I"], ["  at a.js:1", "e"], ["b xx 2", "I"], ["  cause xx", "e"]];
  // Lines 1 and 3 are another source's; the filter matches them and the traceback's last line.
  const { view } = setUp({ text: "xx" }, lines, { source: (i) => (i % 2 ? "b" : "a") });
  assert.deepEqual(view.shown(), ["ERROR a", "b xx 1", "  at a.js:1", "b xx 2", "  cause xx"]);
});

test("a minimum level hides entries below it, continuations included", () => {
  const { view } = setUp({ level: "error" });
  assert.deepEqual(view.shown(), PYTHON.slice(1, 5).map(([t]) => t));
  const warnings = setUp({ level: "warning" }).view.shown();
  assert.deepEqual(warnings, [...PYTHON.slice(1, 5), PYTHON[6]].map(([t]) => t));
});

test("a field term on the level combines with text, entries whole", () => {
  const { view } = setUp({ text: "level:error File" });
  assert.deepEqual(view.shown(), PYTHON.slice(1, 5).map(([t]) => t));
  assert.deepEqual(setUp({ text: "level:warning" }).view.shown(), ["WARNING slow"]);
});

test("a folded entry shows its head alone, and counts the lines that come after folding", () => {
  const store = new LineStore(100);
  const view = pane(store);
  const filter = new LineFilter(store, view, { start() {}, stop() {}, cancel() {} });
  filter.set({ text: "" });
  const add = (text, letter) => filter.offer(store.push(text, "app", "", 1, 0, LINE, markAt(letter, 0)));
  add("ERROR x", "E");
  filter.entries.folded.add(0);
  add("  at one", "e");
  add("  at two", "e");
  add("INFO next", "I");
  assert.deepEqual(view.shown(), ["ERROR x", "INFO next"]);
  assert.equal(view.folds.get(0), 2);
  assert.deepEqual(filter.entries.continuations(0), [1, 2]);
  assert.equal(filter.entries.headOf(2), 0);
});

test("a mark from Perview ends an entry: the next line stands alone", () => {
  const store = new LineStore(100);
  const view = pane(store);
  const filter = new LineFilter(store, view, { start() {}, stop() {}, cancel() {} });
  filter.set({ text: "again" });
  filter.offer(store.push("ERROR x", "app", "", 1, 0, LINE, markAt("E", 0)));
  filter.offer(store.push("restarted", "app", "", 0, 0, MARK));
  filter.offer(store.push("  again", "app", "", 2, 0, LINE, markAt("e", 0)));
  assert.deepEqual(view.shown(), ["restarted", "  again"]);
});

test("an entry that never matches holds a bounded number of lines back", () => {
  const lines = [["ERROR head", "E"], ...Array.from({ length: ENTRY_HELD + 50 }, (_, i) => [`  frame ${i}`, "e"]), ["  the match", "e"]];
  const { view } = setUp({ text: "the match" }, lines, { capacity: ENTRY_HELD * 2 });
  const shown = view.shown();
  assert.equal(shown.length, ENTRY_HELD + 1);
  assert.equal(shown[0], "ERROR head");
  assert.equal(shown.at(-1), "  the match");
});
