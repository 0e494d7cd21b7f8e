// The header's two words on how things are: the connection indicator and a passing note.

import { $ } from "./dom.js";

let flashTimer = null;

/** Say how the page's connection is ("live", "reconnecting", "signed out", ...). */
export function setConnection(state) {
  const node = $("connection");
  node.textContent = state;
  node.dataset.state = state;
}

/** Show `text` in the header for `ms`. */
export function flash(text, ms = 1500) {
  const note = $("flash");
  note.textContent = text;
  note.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => (note.hidden = true), ms);
}
