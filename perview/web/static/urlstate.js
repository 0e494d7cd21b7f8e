// What the page's address says: the sources shown and how, the first pane's filter, the metrics
// range, the highlights and the row options. Read once at load, written on every change of view,
// so a reload or a copied link reopens the same view. Pure: no DOM, no location.

import { formatRules, parseRules } from "./highlights.js";

// Lines kept in this tab. At most 1.5 million: Chromium caps a scrolling height at 33,554,432
// px, which at 18 px a row is 1.86 million rows, and the last ones would never show.
export const DEFAULT_CAPACITY = 100000;
export const MAX_CAPACITY = 1500000;

/** The view a query string (`location.search`) asks for. */
export function readState(search) {
  const params = new URLSearchParams(search);
  const flag = (name) => params.get(name) === "1";
  const hl = params.get("hl");
  return {
    sources: params.getAll("source"),
    split: params.get("view") === "split",
    filter: { text: params.get("filter") || "", regex: flag("regex"), matchCase: flag("case"), invert: flag("invert"), level: params.get("level") || "" },
    metrics: params.get("metrics"), // a range, "" for the default one, null: the logs
    highlights: hl === null ? null : parseRules(hl), // null: none in the address
    options: { time: flag("time"), numbers: flag("numbers"), wrap: flag("wrap") },
    capacity: Math.min(Number(params.get("max")) || DEFAULT_CAPACITY, MAX_CAPACITY),
  };
}

/** The query string (without "?") for a view: what readState() reads back (the row options
 *  and the capacity are read from a link, not written). */
export function writeState({ sources = [], split = false, filter = null, metrics = null, highlights = [] }) {
  const query = new URLSearchParams();
  for (const name of sources) query.append("source", name);
  if (split) query.set("view", "split");
  if (filter?.text) {
    query.set("filter", filter.text);
    if (filter.regex) query.set("regex", "1");
    if (filter.matchCase) query.set("case", "1");
    if (filter.invert) query.set("invert", "1");
  }
  if (filter?.level) query.set("level", filter.level);
  if (metrics !== null) query.set("metrics", metrics);
  if (highlights.length) query.set("hl", formatRules(highlights));
  return query.toString();
}
