// The page's event stream client: fetch() and a small parser rather than EventSource. During a
// burst it takes half the main thread's time (EventSource measured 839-1197 ms of main thread
// per 100,000 lines, this 326-598 ms), and the page reconnects by itself anyway (connection.js).

// Bytes a read of the event stream takes at most: with one buffer, reused, a burst of megabytes
// leaves no garbage behind (measured: the renderer's peak 15-20 MB lower than in 2 MB reads).
const READ_BYTES = 65536;
const SLICE_MS = 10; // ms of reads handled at a stretch before the page gets a turn

const LF = 10;
const CR = 13;
const COLON = 58;
const SPACE = 32;
const DATA = [100, 97, 116, 97, 58, 32]; // "data: "
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** An event as EventSource gives it (`data`), but its data kept as the bytes that came: `bytes`
 *  holds its data lines joined by LF, `ends` where each ends. The log lines of a `lines` event
 *  go from here into the tab's store as bytes, never decoded unless shown or filtered. An event
 *  from SseParser is only valid while it is dispatched: its bytes are the parser's, reused for
 *  the next (a burst of 100,000 lines then leaves no garbage behind but the store's copy).
 *  No `lastEventId`: the page resumes with a cursor of its own (connection.js), not the ids. */
export class SseEvent extends Event {
  constructor(type, bytes, ends) {
    super(type);
    this.bytes = bytes;
    this.ends = ends;
  }

  /** An event of `type` with these data lines (strings). */
  static of(type, lines) {
    const bytes = encoder.encode(lines.join("\n"));
    const ends = [];
    for (let at = bytes.indexOf(LF); at >= 0; at = bytes.indexOf(LF, at + 1)) ends.push(at);
    ends.push(bytes.length);
    return new SseEvent(type, bytes, ends);
  }

  get data() {
    return decoder.decode(this.bytes);
  }

  /** The data lines, decoded. */
  get lines() {
    return this.data.split("\n");
  }

  /** Data line `i`, decoded. */
  line(i) {
    return decoder.decode(this.bytes.subarray(i ? this.ends[i - 1] + 1 : 0, this.ends[i]));
  }
}

/** The bytes of an event's data lines as they come, and where each line ends: buffers that
 *  grow to the largest event and are reused. */
class DataBuffer {
  constructor() {
    this.bytes = new Uint8Array(4096);
    this.length = 0;
    this.ends = new Uint32Array(256);
    this.count = 0;
  }

  /** Make room for `size` more bytes and one more line. */
  reserve(size) {
    if (this.length + size > this.bytes.length) {
      const bigger = new Uint8Array(Math.max(2 * this.bytes.length, this.length + size));
      bigger.set(this.bytes.subarray(0, this.length));
      this.bytes = bigger;
    }
    if (this.count === this.ends.length) {
      const bigger = new Uint32Array(2 * this.ends.length);
      bigger.set(this.ends);
      this.ends = bigger;
    }
  }

  /** Add a data line: `source` from `start` to `end`. */
  add(source, start, end) {
    this.reserve(end - start + 1);
    const bytes = this.bytes;
    let n = this.length;
    if (this.count) bytes[n++] = LF;
    // A loop rather than set(subarray()): no object a line, so a burst makes no garbage here.
    for (let i = start; i < end; i++) bytes[n++] = source[i];
    this.length = n;
    this.ends[this.count++] = n;
  }

  /** Add the data line that starts at `start` in `source` and ends at the next LF: returns
   *  where that LF is, or -1 (nothing added) if the line does not end in `source`. Finding the
   *  end while copying, in one loop, takes half the time of indexOf() and then a copy. */
  addLine(source, start) {
    this.reserve(source.length - start + 1);
    const bytes = this.bytes;
    let n = this.length;
    if (this.count) bytes[n++] = LF;
    for (let i = start; i < source.length; i++) {
      const b = source[i];
      if (b === LF) {
        this.length = n;
        this.ends[this.count++] = n;
        return i;
      }
      bytes[n++] = b;
    }
    return -1;
  }

  /** The event these lines make, valid until the next add(). */
  take(type) {
    const event = new SseEvent(type, this.bytes.subarray(0, this.length), this.ends.subarray(0, this.count));
    this.length = 0;
    this.count = 0;
    return event;
  }
}

/** The event stream format ("Parsing an event stream", WHATWG HTML), fed bytes in pieces cut
 *  anywhere (a UTF-8 character too: lines are only decoded whole, and field names and values
 *  are compared as bytes). */
export class SseParser {
  constructor() {
    this.partial = null; // the start of a line whose end has not come yet (bytes)
    this.afterCR = false; // the last piece ended with CR: a LF starting the next one ends no line
    this.type = "";
    this.data = new DataBuffer();
  }

  /** Parse `bytes` (a Uint8Array, used up before this returns), calling `dispatch` with each
   *  event it completes. */
  push(bytes, dispatch) {
    if (this.afterCR && bytes[0] === LF) bytes = bytes.subarray(1);
    if (bytes.indexOf(CR) >= 0) {
      this.afterCR = bytes[bytes.length - 1] === CR;
      bytes = withoutCR(bytes);
    } else {
      this.afterCR = false;
    }
    let end = bytes.indexOf(LF);
    if (end < 0) {
      this.partial = joined(this.partial, bytes);
      return;
    }
    if (this.partial) {
      const line = joined(this.partial, bytes.subarray(0, end));
      this.partial = null;
      this.line(line, 0, line.length, dispatch);
    } else {
      this.line(bytes, 0, end, dispatch);
    }
    let start = end + 1;
    while (start < bytes.length) {
      // A burst is made of data lines: each is copied once, straight from the read.
      if (isData(bytes, start, bytes.length)) {
        end = this.data.addLine(bytes, start + DATA.length);
      } else {
        end = bytes.indexOf(LF, start);
        if (end >= 0) this.line(bytes, start, end, dispatch);
      }
      if (end < 0) break;
      start = end + 1;
    }
    if (start < bytes.length) this.partial = bytes.slice(start);
  }

  line(bytes, start, end, dispatch) {
    if (start === end) {
      if (this.data.count) dispatch(this.data.take(this.type || "message"));
      this.type = "";
      return;
    }
    if (bytes[start] === COLON) return; // a comment: the server's keep-alive
    let colon = bytes.indexOf(COLON, start);
    if (colon < 0 || colon > end) colon = end;
    let value = Math.min(colon + 1, end);
    if (bytes[value] === SPACE && value < end) value++;
    const field = decoder.decode(bytes.subarray(start, colon));
    if (field === "data") this.data.add(bytes, value, end);
    else if (field === "event") this.type = decoder.decode(bytes.subarray(value, end));
    // `id` and `retry` are ignored: the page resumes from its own cursor, on its own schedule.
  }
}

function isData(bytes, start, end) {
  if (end - start < 6) return false;
  for (let i = 0; i < 6; i++) if (bytes[start + i] !== DATA[i]) return false;
  return true;
}

function joined(a, b) {
  if (!a) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** `bytes` with each CR LF and lone CR made a LF (a CR at the very end too: the LF that may
 *  start the next piece is then dropped, see afterCR). */
function withoutCR(bytes) {
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b !== CR) out[n++] = b;
    else {
      out[n++] = LF;
      if (bytes[i + 1] === LF) i++;
    }
  }
  return out.subarray(0, n);
}

