// The sidebar's list of sources: a name to show one, a box to tick several (for side by side or
// merged), its state and, when it is not working, why. The boxes tick what is on screen: showing
// a source alone ticks it alone.

import { problemBadge } from "./levelui.js";
import { el } from "./dom.js";
import { colorOf } from "./palette.js";
import { describeState, groupSources, troubleOf } from "./sources.js";

// Below this width the sidebar is folded away behind the header's "sources" button, and the log
// gets the screen (the stylesheet's media query says the same).
export const NARROW = "(max-width: 700px)";

/** The header's button that opens and closes the sidebar on a narrow screen. */
export function foldable(button, body = document.body) {
  const set = (open) => {
    body.classList.toggle("sidebar-open", open);
    button.ariaExpanded = String(open);
  };
  button.addEventListener("click", () => set(!body.classList.contains("sidebar-open")));
  return () => set(false);
}

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

  /** Tick these sources, and only these (what is on screen). */
  tick(names) {
    this.ticked = new Set(names);
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
    const trouble = troubleOf(info);
    if (trouble) item.append(el("span", { className: "reason", textContent: trouble, dataset: { testid: "source-reason" } }));
    const badge = problemBadge(info); // errors and warnings of the last minute, hour, since start
    if (badge) item.append(badge);
    return item;
  }
}
