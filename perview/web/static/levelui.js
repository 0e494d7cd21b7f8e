// The page's pieces that show levels and fields: a line's level mark, a JSON record drawn readably,
// a pane's level controls and field list, a source's counts in the sidebar. Text from a line only
// ever goes into text nodes.

import { segments, styleElement } from "./ansi.js";
import { commonFields, looksJson, readableJson } from "./fields.js";
import { LEVEL_LETTERS, LEVEL_NAMES, MINIMUMS, isHead, levelOf, problemCounts } from "./levels.js";

// Lines of a pane whose fields are listed: the most recent ones, so listing is quick however
// much the pane holds (each line is parsed: 2,000 JSON records take a few ms).
const FIELDS_SAMPLE = 2000;
const FIELDS_SHOWN = 10; // fields listed, and values a field

function el(tag, props = {}, ...children) {
  const { dataset, ...rest } = props;
  const node = Object.assign(document.createElement(tag), rest);
  if (dataset) Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}

/** The mark before a line: its level's letter in its colour (upper case for an entry's head,
 *  lower case for a continuation), and, for a folded entry, how many lines it hides. */
export function levelMark(mark, folded) {
  const level = levelOf(mark);
  const head = isHead(mark);
  const letter = LEVEL_LETTERS[level];
  const node = el("span", {
    className: `lv lv-${LEVEL_NAMES[level]}${head ? "" : " cont"}`,
    textContent: head ? letter : letter.toLowerCase(),
    title: `${LEVEL_NAMES[level]}${head ? "" : " (continued)"}; click to fold or unfold the entry`,
    dataset: { testid: "level-mark", level: LEVEL_NAMES[level] },
  });
  if (folded !== undefined) {
    node.append(el("span", { className: "folded", textContent: ` ▸ ${folded} more`, dataset: { testid: "folded" } }));
  }
  return node;
}

function textInto(parent, text, highlighter) {
  highlighter.render(parent, segments(text), styleElement);
}

/** Draw a JSON record readably into `body`: time, level, message, then key=value fields. Returns
 *  false (and draws nothing) when the line is not a JSON record or is too long to parse. */
export function drawJson(body, text, mark, highlighter) {
  if (!looksJson(text)) return false;
  const record = readableJson(text, mark);
  if (!record) return false;
  body.classList.add("json");
  body.dataset.testid = "json";
  // Spaces between the parts, not margins: a copied line reads the same as the screen.
  const gap = () => body.firstChild && body.append(" ");
  const part = (className, value) => {
    const span = el("span", { className });
    textInto(span, value, highlighter);
    gap();
    body.append(span);
  };
  if (record.time) part("jt", record.time);
  if (record.level) part(`jl lv-${LEVEL_NAMES[levelOf(mark)]}`, record.level);
  if (record.message) part("jm", record.message);
  for (const [key, value] of record.fields) {
    const field = el("span", { className: "jf" }, el("span", { className: "jk", textContent: `${key}=` }));
    textInto(field, value, highlighter);
    gap();
    body.append(field);
  }
  return true;
}

/** A pane's level controls: the minimum level shown, and buttons to the previous and next
 *  warning or error. `pane` provides settings, applyFilter() and jump(direction, level). */
export function levelControls(pane) {
  const select = el("select", { title: "the lowest level shown", dataset: { testid: "level-min" } });
  for (const m of MINIMUMS) select.append(new Option(m.label, m.value, false, m.value === pane.settings.level));
  select.addEventListener("change", () => {
    pane.settings.level = select.value;
    pane.applyFilter();
  });
  const button = (label, title, testid, direction) => {
    const b = el("button", { type: "button", textContent: label, title, dataset: { testid } });
    b.addEventListener("click", () => pane.jump(direction, "warning"));
    return b;
  };
  return el("span", { className: "level-controls" }, select,
    button("↑!", "previous warning or error (W)", "prev-problem", -1),
    button("↓!", "next warning or error (w)", "next-problem", 1));
}

/** The list of a pane's most common fields and their values; a click on a value calls
 *  `choose(key, value)`. */
export function fieldsList(texts, choose) {
  const fields = commonFields(texts.slice(-FIELDS_SAMPLE), FIELDS_SHOWN);
  const list = el("div", { className: "fields-panel", dataset: { testid: "fields-panel" } });
  if (!fields.length) list.append(el("p", { textContent: "no fields in the lines shown (JSON or key=value)" }));
  for (const field of fields) {
    const values = field.values.map(({ value, count }) => {
      const b = el("button", { type: "button", className: "field-value", title: `filter ${field.key} = ${value}`, dataset: { testid: "field-value", key: field.key, value } });
      b.append(el("span", { textContent: value }), el("span", { className: "n", textContent: ` ${count}` }));
      b.addEventListener("click", () => choose(field.key, value));
      return b;
    });
    list.append(el("div", { className: "field", dataset: { testid: "field", key: field.key } },
      el("span", { className: "field-key", textContent: `${field.key} (${field.count})` }), ...values));
  }
  return list;
}

/** A source's errors and warnings in the last minute, the last hour and since it started, for
 *  the sidebar; null when the server gives no counts. */
export function problemBadge(info) {
  const counts = problemCounts(info.levels);
  if (!counts) return null;
  const part = (name, letter, c) =>
    el("span", {
      className: `problems lv-${name}${c.total ? "" : " zero"}`,
      textContent: `${letter} ${c.minute}/${c.hour}/${c.total}`,
      title: `${name === "error" ? "errors (and fatal)" : "warnings"}: ${c.minute} in the last minute, ${c.hour} in the last hour, ${c.total} since start`,
      dataset: { testid: `source-${name}s`, minute: String(c.minute), hour: String(c.hour), total: String(c.total) },
    });
  return el("span", { className: "badges" }, part("error", "E", counts.error), part("warning", "W", counts.warning));
}
