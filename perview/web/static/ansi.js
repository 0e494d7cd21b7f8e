// ANSI rendering: SGR colour and style codes become styled segments; every other escape sequence
// is dropped, and control characters become visible marks. The result is data for text nodes:
// nothing here ever becomes markup or a link.

const ESC = "\x1b";
// CSI (ESC [ params final), OSC (ESC ] ... BEL or ESC \), and two-byte escapes.
const SEQUENCE = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;
// Shown as marks, never as themselves: C0 controls but tab (an ESC here is one that starts no
// sequence), DEL, C1 controls, the bidi controls (an override or isolate would reorder or hide
// the text after it), the line and paragraph separators, and U+240D, which is how the event
// stream carries a CR inside a line (its control picture has no glyph in Debian's fonts).
const CONTROL_CLASS = "\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\u240d";
const CONTROL = new RegExp(`[${CONTROL_CLASS}]`);
const CONTROLS = new RegExp(`[${CONTROL_CLASS}]`, "g");
const CR_PICTURE = 0x240d;
const PLAIN = Object.freeze({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false });

/** How a control character is shown: caret notation for C0 and DEL (`^[`, `^M`, `^?`, as
 *  `cat -v` does), `<U+202E>` for the others. Plain ASCII, so every monospace font has it. */
export function controlMark(char) {
  const code = char.charCodeAt(0);
  if (code === CR_PICTURE) return "^M";
  if (code < 0x20) return "^" + String.fromCharCode(code + 0x40);
  if (code === 0x7f) return "^?";
  return `<U+${code.toString(16).toUpperCase().padStart(4, "0")}>`;
}

function codePoint(char) {
  const code = char.charCodeAt(0) === CR_PICTURE ? 0x0d : char.charCodeAt(0);
  return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Push `text` in `style` onto `out`, each control character as a segment of its own: its mark,
 *  in the same style plus `control` (the code point, for the mark's class and title). */
function pushText(out, text, style) {
  if (!CONTROL.test(text)) {
    out.push({ text, style });
    return;
  }
  let last = 0;
  for (const match of text.matchAll(CONTROLS)) {
    if (match.index > last) out.push({ text: text.slice(last, match.index), style });
    out.push({ text: controlMark(match[0]), style: { ...(style ?? PLAIN), control: codePoint(match[0]) } });
    last = match.index + 1;
  }
  if (last < text.length) out.push({ text: text.slice(last), style });
}

/** The text without escape sequences (what filters and searches see). */
export function plain(text) {
  if (!text.includes(ESC)) return text;
  return text.replace(SEQUENCE, "");
}

function color256(n) {
  if (n < 16) return { cls: n };
  if (n < 232) {
    const v = n - 16;
    const level = (x) => (x === 0 ? 0 : 55 + x * 40);
    return { css: `rgb(${level(Math.floor(v / 36))},${level(Math.floor(v / 6) % 6)},${level(v % 6)})` };
  }
  const grey = 8 + (n - 232) * 10;
  return { css: `rgb(${grey},${grey},${grey})` };
}

function applyCodes(style, params) {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(style, { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false });
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 7) style.inverse = true;
    else if (c === 22) style.bold = style.dim = false;
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if (c === 27) style.inverse = false;
    else if (c >= 30 && c <= 37) style.fg = { cls: c - 30 };
    else if (c >= 90 && c <= 97) style.fg = { cls: c - 90 + 8 };
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = { cls: c - 40 };
    else if (c >= 100 && c <= 107) style.bg = { cls: c - 100 + 8 };
    else if (c === 49) style.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
      style[c === 38 ? "fg" : "bg"] = color256(codes[i + 2] ?? 0);
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
      const [r, g, b] = codes.slice(i + 2, i + 5).map((x) => Math.min(255, x ?? 0));
      style[c === 38 ? "fg" : "bg"] = { css: `rgb(${r},${g},${b})` };
      i += 4;
    }
  }
}

/** Split a line into [{text, style}] segments; style is null for plain text, and has
 *  `control` set for the mark standing for a control character. */
export function segments(text) {
  if (!text.includes(ESC)) {
    if (!CONTROL.test(text)) return [{ text, style: null }];
    const out = [];
    pushText(out, text, null);
    return out;
  }
  const out = [];
  const style = { ...PLAIN };
  let last = 0;
  for (const match of text.matchAll(SEQUENCE)) {
    if (match.index > last) pushText(out, text.slice(last, match.index), { ...style });
    if (match[2] === "m") applyCodes(style, match[1]);
    last = match.index + match[0].length;
  }
  if (last < text.length) pushText(out, text.slice(last), { ...style });
  return out;
}

/** Apply a segment's style to an element: classes for the 16 themed colours, CSSOM otherwise
 *  (allowed by the content security policy, unlike style attributes in markup). */
export function styleElement(el, style) {
  let fg = style.fg;
  let bg = style.bg;
  if (style.inverse) [fg, bg] = [bg ?? { cls: "default-bg" }, fg ?? { cls: "default-fg" }];
  if (fg) fg.css ? (el.style.color = fg.css) : el.classList.add(`fg-${fg.cls}`);
  if (bg) bg.css ? (el.style.backgroundColor = bg.css) : el.classList.add(`bg-${bg.cls}`);
  if (style.bold) el.classList.add("b");
  if (style.dim) el.classList.add("dim");
  if (style.italic) el.classList.add("i");
  if (style.underline) el.classList.add("u");
  if (style.control) {
    el.classList.add("ctl");
    el.title = style.control;
  }
}
