// The tab's line store and the panes' views, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LineStore, View, LINE, MARK } from "../../perview/web/static/store.js";

test("the store forgets the oldest lines past its capacity and keeps their columns", () => {
  const store = new LineStore(3);
  for (let i = 1; i <= 5; i++) store.push(`line ${i}`, i % 2 ? "a" : "b", i === 5 ? "web1" : "", i, 1000 * i, i === 4 ? MARK : LINE);
  assert.equal(store.first, 2);
  assert.equal(store.next, 5);
  assert.ok(!store.has(1) && store.has(2) && store.has(4) && !store.has(5));
  const slot = store.slot(4);
  assert.equal(store.text(4), "line 5");
  assert.equal(store.sources[store.source[slot]], "a");
  assert.equal(store.parts[store.part[slot]], "web1");
  assert.equal(store.timeOf(4), 5000);
  assert.equal(store.idOf(4), 5);
  assert.equal(store.idOf(3), 0); // a mark
  assert.equal(store.kind[store.slot(3)], MARK);
});

test("plain text is what filters see: no ANSI escapes", () => {
  const store = new LineStore(2);
  const seq = store.push("\x1b[31merror\x1b[0m: disk full", "a", "", 1, 0, LINE);
  assert.equal(store.plainText(seq), "error: disk full");
});

test("a view grows, trims what the store forgot, and reuses its space", () => {
  const view = new View();
  for (let seq = 0; seq < 5000; seq++) view.push(seq);
  assert.equal(view.length, 5000);
  assert.equal(view.trim(4000), 4000);
  assert.equal(view.at(0), 4000);
  for (let seq = 5000; seq < 9000; seq++) view.push(seq);
  assert.equal(view.length, 5000);
  assert.equal(view.at(4999), 8999);
  view.clear();
  assert.equal(view.length, 0);
});

test("each line keeps its level mark; a line pushed without one is an unclassified head", async () => {
  const { ERROR, HEAD, UNCLASSIFIED } = await import("../../perview/web/static/levels.js");
  const store = new LineStore(4);
  const a = store.push("Traceback", "a", "", 1, 0, LINE, ERROR);
  const b = store.push("plain", "a", "", 2, 0, LINE);
  assert.equal(store.level[store.slot(a)], ERROR);
  assert.equal(store.level[store.slot(b)], UNCLASSIFIED);
  assert.equal(UNCLASSIFIED & HEAD, HEAD);
});

test("a view takes seqs into their places and gives them up again", () => {
  const view = new View();
  for (const seq of [1, 2, 5, 9]) view.push(seq);
  view.insert([3, 4, 7]);
  assert.deepEqual(Array.from({ length: view.length }, (_, i) => view.at(i)), [1, 2, 3, 4, 5, 7, 9]);
  view.insert([10, 11]); // after the last: appended
  assert.equal(view.indexOf(7), 5);
  assert.equal(view.indexOf(8), 6); // where it would go
  assert.equal(view.remove(new Set([2, 3, 4, 11])), 4);
  assert.deepEqual(Array.from({ length: view.length }, (_, i) => view.at(i)), [1, 5, 7, 9, 10]);
  view.push(12);
  assert.equal(view.at(view.length - 1), 12);
});

test("lines cross no segment: each is whole in one, and the oldest segments go with their lines", async () => {
  const { SEGMENT_BYTES } = await import("../../perview/web/static/store.js");
  const store = new LineStore(3000);
  const long = "x".repeat(1000);
  for (let i = 0; i < 3000; i++) store.push(`${i} ${long}`, "a", "", i + 1, 0, LINE);
  assert.ok(store.segments.length > 1);
  for (const segment of store.segments) assert.ok(segment.used <= SEGMENT_BYTES);
  for (const seq of [0, 1047, 1048, 2999]) assert.equal(store.text(seq), `${seq} ${long}`);
  const before = store.segments.length;
  for (let i = 3000; i < 6000; i++) store.push(`${i} ${long}`, "a", "", i + 1, 0, LINE);
  assert.equal(store.first, 3000);
  assert.ok(store.segments.length <= before + 1);
  assert.ok(store.segments[0].first <= 3000 && store.segments[0].first + store.segments[0].count > 3000);
  assert.equal(store.text(3000), `3000 ${long}`);
});