/** The bytes of a response body as they arrive: into one reused buffer where the browser can
 *  (READ_BYTES), else in the pieces it makes. */
async function* bodyBytes(body) {
  let reader;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch {
    reader = body.getReader(); // no byte streams (Safari before 26.4)
    for (let read = await reader.read(); !read.done; read = await reader.read()) yield read.value;
    return;
  }
  let buffer = new ArrayBuffer(READ_BYTES);
  for (let read = await reader.read(new Uint8Array(buffer)); !read.done; read = await reader.read(new Uint8Array(buffer))) {
    yield read.value; // used up before the next read takes its buffer back
    buffer = read.value.buffer;
  }
}

/** Turns given back to the page while a stream is read flat out: each one a task of the page's
 *  ordinary priority, queued behind every task already waiting (a timer, a fetch's answer, a
 *  draw). Not scheduler.yield(): Chromium runs its continuation ahead of every task of its
 *  priority, so while data waited nothing else ran (a timer or an `evaluate` waited 380-420 ms
 *  behind 400 ms of 10 ms slices chained so, 40-60 ms behind these, on a loaded machine). A
 *  MessageChannel rather than setTimeout(0), which browsers clamp to 4 ms once nested. */
class Turns {
  constructor() {
    this.waiting = [];
    this.channel = new MessageChannel();
    this.channel.port1.onmessage = () => this.waiting.shift()?.();
  }

  /** Resolves when the page has had its turn. */
  next() {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.channel.port2.postMessage(null);
    });
  }

  close() {
    this.channel.port1.close();
  }
}

/** One Server-Sent Events request: dispatches "open" once the answer is an event stream, each
 *  event as an SseEvent of its type, and "error" when the request fails or the stream ends.
 *  Unlike EventSource it never reconnects by itself; close() stops it for good. */
export class EventStream extends EventTarget {
  // EventSource's values.
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  /** `fetcher`: fetch() itself, or one that adds the page's credential. */
  constructor(url, fetcher = globalThis.fetch.bind(globalThis)) {
    super();
    this.readyState = EventStream.CONNECTING;
    this.aborter = new AbortController();
    this.fetcher = fetcher;
    this.read(url);
  }

  close() {
    this.readyState = EventStream.CLOSED;
    this.aborter.abort();
  }

  async read(url) {
    try {
      const response = await this.fetcher(url, {
        headers: { Accept: "text/event-stream" },
        cache: "no-store",
        signal: this.aborter.signal,
      });
      if (response.ok && response.headers.get("Content-Type")?.startsWith("text/event-stream")) {
        this.readyState = EventStream.OPEN;
        this.dispatchEvent(new Event("open"));
        const parser = new SseParser();
        const dispatch = (event) => this.readyState === EventStream.OPEN && this.dispatchEvent(event);
        let resumed = performance.now();
        const turns = new Turns();
        try {
          for await (const bytes of bodyBytes(response.body)) {
            parser.push(bytes, dispatch);
            if (this.readyState !== EventStream.OPEN) return;
            // Data already received is read without the page getting a turn in between, so a
            // burst would hold it for as long as it lasts. (A draw the events queued, as a
            // microtask, still comes first: the first line after a quiet spell waits for nothing.)
            if (performance.now() - resumed > SLICE_MS) {
              await turns.next();
              resumed = performance.now();
            }
          }
        } finally {
          turns.close();
        }
      }
    } catch {
      // a network error, or close() aborting the request: the stream is over either way
    }
    if (this.readyState === EventStream.CLOSED) return;
    this.close();
    this.dispatchEvent(new Event("error"));
  }
}
