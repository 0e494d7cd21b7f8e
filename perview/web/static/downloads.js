// Saving lines to a file. One rule for every download: plain text, colour codes removed (as
// filters see lines), Perview's own notes marked `[perview]` as in the text stream.

import { plain } from "./ansi.js";
import { MARK } from "./store.js";

/** The text of the lines a pane's view shows, one a line. */
export function shownText(store, view) {
  const lines = [];
  for (let i = 0; i < view.length; i++) {
    const seq = view.at(i);
    const note = store.kind[store.slot(seq)] === MARK ? "[perview] " : "";
    lines.push(note + store.plainText(seq));
  }
  return lines.join("\n") + "\n";
}

/** Offer `text` to the reader as a file called `name`. */
export function saveFile(name, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** Everything the server holds of `names` (their text streams, to the end of what is held), as
 *  plain text; or throws an Error saying which source's was refused and why. */
export async function fullHistory(api, names) {
  const parts = [];
  for (const name of names) {
    const response = await api(`api/sources/${encodeURIComponent(name)}/text?follow=0&backlog=1000000000`);
    if (!response.ok) throw Object.assign(new Error((await response.text()).trim()), { source: name });
    parts.push(plain(await response.text()));
  }
  return parts.join("");
}