test("a line longer than a segment gets a segment of its own", async () => {
  const { SEGMENT_BYTES } = await import("../../perview/web/static/store.js");
  const store = new LineStore(10);
  const huge = "y".repeat(SEGMENT_BYTES + 5);
  store.push("before", "a", "", 1, 0, LINE);
  store.push(huge, "a", "", 2, 0, LINE);
  store.push("after", "a", "", 3, 0, LINE);
  assert.deepEqual([store.text(0), store.text(1), store.text(2)], ["before", huge, "after"]);
});

test("text beyond Latin-1 reads back the same, read in order or not", () => {
  const store = new LineStore(100);
  const lines = ["plain", "caf\u00e9", "\u65e5\u672c\u8a9e", "", "emoji \u{1f600} end", "last"];
  for (const [i, text] of lines.entries()) store.push(text, "a", "", i + 1, 0, LINE);
  assert.deepEqual(lines.map((_, seq) => store.text(seq)), lines); // in order: decoded together
  assert.deepEqual([4, 2, 0].map((seq) => store.text(seq)), [lines[4], lines[2], lines[0]]);
  assert.deepEqual(Array.from(store.bytes(1)), [0x63, 0x61, 0x66, 0xc3, 0xa9]);
});

test("an event's lines go in as bytes, with their levels, ids and time; skipped ones do not", async () => {
  const { SseEvent } = await import("../../perview/web/static/events.js");
  const { ERROR, HEAD, INFO } = await import("../../perview/web/static/levels.js");
  const store = new LineStore(100);
  const event = SseEvent.of("lines", ['{"id": 7}', "seven", "eight \u00e9", "nine"]);
  const first = store.pushEvent(event, "a", "web1", 7, 5000, "IEe", 1);
  assert.equal(first, 0);
  assert.equal(store.next, 2);
  assert.deepEqual([store.text(0), store.text(1)], ["eight \u00e9", "nine"]);
  assert.deepEqual([store.idOf(0), store.idOf(1)], [8, 9]);
  assert.equal(store.timeOf(1), 5000);
  assert.deepEqual([store.level[0], store.level[1]], [ERROR | HEAD, ERROR]);
  store.push("a gap", "a", "", 0, 6000, MARK);
  store.pushEvent(SseEvent.of("lines", ['{"id": 10}', "ten"]), "a", "web1", 10, 7000, "I");
  assert.deepEqual([store.idOf(2), store.idOf(3), store.timeOf(2), store.timeOf(3)], [0, 10, 6000, 7000]);
  assert.equal(store.level[3], INFO | HEAD);
  assert.equal(store.parts[store.part[3]], "web1");
});

test("ids and times stay right as the oldest runs are forgotten", () => {
  const store = new LineStore(5);
  for (let i = 0; i < 20; i++) store.push(`l${i}`, "a", "", 100 + i, 1000 + Math.floor(i / 3), LINE);
  for (let seq = store.first; seq < store.next; seq++) {
    assert.equal(store.idOf(seq), 100 + seq);
    assert.equal(store.timeOf(seq), 1000 + Math.floor(seq / 3));
  }
  assert.ok(store.runs.length <= 3);
});

test("words are found in a line's bytes as in its plain text: any case, escapes and all", async () => {
  const { byteKinds } = await import("../../perview/web/static/store.js");
  const store = new LineStore(10);
  const texts = ["an ERROR here", "no match", "err\x1b[1mor split by colour", "x".repeat(50) + "Error", "caf\u00e9 error", "\u0130stanbul", "error \x1b[0m"];
  for (const [i, text] of texts.entries()) store.push(text, "a", "", i + 1, 0, LINE);
  const search = (seq, text, fold) => {
    const needle = new TextEncoder().encode(text);
    return store.includes(seq, needle, fold, byteKinds(needle, fold));
  };
  assert.deepEqual([0, 1, 3, 4].map((seq) => search(seq, "error", true)), [true, false, true, true]);
  assert.equal(search(2, "error", true), undefined); // an escape first: only the plain text tells
  assert.equal(search(6, "error", true), true); // found before the escape
  assert.deepEqual([0, 3].map((seq) => search(seq, "Error", false)), [false, true]);
  assert.equal(search(4, "caf\u00e9", false), true);
  assert.equal(search(5, "i", true), undefined); // its lower case holds an ASCII i
  assert.equal(search(5, "stan", false), true);
});

