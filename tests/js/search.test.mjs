// Recorded history as the page reads it: ranges, addresses, the JSON-lines stream cut anywhere,
// where a query matches, and lines around a line, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Around, JsonLines, defaultRange, fileLinesUrl, fileWhere, matchesOf, mergeByTime, progressText, rangeParams, searchUrl, historyUrl, markerText } from "../../perview/web/static/search.js";

const encode = (text) => new TextEncoder().encode(text);

test("a preset range is relative, so the server's clock says when now is", () => {
  assert.deepEqual(rangeParams("15m"), { since: "-15m" });
  assert.deepEqual(rangeParams("1h"), { since: "-1h" });
  assert.deepEqual(rangeParams("24h"), { since: "-24h" });
  assert.deepEqual(rangeParams("7d"), { since: "-7d" });
  assert.deepEqual(rangeParams("all"), {}, "any time: no bound at all");
  assert.throws(() => rangeParams("2y"));
});

test("a custom range is this browser's local time, as epoch seconds, and its end is optional", () => {
  const from = "2026-05-01T03:00";
  const to = "2026-05-01T04:30";
  const since = new Date(2026, 4, 1, 3, 0).getTime() / 1000;
  assert.deepEqual(rangeParams("custom", { from, to }), { since: String(since), until: String(since + 5400) });
  assert.deepEqual(rangeParams("custom", { from }), { since: String(since) });
});

test("a custom range without a start, or that ends before it starts, says what is wrong", () => {
  assert.throws(() => rangeParams("custom", { to: "2026-05-01T03:00" }), /starts/);
  assert.throws(() => rangeParams("custom", { from: "2026-05-01T04:00", to: "2026-05-01T03:00" }), /ends before/);
});

test("a search's address names each source, the range and JSON", () => {
  const url = new URL(searchUrl({ q: "a&b", sources: ["app", "web 1"], range: { since: "-1h" } }), "http://x/");
  assert.equal(url.pathname, "/api/search");
  assert.equal(url.searchParams.get("q"), "a&b");
  assert.deepEqual(url.searchParams.getAll("source"), ["app", "web 1"]);
  assert.equal(url.searchParams.get("since"), "-1h");
  assert.equal(url.searchParams.get("until"), null);
  assert.equal(url.searchParams.get("format"), "json");
  assert.equal(url.searchParams.get("order"), "newest");
  assert.equal(new URL(searchUrl({ q: "x" }), "http://x/").searchParams.getAll("source").length, 0);
  assert.equal(historyUrl("a/b", 1, 2), "api/sources/a%2Fb/history?since=1&until=2&format=json");
});

test("records cut anywhere, even inside a character, come out whole and once", () => {
  const records = [
    { type: "line", source: "app", text: "naïve ☃ café", at: 1.5, line: 1, match: true },
    { type: "gap", source: "app", count: 3, from: "a", to: "b" },
    { type: "total", matches: 1, blocks: 2, bytes: 30, seconds: 0.01, complete: true },
  ];
  const bytes = encode(records.map((r) => JSON.stringify(r) + "\n").join(""));
  for (let size = 1; size <= 7; size++) {
    const lines = new JsonLines();
    const got = [];
    for (let i = 0; i < bytes.length; i += size) got.push(...lines.push(bytes.subarray(i, i + size)));
    got.push(...lines.finish());
    assert.deepEqual(got, records, `chunks of ${size} bytes`);
  }
});

test("a last record without a newline is read at the end, and a line that is not JSON is said so", () => {
  const lines = new JsonLines();
  assert.deepEqual(lines.push(encode('not json\n{"type":"total"}')), [{ type: "invalid", text: "not json" }]);
  assert.deepEqual(lines.finish(), [{ type: "total" }]);
});

test("a substring matches with its case, everywhere in the line", () => {
  assert.deepEqual(matchesOf("ab", "xabyABab"), [[1, 3], [6, 8]]);
  assert.deepEqual(matchesOf("", "abc"), []);
});

