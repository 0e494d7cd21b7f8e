// The lines a tab holds: one ring in columns (no object per line), and per-pane views that list
// which of them a pane shows. Memory is bounded by the ring's capacity, whatever the panes do.
//
// A line's text is kept as the UTF-8 bytes it came as, in segments of SEGMENT_BYTES, and decoded
// only when it is drawn, filtered or saved. As JS strings, a million lines of 100 bytes held 2.3
// times their text: a string per line (20 bytes and allocator rounding), and a whole read decoded
// two bytes a character as soon as it held one character beyond Latin-1. Here a line costs its
// bytes and a LF, where it starts (4 bytes while its segment is among the newest, a packed varint
// after), a byte of level, a byte each of source, part and kind where they are not 0 (columns
// never written cost nothing: the kernel's zero page), and 4 in each view that filters it (none in
// a view that shows every line); its id and arrival time are kept once for the lines of one event
// (Runs). Segments but the newest few are packed (pack.js): logs repeat themselves, and a million
// of the burst benchmark's lines hold 5 MB of text instead of 100, and 1 MB of columns, not 8.

import { plain } from "./ansi.js";
import { UNCLASSIFIED, markAt } from "./levels.js";
import { pack, packBound, unpack } from "./pack.js";

export const LINE = 0;
export const MARK = 1; // something Perview says: a gap, an exit status, a restart

// Bytes a segment of text holds: large enough that one decode of a segment's lines serves a
// scan of thousands (a filter over the whole tab), small enough that what is freed with the
// oldest lines comes back soon.
export const SEGMENT_BYTES = 1 << 20;
// Lines decoded at once when lines are read in order (a filter, a download): one decode and one
// split instead of one decode per line.
const DECODE_LINES = 4096;
// Segments kept as they came, the newest ones; older ones are packed (pack.js). Lines are added
// to the newest, and drawn and followed near it (a screen of lines is a few KB, a segment 1 MiB):
// the one before is kept so that lines just sealed in it draw without unpacking. A filter over
// the whole tab unpacks the rest one at a time into UNPACKED reused buffers (a million of the
// burst's lines: 96 segments, 25 ms in Node).
const HOT_SEGMENTS = 2;
const UNPACKED = 2; // a scan of one segment while lines of another are drawn
// A segment is packed only where it saves at least a quarter of its bytes (not noise, or text
// already compressed), and while the sequences (pack.js) of every packed segment held stay
// within SEQUENCES: a filter over the whole tab unpacks them all, and what that costs grows with
// the sequences (26-48 ns each in Node, loaded, with the bytes they copy). The burst benchmark's
// lines pack into sequences of 99 bytes (a million lines: 975,000 sequences, 28-37 ms), logs
// that repeat little into far shorter ones (the corpus content of bench/browser_burst.py: 31
// bytes, 33,500 a MiB): those are packed as far as the budget goes (71 segments of 91: their
// million's text held in 52.3 MB instead of 94), the older first, and segments cooled while it
// is spent stay as they are. Each 100,000 sequences more hold that million in 2.2 MB less of
// the renderer (RSS, bench/browser_burst.py --content corpus) and cost a filter over it 5-10 ms
// more (Chromium; its first filter, before its code is optimized, is the slowest: 214 ms here
// against 225 for 2,000,000 and the search before markFolded, medians of 3 alternated; later
// ones 192 against 167). 2,400,000 rather than 2,000,000 (59 segments, 59.6 MB): the corpus
// million 1.25 -> about 1.16 times its text above blank; 3,100,000 (all 89) gave 1.04 at 240-310
// ms for the first 'ERROR' against 199-275.
const WORTH_PACKING = 0.75;
export const SEQUENCES = 2_400_000;
// Segments are packed when the page is idle (requestIdleCallback), not while a burst is read: a
// 10 MB burst packs 10 of them, 40-100 ms of the renderer on its way to the screen. At most
// PACK_WITHIN_MS later, one a turn; and at once, in the read, once COOLING_MAX wait (a flood
// that never leaves the page idle).
const PACK_WITHIN_MS = 1000;
const COOLING_MAX = 8;
const idleCallback = globalThis.requestIdleCallback?.bind(globalThis); // none in Node: at once
const LF = 10;

const NOTHING = new Uint8Array(0);
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Lines' bytes, each followed by LF, for seqs first .. first + count - 1, and where each starts
 *  (`starts`); once cold, both packed (`packed`, `lengths`; `bytes` and `starts` null). Read them
 *  with LineStore.open(). */