test("a view counts seqs from a base, and rebases when they pass four billion", () => {
  const view = new View();
  const far = 2 ** 40;
  view.push(far);
  view.push(far + 5);
  assert.deepEqual([view.at(0), view.at(1)], [far, far + 5]);
  view.trim(far + 1); // as the store forgets
  const later = far + 5 + 2 ** 32 - 10; // more than a Uint32 from the base: counted from a new one
  view.push(later);
  assert.deepEqual([view.length, view.at(0), view.at(1)], [2, far + 5, later]);
  view.insert([far + 6]);
  assert.deepEqual(Array.from({ length: view.length }, (_, i) => view.at(i)), [far + 5, far + 6, later]);
});

test("a search of many lines at once says what includes() says of each, across segments", async () => {
  const { byteKinds } = await import("../../perview/web/static/store.js");
  const store = new LineStore(5000);
  const pieces = ["an Error", "ERROR", "\u65e5\u672c", "err\x1b[1mor", "\u0130stanbul", "\u212a", "k", "x1", "error error", "eE-1", "xyZzy wRRong"];
  const { SseEvent } = await import("../../perview/web/static/events.js");
  for (let i = 0; i < 4000; i += 40) { // events of 40 lines, as they come
    const lines = Array.from({ length: 40 }, (_, j) => i + j).map(
      (n) => `${n} ${"y".repeat(n % 1500)} ${pieces[n % pieces.length]} ${n % 3 ? "" : pieces[(n * 7) % pieces.length]}`,
    );
    store.pushEvent(SseEvent.of("lines", ["{}", ...lines]), "a", "", i + 1, 0, undefined);
  }
  for (let i = 0; i < 1200; i++) store.push(`late ${i} error`, "a", "", 5000 + i, 0, LINE); // the oldest go
  assert.ok(store.segments.length > 2 && store.first > 0);
  for (const [word, fold] of [["error", true], ["ERROR", false], ["\u65e5\u672c", true], ["k", true], ["x1", false], ["i", true], ["e-1", true], ["n e", true], ["or e", true], ["wrrong", true], ["yzzy", true], ["rro", true]]) {
    const needle = new TextEncoder().encode(word);
    const kinds = byteKinds(needle, fold);
    for (const [from, to] of [[store.first, store.next], [store.first + 17, store.first + 1900], [store.next - 5, store.next]]) {
      const found = store.search(from, to, needle, fold);
      for (let seq = from; seq < to; seq++) {
        const one = store.includes(seq, needle, fold, kinds);
        // Both defer to the text where it has an escape or a folding character; search() by
        // the whole line (includes() may have found the word before it), never the other way.
        if (found[seq - from] === 2) assert.notEqual(one, false, `${word} ${seq}`);
        else assert.equal(found[seq - from] === 1, one, `${word} ${seq}: ${store.text(seq)}`);
      }
    }
  }
});

