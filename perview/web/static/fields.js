// The fields of a line (a JSON record's keys, flattened with dots, or logfmt's key=value pairs),
// how a JSON record is shown readably, and the filter's field terms (`level:error`, `user:bob`,
// `status:>=500`, `-path:/healthz`). Only what is on screen or being filtered is parsed, and never
// more than a bounded part of a line: a 10 MB line must not freeze the page.

import { LEVEL_NAMES, NONE, levelNamed, levelOf } from "./levels.js";

// The longest line parsed for fields. A log record is a few hundred bytes; past this it is shown
// and filtered as text (JSON.parse took 14 ms on 10 MB here, and a frame is 16).
export const PARSE_MAX = 64 * 1024;
// Nesting flattened into dotted keys; deeper values are shown as `{…}`.
export const DEPTH_MAX = 16;
// Fields taken from one line: a record of 100,000 keys is shown by its first ones.
export const FIELDS_MAX = 200;

// Keys that name a JSON record's time, level and message, in the order they are looked for.
const TIME_KEYS = ["time", "timestamp", "@timestamp", "ts", "t", "date", "__REALTIME_TIMESTAMP"];
const LEVEL_KEYS = ["level", "severity", "lvl", "log.level", "levelname", "PRIORITY"];
const MESSAGE_KEYS = ["msg", "message", "MESSAGE", "@message", "event"];
// A filter term's key that means the line's own level (from the classifier), whatever the format.
const LEVEL_TERM_KEYS = new Set(["level", "lvl", "severity"]);

const LOGFMT_PAIR = /(?:^|[\s])([A-Za-z_@][\w.@/-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)/g;

/** Whether a line looks like a JSON record (an object), without parsing it. */
export function looksJson(text) {
  let i = 0;
  while (i < text.length && (text[i] === " " || text[i] === "\t")) i++;
  return text[i] === "{" && text.trimEnd().endsWith("}");
}

/** A JSON record's fields as [key, value] pairs in order, nested objects and arrays flattened
 *  (`req.method`, `tags.0`); null when the line is not a JSON object or is longer than PARSE_MAX. */
export function jsonFields(text) {
  if (text.length > PARSE_MAX || !looksJson(text)) return null;
  let record;
  try {
    record = JSON.parse(text);
  } catch {
    return null; // invalid JSON is text
  }
  if (record === null || typeof record !== "object" || Array.isArray(record)) return null;
  return flatten(record);
}

/** Iterative, not recursive: the depth of a record is the sender's choice. */
function flatten(record) {
  const out = [];
  const stack = [["", record, 0]];
  while (stack.length && out.length < FIELDS_MAX) {
    const [prefix, value, depth] = stack.pop();
    if (value !== null && typeof value === "object") {
      const keys = Object.keys(value);
      if (!keys.length && prefix) out.push([prefix, Array.isArray(value) ? "[]" : "{}"]);
      else if (depth >= DEPTH_MAX) out.push([prefix, Array.isArray(value) ? "[…]" : "{…}"]);
      else {
        const limit = Math.min(keys.length, FIELDS_MAX);
        for (let i = limit - 1; i >= 0; i--) stack.push([prefix ? `${prefix}.${keys[i]}` : keys[i], value[keys[i]], depth + 1]);
      }
    } else {
      out.push([prefix, value]);
    }
  }
  return out;
}

/** logfmt's key=value pairs of a text line (the first PARSE_MAX characters), values unquoted. */
export function logfmtFields(text) {
  const head = text.length > PARSE_MAX ? text.slice(0, PARSE_MAX) : text;
  if (!head.includes("=")) return [];
  const out = [];
  for (const m of head.matchAll(LOGFMT_PAIR)) {
    let value = m[2];
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value);
      } catch {
        value = value.slice(1, -1);
      }
    }
    out.push([m[1], value]);
    if (out.length >= FIELDS_MAX) break;
  }
  return out;
}

/** A line's fields: its JSON record's, else its logfmt pairs. */
export function fieldsOf(text) {
  return jsonFields(text) ?? logfmtFields(text);
}

function pick(fields, keys) {
  for (const key of keys) {
    const i = fields.findIndex(([k]) => k === key);
    if (i >= 0) return i;
  }
  return -1;
}

/** A record's time as a person reads it: epoch numbers (s, ms, µs) as ISO time, text as is. */
export function readableTime(value) {
  const n = typeof value === "number" ? value : /^\d{10,17}(\.\d+)?$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isFinite(n)) return String(value);
  const ms = n > 1e14 ? n / 1000 : n > 1e11 ? n : n * 1000;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString();
}

