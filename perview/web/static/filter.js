// A pane's filter: which of its lines it shows. A substring test is linear in the line and runs
// as the lines arrive; a regular expression never runs on the page's main thread: `^(a+)+$` on
// forty a's and a b backtracks for hours, and a link can carry it (`?filter=...&regex=1`). It
// runs in a worker (filter-worker.js) that is ended when one batch takes longer than BUDGET_MS;
// the filter then stops, and every line is shown.

import { LINE, byteKinds } from "./store.js";
import { Entries } from "./entries.js";
import { NONE, levelOf, minimumOf } from "./levels.js";
import { parseQuery, termsTest } from "./fields.js";

// How long one batch may take before the pattern is called too slow and its worker is ended. A
// batch of ordinary lines takes a few ms (5,000 lines of 100 bytes: 1 to 10 ms from post to
// answer here); a pattern that needs more than this would lag a live log by as much each batch.
export const BUDGET_MS = 250;
// Lines (and characters) sent in one message: each message's cost stays small on both sides,
// and the budget measures the pattern on a bounded amount of text.
export const BATCH_LINES = 5000;
export const BATCH_CHARS = 1 << 20;
// How long the worker's script may take to load (a same-origin fetch, cached after the first)
// before the filter gives up on it and says so.
const LOAD_MS = 10000;

/** What the pane's filter settings ask for: null when nothing filters, {test(line, mark)} for a
 *  test the page runs itself (a substring, field terms: fields.js; for words alone, `bytes` and
 *  `fold` too, to look for them in a line's bytes: store.includes), or {regex: {source, flags},
 *  invert} for a pattern to run in a FilterWorker, with `fields` (and `invertAll`) when field
 *  terms go with it: those run here, on the worker's answer.
 *  Throws SyntaxError for a bad pattern (constructing a RegExp parses it; it does not run it). */
export function makeFilter({ text, regex, matchCase, invert }) {
  if (!text) return null;
  const query = parseQuery(text);
  const fields = query.terms.length ? termsTest(query.terms, matchCase) : null;
  const rest = query.text;
  if (regex && rest) {
    const re = new RegExp(rest, matchCase ? "" : "i");
    const pattern = { source: re.source, flags: re.flags };
    return fields ? { regex: pattern, invert: false, fields, invertAll: invert } : { regex: pattern, invert };
  }
  let words = null;
  if (rest && matchCase) {
    words = (line) => line.includes(rest);
  } else if (rest) {
    const needle = rest.toLowerCase();
    words = (line) => line.toLowerCase().includes(needle);
  }
  let test = words;
  if (fields) test = words ? (line, mark) => words(line) && fields(line, mark) : fields;
  const filter = { test: invert ? (line, mark) => !test(line, mark) : test, invert: Boolean(invert) };
  // Words alone (the usual filter) are looked for in a line's bytes, not decoded (Node, a
  // million lines, one in ten beyond Latin-1: about a third of the time of decoding each and
  // lowering its case). Without case, only if its letters are ASCII: others' cases differ in
  // more than one bit.
  if (words && !fields && !rest.includes("\x1b") && (matchCase || uncased(rest))) {
    filter.bytes = encoder.encode(matchCase ? rest : rest.toLowerCase());
    filter.fold = !matchCase;
    filter.kinds = byteKinds(filter.bytes, filter.fold);
  }
  return filter;
}

/** Whether `text` has no letters with a case but ASCII ones (which a byte search folds). */
function uncased(text) {
  for (const char of text) if (char > "\x7f" && char.toLowerCase() !== char.toUpperCase()) return false;
  return true;
}

const encoder = new TextEncoder();

export const TOO_SLOW = "this pattern is too slow on these lines: stopped, every line shown";

/** The pattern ran past BUDGET_MS on one batch; its worker was ended. */
export class TooSlow extends Error {}

/** A request that was given up (`cancel`) before its answer came. */
export class Cancelled extends Error {}

/** A worker that runs a regex filter over batches of lines, started on first use, ended (and
 *  started again on next use) when a batch runs past BUDGET_MS or a request is cancelled. */
export class FilterWorker {
  constructor(spawn = () => new Worker(new URL("./filter-worker.js", import.meta.url))) {
    this.spawn = spawn; // makes the Worker (a test gives a stand-in)
    this.worker = null;
    this.ready = null; // resolves once the worker script has loaded
    this.request = null; // {id, resolve, reject, timer} while a batch is out
    this.nextId = 1;
  }