test("a search for letters alone finds them in any case, with its two rarest letters any distance apart", async () => {
  const { byteKinds } = await import("../../perview/web/static/store.js");
  const { SseEvent } = await import("../../perview/web/static/events.js");
  const store = new LineStore(20000);
  let seed = 7;
  const pick = (s) => s[(seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % s.length];
  // Few letters, so that needles of them are found often and everywhere in a word.
  const letters = "eEzZqQj ";
  for (let i = 0; i < 16000; i += 50) {
    const lines = Array.from({ length: 50 }, () => Array.from({ length: 1 + (seed % 37) }, () => pick(letters)).join(""));
    store.pushEvent(SseEvent.of("lines", ["{}", ...lines]), "a", "", i + 1, 0, undefined);
  }
  assert.ok(store.segments.length >= 1);
  for (const word of ["zq", "qz", "zeeq", "zeeeq", "zeeeeq", "zeeeeeeeq", "qeeeeeez", "jeeej", "eeez", "ze", "zzzzzz"]) {
    const needle = new TextEncoder().encode(word);
    const kinds = byteKinds(needle, true);
    for (const [from, to] of [[store.first, store.next], [store.first + 3, store.next - 2]]) {
      const found = store.search(from, to, needle, true);
      for (let seq = from; seq < to; seq++) {
        const expected = store.text(seq).toLowerCase().includes(word);
        if ((found[seq - from] === 1) !== expected) assert.fail(`${word} ${seq}: ${store.text(seq)}`);
        assert.equal(store.includes(seq, needle, true, kinds), expected);
      }
    }
  }
});

const seqsOf = (view) => Array.from({ length: view.length }, (_, i) => view.at(i));

test("a view of consecutive lines holds no list, however many it shows", () => {
  const view = new View();
  for (let seq = 7; seq < 1_000_007; seq++) view.push(seq);
  assert.equal(view.length, 1_000_000);
  assert.equal(view.seqs, null);
  assert.equal(view.at(999_999), 1_000_006);
  assert.equal(view.indexOf(7), 0);
  assert.equal(view.indexOf(500_000), 499_993);
  assert.equal(view.indexOf(2_000_000), 1_000_000);
  assert.equal(view.trim(10), 3);
  assert.equal(view.at(0), 10);
  assert.equal(view.seqs, null);
});

test("a view of consecutive lines keeps every seq when one is skipped, inserted or removed", () => {
  const skipped = new View();
  for (const seq of [3, 4, 5, 7, 8]) skipped.push(seq);
  assert.deepEqual(seqsOf(skipped), [3, 4, 5, 7, 8]);
  assert.equal(skipped.indexOf(6), 3);
  const inserted = new View();
  for (const seq of [3, 4]) inserted.push(seq);
  inserted.insert([1, 2]);
  assert.deepEqual(seqsOf(inserted), [1, 2, 3, 4]);
  inserted.insert([5, 6]);
  assert.deepEqual(seqsOf(inserted), [1, 2, 3, 4, 5, 6]);
  const removed = new View();
  for (let seq = 0; seq < 6; seq++) removed.push(seq);
  assert.equal(removed.remove(new Set([0, 2, 5])), 3);
  assert.deepEqual(seqsOf(removed), [1, 3, 4]);
  removed.push(9);
  assert.deepEqual(seqsOf(removed), [1, 3, 4, 9]);
  assert.equal(removed.trim(4), 2);
  assert.deepEqual(seqsOf(removed), [4, 9]);
  removed.clear();
  for (const seq of [20, 21]) removed.push(seq);
  assert.deepEqual(seqsOf(removed), [20, 21]);
  assert.equal(removed.seqs, null);
});

test("lines keep their source and part past the 256th of each, in columns of a byte a line until then", () => {
  const store = new LineStore(1000);
  assert.equal(store.source.BYTES_PER_ELEMENT + store.part.BYTES_PER_ELEMENT, 2);
  for (let i = 0; i < 300; i++) store.push(`line ${i}`, `source ${i}`, `part ${i}`, i + 1, 0, LINE);
  for (const seq of [0, 255, 256, 299]) {
    const slot = store.slot(seq);
    assert.equal(store.sources[store.source[slot]], `source ${seq}`);
    assert.equal(store.parts[store.part[slot]], `part ${seq}`);
  }
});

test("an escape or a folding character is noted wherever it falls, however lines are aligned", async () => {
  const { SseEvent } = await import("../../perview/web/static/events.js");
  const store = new LineStore(10000);
  const odd = ["\x1b[1m", "\u0130", "\u212a"];
  const expected = [];
  for (let pad = 0; pad < 9; pad++) { // events that start anywhere in a segment's words
    const lines = [];
    for (let at = 0; at < 14; at++) {
      for (const [i, char] of [...odd, ""].entries()) {
        lines.push("p".repeat(at) + char + "q".repeat(pad));
        expected.push(i); // 3: none
      }
    }
    store.pushEvent(SseEvent.of("lines", ["{}", ...lines]), "a", "", 1, 0, undefined);
  }
  const needle = new TextEncoder().encode("zz");
  const folded = store.search(store.first, store.next, needle, true);
  const exact = store.search(store.first, store.next, needle, false);
  for (let seq = store.first; seq < store.next; seq++) {
    const kind = expected[seq - store.first];
    assert.equal(folded[seq - store.first], kind < 3 ? 2 : 0, `${seq}: ${JSON.stringify(store.text(seq))}`);
    assert.equal(exact[seq - store.first], kind === 0 ? 2 : 0, `${seq}: ${JSON.stringify(store.text(seq))}`);
  }
});

test("lines in packed segments read, search and include as they were written", async () => {
  const { byteKinds, SEGMENT_BYTES } = await import("../../perview/web/static/store.js");
  const store = new LineStore(200_000);
  const line = (n) => `${n} ${n % 50 ? "INFO" : "ERROR"} ${n % 7 ? "x".repeat(80) : "\u65e5\u672c \x1b[1merr\x1b[0mor"}`;
  for (let n = 0; n < 150_000; n++) store.push(line(n), "a", "", n + 1, 0, LINE);
  const packed = store.segments.filter((segment) => segment.packed);
  assert.ok(packed.length >= 5, `${packed.length} packed`);
  assert.ok(packed.every((segment) => segment.bytes === null && segment.packed.length * 4 < SEGMENT_BYTES));
  assert.equal(store.segments.at(-1).packed, null); // the newest takes lines as they come
  // In order (decoded together), out of order (one by one), and back and forth between segments.
  for (let seq = 0; seq < 150_000; seq += 1) if (store.text(seq) !== line(seq)) assert.fail(`line ${seq}`);
  for (const seq of [149_999, 3, 70_001, 12, 70_002, 0]) assert.equal(store.text(seq), line(seq));
  const needle = new TextEncoder().encode("error");
  const kinds = byteKinds(needle, true);
  const found = store.search(0, 150_000, needle, true);
  for (let seq = 0; seq < 150_000; seq++) {
    const expected = seq % 7 === 0 ? 2 : seq % 50 === 0 ? 1 : 0; // 2: an escape, only the text can tell
    if (found[seq] !== expected) assert.fail(`search, line ${seq}: ${found[seq]}`);
    // includes() may find the word before an escape; search() defers the whole line to its text.
    const one = store.includes(seq, needle, true, kinds);
    if (expected === 2 ? one === false : one !== (expected === 1)) assert.fail(`includes, line ${seq}: ${one}`);
  }
  for (let n = 150_000; n < 400_000; n++) store.push(line(n), "a", "", n + 1, 0, LINE); // the oldest go
  assert.equal(store.text(store.first), line(store.first));
  assert.equal(store.text(399_999), line(399_999));
});

test("a segment that would not pack smaller is kept as it came", () => {
  const store = new LineStore(100_000);
  let seed = 3;
  const noise = () => Array.from({ length: 120 }, () => String.fromCharCode(33 + ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 94))).join("");
  const lines = Array.from({ length: 60_000 }, noise);
  for (const [i, text] of lines.entries()) store.push(text, "a", "", i + 1, 0, LINE);
  assert.ok(store.segments.length > 5 && store.segments.every((segment) => segment.packed === null));
  for (const seq of [0, 30_000, 59_999]) assert.equal(store.text(seq), lines[seq]);
  // What it holds is no more than its lines need once it is cooled, and nothing is kept to pack
  // with while no segment waits to be packed.
  const cooled = store.segments.slice(0, -2);
  assert.ok(cooled.every((segment) => segment.starts.length === segment.count));
  assert.equal(store.packing.length, 0);
  for (let seq = store.first; seq < store.next; seq++) if (store.text(seq) !== lines[seq]) assert.fail(`line ${seq}`);
});

