// The page's event-stream parser, without a browser: pieces cut anywhere give the same events.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SseParser } from "../../perview/web/static/events.js";

const STREAM =
  "retry: 1000\n\n" +
  'event: source\ndata: {"name": "run"}\n\n' +
  ": keep-alive\n\n" +
  'event: lines\ndata: {"source": "run", "id": 1}\ndata: first é\ndata: \ndata: third\nid: e/run:4\n\n' +
  "event: gap\r\ndata: {\"count\": 2}\r\nid: e/run:6\r\n\r\n" +
  "data: no type\rdata:  two spaces\r\r";

function parse(pieces) {
  const parser = new SseParser();
  return pieces.flatMap((piece) => parser.push(piece)).map((e) => ({ type: e.type, lines: e.lines }));
}

const EXPECTED = [
  { type: "source", lines: ['{"name": "run"}'] },
  { type: "lines", lines: ['{"source": "run", "id": 1}', "first é", "", "third"] },
  { type: "gap", lines: ['{"count": 2}'] },
  { type: "message", lines: ["no type", " two spaces"] },
];

test("a whole stream gives each event with its type and data lines (ids and retry are not the page's)", () => {
  assert.deepEqual(parse([STREAM]), EXPECTED);
});

test("the stream cut at every position gives the same events", () => {
  for (let cut = 1; cut < STREAM.length; cut++) {
    assert.deepEqual(parse([STREAM.slice(0, cut), STREAM.slice(cut)]), EXPECTED, `cut at ${cut}`);
  }
});

test("one character at a time gives the same events (CR LF split between pieces)", () => {
  assert.deepEqual(parse([...STREAM]), EXPECTED);
});

test("comments and ids do not make events", () => {
  assert.deepEqual(parse([": hello\n\nid: a\0b\ndata: x\n\n"]), [{ type: "message", lines: ["x"] }]);
});
