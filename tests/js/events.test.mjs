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

const encode = (text) => new TextEncoder().encode(text);

/** The events of `pieces` (byte arrays), each read into one reused buffer as the page does. */
function parse(pieces) {
  const parser = new SseParser();
  const buffer = new Uint8Array(Math.max(1, ...pieces.map((p) => p.length)));
  const events = [];
  for (const piece of pieces) {
    buffer.set(piece);
    parser.push(buffer.subarray(0, piece.length), (e) => events.push({ type: e.type, lines: e.lines }));
    buffer.fill(0x21); // what a later read puts there: the parser must not be holding it
  }
  return events;
}

const EXPECTED = [
  { type: "source", lines: ['{"name": "run"}'] },
  { type: "lines", lines: ['{"source": "run", "id": 1}', "first é", "", "third"] },
  { type: "gap", lines: ['{"count": 2}'] },
  { type: "message", lines: ["no type", " two spaces"] },
];

test("a whole stream gives each event with its type and data lines (ids and retry are not the page's)", () => {
  assert.deepEqual(parse([encode(STREAM)]), EXPECTED);
});

test("the stream cut at every byte gives the same events (inside a UTF-8 character too)", () => {
  const bytes = encode(STREAM);
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(parse([bytes.subarray(0, cut), bytes.subarray(cut)]), EXPECTED, `cut at ${cut}`);
  }
});

test("one byte at a time gives the same events (CR LF split between pieces)", () => {
  const bytes = encode(STREAM);
  assert.deepEqual(parse(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))), EXPECTED);
});

test("an event keeps its data lines as bytes, each line decoded on its own", () => {
  const seen = [];
  new SseParser().push(encode('event: lines\ndata: {"id": 1}\ndata: caf\u00e9 \u65e5\ndata: x\n\n'), (event) => {
    seen.push([Array.from(event.ends), event.line(1), event.line(2), event.data]);
  });
  assert.deepEqual(seen, [[[9, 19, 21], "caf\u00e9 \u65e5", "x", '{"id": 1}\ncaf\u00e9 \u65e5\nx']]);
});

test("comments and ids do not make events", () => {
  assert.deepEqual(parse([encode(": hello\n\nid: a\0b\ndata: x\n\n")]), [{ type: "message", lines: ["x"] }]);
});

test("a stream read flat out leaves turns to tasks already waiting, not only to input", async () => {
  const { EventStream } = await import("../../perview/web/static/events.js");
  // Chromium runs a scheduler.yield() continuation ahead of every task of its priority, which
  // held a burst's timers and the page's other work back for as long as data was waiting: a
  // continuation as a microtask stands in for that here, where Node has no scheduler.
  const saved = globalThis.scheduler;
  globalThis.scheduler = { yield: () => Promise.resolve() };
  try {
    const event = `event: lines\ndata: {}\n${"data: x\n".repeat(100)}\n`;
    const body = new TextEncoder().encode(event.repeat(400));
    const fetcher = async () => new Response(body, { headers: { "Content-Type": "text/event-stream" } });
    const stream = new EventStream("api/events", fetcher);
    const seen = { events: 0, atTimer: null };
    const ended = new Promise((resolve) => stream.addEventListener("error", resolve));
    stream.addEventListener("lines", () => {
      if (seen.events++ === 0) setTimeout(() => (seen.atTimer = seen.events));
      const until = performance.now() + 1; // an event's handling: 1 ms, 400 ms in all
      while (performance.now() < until);
    });
    await ended;
    assert.equal(seen.events, 400);
    assert.ok(seen.atTimer !== null && seen.atTimer < 100, `the timer ran after ${seen.atTimer} of 400 events`);
  } finally {
    globalThis.scheduler = saved;
  }
});
