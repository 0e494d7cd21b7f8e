// filter.js without a browser: what a pane's filter settings ask for, and the queue of lines
// waiting for the regex worker (here a stand-in Worker; the real one, ending a real runaway
// pattern, is tested in the browser: tests/browser/test_slow_filter_page.py).

import { test } from "node:test";
import assert from "node:assert/strict";

import { BUDGET_MS, FilterWorker, LineFilter, TOO_SLOW, makeFilter } from "../../perview/web/static/filter.js";
import { LINE, LineStore, MARK } from "../../perview/web/static/store.js";
import { plain } from "../../perview/web/static/ansi.js";

test("no text filters nothing", () => {
  assert.equal(makeFilter({ text: "", regex: true, matchCase: false, invert: false }), null);
});

test("a substring filter is a test the page runs itself, ignoring case unless asked", () => {
  const { test: keep } = makeFilter({ text: "Error", regex: false, matchCase: false, invert: false });
  assert.ok(keep("an error here") && !keep("all fine"));
  const { test: exact } = makeFilter({ text: "Error", regex: false, matchCase: true, invert: false });
  assert.ok(exact("an Error") && !exact("an error"));
  const { test: inverted } = makeFilter({ text: "error", regex: false, matchCase: false, invert: true });
  assert.ok(!inverted("an error") && inverted("all fine"));
});

test("a regular expression is never a function of the page: it is a pattern for the worker", () => {
  const filter = makeFilter({ text: "^(a+)+$", regex: true, matchCase: false, invert: true });
  assert.deepEqual(filter, { regex: { source: "^(a+)+$", flags: "i" }, invert: true });
  assert.equal(makeFilter({ text: "a/b", regex: true, matchCase: true, invert: false }).regex.flags, "");
});

test("a bad pattern is a SyntaxError naming what is wrong", () => {
  assert.throws(() => makeFilter({ text: "(", regex: true, matchCase: false, invert: false }), {
    name: "SyntaxError",
    message: /Invalid regular expression/,
  });
});

/** A stand-in for the filter's Worker: loads at once, answers each request (in a later task) by
 *  running the pattern, or never when `hang` is set. */
class StandInWorker {
  constructor({ hang = false } = {}) {
    this.hang = hang;
    this.posted = [];
    this.terminated = false;
    setTimeout(() => this.onmessage({ data: { ready: true } }));
  }

  postMessage(request) {
    this.posted.push(request);
    if (this.hang) return;
    const re = new RegExp(request.source, request.flags);
    const keep = Uint8Array.from(request.texts, (t) => (re.test(t) !== request.invert ? 1 : 0));
    setTimeout(() => this.terminated || this.onmessage({ data: { id: request.id, keep } }));
  }

  terminate() {
    this.terminated = true;
  }
}

/** A pane as LineFilter sees it: what it was shown and told. */
function pane(store) {
  return {
    shown: [],
    notes: [],
    show(seq) {
      this.shown.push(store.text(seq));
    },
    firstHeld: () => store.first,
    settled() {},
    note(text) {
      this.notes.push(text);
    },
  };
}

function setUp({ hang = false, settings }) {
  const store = new LineStore(100);
  const view = pane(store);
  const workers = [];
  const spawn = () => workers[workers.push(new StandInWorker({ hang })) - 1];
  const filter = new LineFilter(store, view, new FilterWorker(spawn));
  filter.set({ regex: false, matchCase: false, invert: false, ...settings });
  const add = (text, kind = LINE) => {
    filter.offer(store.push(text, "s", "", 1, 0, kind));
    filter.pump();
  };
  return { view, workers, filter, add };
}

const until = async (condition, what) => {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(condition(), what);
};

test("a substring filter shows the lines that pass at once, in order", () => {
  const { view, workers, add } = setUp({ settings: { text: "err" } });
  for (const text of ["ERR one", "fine", "err two"]) add(text);
  assert.deepEqual(view.shown, ["ERR one", "err two"]);
  assert.equal(workers.length, 0); // no worker for a substring
});

test("a pattern's lines are shown once the worker answers, marks in their place", async () => {
  const { view, add, filter } = setUp({ settings: { text: "^e", regex: true } });
  add("e1");
  add("x1");
  add("started", MARK);
  add("e2");
  assert.deepEqual(view.shown, []); // nothing was tested on this thread
  await until(() => view.shown.length === 3, "the worker's answer was shown");
  assert.deepEqual(view.shown, ["e1", "started", "e2"]);
  assert.ok(filter.filtering);
});

test("a worker past its budget is ended, said so, and every waiting line is shown", async () => {
  const { view, workers, add, filter } = setUp({ hang: true, settings: { text: "^(a+)+$", regex: true } });
  add("aaaab");
  add("ordinary");
  const started = Date.now();
  await until(() => view.notes.at(-1) === TOO_SLOW, "the filter said it stopped");
  assert.ok(Date.now() - started >= BUDGET_MS - 5);
  assert.ok(workers[0].terminated);
  assert.equal(filter.filtering, false);
  assert.deepEqual(view.shown, ["aaaab", "ordinary"]);
  add("later");
  assert.deepEqual(view.shown, ["aaaab", "ordinary", "later"]); // unfiltered from now on
});

test("a new filter ends a worker still busy with the old one and drops its answer", async () => {
  const { view, workers, add, filter } = setUp({ hang: true, settings: { text: "x", regex: true } });
  add("x1");
  await until(() => workers[0].posted.length === 1, "the batch was sent");
  filter.set({ text: "1", regex: false, matchCase: false, invert: false });
  assert.ok(workers[0].terminated);
  assert.deepEqual(view.notes.at(-1), "");
});

test("words looked for in a line's bytes pass the same lines as the text test", () => {
  const texts = ["an ERROR here", "Error", "caf\u00e9 CAF\u00c9", "\u65e5\u672c\u8a9e log", "err\x1b[1mor", "\u0130stanbul", "\u212a kelvin", "plain", "\u00e9t\u00e9", ""];
  const needles = ["error", "ERROR", "caf\u00e9", "\u65e5\u672c", "istanbul", "k kelvin", "i", "\u00c9", "x"];
  for (const text of needles) {
    for (const matchCase of [false, true]) {
      for (const invert of [false, true]) {
        const settings = { text, regex: false, matchCase, invert };
        const { view, add } = setUp({ settings });
        for (const line of texts) add(line);
        const expected = texts.filter((line) => makeFilter(settings).test(plain(line), 0));
        assert.deepEqual(view.shown, expected, JSON.stringify(settings));
        // The same lines offered again all at once, as a pane does when its filter changes.
        const store = new LineStore(100);
        const again = pane(store);
        const filter = new LineFilter(store, again, new FilterWorker(() => new StandInWorker({})));
        filter.set(settings);
        for (const line of texts) store.push(line, "s", "", 1, 0, LINE);
        filter.prepare(0, store.next);
        for (let seq = 0; seq < store.next; seq++) filter.offer(seq);
        filter.prepared();
        assert.deepEqual(again.shown, expected, `all at once: ${JSON.stringify(settings)}`);
      }
    }
  }
  assert.ok(makeFilter({ text: "error" }).bytes && makeFilter({ text: "\u65e5\u672c" }).bytes);
  assert.equal(makeFilter({ text: "caf\u00e9" }).bytes, undefined); // a cased letter beyond ASCII
});
