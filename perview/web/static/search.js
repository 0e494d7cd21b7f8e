// History as the page asks for it and reads it back: the addresses of a search, of a time range
// and of a file's lines around a result, the JSON-lines stream they answer with (read as it comes, cut anywhere), where a
// query matches in a line, and the words for what the server says besides lines. Pure: a Node
// test imports it without a browser.

import { plain } from "./ansi.js";

/** The range picker's choices; a preset is relative, so the server's clock decides "now". */
export const RANGES = { "15m": "last 15 min", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", all: "any time", custom: "from … to …" };

/** The range a search starts with, for sources whose `histories` (as api/sources says them) are
 *  searched: any time when a file is among them, else the last hour. A file has no arrival
 *  times, so a range only skips its rotated siblings whole, by modification time: the last hour
 *  would leave out yesterday's app.log.1, which whoever searches a log means to search. */
export function defaultRange(histories) {
  return histories.includes("file") ? "all" : "1h";
}
export const AROUND_SECONDS = 120; // a chart's moment: the logs this long before and after it
export const CONTEXT_SECONDS = 60; // a result's surroundings are looked for this far each side ...
export const CONTEXT_LINES = 25; // ... and this many lines of them shown each side
export const SOURCE_LINES = 5000; // a source's lines in a moment's view, at most (a chatty one)

/** `since` and `until` for the server: `choice` is a key of RANGES; `custom` takes `from` and
 *  `to`, the values of two datetime-local inputs (this browser's local time). Throws an Error
 *  that says what is wrong with a custom range. */
export function rangeParams(choice, { from = "", to = "" } = {}) {
  if (choice !== "custom") {
    if (!(choice in RANGES)) throw new Error(`no range ${choice}`);
    return choice === "all" ? {} : { since: `-${choice}` };
  }
  const since = from ? Date.parse(from) / 1000 : NaN;
  const until = to ? Date.parse(to) / 1000 : NaN;
  if (!Number.isFinite(since)) throw new Error("choose when the range starts");
  if (to && !Number.isFinite(until)) throw new Error("the end of the range is not a time");
  if (Number.isFinite(until) && until < since) throw new Error("the range ends before it starts");
  return Number.isFinite(until) ? { since: String(since), until: String(until) } : { since: String(since) };
}

/** The address of a search, as JSON lines, newest first. `sources`: empty for all recorded. */
export function searchUrl({ q, sources = [], range = { since: "-15m" }, order = "newest", limit = 1000, context = 0 }) {
  const params = new URLSearchParams({ q, format: "json", order, limit: String(limit) });
  for (const name of sources) params.append("source", name);
  for (const [key, value] of Object.entries(range)) params.set(key, value);
  if (context) params.set("context", String(context));
  return `api/search?${params}`;
}

/** The address of a recorded source's lines from `since` to `until` (epoch seconds), as JSON. */
export function historyUrl(name, since, until) {
  const params = new URLSearchParams({ since: String(since), until: String(until), format: "json" });
  return `api/sources/${encodeURIComponent(name)}/history?${params}`;
}

/** The address of the lines around a file source's result (a `from: "file"` record): `context`
 *  lines each side of it in its file, as JSON. */
export function fileLinesUrl(record, context = CONTEXT_LINES) {
  const params = new URLSearchParams({ file: record.file, line: String(record.line), context: String(context), format: "json" });
  if (record.part) params.set("part", record.part);
  return `api/sources/${encodeURIComponent(record.source)}/history?${params}`;
}

/** Where a file source's line is: "app.log.2.gz:11" (the file's name without its directory). */
export function fileWhere(record) {
  return `${record.file.slice(record.file.lastIndexOf("/") + 1)}:${record.line}`;
}

/** JSON lines from bytes that come in chunks cut anywhere (inside a record, inside a UTF-8
 *  character): `push(chunk)` returns the records completed by it, `finish()` the last one, if the
 *  stream ended without a newline. A line that is not JSON becomes `{type: "invalid", text}`. */
export class JsonLines {
  constructor() {
    this.decoder = new TextDecoder();
    this.rest = "";
  }

  push(chunk) {
    const text = this.rest + this.decoder.decode(chunk, { stream: true });
    const end = text.lastIndexOf("\n");
    if (end < 0) {
      this.rest = text;
      return [];
    }
    this.rest = text.slice(end + 1);
    return parseLines(text.slice(0, end));
  }

  finish() {
    const text = this.rest + this.decoder.decode();
    this.rest = "";
    return text ? parseLines(text) : [];
  }
}

function parseLines(text) {
  const records = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      records.push(JSON.parse(line));
    } catch {
      records.push({ type: "invalid", text: line });
    }
  }
  return records;
}

/** The records of a JSON-lines response, as they arrive, in batches: `for await (const batch of
 *  recordsOf(response))`. Leaving the loop cancels the rest of the body. */