class Segment {
  constructor(bytes, first) {
    this.bytes = bytes;
    this.starts = new Uint32Array(1024);
    this.packed = null;
    this.lengths = null; // each line's length with its LF, as varints, packed
    this.sequences = 0; // what unpacking `packed` costs (pack.js)
    this.used = 0;
    this.first = first;
    this.count = 0;
    this.odd = [[], [], []]; // where each of ODD_BYTES first is in a line, in order (noteOdd)
  }
}

const ESC = 0x1b;
const SAME = Uint8Array.from({ length: 256 }, (_, b) => b);
const LOWER = SAME.map((b) => (b >= 0x41 && b <= 0x5a ? b + 0x20 : b));
const UPPER = SAME.map((b) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b));
const FIRST = 1; // kinds of byte in a search: the needle's first byte
const ODD = 2; // the start of what only the text can tell: an escape, U+0130 or U+212A folded
// What only a line's text can tell: an escape (plain text drops it), and, in any case, U+0130
// and U+212A (İ and the Kelvin sign, whose lower case is ASCII).
const ODD_BYTES = [[ESC], [0xc4, 0xb0], [0xe2, 0x84, 0xaa]];

/** Where in bytes[start, end) `needle` is, each byte mapped by `map` first: >= 0 if it is, -1 if
 *  it is not, -2 if the bytes cannot tell (an ODD byte came before any match). `kinds` says
 *  which bytes are FIRST or ODD. */
