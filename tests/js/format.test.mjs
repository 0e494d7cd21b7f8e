// How the charts write numbers, units and levels, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatValue, levelOf, niceTicks } from "../../perview/web/static/format.js";

test("values carry their unit, bytes with decimal prefixes", () => {
  assert.equal(formatValue(42, "%"), "42%");
  assert.equal(formatValue(1234567, "B/s"), "1.23 MB/s");
  assert.equal(formatValue(999, "B"), "999 B");
  assert.equal(formatValue(25000), "25k");
  assert.equal(formatValue(3.14159, "req"), "3.14 req");
  assert.equal(formatValue(null), "–");
  assert.equal(formatValue(Number.NaN, "%"), "–");
});

test("levels follow the thresholds the server declares", () => {
  assert.equal(levelOf(5, 10, 20), "ok");
  assert.equal(levelOf(10, 10, 20), "warn");
  assert.equal(levelOf(25, 10, 20), "crit");
  assert.equal(levelOf(25, null, null), "ok");
  assert.equal(levelOf(null, 1, 2), "ok");
});

test("ticks are round numbers covering the range", () => {
  const { ticks, step } = niceTicks(0, 97, 5);
  assert.equal(step, 20);
  assert.deepEqual(ticks, [0, 20, 40, 60, 80, 100]);
});
