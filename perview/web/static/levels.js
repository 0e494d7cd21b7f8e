// Levels and entries as the page holds them: one byte a line, `level | HEAD`, as the server's
// classifier makes them (perview/classify.py). The event stream spells them as one letter a line
// (`levels` in a `lines` event's header): upper case for a line that starts an entry, lower case
// for a continuation, which carries its head's level.

export const NONE = 0;
export const TRACE = 1;
export const DEBUG = 2;
export const INFO = 3;
export const WARNING = 4;
export const ERROR = 5;
export const FATAL = 6;
export const HEAD = 0x80; // this line starts an entry
export const LEVEL_MASK = 0x7f;

export const LEVEL_NAMES = ["none", "trace", "debug", "info", "warning", "error", "fatal"];
// The mark drawn before a line: a letter, so a level reads without colour too.
export const LEVEL_LETTERS = [" ", "T", "D", "I", "W", "E", "F"];
// What a pane's minimum-level control offers: its value, the level it keeps from, its label.
export const MINIMUMS = [
  { value: "", level: NONE, label: "all" },
  { value: "warning", level: WARNING, label: "≥ warning" },
  { value: "error", level: ERROR, label: "≥ error" },
];

/** The mark of a line without a letter for it (a source not classified): its own entry. */
export const UNCLASSIFIED = NONE | HEAD;

// Letter (char code) -> mark; anything unknown is an unclassified head.
const BY_CODE = new Uint8Array(128).fill(UNCLASSIFIED);
for (const [i, letter] of ["n", "t", "d", "i", "w", "e", "f"].entries()) {
  BY_CODE[letter.charCodeAt(0)] = i;
  BY_CODE[letter.toUpperCase().charCodeAt(0)] = i | HEAD;
}

/** The mark of line `i` of an event whose header says `levels` (a string, or undefined when the
 *  source is not classified). */
export function markAt(levels, i) {
  if (levels === undefined || i >= levels.length) return UNCLASSIFIED;
  const code = levels.charCodeAt(i);
  return code < 128 ? BY_CODE[code] : UNCLASSIFIED;
}

export function levelOf(mark) {
  return mark & LEVEL_MASK;
}

export function isHead(mark) {
  return (mark & HEAD) !== 0;
}

/** The level a name stands for (`warn`, `err` and `crit` too), or -1. */
export function levelNamed(name) {
  const n = String(name).toLowerCase();
  const i = LEVEL_NAMES.indexOf(n);
  if (i >= 0) return i;
  return ALIASES[n] ?? -1;
}

const ALIASES = { warn: WARNING, err: ERROR, crit: FATAL, critical: FATAL, notice: INFO, dbg: DEBUG };

/** A pane's minimum level from its setting (`""`, `warning`, `error`); NONE keeps every line. */
export function minimumOf(value) {
  return MINIMUMS.find((m) => m.value === value)?.level ?? NONE;
}

/** The sidebar's figures of a source (`levels` from /api/sources): errors (fatal included) and
 *  warnings, each {minute, hour, total}; null when the source has no counts. */
export function problemCounts(levels) {
  if (!levels) return null;
  const count = (names, key) => names.reduce((sum, name) => sum + (Number(levels[name]?.[key]) || 0), 0);
  const per = (names) => ({ minute: count(names, "minute"), hour: count(names, "hour"), total: count(names, "total") });
  return { error: per(["error", "fatal"]), warning: per(["warning"]) };
}
