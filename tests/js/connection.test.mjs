// The page's connection without a browser: its cursor, its pauses between attempts, and what it
// does with a stand-in event stream.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff, Connection, Cursor, RECONNECT_MAX, RECONNECT_MIN, alreadyShown } from "../../perview/web/static/connection.js";
import { EventStream, SseEvent } from "../../perview/web/static/events.js";

test("the pause between attempts doubles up to its bound, and starts again once connected", () => {
  const backoff = new Backoff();
  const delays = Array.from({ length: 6 }, () => backoff.next());
  assert.deepEqual(delays, [RECONNECT_MIN, 1000, 2000, 4000, RECONNECT_MAX, RECONNECT_MAX]);
  backoff.reset();
  assert.equal(backoff.next(), RECONNECT_MIN);
});

test("the cursor resumes each source it has lines of, in the server's run", () => {
  const cursor = new Cursor();
  assert.equal(cursor.since(["a"]), "");
  assert.equal(cursor.sawEpoch("a", "e1"), false);
  cursor.advance("a", 11);
  cursor.advance("b", 3);
  assert.equal(cursor.since(["a", "b", "c"]), "e1/a:11,b:3");
  assert.equal(cursor.since(["c"]), "");
});

test("a new server run forgets every id, and says so once for each source seen before", () => {
  const cursor = new Cursor();
  cursor.sawEpoch("a", "e1");
  cursor.sawEpoch("b", "e1");
  cursor.advance("a", 11);
  cursor.advance("b", 5);
  assert.equal(cursor.sawEpoch("a", "e2"), true);
  assert.equal(cursor.since(["a", "b"]), "");
  assert.equal(cursor.sawEpoch("b", "e2"), true);
  assert.equal(cursor.sawEpoch("c", "e2"), false); // new to the page
  assert.equal(cursor.sawEpoch("a", "e2"), false);
});

test("lines sent again after a restart are dropped where they match the end of those held", () => {
  assert.equal(alreadyShown(["1", "2", "3"], ["2", "3", "4"]), 2);
  assert.equal(alreadyShown(["1", "2", "3"], ["4", "5"]), 0);
  assert.equal(alreadyShown(["x", "x"], ["x", "x", "x"]), 2);
  assert.equal(alreadyShown([], ["a"]), 0);
});

/** A stand-in EventStream: events are sent by the test. */
class StandInStream extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.readyState = EventStream.CONNECTING;
  }

  send(type, ...lines) {
    this.dispatchEvent(SseEvent.of(type, lines));
  }

  open() {
    this.readyState = EventStream.OPEN;
    this.dispatchEvent(new Event("open"));
  }

  fail() {
    this.readyState = EventStream.CLOSED;
    this.dispatchEvent(new Event("error"));
  }

  close() {
    this.readyState = EventStream.CLOSED;
  }
}

function setUp() {
  const streams = [];
  const seen = { status: [], lines: [], sources: [], gaps: [], alerts: [] };
  const timers = { pending: [], setTimeout: (fn, ms) => timers.pending.push([fn, ms]), clearTimeout: () => (timers.pending = []) };
  const connection = new Connection({
    open: (url) => streams[streams.push(new StandInStream(url)) - 1],
    timers,
    handlers: {
      status: (s) => seen.status.push(s),
      open() {},
      source: (info, restarted) => seen.sources.push([info.name, restarted]),
      lines: (header, event) => seen.lines.push([header.source, header.id, ...event.lines.slice(1)]),
      state() {},
      gap: (gap) => seen.gaps.push(gap),
      notice() {},
      samples() {},
      alert: (change) => seen.alerts.push(change),
    },
  });
  return { connection, streams, seen, timers };
}

test("a lost stream is opened again after a pause, resuming where its lines ended", () => {
  const { connection, streams, seen, timers } = setUp();
  connection.connect(["a", "b"]);
  const first = streams[0];
  assert.match(first.url, /^api\/events\?source=a&source=b&metrics=1$/);
  first.open();
  first.send("source", JSON.stringify({ name: "a", epoch: "e1" }));
  first.send("lines", JSON.stringify({ source: "a", id: 7 }), "seven", "eight");
  first.send("gap", JSON.stringify({ source: "b", id: 1, count: 40 }));
  first.fail();
  assert.deepEqual(seen.status, ["connecting", "live", "reconnecting"]);
  assert.deepEqual(timers.pending.map(([, ms]) => ms), [RECONNECT_MIN]);
  timers.pending.shift()[0]();
  assert.equal(new URL(streams[1].url, "http://x/").searchParams.get("since"), "e1/a:9,b:41");
  assert.deepEqual(seen.lines, [["a", 7, "seven", "eight"]]);
  streams[1].fail();
  assert.deepEqual(timers.pending.map(([, ms]) => ms), [1000]); // and longer each time
});

test("a replaced stream's late events are ignored, and it is closed once the new one is live", () => {
  const { connection, streams, seen } = setUp();
  connection.connect(["a"]);
  streams[0].open();
  connection.connect(["a", "b"]);
  assert.equal(streams[0].readyState, EventStream.OPEN); // its sources keep their viewer meanwhile
  streams[0].send("lines", JSON.stringify({ source: "a", id: 1 }), "late");
  assert.deepEqual(seen.lines, []);
  streams[1].open();
  assert.equal(streams[0].readyState, EventStream.CLOSED);
});

test("a refused credential stops the reconnecting until the page connects again", () => {
  const { connection, streams, seen, timers } = setUp();
  connection.refused = () => true;
  connection.connect(["a"]);
  streams[0].fail();
  assert.equal(seen.status.at(-1), "signed out");
  assert.deepEqual(timers.pending, []);
});

test("no source on screen closes the stream", () => {
  const { connection, streams } = setUp();
  connection.connect(["a"]);
  connection.connect([]);
  assert.equal(streams[0].readyState, EventStream.CLOSED);
  assert.equal(connection.streaming, false);
});

test("an alert's change on the stream reaches the page's handler", () => {
  const { connection, streams, seen } = setUp();
  connection.connect(["a"]);
  streams[0].open();
  streams[0].send("alert", JSON.stringify({ name: "boom", state: "firing", firing: { alert: "boom", at: 5 } }));
  assert.deepEqual(seen.alerts, [{ name: "boom", state: "firing", firing: { alert: "boom", at: 5 } }]);
});
