// Highlights: words (or patterns) marked in every pane, in the colour the reader chose; kept in
// this browser and carried in links. A literal rule is matched on the page's thread (an escaped
// literal cannot backtrack). A regex rule never is: a pattern from a link can backtrack for hours
// on a crafted line, so it runs in a worker under the filter's budget (FilterWorker, BUDGET_MS
// a batch), on the text of the rows being drawn (a few dozen); until the worker answers a row is
// drawn without them, and drawn again once it has. A pattern past its budget has its worker
// ended, and regex highlights are off (and said to be) until the rules change.

import { FilterWorker, Cancelled, TooSlow, BATCH_LINES } from "./filter.js";

export const HIGHLIGHT_COLORS = ["yellow", "red", "green", "blue", "magenta", "cyan"];
// Rules in a link: one a line, `color:pattern`, or `color.*:pattern` for a regular expression.
const REGEX_MARK = ".*";
// Texts whose regex matches are remembered: the rows on screen and those scrolled past lately.
const MAX_CACHED = 10000;
export const TOO_SLOW = "a highlight pattern is too slow on these lines: regex highlights are off";

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Rules from a link's `hl` parameter (an unknown colour becomes yellow). */
export function parseRules(text) {
  return text
    .split("\n")
    .map((line) => {
      const [head, ...rest] = line.split(":");
      const regex = head.endsWith(REGEX_MARK);
      const color = regex ? head.slice(0, -REGEX_MARK.length) : head;
      return { color: HIGHLIGHT_COLORS.includes(color) ? color : "yellow", pattern: rest.join(":"), regex };
    })
    .filter((rule) => rule.pattern);
}

/** A link's `hl` parameter for `rules`: what parseRules() reads back. */
export function formatRules(rules) {
  return rules.map((r) => `${r.color}${r.regex ? REGEX_MARK : ""}:${r.pattern}`).join("\n");
}

/** Why `rule` cannot be used ("" when it can): a regex that does not compile. Compiling parses a
 *  pattern; it does not run it. */
export function ruleError(rule) {
  if (!rule.regex) return "";
  try {
    new RegExp(rule.pattern, "gi");
    return "";
  } catch (error) {
    return error.message;
  }
}

/** Non-overlapping ranges, in order: of overlapping ones the earliest wins, then the first rule. */
export function resolveRanges(ranges) {
  ranges.sort((a, b) => a.start - b.start || a.rule - b.rule);
  const out = [];
  let end = 0;
  for (const range of ranges) {
    if (range.start < end || range.end <= range.start) continue;
    out.push(range);
    end = range.end;
  }
  return out;
}

export class Highlighter {
  /** `changed()` is called when regex matches arrived (the rows on screen need drawing again);
   *  `note(text)` says why regex highlights are off ("": they are on). */
  constructor({ worker = null, changed = () => {}, note = () => {} } = {}) {
    this.worker = worker ?? new FilterWorker(() => new Worker(new URL("./highlight-worker.js", import.meta.url)));
    this.changed = changed;
    this.note = note;
    this.rules = [];
    this.literal = null; // one pattern for every literal rule, a group each
    this.literalRules = []; // the rule index of each group of `literal`
    this.patterns = []; // [{source, flags, rule}] of the regex rules, for the worker
    this.cache = new Map(); // text -> its regex ranges
    this.queue = new Set(); // texts waiting for the worker
    this.busy = false;
    this.generation = 0;
    this.stopped = false;
  }

  /** Use these rules from now on (rules that are empty or do not compile are left out). */
  set(rules) {
    this.rules = rules.filter((r) => r.pattern && !ruleError(r));
    const literal = [];
    this.literalRules = [];
    this.patterns = [];
    this.rules.forEach((rule, index) => {
      if (rule.regex) {
        this.patterns.push({ source: rule.pattern, flags: "gi", rule: index });
      } else {
        literal.push(`(${escapeRegExp(rule.pattern)})`);
        this.literalRules.push(index);
      }
    });
    this.literal = literal.length ? new RegExp(literal.join("|"), "gi") : null;
    this.generation++;
    this.cache.clear();
    this.queue.clear();
    this.stopped = false;
    this.note("");
    if (this.patterns.length) this.worker.cancel();
    else this.worker.stop();
  }

  /** The highlighted ranges of `text`: [{start, end, rule}], in order, not overlapping. Regex
   *  matches not known yet are asked of the worker (changed() says when they are known). */
  matches(text) {
    const ranges = [];
    if (this.literal) {
      for (const match of text.matchAll(this.literal)) {
        if (!match[0]) break;
        const group = match.slice(1).findIndex((g) => g !== undefined);
        ranges.push({ start: match.index, end: match.index + match[0].length, rule: this.literalRules[group] });
      }
    }
    if (this.patterns.length && !this.stopped) {
      const found = this.cache.get(text);
      if (found) ranges.push(...found);
      else this.ask(text);
    }
    return resolveRanges(ranges);
  }

  ask(text) {
    this.queue.add(text);
    if (!this.busy) queueMicrotask(() => this.pump());
  }

  /** Send the waiting texts to the worker, a batch at a time. */
  async pump() {
    if (this.busy) return;
    this.busy = true;
    const generation = this.generation;
    try {
      while (this.queue.size && generation === this.generation && !this.stopped) {
        const texts = [...this.queue].slice(0, BATCH_LINES);
        for (const text of texts) this.queue.delete(text);
        let found;
        try {
          found = await this.worker.test({ regex: { patterns: this.patterns.map(({ source, flags }) => ({ source, flags })) } }, texts);
        } catch (error) {
          if (error instanceof Cancelled || generation !== this.generation) return;
          this.stopped = true;
          this.note(error instanceof TooSlow ? TOO_SLOW : error.message);
          this.changed();
          return;
        }
        if (generation !== this.generation) return;
        if (this.cache.size + texts.length > MAX_CACHED) this.cache.clear();
        const ranges = texts.map(() => []);
        for (let i = 0; i < found.length; i += 4) {
          ranges[found[i]].push({ start: found[i + 1], end: found[i + 2], rule: this.patterns[found[i + 3]].rule });
        }
        texts.forEach((text, i) => this.cache.set(text, ranges[i]));
        this.changed();
      }
    } finally {
      this.busy = false;
      // Texts asked for while an older generation's batch was out are this generation's.
      if (this.queue.size && !this.stopped && generation !== this.generation) this.pump();
    }
  }

  /** Append segments to `parent` as text, marking highlighted ranges. */
  render(parent, segments, styleElement) {
    for (const segment of segments) {
      const target = segment.style ? document.createElement("span") : parent;
      if (segment.style) {
        styleElement(target, segment.style);
        parent.append(target);
      }
      if (!this.rules.length) {
        target.append(segment.text);
        continue;
      }
      let last = 0;
      for (const { start, end, rule } of this.matches(segment.text)) {
        target.append(segment.text.slice(last, start));
        const mark = document.createElement("mark");
        mark.className = `hl hl-${this.rules[rule].color}`;
        mark.textContent = segment.text.slice(start, end);
        target.append(mark);
        last = end;
      }
      target.append(segment.text.slice(last));
    }
  }
}
