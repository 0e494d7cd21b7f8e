// The packing of the tab's cold text (pack.js), without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pack, packBound, unpack } from "../../perview/web/static/pack.js";

function roundTrip(bytes) {
  const packed = new Uint8Array(packBound(bytes.length));
  const { length, sequences } = pack(bytes, bytes.length, packed);
  assert.ok(sequences >= 1 && sequences <= length);
  assert.ok(length <= packBound(bytes.length));
  const into = new Uint8Array(bytes.length);
  assert.equal(unpack(packed.subarray(0, length), into), bytes.length);
  assert.deepEqual(into, bytes);
  return length;
}

let seed = 7;
const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;

test("whatever is packed unpacks to the same bytes", () => {
  const lengths = [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 270, 271, 4096, 70_000, 300_000];
  for (const length of lengths) {
    const noise = Uint8Array.from({ length }, () => random() * 256);
    const run = new Uint8Array(length).fill(0x78); // matches that overlap what they write
    const few = Uint8Array.from({ length }, () => 97 + ((random() * 3) | 0));
    // Copies from far back: offsets up to the window's end and past it.
    const far = Uint8Array.from({ length }, () => random() * 256);
    for (let i = 65_000; i < length; i++) if (random() < 0.97) far[i] = far[i - 65_000 - ((random() * 1200) | 0)];
    for (const bytes of [noise, run, few, far]) roundTrip(bytes);
  }
});

test("log lines pack several times smaller; noise grows by at most its bound", () => {
  const lines = Array.from({ length: 10_000 }, (_, n) => `${String(n).padStart(9, "0")} INFO  request served in ${n % 97} ms\n`);
  const log = new TextEncoder().encode(lines.join(""));
  assert.ok(roundTrip(log) * 4 < log.length); // 5.5 times: the numbers differ a line
  const noise = Uint8Array.from({ length: 100_000 }, () => random() * 256);
  assert.ok(roundTrip(noise) <= packBound(noise.length));
});

test("runs of every short length at every short offset unpack exactly, from and into views at odd offsets", () => {
  // Short runs are copied eight bytes a step past their end: each length and offset around the
  // step, and the last bytes of the buffer, which are copied one at a time.
  const parts = [];
  for (let offset = 1; offset <= 20; offset++) {
    for (let length = 1; length <= 80; length++) {
      const head = Uint8Array.from({ length: offset }, () => 97 + ((random() * 26) | 0));
      parts.push(head, ...Array.from({ length: Math.ceil(length / offset) }, () => head), [random() * 256]);
    }
  }
  const bytes = Uint8Array.from(parts.flatMap((part) => [...part]));
  const packed = new Uint8Array(packBound(bytes.length));
  const { length } = pack(bytes, bytes.length, packed);
  const shifted = new Uint8Array(length + 3);
  shifted.set(packed.subarray(0, length), 3);
  const room = new Uint8Array(bytes.length + 5).fill(0xee);
  const into = room.subarray(5);
  assert.equal(unpack(shifted.subarray(3), into), bytes.length);
  assert.deepEqual(into, bytes);
  assert.deepEqual(room.subarray(0, 5), new Uint8Array(5).fill(0xee));
});