function find(bytes, start, end, needle, map, kinds) {
  const n = needle.length;
  const last = end - n;
  outer: for (let i = start; i < end; i++) {
    const kind = kinds[bytes[i]];
    if (kind === 0) continue;
    if (kind & ODD && odd(bytes, i, map === LOWER)) return -2;
    if (!(kind & FIRST) || i > last) continue;
    for (let k = 1; k < n; k++) if (map[bytes[i + k]] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

function odd(bytes, i, fold) {
  const b = bytes[i];
  if (b === ESC) return true;
  if (!fold) return false;
  return b === 0xc4 ? bytes[i + 1] === 0xb0 : bytes[i + 1] === 0x84 && bytes[i + 2] === 0xaa;
}

/** Note where in `segment`'s bytes from `start` to `end` what only the text can tell (ODD)
 *  starts: an escape, or U+0130 or U+212A (whose lower case is ASCII). Found as lines come
 *  (native scans, about 12 ms a 10 MB burst in Node) rather than all at once by the first
 *  filter (about 120 ms over a million lines). */
function noteOdd(segment, start, end) {
  start = firstOddByte(segment.bytes, start, end); // nothing before it can start one
  if (start < 0) return;
  const bytes = segment.bytes.subarray(start, end);
  const found = (sequence, into) => {
    for (let at = bytes.indexOf(sequence[0]); at >= 0; at = bytes.indexOf(sequence[0], at + 1)) {
      if (!sequence.every((b, i) => bytes[at + i] === b)) continue;
      into.push(start + at);
      // One a line is enough: a coloured log costs 4 bytes a line here, not 4 an escape.
      at = bytes.indexOf(LF, at);
      if (at < 0) break;
    }
  };
  ODD_BYTES.forEach((sequence, i) => found(sequence, segment.odd[i]));
}

const ODD_FIRST = new Uint8Array(256);
for (const sequence of ODD_BYTES) ODD_FIRST[sequence[0]] = 1;

/** Where in bytes[start, end) the first byte that may start one of ODD_BYTES is, or -1. Four
 *  bytes at a time: most logs have none, and a typed array's indexOf() is a plain loop in V8,
 *  not memchr (Node, 10 MB of the burst's lines, a loaded machine: 18-21 ms here against 60-76
 *  for noteOdd's three indexOf() passes). */
function firstOddByte(bytes, start, end) {
  let i = start;
  for (; i < end && (bytes.byteOffset + i) & 3; i++) if (ODD_FIRST[bytes[i]]) return i;
  const count = (end - i) >> 2;
  const words = count ? new Uint32Array(bytes.buffer, bytes.byteOffset + i, count) : [];
  for (let k = 0; k < count; k++) {
    const w = words[k];
    const x = w ^ 0x1b1b1b1b; // a zero byte where w has an escape
    if ((((x - 0x01010101) & ~x) | w) & 0x80808080) {
      for (let j = i + 4 * k; j < i + 4 * k + 4; j++) if (ODD_FIRST[bytes[j]]) return j;
    }
  }
  for (i += 4 * count; i < end; i++) if (ODD_FIRST[bytes[i]]) return i;
  return -1;
}

/** Mark in `out` (out[i - a] = 1) each line i of lines a .. b - 1 whose bytes hold `needle` (lower
 *  case letters), in any case: looked for where its letter `k` (the anchor) and its letter `j`
 *  are, both. Lines start at `starts` (the last ends at `used`); `words` is a Uint32Array of
 *  `bytes`' whole buffer. The anchor is looked for four places at a time, and where it is, the
 *  other letter in the same four places (`j - k` on, shifted in from aligned words): the anchor
 *  alone stops at every `e` of "error" (a million of the corpus's lines: 10 million stops,
 *  550-970 ms in Node), the pair at a few. One call a segment, lines counted as it goes, not a
 *  call and two closures a stop: the first filter of a page runs while its code is not yet
 *  optimized, and a long loop is optimized within its call (the corpus million's 'error' in the
 *  renderer, the first filter of a page: 219 ms against 234, 184-235 against 178-357; medians
 *  of 8 alternated, a loaded machine; later ones 125-162 either way). */
function markFolded(bytes, words, starts, count, used, a, b, needle, k, j, out) {
  const n = needle.length;
  const low = a < count ? starts[a] : used;
  const high = b < count ? starts[b] : used;
  const first = low + k; // where the anchor may be, to `last`
  const last = high - n + k;
  const anchor = needle[k];
  const pattern = Math.imul(anchor, 0x01010101);
  const second = Math.imul(needle[j], 0x01010101);
  const secondFold = LOWER[needle[j]] !== UPPER[needle[j]] ? 0x20202020 : 0;
  const skip = (j - k) >> 2; // words from the anchor's to the other letter's
  const shift = 8 * ((j - k) & 3); // and bits
  let line = a;
  let lineEnd = a + 1 < count ? starts[a + 1] : used;
  // Words whose other letter's places (up to the next word) are in the buffer; the rest by byte.
  // A match is checked and its line marked inline, in both loops: a closure or a call for it
  // made the first filter as slow as before, and later ones slower (200 ms against 170).
  const lastWord = Math.min(last >> 2, words.length - skip - 2);
  let w = first >> 2;
  for (; w <= lastWord; w++) {
    const x = (words[w] | 0x20202020) ^ pattern; // a zero byte where the anchor is
    const anchors = (x - 0x01010101) & ~x & 0x80808080;
    if (anchors === 0) continue;
    const pair = (words[w + skip] >>> shift) | ((words[w + skip + 1] << (31 - shift)) << 1);
    const y = (pair | secondFold) ^ second;
    if ((anchors & (y - 0x01010101) & ~y) === 0) continue;
    for (let q = Math.max(4 * w, first); q <= 4 * w + 3 && q <= last; q++) {
      if ((bytes[q] | 0x20) !== anchor) continue;
      let t = 0;
      while (t < n && LOWER[bytes[q - k + t]] === needle[t]) t++;
      if (t < n) continue;
      while (lineEnd <= q - k) lineEnd = ++line + 1 < count ? starts[line + 1] : used;
      out[line - a] = 1;
    }
  }
  for (let q = Math.max(4 * w, first); q <= last; q++) {
    if ((bytes[q] | 0x20) !== anchor) continue;
    let t = 0;
    while (t < n && LOWER[bytes[q - k + t]] === needle[t]) t++;
    if (t < n) continue;
    while (lineEnd <= q - k) lineEnd = ++line + 1 < count ? starts[line + 1] : used;
    out[line - a] = 1;
  }
}

// Lower-case letters from the most common in English text to the least: a search for letters
// alone stops where its two rarest are, "error" at its r's (about 5 a line of the corpus content
// of bench/browser_burst.py) rather than at its e and last r (about 10).
const LETTER_RANK = new Uint8Array(256).fill(26);
[..."etaoinsrhldcumfpgwybvkxjqz"].forEach((c, i) => (LETTER_RANK[c.charCodeAt(0)] = i));

/** The places k < j of `needle` (lower-case letters) whose letters are together the rarest; [0, 0]
 *  for one letter. */
function rarestPair(needle) {
  let best = [0, needle.length - 1];
  let score = -1;
  for (let k = 0; k < needle.length; k++) {
    for (let j = k + 1; j < needle.length; j++) {
      const s = LETTER_RANK[needle[k]] + LETTER_RANK[needle[j]];
      if (s > score) [best, score] = [[k, j], s];
    }
  }
  return best;
}

/** Where line `i` of `segment` ends (its LF), given where its lines start. */
function endOf(segment, starts, i) {
  return i + 1 < segment.count ? starts[i + 1] - 1 : segment.used - 1;
}

/** How find() sees each byte, for `needle` (already lower case with `fold`). */
export function byteKinds(needle, fold) {
  const map = fold ? LOWER : SAME;
  const kinds = new Uint8Array(256);
  for (let b = 0; b < 256; b++) if (map[b] === needle[0]) kinds[b] |= FIRST;
  kinds[ESC] |= ODD;
  if (fold) {
    kinds[0xc4] |= ODD;
    kinds[0xe2] |= ODD;
  }
  return kinds;
}

/** What consecutive lines share, from seq on: the id of the first (0 for marks, whose ids are
 *  all 0) and the arrival time. Growable columns, trimmed from the front. */
class Runs {
  constructor() {
    this.seq = new Float64Array(64);
    this.id = new Float64Array(64);
    this.time = new Float64Array(64);
    this.head = 0;
    this.length = 0;
  }

  /** Lines from `seq` on have ids from `id` (0: marks) and arrived at `time`. */
  add(seq, id, time) {
    const n = this.head + this.length;
    if (this.length) {
      const last = n - 1;
      // Lines that go on from the last run (same arrival, ids in sequence) only extend it.
      if (this.time[last] === time && id !== 0 && this.id[last] !== 0 && id === this.id[last] + seq - this.seq[last]) return;
    }
    if (n === this.seq.length) {
      if (this.head > this.length) {
        for (const column of [this.seq, this.id, this.time]) column.copyWithin(0, this.head, n);
      } else {
        for (const name of ["seq", "id", "time"]) {
          const bigger = new Float64Array(this[name].length * 2);
          bigger.set(this[name].subarray(this.head, n));
          this[name] = bigger;
        }
      }
      this.head = 0;
    }
    const at = this.head + this.length++;
    this.seq[at] = seq;
    this.id[at] = id;
    this.time[at] = time;
  }

  /** The index of the run `seq` is in. */
  find(seq) {
    let lo = this.head;
    let hi = this.head + this.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.seq[mid] <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Forget runs that end before `first`. */
  trim(first) {
    while (this.length > 1 && this.seq[this.head + 1] <= first) {
      this.head++;
      this.length--;
    }
  }
}

export class LineStore {
  constructor(capacity) {
    this.capacity = capacity;
    // A byte a line, until a tab sees its 256th source or part (a glob of many files): then two
    // (widen). A million lines hold 2 MB less.
    this.source = new Uint8Array(capacity); // index into this.sources
    this.part = new Uint8Array(capacity); // index into this.parts (0: none)
    this.kind = new Uint8Array(capacity);
    this.level = new Uint8Array(capacity); // level | HEAD (levels.js), as the server classified it
    this.first = 0; // the oldest seq still held
    this.next = 0; // the seq the next line gets
    this.sources = [];
    this.parts = [""]; // the part of its source a line comes from: a host, a file of a glob
    this.segments = []; // oldest first
    this.runs = new Runs();
    this.decoded = null; // {from, lines}: lines decoded together, for reads in order
    this.near = null; // the segment last found
    this.lastRead = -1;
    this.unpacked = []; // {segment, bytes, starts, varints}: packed segments unpacked, the last used first
    this.packing = NOTHING; // where segments are packed, while some wait (packCooling)
    this.cooling = []; // segments pushed out of the newest, not yet packed (or found not worth it)
    this.idle = false; // an idle callback is asked for
    this.sequences = 0; // of the packed segments held (SEQUENCES)
  }

  intern(list, name) {
    let i = list.indexOf(name);
    if (i < 0) i = list.push(name) - 1;
    return i;
  }

  /** Add one line (or mark) given as a string; returns its seq. */
  push(text, source, part, id, time, kind, level = UNCLASSIFIED) {
    const bytes = encoder.encode(text);
    return this.add(source, part, id, time, kind, bytes, [bytes.length], 0, 1, level);
  }

  /** Add the lines of an event (events.js SseEvent: data line 0 is its header, then the log
   *  lines, ids from `id`), but the first `skip`; `levels` as the event spells them. Returns the
   *  first seq. */
  pushEvent(event, source, part, id, time, levels, skip = 0) {
    const first = this.next;
    const count = event.ends.length - 1 - skip;
    if (count > 0) this.add(source, part, id + skip, time, LINE, event.bytes, event.ends, 1 + skip, 1 + skip + count, levels);
    return first;
  }

  /** Add lines `from` .. `to` - 1 of `bytes`, line i ending at ends[i] (and starting after the
   *  LF that ends line i - 1). `levels`: a mark for them all, or an event's letters (line i's is
   *  letter i - 1: line 0 is the event's header). Returns the seq of the first. */
  add(source, part, id, time, kind, bytes, ends, from, to, levels) {
    const sourceIndex = this.intern(this.sources, source);
    const partIndex = part ? this.intern(this.parts, part) : 0;
    if (sourceIndex > 0xff) this.widen("source");
    if (partIndex > 0xff) this.widen("part");
    const firstSeq = this.next;
    this.runs.add(firstSeq, kind === LINE ? id : 0, time);
    let i = from;
    while (i < to) {
      const start = i ? ends[i - 1] + 1 : 0;
      let segment = this.segments.at(-1);
      const room = segment ? segment.bytes.length - segment.used : 0;
      // As many whole lines as fit; a line never crosses segments.
      let j = i;
      while (j < to && ends[j] + 1 - start <= room) j++;
      if (j === i) {
        this.cool();
        const size = Math.max(SEGMENT_BYTES, ends[i] + 1 - start);
        this.segments.push(new Segment(new Uint8Array(size), this.next));
        continue;
      }
      const size = ends[j - 1] - start;
      segment.bytes.set(bytes.subarray(start, start + size), segment.used);
      segment.bytes[segment.used + size] = LF;
      noteOdd(segment, segment.used, segment.used + size);
      const base = segment.used - start;
      const capacity = this.capacity;
      if (segment.count + j - i > segment.starts.length) {
        const bigger = new Uint32Array(Math.max(2 * segment.starts.length, segment.count + j - i));
        bigger.set(segment.starts.subarray(0, segment.count));
        segment.starts = bigger;
      }
      const starts = segment.starts;
      for (let k = i, n = segment.count; k < j; k++, n++) {
        const slot = this.next++ % capacity;
        starts[n] = base + (k ? ends[k - 1] + 1 : 0);
        // Written only where they change: a column never written stays the kernel's zero
        // page, which costs no memory (one source, no parts, no marks: 3 MB a million lines).
        if (this.source[slot] !== sourceIndex) this.source[slot] = sourceIndex;
        if (this.part[slot] !== partIndex) this.part[slot] = partIndex;
        if (this.kind[slot] !== kind) this.kind[slot] = kind;
        this.level[slot] = typeof levels === "number" ? levels : markAt(levels, k - 1);
      }
      segment.used += size + 1;
      segment.count += j - i;
      i = j;
    }
    if (this.next - this.first > this.capacity) this.forget(this.next - this.capacity);
    return firstSeq;
  }

  /** The segment that a new one pushes out of the HOT_SEGMENTS newest is to be packed: when the
   *  page is idle, or now. */
  cool() {
    const segment = this.segments.at(-HOT_SEGMENTS);
    if (segment?.bytes && this.segments.length >= HOT_SEGMENTS) this.cooling.push(segment);
    this.packCooling();
  }

  packCooling() {
    while (this.cooling.length > (idleCallback ? COOLING_MAX : 0)) this.packSegment(this.cooling.shift());
    // Given back once nothing waits: 1 MiB held for the next burst's packing, which allocates
    // it again in far less time than a pack takes.
    if (!this.cooling.length) this.packing = NOTHING;
    if (this.cooling.length && !this.idle) {
      this.idle = true;
      idleCallback((deadline) => this.packIdle(deadline), { timeout: PACK_WITHIN_MS });
    }
  }

  packIdle(deadline) {
    this.idle = false;
    // At least one, even past the deadline (a busy page): a segment is a few ms, not a long task.
    for (let n = 0; this.cooling.length && (n === 0 || deadline.timeRemaining() > 10); n++) {
      this.packSegment(this.cooling.shift());
    }
    this.packCooling();
  }

  /** Pack `segment` if it is still held and packing it is worth it. */
  packSegment(segment) {
    if (!segment.bytes || segment.first + segment.count <= this.first) return; // forgotten
    const bound = packBound(segment.used);
    if (this.packing.length < bound) this.packing = new Uint8Array(bound);
    const { length, sequences } = pack(segment.bytes, segment.used, this.packing);
    if (length > segment.used * WORTH_PACKING || this.sequences + sequences > SEQUENCES) {
      // Kept as it came, and no more lines come to it: its starts need no room to grow (they
      // had up to twice what they hold; the corpus million: 64 KB a segment for 44).
      if (segment.starts.length > segment.count) segment.starts = segment.starts.slice(0, segment.count);
      return;
    }
    segment.packed = this.packing.slice(0, length);
    segment.sequences = sequences;
    this.sequences += sequences;
    // Starts as lengths, a varint each (a byte for a line under 128 bytes), then packed too.
    const { count, starts, used } = segment;
    const varints = new Uint8Array(5 * count);
    let o = 0;
    for (let i = 0; i < count; i++) {
      let size = (i + 1 < count ? starts[i + 1] : used) - starts[i];
      for (; size > 0x7f; size >>>= 7) varints[o++] = (size & 0x7f) | 0x80;
      varints[o++] = size;
    }
    segment.lengths = this.packing.slice(0, pack(varints, o, this.packing).length);
    segment.bytes = null;
    segment.starts = null;
  }

  /** `segment`'s {bytes, starts}, unpacked if it is packed: valid until the next call. */
  open(segment) {
    if (segment.bytes) return segment;
    const unpacked = this.unpacked;
    let i = unpacked.findIndex((entry) => entry.segment === segment);
    if (i < 0) {
      const empty = { segment: null, bytes: new Uint8Array(0), starts: new Uint32Array(0), varints: new Uint8Array(0) };
      i = unpacked.length < UNPACKED ? unpacked.push(empty) - 1 : unpacked.length - 1;
      const entry = unpacked[i];
      const { count, used } = segment;
      if (entry.bytes.length < used) entry.bytes = new Uint8Array(Math.max(SEGMENT_BYTES, used));
      if (entry.starts.length < count) entry.starts = new Uint32Array(count);
      if (entry.varints.length < 5 * count) entry.varints = new Uint8Array(5 * count);
      unpack(segment.packed, entry.bytes);
      unpack(segment.lengths, entry.varints);
      const { starts, varints } = entry;
      for (let n = 0, at = 0, o = 0; n < count; n++) {
        starts[n] = at;
        let size = 0;
        for (let shift = 0, b = 0x80; b & 0x80; shift += 7) size |= ((b = varints[o++]) & 0x7f) << shift;
        at += size;
      }
      entry.segment = segment;
    }
    const [entry] = unpacked.splice(i, 1);
    unpacked.unshift(entry);
    return entry;
  }

  /** Make column `name` two bytes a line (it indexes more than 256 names). */
  widen(name) {
    if (this[name] instanceof Uint16Array) return;
    const wide = new Uint16Array(this.capacity);
    wide.set(this[name]);
    this[name] = wide;
  }

  forget(first) {
    this.first = first;
    const segments = this.segments;
    let n = 0;
    while (n < segments.length - 1 && segments[n].first + segments[n].count <= first) n++;
    if (n) {
      for (const segment of segments.splice(0, n)) this.sequences -= segment.sequences;
      for (const entry of this.unpacked) if (entry.segment && entry.segment.first < segments[0].first) entry.segment = null;
    }
    this.near = null;
    this.runs.trim(first);
    if (this.decoded && this.decoded.from < first) this.decoded = null;
  }

  has(seq) {
    return seq >= this.first && seq < this.next;
  }

  slot(seq) {
    return seq % this.capacity;
  }

  segmentOf(seq) {
    const near = this.near;
    if (near && seq >= near.first && seq < near.first + near.count) return near;
    const segments = this.segments;
    let lo = 0;
    let hi = segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segments[mid].first <= seq) lo = mid;
      else hi = mid - 1;
    }
    this.near = segments[lo]; // lines are mostly read near the last one read
    return this.near;
  }

  /** The bytes of line `seq` (held): a view into its segment, valid until the store's next read
   *  (a packed segment's bytes are unpacked into a reused buffer). */
  bytes(seq) {
    const segment = this.segmentOf(seq);
    const { bytes, starts } = this.open(segment);
    const i = seq - segment.first;
    return bytes.subarray(starts[i], endOf(segment, starts, i));
  }

  /** The text of line `seq` (held). Lines read in order are decoded DECODE_LINES at a time. */
  text(seq) {
    const decoded = this.decoded;
    if (decoded && seq >= decoded.from && seq < decoded.from + decoded.lines.length) {
      this.lastRead = seq;
      return decoded.lines[seq - decoded.from];
    }
    const inOrder = seq === this.lastRead + 1;
    this.lastRead = seq;
    if (!inOrder) return decoder.decode(this.bytes(seq));
    const segment = this.segmentOf(seq);
    const last = Math.min(segment.first + segment.count, seq + DECODE_LINES) - 1;
    const { bytes, starts } = this.open(segment);
    const end = endOf(segment, starts, last - segment.first);
    const lines = decoder.decode(bytes.subarray(starts[seq - segment.first], end)).split("\n");
    this.decoded = { from: seq, lines };
    return lines[0];
  }

  plainText(seq) {
    return plain(this.text(seq));
  }

  /** Whether line `seq`'s plain text holds `needle` (UTF-8 bytes; with `fold`, in lower case,
   *  found in any case of its ASCII letters; `kinds` from byteKinds), searched in its bytes
   *  without decoding them; undefined when only its text can tell: it has an escape sequence
   *  (removed from plain text), or with `fold` a character whose lower case is ASCII (U+0130,
   *  U+212A), before any match. */
  includes(seq, needle, fold, kinds) {
    const segment = this.segmentOf(seq);
    const { bytes, starts } = this.open(segment);
    const i = seq - segment.first;
    const at = find(bytes, starts[i], endOf(segment, starts, i), needle, fold ? LOWER : SAME, kinds);
    return at === -2 ? undefined : at >= 0;
  }

  /** For each line `from` .. `to` - 1 (held), what includes() would say of it: 1 it holds
   *  `needle`, 0 it does not, 2 only its text can tell. One pass a segment with the engine's own
   *  byte search (indexOf; letters in both cases: markFolded) rather than a JS loop a line: a
   *  million lines in a third of the time. */
  search(from, to, needle, fold) {
    const out = new Uint8Array(to - from);
    const map = fold ? LOWER : SAME;
    // Looked for by one of its bytes: one that has no other case if there is one.
    let k = needle.findIndex((b) => !fold || LOWER[b] === UPPER[b]);
    let j = needle.length - 1; // the other letter markFolded looks for, j - k bytes on
    if (k < 0) [k, j] = rarestPair(needle);
    const anchor = needle[k];
    const cased = fold && LOWER[anchor] !== UPPER[anchor]; // a letter: looked for in both cases
    for (const segment of this.segments) {
      const end = segment.first + segment.count;
      if (end <= from || segment.first >= to) continue;
      const first = Math.max(from, segment.first);
      const last = Math.min(to, end); // lines first .. last - 1
      const { bytes, starts } = this.open(segment);
      const lineStart = (seq) => (seq < end ? starts[seq - segment.first] : segment.used);
      const low = lineStart(first);
      const high = lineStart(last);
      let seq = first; // the line the last match found was in
      const lineOf = (at) => {
        while (seq + 1 < last && lineStart(seq + 1) <= at) seq++;
        return seq;
      };
      if (cased) {
        const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2); // a whole buffer
        markFolded(bytes, words, starts, segment.count, segment.used, first - segment.first, last - segment.first, needle, k, j, out.subarray(first - from));
      } else {
        const range = bytes.subarray(0, high);
        for (let at = range.indexOf(anchor, low + k); at >= 0; at = range.indexOf(anchor, at + 1)) {
          const m = at - k;
          let i = 0;
          while (i < needle.length && map[bytes[m + i]] === needle[i]) i++;
          if (i === needle.length) out[lineOf(m) - from] = 1;
        }
      }
      for (const odd of fold ? segment.odd : segment.odd.slice(0, 1)) {
        seq = first;
        for (const at of odd) if (at >= low && at < high) out[lineOf(at) - from] = 2;
      }
    }
    return out;
  }

  /** The server's id of line `seq` (0 for a mark). */
  idOf(seq) {
    const runs = this.runs;
    const run = runs.find(seq);
    return runs.id[run] === 0 ? 0 : runs.id[run] + seq - runs.seq[run];
  }

  /** When line `seq` arrived, ms since the epoch. */
  timeOf(seq) {
    return this.runs.time[this.runs.find(seq)];
  }
}

// The seqs a pane shows (in increasing order), trimmed from the front as the store forgets. While
// they are consecutive (a pane with no filter showing every source the tab holds: the usual case)
// they are two numbers, [base, base + length); once they are not, a growable list of four bytes a
// seq counted from `base` (a pane filtering a million lines holds 4 MB here). The seqs a view holds
// span less than 2^32, as the store's capacity bounds what it holds.
export class View {
  constructor() {
    this.seqs = null; // the list (from head on), or null while the seqs are consecutive
    this.base = 0;
    this.head = 0;
    this.length = 0;
  }

  push(seq) {
    if (this.length === 0) {
      this.seqs = null;
      this.head = 0;
      this.base = seq;
      this.length = 1;
      return;
    }
    if (!this.seqs) {
      if (seq === this.base + this.length) {
        this.length++;
        return;
      }
      this.list(1);
    }
    if (seq - this.base >= 0xffffffff) this.rebase();
    if (this.head + this.length === this.seqs.length) {
      if (this.head > this.seqs.length / 2) {
        this.seqs.copyWithin(0, this.head, this.head + this.length);
      } else {
        const bigger = new Uint32Array(this.seqs.length * 2);
        bigger.set(this.seqs.subarray(this.head, this.head + this.length));
        this.seqs = bigger;
      }
      this.head = 0;
    }
    this.seqs[this.head + this.length++] = seq - this.base;
  }

  /** Hold the seqs as a list, with room for `more`: they are about not to be consecutive. */
  list(more) {
    const seqs = new Uint32Array(Math.max(1024, this.length + (this.length >> 1) + more));
    for (let i = 0; i < this.length; i++) seqs[i] = i;
    this.seqs = seqs;
    this.head = 0;
  }

  /** Count from the first seq held (after four billion lines: a tab left open for weeks). */
  rebase() {
    const shift = this.seqs[this.head];
    for (let i = 0; i < this.length; i++) this.seqs[this.head + i] -= shift;
    this.base += shift;
  }

  at(i) {
    return this.base + (this.seqs ? this.seqs[this.head + i] : i);
  }

  /** Drop what the store no longer holds; returns how many were dropped. */
  trim(first) {
    if (!this.seqs) {
      const dropped = Math.max(0, Math.min(this.length, first - this.base));
      this.base += dropped;
      this.length -= dropped;
      return dropped;
    }
    let dropped = 0;
    while (this.length > 0 && this.at(0) < first) {
      this.head++;
      this.length--;
      dropped++;
    }
    return dropped;
  }

  clear() {
    this.seqs = null;
    this.head = 0;
    this.length = 0;
  }

  /** The index of `seq`, or of the first seq after it (`length` if none): a binary search. */
  indexOf(seq) {
    if (!this.seqs) return Math.max(0, Math.min(this.length, seq - this.base));
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.at(mid) < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Put `seqs` (increasing, none already here) in their places; linear in the view's length. */
  insert(seqs) {
    if (!seqs.length) return;
    if (!this.length || seqs[0] > this.at(this.length - 1)) {
      for (const seq of seqs) this.push(seq);
      return;
    }
    const base = Math.min(this.base, seqs[0]);
    const merged = new Uint32Array(Math.max(1024, 2 * (this.length + seqs.length)));
    let i = 0;
    let j = 0;
    let n = 0;
    while (i < this.length || j < seqs.length) {
      if (j >= seqs.length || (i < this.length && this.at(i) < seqs[j])) merged[n++] = this.at(i++) - base;
      else merged[n++] = seqs[j++] - base;
    }
    this.seqs = merged;
    this.base = base;
    this.head = 0;
    this.length = n;
  }

  /** Take out the seqs in `drop` (a Set); returns how many were taken out. */
  remove(drop) {
    if (!this.seqs) this.list(0);
    let n = 0;
    for (let i = 0; i < this.length; i++) {
      const seq = this.at(i);
      if (!drop.has(seq)) this.seqs[this.head + n++] = seq - this.base;
    }
    const removed = this.length - n;
    this.length = n;
    return removed;
  }
}
