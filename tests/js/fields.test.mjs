// fields.js without a browser: a line's fields, JSON shown readably, and the filter's field terms.
import { test } from "node:test";
import assert from "node:assert/strict";

import { DEPTH_MAX, FIELDS_MAX, PARSE_MAX, commonFields, compare, fieldsOf, jsonFields, logfmtFields, parseQuery, readableJson, termFor, termsTest } from "../../perview/web/static/fields.js";
import { ERROR, HEAD, INFO, WARNING } from "../../perview/web/static/levels.js";

test("a JSON record's nested objects and arrays become dotted keys, in order", () => {
  const fields = jsonFields('{"msg":"hi","req":{"method":"GET","headers":{"host":"a"}},"tags":["x","y"],"n":null}');
  assert.deepEqual(fields, [
    ["msg", "hi"],
    ["req.method", "GET"],
    ["req.headers.host", "a"],
    ["tags.0", "x"],
    ["tags.1", "y"],
    ["n", null],
  ]);
});

test("invalid JSON, a JSON array and a line longer than the bound are not records", () => {
  assert.equal(jsonFields('{"msg": "cut'), null);
  assert.equal(jsonFields("[1, 2]"), null);
  const huge = '{"msg":"' + "x".repeat(PARSE_MAX) + '"}';
  assert.equal(jsonFields(huge), null);
  assert.equal(readableJson(huge), null);
});

test("a 10 MB JSON line is left as text at once, not parsed", () => {
  const line = '{"msg":"' + "x".repeat(10 * 1024 * 1024) + '"}';
  const parse = JSON.parse;
  let parsed = 0;
  JSON.parse = (...args) => (parsed++, parse(...args));
  // The work in this process's CPU time, not the wall clock a loaded machine stretches.
  const started = process.cpuUsage();
  try {
    assert.equal(readableJson(line), null);
    assert.deepEqual(fieldsOf(line), []);
  } finally {
    JSON.parse = parse;
  }
  const { user, system } = process.cpuUsage(started);
  assert.equal(parsed, 0, "never handed to JSON.parse");
  assert.ok((user + system) / 1000 < 50, "bounded work");
});

test("a record nested thousands deep is flattened to a bounded depth, without recursion", () => {
  const deep = '{"a":' + "[".repeat(10000) + "]".repeat(10000) + "}";
  const fields = jsonFields(deep);
  assert.equal(fields.length, 1);
  assert.equal(fields[0][0].split(".").length, DEPTH_MAX);
  assert.equal(fields[0][1], "[…]");
});

test("a record with very many keys is cut to a bounded number of fields", () => {
  const record = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]));
  assert.equal(jsonFields(JSON.stringify(record)).length, FIELDS_MAX);
});

test("logfmt pairs are fields, quoted values unquoted", () => {
  assert.deepEqual(logfmtFields('time=2024-01-15 level=warn msg="disk almost full" path=/var used=91'), [
    ["time", "2024-01-15"],
    ["level", "warn"],
    ["msg", "disk almost full"],
    ["path", "/var"],
    ["used", "91"],
  ]);
});

test("a JSON record reads as time, level (by its name), message, then key=value fields", () => {
  const line = '{"level":50,"time":1705314226123,"pid":1234,"err":{"type":"Error"},"msg":"boom","note":"two words"}';
  assert.deepEqual(readableJson(line, ERROR | HEAD), {
    time: "2024-01-15T10:23:46.123Z",
    level: "error",
    message: "boom",
    fields: [["pid", "1234"], ["err.type", "Error"], ["note", '"two words"']],
  });
  // Without a level from the classifier, the record's own value is shown.
  assert.equal(readableJson('{"severity":"NOTICE","message":"m"}').level, "NOTICE");
});

test("a filter's field terms are taken out of its text; text without them is unchanged", () => {
  assert.deepEqual(parseQuery("  plain  text "), { terms: [], text: "  plain  text " });
  const { terms, text } = parseQuery('timeout level:error -path:/healthz status:>=500 user:"bob smith" retry');
  assert.equal(text, "timeout retry");
  assert.deepEqual(
    terms.map(({ negate, key, op, value }) => [negate, key, op, value]),
    [
      [false, "level", "=", "error"],
      [true, "path", "=", "/healthz"],
      [false, "status", ">=", "500"],
      [false, "user", "=", "bob smith"],
    ],
  );
  assert.deepEqual(parseQuery("http://example.org").terms.map((t) => t.key), ["http"]);
  assert.deepEqual(parseQuery("key:").terms, []);
});

test("values compare as numbers when both are, as text otherwise; * is any text", () => {
  assert.ok(compare("503", ">=", "500") && !compare("404", ">=", "500"));
  assert.ok(compare(99, "<", "100")); // not as text, where "99" > "100"
  assert.ok(compare("Bob", "=", "bob") && !compare("Bob", "=", "bob", true));
  assert.ok(compare("/api/users/7", "=", "/api/*") && !compare("/health", "=", "/api/*"));
  assert.ok(compare("a-b-c", "=", "a*c") && !compare("ac", "=", "a*b*c"));
  assert.ok(compare("x", "!=", "y"));
});

test("field terms test JSON and logfmt fields, and the line's own level", () => {
  const keep = termsTest(parseQuery("level:>=warning status:>=500 -path:/healthz").terms);
  const json = (o) => JSON.stringify(o);
  assert.ok(keep(json({ status: 503, path: "/api" }), ERROR | HEAD));
  assert.ok(!keep(json({ status: 503, path: "/healthz" }), ERROR | HEAD));
  assert.ok(!keep(json({ status: 200, path: "/api" }), ERROR | HEAD));
  assert.ok(!keep(json({ status: 503, path: "/api" }), INFO | HEAD));
  assert.ok(keep("status=502 path=/x", WARNING));
});

test("a term whose field a line does not have searches for its words instead", () => {
  const keep = termsTest(parseQuery("ERROR:app.db").terms);
  assert.ok(keep("ERROR:app.db:query failed", ERROR | HEAD));
  assert.ok(!keep("INFO:root:starting", INFO | HEAD));
  const drop = termsTest(parseQuery("-path:/healthz").terms);
  assert.ok(!drop("GET path:/healthz 200", INFO));
  assert.ok(drop("GET /index 200", INFO));
});

test("the most common fields and values are listed, most common first", () => {
  const lines = [
    '{"user":"bob","status":200}',
    '{"user":"bob","status":500}',
    '{"user":"ann","status":200}',
    "user=bob",
    "not a record",
  ];
  const [first, second] = commonFields(lines);
  assert.deepEqual(first, { key: "user", count: 4, values: [{ value: "bob", count: 3 }, { value: "ann", count: 1 }] });
  assert.equal(second.key, "status");
  assert.deepEqual(second.values[0], { value: "200", count: 2 });
});

test("a value chosen from the list becomes a term, quoted when it holds a space", () => {
  assert.equal(termFor("user", "bob"), "user:bob");
  assert.equal(termFor("msg", "disk full"), 'msg:"disk full"');
  assert.deepEqual(parseQuery(termFor("msg", "disk full")).terms[0].value, "disk full");
});