  /** Resolves with a Uint8Array: 1 for each of `texts` that passes `filter` (from makeFilter).
   *  Rejects with TooSlow after BUDGET_MS, with Cancelled after `cancel()`, with an Error if the
   *  worker cannot start. One request at a time. */
  async test(filter, texts) {
    if (this.request) throw new Error("one filter request at a time");
    const { worker, ready } = this.start();
    const id = this.nextId++;
    const answer = new Promise((resolve, reject) => {
      this.request = { id, resolve, reject, timer: null };
    });
    const request = this.request;
    request.timer = setTimeout(() => this.end(new Error("the filter's worker did not load")), LOAD_MS);
    ready.then(
      () => {
        if (this.request !== request) return;
        // The budget counts from the post: loading the script is not the pattern's time.
        clearTimeout(request.timer);
        request.timer = setTimeout(() => this.end(new TooSlow("too slow")), BUDGET_MS);
        worker.postMessage({ id, ...filter.regex, invert: Boolean(filter.invert), texts });
      },
      (error) => this.request === request && this.end(error),
    );
    return answer;
  }

  /** Give up the request in flight, if any (its worker is ended: it may be stuck). */
  cancel() {
    if (this.request) this.end(new Cancelled("cancelled"));
  }

  /** End the worker, and with it any request in flight. */
  stop() {
    this.end(new Cancelled("stopped"));
  }

  /** Start the worker if it is not running (`test` does too); returns it and its readiness. */
  start() {
    if (!this.worker) {
      const worker = this.spawn();
      this.worker = worker;
      this.ready = new Promise((resolve, reject) => {
        worker.onmessage = ({ data }) => {
          if (data.ready) resolve();
          else this.answered(data);
        };
        worker.onerror = (event) => {
          event.preventDefault();
          const error = new Error(`the filter failed: ${event.message || "its worker did not load"}`);
          reject(error);
          if (this.worker === worker) this.end(error);
        };
      });
      this.ready.catch(() => {}); // reported through the request
    }
    return { worker: this.worker, ready: this.ready };
  }

  answered({ id, keep }) {
    const request = this.request;
    if (!request || request.id !== id) return;
    clearTimeout(request.timer);
    this.request = null;
    request.resolve(keep);
  }

  end(error) {
    const request = this.request;
    this.request = null;
    this.worker?.terminate();
    this.worker = null;
    if (request) {
      clearTimeout(request.timer);
      request.reject(error);
    }
  }
}

/** The filter of one pane. Lines are offered in order and shown to the pane, in the same order,
 *  when they pass: at once for a substring filter, once the worker answers for a pattern (lines
 *  and marks wait in one queue meanwhile, so a mark keeps its place). A line below the pane's
 *  minimum level never passes; one that passes shows its whole entry (entries.js). The pane
 *  provides what Entries needs, and `firstHeld()` (the oldest seq it may still show),
 *  `settled()` (after the worker's lines were shown) and `note(text)` (why the filter is not
 *  filtering; "": it is).
 */
export class LineFilter {
  constructor(store, pane, worker = new FilterWorker()) {
    this.store = store;
    this.pane = pane;
    this.filter = null; // from makeFilter
    this.worker = worker;
    this.pending = []; // seqs waiting for the worker, from pendingHead on
    this.pendingHead = 0;
    this.generation = 0; // bumped whenever the filter changes: older answers are dropped
    this.pumping = -1; // the generation whose batches are being sent
    this.stopped = false; // the pattern ran past its budget: every line is shown until it changes
    this.minimum = NONE; // the lowest level shown
    this.entries = new Entries(store, pane);
    this.searched = null; // {from, found}: what prepare() found, a byte a line
  }

  /** Whether lines are being filtered (not: no filter, a bad pattern, or stopped). */
  get filtering() {
    return (Boolean(this.filter) && !this.stopped) || this.minimum > NONE;
  }

  /** Filter with `settings` from now on; the pane offers its lines again. */
  set(settings) {
    this.generation++;
    this.worker.cancel(); // its answer would be for the old filter, and it may be stuck
    this.pending = [];
    this.pendingHead = 0;
    this.stopped = false;
    this.minimum = minimumOf(settings.level ?? "");
    this.entries.reset();
    try {
      this.filter = makeFilter(settings);
      this.pane.note("");
    } catch (error) {
      this.filter = null;
      this.pane.note(error.message);
    }
    // Started now, not with the first batch: loading it took 90 ms, on the first line's way.
    if (this.filter?.regex) this.worker.start();
    else this.worker.stop();
  }

