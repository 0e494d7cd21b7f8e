// The tab's line store and the panes' views, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LineStore, View, LINE, MARK } from "../../perview/web/static/store.js";

test("the store forgets the oldest lines past its capacity and keeps their columns", () => {
  const store = new LineStore(3);
  for (let i = 1; i <= 5; i++) store.push(`line ${i}`, i % 2 ? "a" : "b", i === 5 ? "web1" : "", i, 1000 * i, i === 4 ? MARK : LINE);
  assert.equal(store.first, 2);
  assert.equal(store.next, 5);
  assert.ok(!store.has(1) && store.has(2) && store.has(4) && !store.has(5));
  const slot = store.slot(4);
  assert.equal(store.text[slot], "line 5");
  assert.equal(store.sources[store.source[slot]], "a");
  assert.equal(store.parts[store.part[slot]], "web1");
  assert.equal(store.time[slot], 5000);
  assert.equal(store.kind[store.slot(3)], MARK);
});

test("plain text is what filters see: no ANSI escapes", () => {
  const store = new LineStore(2);
  const seq = store.push("\x1b[31merror\x1b[0m: disk full", "a", "", 1, 0, LINE);
  assert.equal(store.plainText(seq), "error: disk full");
});

test("a view grows, trims what the store forgot, and reuses its space", () => {
  const view = new View();
  for (let seq = 0; seq < 5000; seq++) view.push(seq);
  assert.equal(view.length, 5000);
  assert.equal(view.trim(4000), 4000);
  assert.equal(view.at(0), 4000);
  for (let seq = 5000; seq < 9000; seq++) view.push(seq);
  assert.equal(view.length, 5000);
  assert.equal(view.at(4999), 8999);
  view.clear();
  assert.equal(view.length, 0);
});

test("each line keeps its level mark; a line pushed without one is an unclassified head", async () => {
  const { ERROR, HEAD, UNCLASSIFIED } = await import("../../perview/web/static/levels.js");
  const store = new LineStore(4);
  const a = store.push("Traceback", "a", "", 1, 0, LINE, ERROR);
  const b = store.push("plain", "a", "", 2, 0, LINE);
  assert.equal(store.level[store.slot(a)], ERROR);
  assert.equal(store.level[store.slot(b)], UNCLASSIFIED);
  assert.equal(UNCLASSIFIED & HEAD, HEAD);
});

test("a view takes seqs into their places and gives them up again", () => {
  const view = new View();
  for (const seq of [1, 2, 5, 9]) view.push(seq);
  view.insert([3, 4, 7]);
  assert.deepEqual(Array.from({ length: view.length }, (_, i) => view.at(i)), [1, 2, 3, 4, 5, 7, 9]);
  view.insert([10, 11]); // after the last: appended
  assert.equal(view.indexOf(7), 5);
  assert.equal(view.indexOf(8), 6); // where it would go
  assert.equal(view.remove(new Set([2, 3, 4, 11])), 4);
  assert.deepEqual(Array.from({ length: view.length }, (_, i) => view.at(i)), [1, 5, 7, 9, 10]);
  view.push(12);
  assert.equal(view.at(view.length - 1), 12);
});