test("an re: query matches as a pattern, RE2's leading flags included; one JavaScript refuses matches nothing", () => {
  assert.deepEqual(matchesOf("re:e\\d+", "e1 x e22"), [[0, 2], [5, 8]]);
  assert.deepEqual(matchesOf("re:(?i)err", "ERR err"), [[0, 3], [4, 7]]);
  assert.deepEqual(matchesOf("re:(?P<x>a", "aaa"), []);
  assert.deepEqual(matchesOf("re:x*", "abc"), []); // empty matches highlight nothing
});

test("gaps, damage and totals are said in words", () => {
  assert.match(markerText({ type: "gap", source: "app", part: null, count: 1200, from: "t0", to: "t1" }), /app: 1,200 lines not recorded \(from t0 to t1\)/);
  assert.match(markerText({ type: "damaged", source: "app", part: "web1", count: 5, from: "t0", to: "t1", reason: "bad block" }), /app\/web1: 5 lines unreadable .*bad block/);
  assert.equal(progressText({ type: "progress", blocks: 3, of: 10, bytes: 0, matches: 1 }), "searching: 1 match, 3 of 10 blocks");
  assert.match(progressText({ type: "total", matches: 1000, blocks: 4, bytes: 12345, seconds: 0.5, complete: false }), /^1,000 matches \(stopped at the limit.*12,345 bytes in 0.5 s$/);
});

test("sources merge in time order, each keeping its own order where times are equal", () => {
  const a = [{ at: 1, id: "a1" }, { at: 3, id: "a3" }, { at: 3, id: "a3b" }];
  const b = [{ at: 2, id: "b2" }, { at: 3, id: "b3" }];
  assert.deepEqual(mergeByTime([a, b]).map((r) => r.id), ["a1", "b2", "a3", "a3b", "b3"]);
});

test("the lines around a line are those just before it and just after it, markers among them kept", () => {
  const line = (n) => ({ type: "line", source: "s", part: null, line: n, at: n });
  const around = new Around(line(50), 2, 2);
  let done = false;
  for (let n = 1; n <= 100 && !done; n++) {
    done = around.push(line(n));
    if (n === 49) done = around.push({ type: "gap", source: "s", from: "x", to: "y", count: 1 });
  }
  assert.equal(done, true);
  assert.deepEqual(around.records.map((r) => r.line ?? "gap"), [48, 49, "gap", 50, 51, 52]);
  assert.equal(around.records[around.index].line, 50);
});

test("a file's result is found again by its file and line, and its host where it has one", () => {
  const record = { type: "line", from: "file", source: "app log", part: "web1", file: "/var/log/app.log-20240101.gz", line: 40 };
  const url = new URL(fileLinesUrl(record, 3), "http://x/");
  assert.equal(url.pathname, "/api/sources/app%20log/history");
  assert.deepEqual(Object.fromEntries(url.searchParams), { file: "/var/log/app.log-20240101.gz", line: "40", context: "3", format: "json", part: "web1" });
  assert.equal(fileWhere(record), "app.log-20240101.gz:40");
  assert.equal(new URL(fileLinesUrl({ ...record, part: null }), "http://x/").searchParams.get("part"), null);
});

test("a skipped source is said with its reason", () => {
  assert.equal(markerText({ type: "skipped", source: "app", part: null, reason: "the far scan failed: refused", text: "not searched: …" }), "app: not searched: the far scan failed: refused");
});

test("a search of files on hosts says how much came back over the link", () => {
  assert.equal(progressText({ type: "total", matches: 3, blocks: 2, bytes: 0, received: 1234, seconds: 0.6, complete: true }), "3 matches; 2 blocks, 0 bytes (1,234 bytes back from hosts) in 0.6 s");
});

test("a search starts at any time when a file source is searched, else at the last hour", () => {
  assert.equal(defaultRange(["file"]), "all");
  assert.equal(defaultRange(["recorded", "file", "none"]), "all");
  assert.equal(defaultRange(["recorded"]), "1h");
  assert.equal(defaultRange([]), "1h");
});
