// levels.js without a browser: the event stream's level letters, names and the sidebar's figures.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ERROR, FATAL, HEAD, INFO, NONE, UNCLASSIFIED, WARNING, isHead, levelNamed, levelOf, markAt, minimumOf, problemCounts } from "../../perview/web/static/levels.js";

test("an upper-case letter is a head of its level, a lower-case one a continuation", () => {
  const levels = "IEeeWFn";
  const marks = [...levels].map((_, i) => markAt(levels, i));
  assert.deepEqual(marks.map(levelOf), [INFO, ERROR, ERROR, ERROR, WARNING, FATAL, NONE]);
  assert.deepEqual(marks.map(isHead), [true, true, false, false, true, true, false]);
});

test("a line without a letter (no levels, or too few) is its own entry, of no level", () => {
  assert.equal(markAt(undefined, 0), UNCLASSIFIED);
  assert.equal(markAt("E", 3), UNCLASSIFIED);
  assert.equal(markAt("?", 0), UNCLASSIFIED);
  assert.equal(markAt("\u00e9", 0), UNCLASSIFIED);
  assert.equal(UNCLASSIFIED, NONE | HEAD);
});

test("level names and their usual short forms are known; anything else is not", () => {
  assert.equal(levelNamed("Error"), ERROR);
  assert.equal(levelNamed("warn"), WARNING);
  assert.equal(levelNamed("crit"), FATAL);
  assert.equal(levelNamed("50"), -1);
});

test("a pane's minimum keeps everything unless it says warning or error", () => {
  assert.equal(minimumOf(""), NONE);
  assert.equal(minimumOf("warning"), WARNING);
  assert.equal(minimumOf("error"), ERROR);
  assert.equal(minimumOf("nonsense"), NONE);
});

test("the sidebar counts fatal lines as errors, and says nothing without counts", () => {
  const levels = {
    fatal: { minute: 1, hour: 2, total: 3 },
    error: { minute: 10, hour: 20, total: 30 },
    warning: { minute: 0, hour: 5, total: 7 },
    info: { minute: 100, hour: 100, total: 100 },
  };
  assert.deepEqual(problemCounts(levels), {
    error: { minute: 11, hour: 22, total: 33 },
    warning: { minute: 0, hour: 5, total: 7 },
  });
  assert.equal(problemCounts(undefined), null);
});