test("lines of any length read back from packed segments, empty ones too", () => {
  const store = new LineStore(100_000);
  const sizes = [0, 1, 126, 127, 128, 300, 16_383, 16_384, 40_000];
  const line = (n) => (n % sizes.length ? `${n}:`.padEnd(sizes[n % sizes.length], "ab") : "");
  for (let n = 0; n < 2_000; n++) store.push(line(n), "a", "", n + 1, 0, LINE);
  assert.ok(store.segments.filter((segment) => segment.packed).length >= 3);
  for (const seq of [0, 1, 2, 3, 4, 5, 6, 7, 8, 1000, 1001, 1999]) assert.equal(store.text(seq), line(seq));
  for (let seq = 0; seq < 2_000; seq++) if (store.text(seq) !== line(seq)) assert.fail(`line ${seq}`);
});

test("segments of lines that repeat only in short runs are packed only while what a filter unpacks stays within its budget", async () => {
  const { SEQUENCES } = await import("../../perview/web/static/store.js");
  const store = new LineStore(800_000);
  let seed = 11;
  const digits = (n) => Array.from({ length: n }, () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 10).join("");
  // Packs in short runs: about 60,000 sequences a segment, 53 segments, more than the budget
  // packs.
  const line = () => `2026-12-03T${digits(6)} INFO request ${digits(10)} from 10.0.${digits(3)} took ${digits(4)} ms`;
  const lines = Array.from({ length: 800_000 }, line);
  for (const [i, text] of lines.entries()) store.push(text, "a", "", i + 1, 0, LINE);
  const packed = () => store.segments.filter((segment) => segment.packed);
  const held = () => packed().reduce((sum, segment) => sum + segment.sequences, 0);
  assert.ok(packed().length > 3 && packed().length < store.segments.length - 2, `${packed().length} of ${store.segments.length}`);
  assert.ok(held() <= SEQUENCES && held() > SEQUENCES * 0.8);
  for (const seq of [0, 400_000, 799_999]) assert.equal(store.text(seq), lines[seq]);
  // The oldest forgotten, their budget packs segments cooled since.
  const newest = store.segments.at(-3);
  for (let i = 0; i < 300_000; i++) store.push(line(), "a", "", 800_001 + i, 0, LINE);
  assert.ok(newest.packed === null || store.segments.includes(newest));
  assert.equal(store.sequences, held());
  assert.ok(held() <= SEQUENCES && packed().some((segment) => segment.first > newest.first));
});