export async function* recordsOf(response) {
  const reader = response.body.getReader();
  const lines = new JsonLines();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const batch = lines.push(value);
      if (batch.length) yield batch;
    }
    const last = lines.finish();
    if (last.length) yield last;
  } finally {
    reader.cancel().catch(() => {}); // a no-op once the body has ended
  }
}

/** Where `q` (a search's query) matches in `text`: [[start, end], ...] in order, none
 *  overlapping. A substring matches with its case; `re:` is RE2 on the server, taken as a
 *  JavaScript pattern here (the same for the patterns people write); one JavaScript does not
 *  take is not highlighted. */
export function matchesOf(q, text) {
  const found = [];
  if (!q) return found;
  if (!q.startsWith("re:")) {
    for (let at = text.indexOf(q); at >= 0; at = text.indexOf(q, at + q.length)) found.push([at, at + q.length]);
    return found;
  }
  let pattern = q.slice(3);
  let flags = "g";
  const inline = /^\(\?([ims]+)\)/.exec(pattern); // RE2's leading flags; JavaScript has its own
  if (inline) {
    pattern = pattern.slice(inline[0].length);
    flags += [...new Set(inline[1])].join("");
  }
  let re;
  try {
    re = new RegExp(pattern, flags);
  } catch {
    return found;
  }
  for (const m of text.matchAll(re)) {
    if (m[0].length) found.push([m.index, m.index + m[0].length]);
    if (found.length >= 1000) break; // enough to see where it matched
  }
  return found;
}

/** A line's text as the results show it: without escape sequences, so that a match's place is
 *  that of the text the server searched, less the colours. */
export function shownText(record) {
  return plain(record.text);
}

/** The words for what is not a line: a gap, a damaged block, a state change. */
export function markerText(record) {
  const who = record.part ? `${record.source}/${record.part}` : record.source;
  const span = `from ${record.from} to ${record.to}`;
  if (record.type === "gap") return `${who}: ${record.count.toLocaleString("en")} lines not recorded (${span})`;
  if (record.type === "damaged") return `${who}: ${record.count.toLocaleString("en")} lines unreadable (${span}): ${record.reason}`;
  if (record.type === "event") return `${who}: ${record.text}`;
  if (record.type === "skipped") return `${who}: not searched: ${record.reason}`;
  return `${record.text ?? ""}`;
}

/** The search's progress line, from a `progress` or `total` record. */
export function progressText(record) {
  const matches = `${record.matches.toLocaleString("en")} ${record.matches === 1 ? "match" : "matches"}`;
  if (record.type === "progress") return `searching: ${matches}, ${record.blocks.toLocaleString("en")} of ${record.of.toLocaleString("en")} blocks`;
  const stopped = record.complete ? "" : " (stopped at the limit: narrow the range or the query)";
  const far = record.received ? ` (${record.received.toLocaleString("en")} bytes back from hosts)` : "";
  return `${matches}${stopped}; ${record.blocks.toLocaleString("en")} blocks, ${record.bytes.toLocaleString("en")} bytes${far} in ${record.seconds} s`;
}

/** Several sources' records, each list in time order, as one list in time order (a source's own
 *  order kept where times are equal, and the earlier list first). */
export function mergeByTime(lists) {
  const tagged = lists.flatMap((list, which) => list.map((record, i) => ({ record, which, i })));
  tagged.sort((a, b) => timeOf(a.record) - timeOf(b.record) || a.which - b.which || a.i - b.i);
  return tagged.map((t) => t.record);
}

function timeOf(record) {
  if (record.at !== undefined) return record.at;
  return Date.parse(record.from ?? "") / 1000 || 0;
}

/** The lines around one line of a time-ordered stream: at most `before` lines before it and
 *  `after` after (markers between them kept). `push(record)` says whether it has enough. */
export class Around {
  constructor(target, before = CONTEXT_LINES, after = CONTEXT_LINES) {
    this.target = target;
    this.before = before;
    this.after = after;
    this.records = [];
    this.found = false;
    this.left = after;
  }

  static same(a, b) {
    return a.type === "line" && a.source === b.source && (a.part ?? null) === (b.part ?? null) && a.line === b.line;
  }

  push(record) {
    if (this.found) {
      this.records.push(record);
      if (record.type === "line") this.left--;
      return this.left <= 0;
    }
    this.records.push(record);
    if (Around.same(record, this.target)) {
      this.found = true;
      this.index = this.records.length - 1;
      return this.left <= 0;
    }
    // Keep `before` lines (and the markers among them) before the target.
    let lines = 0;
    for (let i = this.records.length - 1; i >= 0; i--) {
      if (this.records[i].type === "line" && ++lines > this.before) {
        this.records.splice(0, i + 1);
        break;
      }
    }
    return false;
  }
}