/** How a field's value is written after `key=`: quoted when it holds a space, `=` or nothing. */
export function showValue(value) {
  const text = typeof value === "string" ? value : String(value);
  return text === "" || /[\s="]/.test(text) ? JSON.stringify(text) : text;
}

/** A JSON record shown readably: {time, level, message, fields: [[key, text]]}, the time, level
 *  and message taken out of the fields; null if the line is not a JSON record (or too long).
 *  `mark`: the line's level mark, so a numeric level (pino's 50) reads as its name. */
export function readableJson(text, mark = NONE) {
  const fields = jsonFields(text);
  if (!fields) return null;
  const take = (keys) => {
    const i = pick(fields, keys);
    return i < 0 ? undefined : fields.splice(i, 1)[0][1];
  };
  const time = take(TIME_KEYS);
  const rawLevel = take(LEVEL_KEYS);
  const message = take(MESSAGE_KEYS);
  const level = levelOf(mark) !== NONE ? LEVEL_NAMES[levelOf(mark)] : rawLevel;
  return {
    time: time === undefined ? "" : readableTime(time),
    level: level === undefined ? "" : String(level),
    message: message === undefined ? "" : typeof message === "string" ? message : JSON.stringify(message),
    fields: fields.map(([key, value]) => [key, showValue(value)]),
  };
}

// -- the filter's field terms ---------------------------------------------------------------------

// `name:value`, `-name:value`, `name:>=500`: a word that starts with a name and a colon.
const TERM = /^(-?)([A-Za-z_@][\w.@-]*):(>=|<=|!=|>|<|=)?(.*)$/;

/** Split a filter's text into field terms and the rest (the text to search for, its words joined
 *  by single spaces as typed). A term is {negate, key, op, value, raw}. Text without a term is
 *  returned unchanged, so a plain search is exactly what it was. */
export function parseQuery(text) {
  const words = text.match(/(?:[^\s"]|"[^"]*"?)+/g) ?? [];
  const terms = [];
  const rest = [];
  for (const word of words) {
    const m = TERM.exec(word);
    if (!m || m[4] === "") {
      rest.push(word);
      continue;
    }
    let value = m[4];
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    terms.push({ negate: m[1] === "-", key: m[2], op: m[3] ?? "=", value, raw: word.slice(m[1].length) });
  }
  if (!terms.length) return { terms, text };
  return { terms, text: rest.join(" ") };
}

/** Whether `value` (a field's) satisfies `op` against the term's `expected`. Numbers compare as
 *  numbers; text ignores case unless `matchCase`, and `*` in an equality stands for any text. */
export function compare(value, op, expected, matchCase = false) {
  const a = Number(value);
  const b = Number(expected);
  const numeric = value !== "" && expected !== "" && Number.isFinite(a) && Number.isFinite(b);
  if (op === "=" || op === "!=") {
    const equal = numeric ? a === b : wildcard(String(value), expected, matchCase);
    return op === "=" ? equal : !equal;
  }
  let x = numeric ? a : String(value);
  let y = numeric ? b : expected;
  if (!numeric && !matchCase) [x, y] = [x.toLowerCase(), y.toLowerCase()];
  if (op === ">=") return x >= y;
  if (op === "<=") return x <= y;
  if (op === ">") return x > y;
  return x < y;
}

/** `pattern` with `*` for any text, matched whole; linear, no regular expression. */
function wildcard(text, pattern, matchCase) {
  if (!matchCase) {
    text = text.toLowerCase();
    pattern = pattern.toLowerCase();
  }
  if (!pattern.includes("*")) return text === pattern;
  const parts = pattern.split("*");
  if (!text.startsWith(parts[0])) return false;
  let at = parts[0].length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = text.indexOf(parts[i], at);
    if (found < 0) return false;
    at = found + parts[i].length;
  }
  const last = parts[parts.length - 1];
  return text.length - at >= last.length && text.endsWith(last);
}

/** A test of a line's field terms: (text, mark) -> bool, every term holding. A level term tests
 *  the line's own level (`level:error`, `level:>=warning`). A term whose field the line does not
 *  have is a plain search for its words (`ERROR:root` finds Python's text lines). */
export function termsTest(terms, matchCase = false) {
  const tests = terms.map((term) => {
    const level = LEVEL_TERM_KEYS.has(term.key) ? levelNamed(term.value) : -1;
    const raw = matchCase ? term.raw : term.raw.toLowerCase();
    const needle = term.key.slice(term.key.lastIndexOf(".") + 1);
    let test;
    if (level >= 0) {
      test = (text, mark) => compare(levelOf(mark), term.op, String(level));
    } else {
      test = (text) => {
        // Cheap first: a line that does not hold the key's name has no such field.
        const fields = text.includes(needle) ? fieldsOf(text) : [];
        const found = fields.find(([k]) => k === term.key);
        if (found) return compare(found[1] === null ? "null" : found[1], term.op, term.value, matchCase);
        return (matchCase ? text : text.toLowerCase()).includes(raw);
      };
    }
    return term.negate ? (text, mark) => !test(text, mark) : test;
  });
  return (text, mark) => tests.every((test) => test(text, mark));
}

/** The most common fields among `texts` and, for each, its most common values:
 *  [{key, count, values: [{value, count}]}], most common first, `limit` of each. */
export function commonFields(texts, limit = 12) {
  const keys = new Map();
  for (const text of texts) {
    for (const [key, value] of fieldsOf(text)) {
      let entry = keys.get(key);
      if (!entry) keys.set(key, (entry = { key, count: 0, values: new Map() }));
      entry.count++;
      const shown = value === null ? "null" : typeof value === "object" ? JSON.stringify(value) : String(value);
      entry.values.set(shown, (entry.values.get(shown) ?? 0) + 1);
    }
  }
  const top = [...keys.values()].sort((a, b) => b.count - a.count).slice(0, limit);
  return top.map(({ key, count, values }) => ({
    key,
    count,
    values: [...values].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([value, n]) => ({ value, count: n })),
  }));
}

/** The filter term that selects `value` of `key`, quoted when it holds a space. */
export function termFor(key, value) {
  return /[\s"]/.test(value) || value === "" ? `${key}:"${value.replace(/"/g, "")}"` : `${key}:${value}`;
}
