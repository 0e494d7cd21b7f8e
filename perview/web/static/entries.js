// Entries in a pane: a head line and its continuations (a traceback, a `Caused by:` chain) are
// shown or hidden together. A filter that matches any line of an entry shows the whole entry,
// even when the match comes lines after the head; a folded entry shows its head alone.

import { LINE } from "./store.js";
import { HEAD } from "./levels.js";

// Lines of an entry waiting for a match, at most: an entry longer than this with no match yet
// shows only its last ENTRY_HELD lines once one comes, and a runaway entry costs bounded memory.
export const ENTRY_HELD = 10000;

/** Decides, line by line in order, what a pane shows of each entry. The pane provides
 *  `show(seq, isLine)` (append), `showEarlier(seqs)` (lines before some already shown, in order)
 *  and `fold(head, count)` (this many more lines of a folded entry came). */
export class Entries {
  constructor(store, pane) {
    this.store = store;
    this.pane = pane;
    this.folded = new Set(); // head seqs of folded entries
    this.reset();
  }

  /** Forget every entry in progress (the pane offers its lines again from the start). */
  reset() {
    this.open = []; // by source index: {head, shown, pending} of the entry in progress
  }

  /** A line of the pane's sources, in order, and whether the filter passes it; or a mark. */
  offer(seq, passes) {
    const store = this.store;
    const slot = store.slot(seq);
    const source = store.source[slot];
    if (store.kind[slot] !== LINE) {
      this.open[source] = undefined; // Perview's own word (a gap, a restart) ends an entry
      this.pane.show(seq, false);
      return;
    }
    let entry = this.open[source];
    if (store.level[slot] & HEAD || !entry) {
      // One record a source, reused, and a list of held lines only once an entry that does not
      // pass has more than its head: a burst of 100,000 heads, or a filter over a million
      // that mostly fail, makes no garbage here.
      if (!entry) entry = this.open[source] = { head: seq, shown: passes, pending: null };
      entry.head = seq;
      entry.shown = passes;
      entry.pending = null; // not shown: its head held, alone so far
      if (passes) this.pane.show(seq, true);
      return;
    }
    if (entry.shown) {
      if (this.folded.has(entry.head)) this.pane.fold(entry.head, 1);
      else this.pane.show(seq, true);
    } else if (passes) {
      entry.shown = true;
      const earlier = entry.pending ?? [entry.head];
      entry.pending = null;
      if (this.folded.has(entry.head)) {
        this.pane.showEarlier([earlier[0]]);
        this.pane.fold(entry.head, earlier.length);
      } else {
        this.pane.showEarlier(earlier);
        this.pane.show(seq, true);
      }
    } else if (!entry.pending) {
      entry.pending = [entry.head, seq];
    } else if (entry.pending.length < ENTRY_HELD) {
      entry.pending.push(seq);
    } else {
      entry.pending.splice(1, 1); // the head stays: it says what the entry is
      entry.pending.push(seq);
    }
  }

  /** The head of the entry `seq` belongs to (itself for a head), looking back at most `limit`
   *  lines of the store; -1 if it is not held. */
  headOf(seq, limit = 100000) {
    const store = this.store;
    const source = store.source[store.slot(seq)];
    for (let s = seq, n = 0; s >= store.first && n < limit; s--, n++) {
      const slot = store.slot(s);
      if (store.source[slot] !== source) continue;
      if (store.kind[slot] !== LINE) return -1;
      if (store.level[slot] & HEAD) return s;
    }
    return -1;
  }

  /** The continuation lines of the entry headed by `head` still held, in order. */
  continuations(head) {
    const store = this.store;
    const source = store.source[store.slot(head)];
    const out = [];
    for (let s = head + 1; s < store.next; s++) {
      const slot = store.slot(s);
      if (store.source[slot] !== source) continue;
      if (store.kind[slot] !== LINE || store.level[slot] & HEAD) break;
      out.push(s);
    }
    return out;
  }
}
