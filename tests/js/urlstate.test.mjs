// What the page's address says, read and written back, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_CAPACITY, readState, writeState } from "../../perview/web/static/urlstate.js";

test("an empty address asks for the first source, merged, unfiltered, with this browser's highlights", () => {
  const state = readState("");
  assert.deepEqual(state.sources, []);
  assert.equal(state.split, false);
  assert.deepEqual(state.filter, { text: "", regex: false, matchCase: false, invert: false, level: "" });
  assert.equal(state.metrics, null);
  assert.equal(state.highlights, null);
  assert.deepEqual(state.options, { time: false, numbers: false, wrap: false });
  assert.equal(state.capacity, 100000);
});

test("a written view reads back the same", () => {
  const view = {
    sources: ["app", "sys log"],
    split: true,
    filter: { text: "a&b=c", regex: true, matchCase: true, invert: true, level: "warning" },
    metrics: "1h",
    highlights: [
      { color: "red", pattern: "disk: full", regex: false },
      { color: "cyan", pattern: "^(\\w+):", regex: true },
    ],
  };
  const state = readState(`?${writeState(view)}`);
  for (const key of Object.keys(view)) assert.deepEqual(state[key], view[key], key);
});

test("an unfiltered view writes no filter settings, and the logs write no metrics range", () => {
  const query = writeState({ sources: ["a"], filter: { text: "", regex: true, matchCase: true, invert: true } });
  assert.equal(query, "source=a");
});

test("a link's row options and capacity are read; the capacity is bounded", () => {
  const state = readState("?time=1&wrap=1&max=99999999");
  assert.deepEqual(state.options, { time: true, numbers: false, wrap: true });
  assert.equal(state.capacity, MAX_CAPACITY);
  assert.equal(readState("?max=nonsense").capacity, 100000);
});

test("highlights of an older link (colour:text) are literal; an unknown colour is yellow", () => {
  const state = readState(`?hl=${encodeURIComponent("red:a:b\npurple:x\ngreen.*:^e+")}`);
  assert.deepEqual(state.highlights, [
    { color: "red", pattern: "a:b", regex: false },
    { color: "yellow", pattern: "x", regex: false },
    { color: "green", pattern: "^e+", regex: true },
  ]);
});