  /** Lines `from` .. `to` - 1 are about to be offered (all a pane holds, when its filter
   *  changed): words are looked for in all of them at once (store.search), not line by line. */
  prepare(from, to) {
    const filter = this.filter;
    this.searched = filter?.bytes && to > from ? { from, found: this.store.search(from, to, filter.bytes, filter.fold) } : null;
  }

  /** The lines prepared for have been offered. */
  prepared() {
    this.searched = null;
  }

  /** A line or mark of the pane's sources, in order. */
  offer(seq) {
    const store = this.store;
    const slot = store.slot(seq);
    const isLine = store.kind[slot] === LINE;
    if (isLine && levelOf(store.level[slot]) < this.minimum) return;
    if (this.filter?.regex && !this.stopped) {
      this.pending.push(seq);
      return;
    }
    const filter = this.filter;
    if (!isLine || !filter?.test) {
      this.entries.offer(seq, true);
      return;
    }
    const searched = this.searched;
    let found;
    if (searched && seq >= searched.from && seq < searched.from + searched.found.length) {
      const said = searched.found[seq - searched.from];
      found = said === 2 ? undefined : said === 1;
    } else if (filter.bytes) {
      found = store.includes(seq, filter.bytes, filter.fold, filter.kinds);
    }
    const passes = found === undefined ? filter.test(store.plainText(seq), store.level[slot]) : found !== filter.invert;
    this.entries.offer(seq, passes);
  }

  /** Send what waits to the worker, a batch at a time, and show what it keeps. */
  async pump() {
    const generation = this.generation;
    if (this.pumping === generation || !this.filter?.regex || this.stopped) return;
    this.pumping = generation;
    try {
      while (generation === this.generation && this.pendingHead < this.pending.length) {
        const batch = this.takeBatch();
        let keep;
        try {
          keep = batch.texts.length ? await this.worker.test(this.filter, batch.texts) : null;
        } catch (error) {
          if (generation === this.generation) this.failed(error, batch);
          return;
        }
        if (generation !== this.generation) return;
        this.accept(batch, keep);
      }
    } finally {
      if (this.pumping === generation) this.pumping = -1;
    }
  }

  destroy() {
    this.generation++;
    this.worker.stop();
  }

  /** The next waiting seqs still held: {seqs, isLine, texts (of those that are lines)}. */
  takeBatch() {
    const store = this.store;
    const first = this.pane.firstHeld();
    const batch = { seqs: [], isLine: [], texts: [] };
    let chars = 0;
    while (this.pendingHead < this.pending.length && batch.texts.length < BATCH_LINES && chars < BATCH_CHARS) {
      const seq = this.pending[this.pendingHead++];
      if (seq < first) continue;
      const isLine = store.kind[store.slot(seq)] === LINE;
      batch.seqs.push(seq);
      batch.isLine.push(isLine);
      if (isLine) {
        const text = store.plainText(seq);
        batch.texts.push(text);
        chars += text.length;
      }
    }
    if (this.pendingHead === this.pending.length || this.pendingHead > 4 * BATCH_LINES) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    return batch;
  }

  accept(batch, keep) {
    const first = this.pane.firstHeld(); // the store may have moved on while the worker ran
    const { fields, invertAll } = this.filter;
    let j = 0;
    for (let i = 0; i < batch.seqs.length; i++) {
      const seq = batch.seqs[i];
      const isLine = batch.isLine[i];
      let passes = !isLine || keep[j] === 1;
      if (isLine && fields) passes = (passes && fields(batch.texts[j], this.store.level[this.store.slot(seq)])) !== invertAll;
      if (isLine) j++;
      if (seq >= first) this.entries.offer(seq, passes);
    }
    this.pane.settled();
  }

  failed(error, batch) {
    if (error instanceof Cancelled) return;
    this.stopped = true;
    this.pane.note(error instanceof TooSlow ? TOO_SLOW : error.message);
    // The batch that was out and every line behind it are shown as they are, in order.
    const waiting = [...batch.seqs, ...this.pending.slice(this.pendingHead)];
    this.pending = [];
    this.pendingHead = 0;
    const first = this.pane.firstHeld();
    for (const seq of waiting) if (seq >= first) this.offer(seq);
    this.pane.settled();
  }
}
