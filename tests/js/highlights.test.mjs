// Highlights without a browser: rules in links, how matches combine, and regex rules run in the
// worker under the filter's budget. The worker here is highlight-worker.js itself, run in a VM
// context with a stand-in `self` (or one that never answers, for a runaway pattern).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";
import { FilterWorker, BUDGET_MS } from "../../perview/web/static/filter.js";
import { Highlighter, TOO_SLOW, formatRules, parseRules, resolveRanges, ruleError } from "../../perview/web/static/highlights.js";

const SCRIPT = readFileSync(new URL("../../perview/web/static/highlight-worker.js", import.meta.url), "utf8");

/** highlight-worker.js as a Worker: its messages go both ways a task later, as a Worker's do. */
class ScriptWorker {
  constructor({ hang = false } = {}) {
    this.hang = hang;
    this.terminated = false;
    this.self = { postMessage: (data) => setTimeout(() => this.terminated || this.onmessage({ data })) };
    vm.runInNewContext(SCRIPT, { self: this.self });
  }

  postMessage(data) {
    if (!this.hang) setTimeout(() => this.terminated || this.self.onmessage({ data }));
  }

  terminate() {
    this.terminated = true;
  }
}

function setUp({ hang = false } = {}) {
  const seen = { changed: 0, notes: [], workers: [] };
  const worker = new FilterWorker(() => seen.workers[seen.workers.push(new ScriptWorker({ hang })) - 1]);
  const highlighter = new Highlighter({ worker, changed: () => seen.changed++, note: (text) => seen.notes.push(text) });
  return { highlighter, seen };
}

const until = async (condition, what) => {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(condition(), what);
};

const words = (text, ranges) => ranges.map(({ start, end, rule }) => [text.slice(start, end), rule]);

test("rules in a link read back as written", () => {
  const rules = [
    { color: "red", pattern: "a: b", regex: false },
    { color: "blue", pattern: "(x|y)+:", regex: true },
  ];
  assert.deepEqual(parseRules(formatRules(rules)), rules);
});

test("a pattern that does not compile is refused with the reason; literal text never is", () => {
  assert.match(ruleError({ pattern: "(", regex: true }), /Invalid regular expression/);
  assert.equal(ruleError({ pattern: "(", regex: false }), "");
  assert.equal(ruleError({ pattern: "^a+$", regex: true }), "");
});

test("overlapping matches: the earliest wins, then the first rule; empty ones are dropped", () => {
  const ranges = [
    { start: 4, end: 8, rule: 1 },
    { start: 2, end: 5, rule: 2 },
    { start: 2, end: 6, rule: 0 },
    { start: 9, end: 9, rule: 0 },
    { start: 8, end: 10, rule: 1 },
  ];
  assert.deepEqual(resolveRanges(ranges), [
    { start: 2, end: 6, rule: 0 },
    { start: 8, end: 10, rule: 1 },
  ]);
});

test("literal rules match at once, ignoring case, with the text's own regex characters as text", () => {
  const { highlighter, seen } = setUp();
  highlighter.set([
    { color: "red", pattern: "a.b", regex: false },
    { color: "blue", pattern: "DISK", regex: false },
  ]);
  const text = "disk a.b axb Disk";
  assert.deepEqual(words(text, highlighter.matches(text)), [["disk", 1], ["a.b", 0], ["Disk", 1]]);
  assert.equal(seen.workers.length, 0); // nothing to run in a worker
});

test("a regex rule's matches come from the worker, and the rows are drawn again when they do", async () => {
  const { highlighter, seen } = setUp();
  highlighter.set([
    { color: "red", pattern: "full", regex: false },
    { color: "green", pattern: "(\\w)\\1+", regex: true },
  ]);
  const text = "disk full: 1000 written";
  assert.deepEqual(words(text, highlighter.matches(text)), [["full", 0]]); // not known yet
  await until(() => seen.changed > 0, "the worker answered");
  assert.deepEqual(words(text, highlighter.matches(text)), [["full", 0], ["000", 1], ["tt", 1]]);
  const changed = seen.changed;
  highlighter.matches(text);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(seen.changed, changed); // known now: nothing asked again
});

test("a regex past its budget has its worker ended, is said to be off, and literal rules go on", async () => {
  const { highlighter, seen } = setUp({ hang: true });
  highlighter.set([
    { color: "red", pattern: "^(a+)+$", regex: true },
    { color: "blue", pattern: "aaa", regex: false },
  ]);
  const started = Date.now();
  highlighter.matches("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
  await until(() => seen.notes.includes(TOO_SLOW), "it said the pattern was too slow");
  assert.ok(Date.now() - started >= BUDGET_MS - 5);
  assert.ok(seen.workers[0].terminated);
  assert.deepEqual(words("xaaax", highlighter.matches("xaaax")), [["aaa", 1]]);
  highlighter.set([{ color: "red", pattern: "a", regex: true }]);
  assert.equal(seen.notes.at(-1), ""); // new rules: on again
});
