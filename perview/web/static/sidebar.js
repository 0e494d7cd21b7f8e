// The sidebar's list of sources: a name to show one, a box to tick several (for side by side or
// merged) and its state.

import { el } from "./dom.js";
import { colorOf } from "./palette.js";
import { describeState, groupSources } from "./sources.js";

export class Sidebar {
  /** `list`: the sidebar's element; `pick(name)`: show that source alone. */
  constructor(list, sources, pick) {
    this.list = list;
    this.sources = sources;
    this.pick = pick;
    this.ticked = new Set();
  }

  /** The ticked sources, in the sidebar's order. */
  checked() {
    return this.sources.names().filter((name) => this.ticked.has(name));
  }

  /** Tick these sources too (what is on screen). */
  tick(names) {
    for (const name of names) this.ticked.add(name);
    this.render();
  }

  render() {
    const nodes = [];
    for (const [group, infos] of groupSources(this.sources.infos.values())) {
      if (group) nodes.push(el("h3", { textContent: group }));
      for (const info of infos) nodes.push(this.item(info));
    }
    this.list.replaceChildren(...nodes);
  }

  item(info) {
    const box = el("input", { type: "checkbox", checked: this.ticked.has(info.name), title: "select for side by side or merged", dataset: { testid: "source-select" } });
    box.addEventListener("change", () => (box.checked ? this.ticked.add(info.name) : this.ticked.delete(info.name)));
    const title = this.sources.titleOf(info.name);
    const name = el("button", { type: "button", className: `name tag-text-${colorOf(info.name)}`, textContent: title, title: `show ${title} alone` });
    name.addEventListener("click", () => this.pick(info.name));
    const state = el("span", { className: `state state-${info.state}`, textContent: describeState(info), title: info.summary ?? "", dataset: { testid: "source-state" } });
    const hosts = info.hosts?.length ? info.hosts.join(", ") + " · " : "";
    const rate = info.rate ? ` · ${Math.round(info.rate)}/s` : "";
    const item = el("li", { dataset: { testid: "source-item", source: info.name } }, box, name, state, el("span", { className: "detail", textContent: `${hosts}${info.viewers ?? 0} watching${rate}` }));
    return item;
  }
}
