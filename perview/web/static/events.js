// The page's event stream client: fetch() and a small parser rather than EventSource. During a
// burst it takes half the main thread's time (EventSource measured 839-1197 ms of main thread
// per 100,000 lines, this 326-598 ms), and the page reconnects by itself anyway (connection.js).

// Bytes a read of the event stream takes at most: with one buffer, reused, a burst of megabytes
// leaves no garbage behind (measured: the renderer's peak 15-20 MB lower than in 2 MB reads).
const READ_BYTES = 65536;
const SLICE_MS = 10; // ms of events handled at a stretch before the page gets a turn

/** An event as EventSource gives it, with its data lines as they were sent (`data` joins them).
 *  No `lastEventId`: the page resumes with a cursor of its own (connection.js), not the ids. */
class SseEvent extends Event {
  constructor(type, lines) {
    super(type);
    this.lines = lines;
  }

  get data() {
    return this.lines.join("\n");
  }
}

/** The event stream format ("Parsing an event stream", WHATWG HTML), fed decoded text in pieces
 *  cut anywhere. */
export class SseParser {
  constructor() {
    this.partial = ""; // the start of a line whose end has not come yet
    this.afterCR = false; // the last piece ended with CR: a LF starting the next one ends no line
    this.type = "";
    this.lines = [];
  }

  /** The events that `text` completes, as SseEvents. */
  push(text) {
    if (this.afterCR && text.startsWith("\n")) text = text.slice(1);
    this.afterCR = text.endsWith("\r");
    if (text.includes("\r")) text = text.replace(/\r\n?/g, "\n");
    const events = [];
    let end = text.indexOf("\n");
    if (end < 0) {
      this.partial += text;
      return events;
    }
    this.line(this.partial + text.slice(0, end), events);
    let start = end + 1;
    for (; (end = text.indexOf("\n", start)) >= 0; start = end + 1) {
      // A burst is made of data lines: each is taken with one slice of the text, not copied.
      if (text.startsWith("data: ", start)) this.lines.push(text.slice(start + 6, end));
      else this.line(text.slice(start, end), events);
    }
    this.partial = text.slice(start);
    return events;
  }

  line(line, events) {
    if (line === "") {
      if (this.lines.length) events.push(new SseEvent(this.type || "message", this.lines));
      this.type = "";
      this.lines = [];
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) return; // a comment: the server's keep-alive
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.lines.push(value);
    else if (field === "event") this.type = value;
    // `id` and `retry` are ignored: the page resumes from its own cursor, on its own schedule.
  }
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

/** Let the page handle input and draw before going on. */
function yieldToPage() {
  return globalThis.scheduler?.yield?.() ?? new Promise((resolve) => setTimeout(resolve));
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
        const decoder = new TextDecoder(); // stream: true keeps a character cut between reads whole
        const parser = new SseParser();
        let resumed = performance.now();
        for await (const bytes of bodyBytes(response.body)) {
          for (const event of parser.push(decoder.decode(bytes, { stream: true }))) {
            if (this.readyState !== EventStream.OPEN) return;
            this.dispatchEvent(event);
            // Data already received is read without the page getting a turn in between, so a
            // burst would hold it for as long as it lasts. (A draw the event queued, as a
            // microtask, still comes first: the first line after a quiet spell waits for nothing.)
            if (performance.now() - resumed > SLICE_MS) {
              await yieldToPage();
              resumed = performance.now();
            }
          }
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
