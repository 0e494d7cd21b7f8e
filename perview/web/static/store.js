// The lines a tab holds: one ring in columns (no object per line), and per-pane views that list
// which of them a pane shows. Memory is bounded by the ring's capacity, whatever the panes do.

import { plain } from "./ansi.js";
import { UNCLASSIFIED } from "./levels.js";

export const LINE = 0;
export const MARK = 1; // something Perview says: a gap, an exit status, a restart

export class LineStore {
  constructor(capacity) {
    this.capacity = capacity;
    this.text = new Array(capacity);
    this.source = new Uint16Array(capacity); // index into this.sources
    this.part = new Uint16Array(capacity); // index into this.parts (0: none)
    this.id = new Float64Array(capacity); // the server's line id (0 for marks)
    this.time = new Float64Array(capacity); // arrival, ms since the epoch
    this.kind = new Uint8Array(capacity);
    this.level = new Uint8Array(capacity); // level | HEAD (levels.js), as the server classified it
    this.first = 0; // the oldest seq still held
    this.next = 0; // the seq the next line gets
    this.sources = [];
    this.parts = [""]; // the part of its source a line comes from: a host, a file of a glob
  }

  intern(list, name) {
    let i = list.indexOf(name);
    if (i < 0) i = list.push(name) - 1;
    return i;
  }

  push(text, source, part, id, time, kind, level = UNCLASSIFIED) {
    const slot = this.next % this.capacity;
    this.text[slot] = text;
    this.source[slot] = this.intern(this.sources, source);
    this.part[slot] = part ? this.intern(this.parts, part) : 0;
    this.id[slot] = id;
    this.time[slot] = time;
    this.kind[slot] = kind;
    this.level[slot] = level;
    const seq = this.next++;
    if (this.next - this.first > this.capacity) this.first = this.next - this.capacity;
    return seq;
  }

  has(seq) {
    return seq >= this.first && seq < this.next;
  }

  slot(seq) {
    return seq % this.capacity;
  }

  plainText(seq) {
    return plain(this.text[this.slot(seq)]);
  }
}

// A growable list of seqs (in increasing order), trimmed from the front as the store forgets.
export class View {
  constructor() {
    this.seqs = new Float64Array(1024);
    this.head = 0;
    this.length = 0;
  }

  push(seq) {
    if (this.head + this.length === this.seqs.length) {
      if (this.head > this.seqs.length / 2) {
        this.seqs.copyWithin(0, this.head, this.head + this.length);
      } else {
        const bigger = new Float64Array(this.seqs.length * 2);
        bigger.set(this.seqs.subarray(this.head, this.head + this.length));
        this.seqs = bigger;
      }
      this.head = 0;
    }
    this.seqs[this.head + this.length++] = seq;
  }

  at(i) {
    return this.seqs[this.head + i];
  }

  /** Drop what the store no longer holds; returns how many were dropped. */
  trim(first) {
    let dropped = 0;
    while (this.length > 0 && this.seqs[this.head] < first) {
      this.head++;
      this.length--;
      dropped++;
    }
    return dropped;
  }

  clear() {
    this.head = 0;
    this.length = 0;
  }

  /** The index of `seq`, or of the first seq after it (`length` if none): a binary search. */
  indexOf(seq) {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.seqs[this.head + mid] < seq) lo = mid + 1;
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
    const merged = new Float64Array(Math.max(1024, 2 * (this.length + seqs.length)));
    let i = 0;
    let j = 0;
    let n = 0;
    while (i < this.length || j < seqs.length) {
      if (j >= seqs.length || (i < this.length && this.at(i) < seqs[j])) merged[n++] = this.at(i++);
      else merged[n++] = seqs[j++];
    }
    this.seqs = merged;
    this.head = 0;
    this.length = n;
  }

  /** Take out the seqs in `drop` (a Set); returns how many were taken out. */
  remove(drop) {
    let n = 0;
    for (let i = 0; i < this.length; i++) {
      const seq = this.at(i);
      if (!drop.has(seq)) this.seqs[this.head + n++] = seq;
    }
    const removed = this.length - n;
    this.length = n;
    return removed;
  }
}
