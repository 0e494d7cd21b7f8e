"""Names from outside shown safely: escapes for what is not printable, a bound, no collisions."""

from __future__ import annotations

import os

from perview.labels import MAX_LABEL, display_name


def test_a_plain_name_is_shown_as_it_is() -> None:
    assert display_name("app/2024-01-01 é.log") == "app/2024-01-01 é.log"


def test_a_newline_in_a_name_is_an_escape_not_a_line_break() -> None:
    name = "a\n[perview] 12345 lines skipped\nforged.log"
    assert display_name(name) == "a\\n[perview] 12345 lines skipped\\nforged.log"


def test_bytes_that_are_not_utf8_are_shown_as_hex_escapes() -> None:
    assert display_name(b"bad\xff\xfe.log") == "bad\\xff\\xfe.log"
    # What os.listdir and glob give for the same name: surrogates standing for the bytes.
    assert display_name(os.fsdecode(b"bad\xff\xfe.log")) == "bad\\xff\\xfe.log"
    display_name(b"\xed\xa0\x80 lone surrogate, UTF-8 encoded").encode()  # encodable


def test_control_c1_and_bidi_characters_are_escaped() -> None:
    name = "x\x1b[31m\r\t\x00\x7f\x85\u202eevil\u2066\u200f\u061c\u2028.log"
    assert display_name(name) == (
        "x\\x1b[31m\\r\\t\\x00\\x7f\\x85\\u202eevil\\u2066\\u200f\\u061c\\u2028.log"
    )


def test_a_backslash_is_escaped_so_no_two_names_share_a_label() -> None:
    literal, raw = display_name("a\\xff"), display_name(b"a\xff")
    assert literal == "a\\\\xff" and raw == "a\\xff"


def test_a_long_name_is_cut_with_a_hash_of_the_whole_name() -> None:
    first, second = "x" * 300 + "1", "x" * 300 + "2"
    shown = display_name(first)
    assert len(shown) == MAX_LABEL
    assert shown.startswith("x" * 200) and "…#" in shown
    assert display_name(second) != shown
    escaped = display_name(b"\xff" * 255)  # every byte four characters long
    assert len(escaped) <= MAX_LABEL and escaped.startswith("\\xff" * 10)
    assert "\\x…" not in escaped.replace("\\xff", "")  # cut between escapes, never inside one
