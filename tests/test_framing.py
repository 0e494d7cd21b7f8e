from __future__ import annotations

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
