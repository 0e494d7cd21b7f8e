// The page's one event stream, for every source on screen: it reconnects by itself, after a
// growing pause, with a cursor of its own (each source's next line id, in `since`), so nothing is
// lost or shown twice while the server's ring still holds the lines, and a restarted server (a
// new epoch) is recognised. What arrives is handed to the page's handlers; this module owns the
// connection and its cursor, not what is done with the lines.

import { EventStream } from "./events.js";

export const RECONNECT_MIN = 500; // ms before the first attempt once a stream is lost
export const RECONNECT_MAX = 5000; // ms between attempts when the server is away

/** The pause before each attempt to reconnect: doubling from `min` up to `max`, back to `min`
 *  once a stream is open. */
export class Backoff {
  constructor(min = RECONNECT_MIN, max = RECONNECT_MAX) {
    this.min = min;
    this.max = max;
    this.delay = min;
  }

  /** The pause before this attempt (and the next one's doubles). */
  next() {
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, this.max);
    return delay;
  }

  reset() {
    this.delay = this.min;
  }
}

/** Where the page is in each source's lines: the next id to ask for, in this server's run. */
export class Cursor {
  constructor() {
    this.epoch = null; // the server's run, from its `source` events
    this.next = new Map(); // source -> next line id
    this.seen = new Map(); // source -> the run it was last seen in
  }

  /** The `since` parameter that resumes `names` ("" when there is nothing to resume). */
  since(names) {
    const known = names.filter((n) => this.next.has(n)).map((n) => `${n}:${this.next.get(n)}`);
    return this.epoch && known.length ? `${this.epoch}/${known.join(",")}` : "";
  }

  /** The server says which run it is for `source`: true when the page saw that source in an
   *  earlier run (the server restarted: our ids mean nothing to it, and are forgotten). */
  sawEpoch(source, epoch) {
    if (epoch !== this.epoch) this.next.clear();
    this.epoch = epoch;
    const before = this.seen.get(source);
    this.seen.set(source, epoch);
    return before !== undefined && before !== epoch;
  }

  /** Lines (or a gap) of `source` up to, not including, id `next` were had. */
  advance(source, next) {
    this.next.set(source, next);
  }
}

/** How many of `lines` the page already shows: the longest end of `held` they start with. A
 *  restarted server sends again what it holds of a source (a file's last lines). */
export function alreadyShown(held, lines) {
  for (let k = Math.min(held.length, lines.length); k > 0; k--) {
    let same = true;
    for (let i = 0; i < k && same; i++) same = held[held.length - k + i] === lines[i];
    if (same) return k;
  }
  return 0;
}

/** The connection. `handlers`: status(state) ("connecting", "live", "reconnecting", "signed
 *  out"), open(), source(info, restarted), lines(header, event) (its data lines after the header
 *  are the log lines, as bytes: events.js SseEvent), state(state), gap(gap),
 *  notice(notice), samples(samples), alert(change). `refused()` tells whether the credential was refused (then
 *  it waits to be asked to connect again). */
export class Connection {
  constructor({ handlers, open = (url) => new EventStream(url), refused = () => false, timers = globalThis }) {
    this.handlers = handlers;
    this.open = open;
    this.refused = refused;
    this.timers = timers;
    this.cursor = new Cursor();
    this.backoff = new Backoff();
    this.stream = null;
    this.names = [];
    this.timer = null;
  }

  /** Whether an event stream is open or opening. */
  get streaming() {
    return Boolean(this.stream) && this.stream.readyState !== EventStream.CLOSED;
  }

  /** The URL of a stream of `names`, resuming each from the cursor. */
  url(names) {
    const query = new URLSearchParams(names.map((n) => ["source", n]));
    query.set("metrics", "1"); // live samples for the charts ride on the same stream
    const since = this.cursor.since(names);
    if (since) query.set("since", since);
    return `api/events?${query}`;
  }

  /** Stream `names` (the sources on screen) from now on; none: close the stream. */
  connect(names = this.names) {
    this.names = names;
    // The old stream stays open until the new one is live, so its sources keep a viewer
    // throughout and are not stopped and restarted by a change of view.
    const previous = this.stream;
    this.timers.clearTimeout(this.timer);
    if (!names.length) {
      previous?.close();
      this.stream = null;
      return;
    }
    const stream = this.open(this.url(names));
    this.stream = stream;
    this.handlers.status("connecting");
    stream.addEventListener("open", () => {
      this.backoff.reset();
      this.handlers.status("live");
      if (previous !== stream) previous?.close();
      this.handlers.open();
    });
    stream.addEventListener("error", () => {
      previous?.close();
      if (this.stream !== stream) return;
      if (this.refused()) {
        this.handlers.status("signed out"); // until connect() is called with a new credential
        return;
      }
      // Reconnect with our own cursor (in the query, not Last-Event-ID): the set of sources may
      // have changed since, and each source's cursor is kept apart.
      this.handlers.status("reconnecting");
      this.timer = this.timers.setTimeout(() => this.connect(), this.backoff.next());
    });
    // Only the newest stream counts: the one it replaces may still deliver what the new one
    // will resend from its cursor.
    const on = (type, handler) => stream.addEventListener(type, (e) => this.stream === stream && handler(e));
    on("source", (e) => {
      const info = JSON.parse(e.data);
      this.handlers.source(info, this.cursor.sawEpoch(info.name, info.epoch));
    });
    on("lines", (e) => {
      const header = JSON.parse(e.line(0)); // a JSON header, then the log lines
      this.cursor.advance(header.source, header.id + e.ends.length - 1);
      this.handlers.lines(header, e);
    });
    on("gap", (e) => {
      const gap = JSON.parse(e.data);
      this.cursor.advance(gap.source, gap.id + gap.count);
      this.handlers.gap(gap);
    });
    on("state", (e) => this.handlers.state(JSON.parse(e.data)));
    on("notice", (e) => this.handlers.notice(JSON.parse(e.data)));
    on("metric", (e) => this.handlers.samples(JSON.parse(e.data).samples));
    on("alert", (e) => this.handlers.alert(JSON.parse(e.data)));
  }
}
