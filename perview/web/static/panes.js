// The log panes on screen: one merged pane, or one per source side by side. Each is a Pane
// (pane.js); this module owns their list, the order they are in and which sources they need.

import { Pane } from "./pane.js";

export class Panes {
  /** `container`: the element the panes go in; `app`: what a Pane is given (see app.js). */
  constructor(container, app) {
    this.container = container;
    this.app = app;
    this.list = [];
    this.mode = "merged";
  }

  /** Replace the panes by `names` in `mode` ("split": one pane each; "merged": one for all). */
  show(names, mode, filter = {}) {
    for (const pane of this.list) pane.destroy();
    this.list = [];
    const groups = mode === "split" ? names.map((n) => [n]) : [names];
    for (const group of groups) {
      const pane = new Pane(this.app, group, filter); // it asks how many panes came before it
      this.list.push(pane);
      this.container.append(pane.root);
    }
    this.mode = mode;
    this.container.dataset.count = String(this.list.length);
  }

  close(pane) {
    this.list = this.list.filter((p) => p !== pane);
    pane.destroy();
    this.container.dataset.count = String(this.list.length);
  }

  /** Every source some pane shows, once. */
  wanted() {
    return [...new Set(this.list.flatMap((p) => [...p.sources]))];
  }

  /** Offer the store's lines from `first` on to every pane. */
  distribute(store, first) {
    for (const pane of this.list) {
      for (let seq = Math.max(first, store.first); seq < store.next; seq++) pane.consider(seq);
      pane.added();
    }
  }

  redraw() {
    for (const pane of this.list) pane.redraw();
  }

  /** The pane holding the focus, else the first. */
  active(focused) {
    return this.list.find((p) => p.root.contains(focused)) || this.list[0];
  }
}
