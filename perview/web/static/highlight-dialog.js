// The highlights dialog: a row per rule (its text or pattern, whether it is a regular expression,
// its colour). A pattern that does not compile is said on its row, and nothing is saved.

import { $, el } from "./dom.js";
import { HIGHLIGHT_COLORS, ruleError } from "./highlights.js";

/** Open the dialog on `rules`; `save(rules)` gets the rules the reader saves. */
export function editHighlights(rules, save) {
  const dialog = $("highlights");
  const list = $("highlight-list");
  const row = (rule = { pattern: "", regex: false, color: HIGHLIGHT_COLORS[list.children.length % HIGHLIGHT_COLORS.length] }) => {
    const pattern = el("input", { value: rule.pattern, placeholder: "text to highlight", spellcheck: false, dataset: { testid: "highlight-pattern" } });
    const regex = el("button", { type: "button", className: "toggle", textContent: ".*", title: "a regular expression (ignoring case, as text is)", ariaPressed: String(Boolean(rule.regex)), dataset: { testid: "highlight-regex" } });
    regex.addEventListener("click", () => (regex.ariaPressed = String(regex.ariaPressed !== "true")));
    const color = el("select", { dataset: { testid: "highlight-color" } });
    for (const name of HIGHLIGHT_COLORS) color.append(new Option(name, name, false, name === rule.color));
    const error = el("span", { className: "filter-note", hidden: true, role: "status", dataset: { testid: "highlight-error" } });
    const li = el("li", {}, pattern, regex, color, error);
    li.read = () => ({ pattern: pattern.value, regex: regex.ariaPressed === "true", color: color.value });
    li.say = (text) => Object.assign(error, { textContent: text, hidden: !text });
    list.append(li);
  };
  list.replaceChildren();
  for (const rule of rules) row(rule);
  row();
  $("highlight-more").onclick = () => row();
  $("highlight-save").onclick = () => {
    let valid = true;
    for (const li of list.children) {
      const problem = ruleError(li.read());
      li.say(problem);
      valid &&= !problem;
    }
    if (!valid) return;
    save([...list.children].map((li) => li.read()).filter((r) => r.pattern));
    dialog.close();
  };
  dialog.showModal();
}