test("in a page, segments are packed when it is idle, or in the read once too many wait", async () => {
  const asked = [];
  globalThis.requestIdleCallback = (callback, { timeout }) => asked.push({ callback, timeout });
  try {
    // A module of its own, which finds requestIdleCallback as a page's does.
    const { LineStore: PageStore, SEGMENT_BYTES } = await import("../../perview/web/static/store.js?idle");
    const store = new PageStore(1_000_000);
    const line = (n) => `${String(n).padStart(9, "0")} INFO ${"x".repeat(90)}`;
    const perSegment = Math.floor(SEGMENT_BYTES / 105);
    let n = 0;
    const fill = (segments) => {
      for (const stop = n + segments * perSegment; n < stop; n++) store.push(line(n), "a", "", n + 1, 0, LINE);
    };
    const packed = () => store.segments.filter((segment) => segment.packed).length;
    fill(5);
    assert.equal(packed(), 0); // the read packs nothing
    assert.equal(asked.length, 1); // one callback asked for, however many wait
    assert.ok(asked[0].timeout > 0);
    let calls = 0;
    asked.shift().callback({ didTimeout: false, timeRemaining: () => (calls++ < 2 ? 40 : 0) });
    assert.equal(packed(), 3); // while the page was idle; the rest at its next idle moment
    assert.equal(asked.length, 1);
    asked.shift().callback({ didTimeout: true, timeRemaining: () => 0 });
    assert.equal(packed(), store.segments.length - 2);
    fill(20); // a flood that never leaves the page idle: the read packs all but eight
    assert.equal(store.segments.length - 2 - packed(), 8);
    for (const seq of [0, perSegment * 3 + 7, n - 1]) assert.equal(store.text(seq), line(seq));
  } finally {
    delete globalThis.requestIdleCallback;
  }
});
