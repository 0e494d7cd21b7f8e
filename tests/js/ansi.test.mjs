// ansi.js without a browser: colours become styles, control characters become visible marks.

import { test } from "node:test";
import assert from "node:assert/strict";

import { controlMark, plain, segments, styleElement } from "../../perview/web/static/ansi.js";

const texts = (line) => segments(line).map((s) => s.text);
const marks = (line) => segments(line).filter((s) => s.style?.control).map((s) => [s.text, s.style.control]);

test("a plain line is one unstyled segment, the same string", () => {
  const line = "GET /index.html 200 1.2 ms";
  assert.deepEqual(segments(line), [{ text: line, style: null }]);
});

test("colour codes style the text and are not shown", () => {
  const [red, rest] = segments("\x1b[31mred\x1b[0m plain");
  assert.equal(red.text, "red");
  assert.deepEqual(red.style.fg, { cls: 1 });
  assert.equal(rest.text, " plain");
  assert.equal(rest.style.fg, null);
});

test("a bidi override is a mark, and the text after it stays in order", () => {
  assert.deepEqual(texts("left \u202eright"), ["left ", "<U+202E>", "right"]);
  assert.deepEqual(marks("a\u2066b\u2069c\u200fd\u061ce"), [
    ["<U+2066>", "U+2066"],
    ["<U+2069>", "U+2069"],
    ["<U+200F>", "U+200F"],
    ["<U+061C>", "U+061C"],
  ]);
  for (const char of "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028\u2029") {
    assert.ok(!segments(`x${char}y`).some((s) => s.text.includes(char)), `U+${char.charCodeAt(0).toString(16)} shown raw`);
  }
});

test("a bare ESC from a malformed CSI is a mark, in the colour in force", () => {
  const out = segments("\x1b[32mok \x1b[1 bad");
  assert.deepEqual(out.map((s) => s.text), ["ok ", "^[", "[1 bad"]);
  assert.equal(out[1].style.control, "U+001B");
  assert.deepEqual(out[1].style.fg, { cls: 2 });
  assert.deepEqual(texts("end\x1b"), ["end", "^["]);
  assert.deepEqual(texts("\x1bq"), ["^[", "q"]);
});

test("C0, DEL and C1 controls are marks; a tab is itself", () => {
  assert.deepEqual(texts("a\x00b\x07c\x7fd\x85e\x9bf\tg"), ["a", "^@", "b", "^G", "c", "^?", "d", "<U+0085>", "e", "<U+009B>", "f\tg"]);
});

test("a CR inside a line (U+240D on the event stream) is shown as ^M", () => {
  assert.deepEqual(texts("10%\u240d20%"), ["10%", "^M", "20%"]);
  assert.deepEqual(marks("\u240d"), [["^M", "U+000D"]]);
});

test("every mark is printable ASCII", () => {
  for (let code = 0; code < 0xa0; code++) {
    if (code === 9 || (code >= 0x20 && code < 0x7f)) continue;
    assert.match(controlMark(String.fromCharCode(code)), /^[\x20-\x7e]+$/);
  }
});

test("what filters see keeps the characters but not the escape sequences", () => {
  assert.equal(plain("\x1b[31mred\x1b[0m \u202e"), "red \u202e");
});

test("a mark's element gets the class and a title naming the character", () => {
  const classes = new Set();
  const el = { classList: { add: (c) => classes.add(c) }, style: {}, title: "" };
  const [, mark] = segments("a\u202eb");
  styleElement(el, mark.style);
  assert.ok(classes.has("ctl"));
  assert.equal(el.title, "U+202E");
});
