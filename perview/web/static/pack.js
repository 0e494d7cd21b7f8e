// A small LZ77 for the tab's cold text (store.js): logs repeat themselves line after line, and a
// scan decodes a packed segment faster than the browser's own inflate (DecompressionStream) can
// hand one back. Measured in Node on 1 MiB segments: the burst benchmark's lines pack 19.5 times
// and unpack at 3.8 GB/s, /var/log/dpkg.log 6.3 times at 0.7 GB/s; packing runs at 250 MB/s.
//
// Format: sequences of a token byte (literals << 4 | match length - MIN_MATCH), extra length
// bytes for a nibble of 15 (each 255 says another follows), the literals, then the match's
// offset back in two bytes, little-endian. The last sequence has literals only. Like LZ4's block
// format, which it follows, it trusts its input: it only ever unpacks what pack() made.

const MIN_MATCH = 4;
const WINDOW = 0xffff; // the farthest back a match may start: two bytes of offset
const HASH_BITS = 14; // 16 K entries (64 KB): logs pack within 2% of what 16 bits (256 KB) give
// Matches shorter than this are left as literals: a sequence costs a filter the same however
// short, and the short ones save little. The corpus content (bench/browser_burst.py) packs into
// 33,500 sequences a MiB instead of 82,900, saving 613 KB a MiB instead of 634, and unpacks in
// 1.0-1.6 ms a MiB instead of 1.3-1.9 (Node, loaded; /tmp/tabreal/proto/mm.mjs).
const SHORTEST = 8;
const LONG_RUN = 64; // unpacked by set() or copyWithin(): a call costs more than a few steps
const WILD_SPARE = 8; // what a copy eight bytes a step may read or write past a run's end
const SKIP = 6; // with no match, the step grows by one every 2^SKIP bytes: noise is passed fast
const table = new Int32Array(1 << HASH_BITS); // where a 4-byte sequence was last seen

/** The most bytes pack() writes for `length` bytes. */
export function packBound(length) {
  return length + Math.ceil(length / 255) + 16;
}

function hash(bytes, i) {
  const word = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
  return Math.imul(word, 0x9e3779b1) >>> (32 - HASH_BITS);
}

function putLength(out, o, extra) {
  for (; extra >= 255; extra -= 255) out[o++] = 255;
  out[o++] = extra;
  return o;
}

/** Pack bytes[0, length) into `out` (at least packBound(length) long): {length: the bytes used,
 *  sequences: how many, which is what unpacking costs (30-70 ns each in Node, however long)}. */
export function pack(bytes, length, out) {
  table.fill(-1);
  const limit = length - 8; // a match is never looked for where 4 bytes cannot be read
  let s = 0;
  let o = 0;
  let sequences = 1; // the last
  let anchor = 0; // the first byte not yet written
  let step = 1 << SKIP;
  while (s < limit) {
    const h = hash(bytes, s);
    const ref = table[h];
    table[h] = s;
    if (ref < 0 || s - ref > WINDOW || bytes[ref] !== bytes[s] || bytes[ref + 1] !== bytes[s + 1] || bytes[ref + 2] !== bytes[s + 2] || bytes[ref + 3] !== bytes[s + 3]) {
      s += step++ >> SKIP;
      continue;
    }
    step = 1 << SKIP;
    let start = s;
    let from = ref;
    while (start > anchor && from > 0 && bytes[start - 1] === bytes[from - 1]) {
      start--;
      from--;
    }
    let end = s + MIN_MATCH;
    for (let f = ref + MIN_MATCH; end < length && bytes[end] === bytes[f]; f++) end++;
    if (end - start < SHORTEST) {
      s += step++ >> SKIP;
      continue;
    }
    const literals = start - anchor;
    const match = end - start - MIN_MATCH;
    out[o++] = (Math.min(literals, 15) << 4) | Math.min(match, 15);
    sequences++;
    if (literals >= 15) o = putLength(out, o, literals - 15);
    for (let i = anchor; i < start; i++) out[o++] = bytes[i];
    const offset = start - from;
    out[o++] = offset & 0xff;
    out[o++] = offset >> 8;
    if (match >= 15) o = putLength(out, o, match - 15);
    anchor = s = end;
    // The bytes just before the next search start a match of the next line's like text.
    if (s < limit) table[hash(bytes, s - 2)] = s - 2;
  }
  const literals = length - anchor;
  out[o++] = Math.min(literals, 15) << 4;
  if (literals >= 15) o = putLength(out, o, literals - 15);
  for (let i = anchor; i < length; i++) out[o++] = bytes[i];
  return { length: o, sequences };
}

/** Unpack what pack() made into `into` (long enough for the original); returns its length. */
export function unpack(packed, into) {
  const end = packed.length;
  // Short runs are copied eight bytes a step, four at a time through DataViews, past their end
  // (the next run writes over what is too much): one loop of one or two steps has no length to
  // mispredict. The logs of the corpus with their digits varied pack into runs of 13 bytes, and
  // unpack 2 times as fast as byte by byte (Node, 1 MiB segments: 1.6-2.7 ms against 3.0-6.3;
  // /tmp/tabreal/proto/ub.mjs, a loaded machine). Long ones take set() and copyWithin().
  const source = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const target = new DataView(into.buffer, into.byteOffset, into.byteLength);
  const lastRead = end - WILD_SPARE;
  const lastWrite = into.length - WILD_SPARE;
  let s = 0;
  let d = 0;
  for (;;) {
    const token = packed[s++];
    let literals = token >> 4;
    if (literals === 15) for (let b = 255; b === 255; literals += b) b = packed[s++];
    if (literals > LONG_RUN) into.set(packed.subarray(s, s + literals), d);
    else if (s + literals <= lastRead && d + literals <= lastWrite) {
      let i = 0;
      do {
        target.setUint32(d + i, source.getUint32(s + i, true), true);
        target.setUint32(d + i + 4, source.getUint32(s + i + 4, true), true);
        i += 8;
      } while (i < literals);
    } else for (let i = 0; i < literals; i++) into[d + i] = packed[s + i];
    s += literals;
    d += literals;
    if (s >= end) return d;
    const offset = packed[s] | (packed[s + 1] << 8);
    s += 2;
    let match = token & 15;
    if (match === 15) for (let b = 255; b === 255; match += b) b = packed[s++];
    match += MIN_MATCH;
    let from = d - offset;
    if (match > LONG_RUN && offset >= match) {
      into.copyWithin(d, from, from + match);
      d += match;
    } else if (offset >= 8 && d + match <= lastWrite) {
      // Eight bytes back or more: each step reads only what an earlier one wrote.
      let i = 0;
      do {
        target.setUint32(d + i, target.getUint32(from + i, true), true);
        target.setUint32(d + i + 4, target.getUint32(from + i + 4, true), true);
        i += 8;
      } while (i < match);
      d += match;
    } else {
      // Byte by byte: a match may overlap what it writes (a run of one byte has offset 1).
      for (const stop = d + match; d < stop; ) into[d++] = into[from++];
    }
  }
}
