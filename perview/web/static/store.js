// The lines a tab holds: one ring in columns (no object per line), and per-pane views that list
// which of them a pane shows. Memory is bounded by the ring's capacity, whatever the panes do.

import { plain } from "./ansi.js";

export const LINE = 0;
export const MARK = 1; // something Perview says: a gap, an exit status, a restart

export class LineStore {
  constructor(capacity) {
    this.capacity = capacity;
    this.text = new Array(capacity);
    this.source = new Uint16Array(capacity); // index into this.sources
    this.host = new Uint16Array(capacity); // index into this.hosts (0: none)
    this.id = new Float64Array(capacity); // the server's line id (0 for marks)
    this.time = new Float64Array(capacity); // arrival, ms since the epoch
    this.kind = new Uint8Array(capacity);
    this.first = 0; // the oldest seq still held
    this.next = 0; // the seq the next line gets
    this.sources = [];
    this.hosts = [""];
  }

  intern(list, name) {
    let i = list.indexOf(name);
    if (i < 0) i = list.push(name) - 1;
    return i;
  }

  push(text, source, host, id, time, kind) {
    const slot = this.next % this.capacity;
    this.text[slot] = text;
    this.source[slot] = this.intern(this.sources, source);
    this.host[slot] = host ? this.intern(this.hosts, host) : 0;
    this.id[slot] = id;
    this.time[slot] = time;
    this.kind[slot] = kind;
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
}
