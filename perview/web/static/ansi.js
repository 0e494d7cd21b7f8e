// ANSI rendering: SGR colour and style codes become styled segments; every other escape sequence
// is dropped, and other control characters are shown as their Unicode control pictures. The
// result is data for text nodes: nothing here ever becomes markup or a link.

const ESC = "\x1b";
// CSI (ESC [ params final), OSC (ESC ] ... BEL or ESC \), and two-byte escapes.
const SEQUENCE = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;
const CONTROLS = /[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g;

const BASIC = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

function picture(char) {
  const code = char.charCodeAt(0);
  return code === 0x7f ? "\u2421" : String.fromCharCode(0x2400 + code);
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

/** Split a line into [{text, style}] segments; style is null for plain text. */
export function segments(text) {
  if (!text.includes(ESC)) return [{ text: text.replace(CONTROLS, picture), style: null }];
  const out = [];
  const style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
  let last = 0;
  for (const match of text.matchAll(SEQUENCE)) {
    if (match.index > last) out.push({ text: text.slice(last, match.index).replace(CONTROLS, picture), style: { ...style } });
    if (match[2] === "m") applyCodes(style, match[1]);
    last = match.index + match[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last).replace(CONTROLS, picture), style: { ...style } });
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
}

export const COLOR_NAMES = BASIC;
