from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from perview.framing import CUT_MARK, LineFramer


def feed_all(framer: LineFramer, *pieces: bytes) -> tuple[bytes, int]:
    out, total = b"", 0
    for piece in pieces:
        data, count = framer.feed(piece)
        out += data
        total += count
    data, count = framer.flush()
    return out + data, total + count


def test_lines_split_across_reads_are_joined() -> None:
    out, count = feed_all(LineFramer(), b"one\ntw", b"o\nthr", b"ee\n")
    assert out == b"one\ntwo\nthree\n"
    assert count == 3


def test_block_holds_only_complete_lines() -> None:
    framer = LineFramer()
    assert framer.feed(b"a\nb") == (b"a\n", 1)
    assert framer.feed(b"c") == (b"", 0)
    assert framer.feed(b"\n") == (b"bc\n", 1)


def test_final_line_without_newline_is_delivered() -> None:
    assert feed_all(LineFramer(), b"last words") == (b"last words\n", 1)


def test_invalid_utf8_becomes_replacement_character() -> None:
    out, count = feed_all(LineFramer(), b"ok \xff\xfe bad\n")
    assert out.decode() == "ok \ufffd\ufffd bad\n"
    assert count == 1


def test_valid_multibyte_text_is_untouched() -> None:
    text = "héllo wörld ✓\n".encode()
    assert feed_all(LineFramer(), text[:3], text[3:]) == (text, 1)


def test_long_line_is_cut_into_marked_pieces() -> None:
    framer = LineFramer(max_line=10)
    out, count = feed_all(framer, b"x" * 25 + b"\nshort\n")
    lines = out.split(b"\n")[:-1]
    assert lines == [b"x" * 10 + CUT_MARK, b"x" * 10 + CUT_MARK, b"x" * 5, b"short"]
    assert count == 4


def test_long_line_without_newline_is_bounded_while_it_grows() -> None:
    framer = LineFramer(max_line=1000)
    emitted = 0
    for _ in range(100):
        _, count = framer.feed(b"y" * 999)
        emitted += count
        assert len(framer._pending) <= 1000
    assert emitted == 99  # 99,900 bytes: 99 pieces of 1,000, and 900 still pending


def test_cut_never_splits_a_multibyte_character() -> None:
    framer = LineFramer(max_line=10)
    out, _ = feed_all(framer, "aaaaaaaaa€€\n".encode())  # the first € straddles byte 10
    out.decode()  # strict: no split sequence anywhere
    assert "\ufffd" not in out.decode()
    assert out.decode().replace(CUT_MARK.decode(), "").replace("\n", "") == "aaaaaaaaa€€"


def test_long_lines_inside_a_block_are_found_among_short_ones() -> None:
    framer = LineFramer(max_line=100)
    block = b"s\n" * 200 + b"L" * 250 + b"\n" + b"t\n" * 200
    out, count = feed_all(framer, block)
    assert count == 200 + 3 + 200
    assert out.count(CUT_MARK) == 2


MAX_LINE = 64  # small, so long lines and cuts happen often


def frame(pieces: list[bytes]) -> tuple[bytes, int]:
    framer = LineFramer(max_line=MAX_LINE)
    out, count = b"", 0
    for piece in pieces:
        data, n = framer.feed(piece)
        out, count = out + data, count + n
    data, n = framer.flush()
    return out + data, count + n


chunks = st.lists(st.binary(max_size=300), max_size=20)


@settings(max_examples=300, deadline=None)
@given(chunks)
def test_framer_output_is_whole_valid_lines_and_counted(pieces: list[bytes]) -> None:
    out, count = frame(pieces)
    assert out.count(b"\n") == count
    assert out == b"" or out.endswith(b"\n")
    text = out.decode()  # strict: always valid UTF-8
    for line in text.split("\n")[:-1]:
        # At most MAX_LINE input bytes a line; each invalid byte becomes U+FFFD (3 bytes).
        assert len(line.encode()) <= 3 * MAX_LINE + len(CUT_MARK)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=string.printable, max_size=300), max_size=20))
def test_framer_loses_nothing_from_valid_text(pieces: list[str]) -> None:
    raw = "".join(pieces).encode()
    out, _ = frame([p.encode() for p in pieces])
    rebuilt = out.replace(CUT_MARK + b"\n", b"")  # undo the cuts
    expected = raw if raw.endswith(b"\n") or not raw else raw + b"\n"
    assert rebuilt == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=1, max_value=300), max_size=30))
def test_framer_result_does_not_depend_on_how_reads_are_split(
    data: bytes, sizes: list[int]
) -> None:
    pieces, rest = [], data
    for size in sizes:
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    assert frame(pieces) == frame([data])
