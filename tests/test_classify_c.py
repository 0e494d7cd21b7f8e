"""The C scanner (perview/_levels.c) gives each line the code the regexes of perview/classify.py
give, on the corpus, on lines built from the rules' pieces and on random bytes, and never reads
outside the block it is given. CI sets PERVIEW_REQUIRE_C=1, so there it is what is tested."""

from __future__ import annotations

import ctypes
import mmap
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perview import classify
from perview.classify import Classifier, Options

CORPUS = Path(__file__).parent / "data" / "levels"
FORMATS = sorted(p.stem for p in CORPUS.glob("*.log"))
ALL_PARTS = classify._BY_FORMAT["auto"]
# Every format's parts, and each part alone: a part that matches where its regex does not
# would hide behind an earlier one in the formats' orders.
PART_SETS = [*classify._BY_FORMAT.values(), *((part,) for part in ALL_PARTS)]

if classify.SCAN is None and os.environ.get("PERVIEW_REQUIRE_C") != "1":
    pytest.skip("no C scanner: not built (no compiler), or PERVIEW_NO_C=1", allow_module_level=True)


def test_the_c_scanner_is_built_and_used() -> None:
    # Fails where CI (PERVIEW_REQUIRE_C=1) would otherwise test the regexes alone.
    from perview import _levels

    assert classify.SCAN is not None
    assert set(_levels.PARTS) == set(classify._PARTS)


def scan(block: bytes, parts: tuple[str, ...]) -> bytes:
    assert classify.SCAN is not None
    return classify.SCAN(block, parts, block.count(b"\n"))


@pytest.mark.parametrize("name", FORMATS)
def test_every_line_of_the_corpus_gets_the_code_the_regexes_give(name: str) -> None:
    block = (CORPUS / f"{name}.log").read_bytes()
    for parts in PART_SETS:
        assert scan(block, parts) == classify._regex_codes(block, parts), parts


def test_the_corpus_in_the_hubs_blocks_gets_the_marks_the_regexes_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = b"".join((CORPUS / f"{name}.log").read_bytes() for name in FORMATS) * 3
    cuts = sorted(random.Random(13).sample(range(len(data)), 40))
    blocks, start = [], 0
    for cut in cuts:
        end = data.rfind(b"\n", start, cut) + 1
        if end > start:
            blocks.append(data[start:end])
            start = end
    blocks.append(data[start:])

    def marks(form: classify.Format) -> list[bytes]:
        classifier, carry, out = Classifier(Options(format=form)), b"", []
        for block in blocks:
            got, carry = classifier.classify(block, carry)
            out.append(got)
        return out

    for form in classify.FORMATS:
        with_c = marks(form)
        monkeypatch.setattr(classify, "SCAN", None)
        assert marks(form) == with_c, form
        monkeypatch.undo()


# What the rules read, and what comes near it without being it: level words in every case form
# and cut short or run on, what may and may not follow them, separators, ANSI colour whole and
# cut, timestamps, JSON keys and values, logfmt, klog, <PRI>, Redis, Go frames, exceptions,
# structure heads, indentation.
_WORDS = [w for words in classify._WORDS.values() for w in words.split()]
_PIECES = [
    *(f(w).encode() for w in _WORDS for f in (str, str.lower, str.capitalize)),
    *(b"ERRORS", b"eRRor", b"ERR", b"WARNx", b"DEBUG1", b"DEBUG12", b"debug3", b"LOG", b"Log"),
    *(b"DETAIL", b"HINT", b"STATEMENT", b"detail", b"E", b"W", b"I", b"F", b"X", b"x", b"_"),
    *(b"[", b"]", b" ", b"  ", b"\t", b":", b">", b")", b"(", b"|", b",", b"=", b'"', b"\r"),
    *(b"\x0b", b"\x0c", b"\x00", b"\xff", b"\xc3\xa9", b".", b"$", b"-", b"/", b"*", b"#", b"<"),
    *(b"\x1b[31m", b"\x1b[0m", b"\x1b[1;2m", b"\x1b[", b"\x1b", b"\x1b[31", b"m", b"12", b"1"),
    *(b"2024-01-15 10:23:45,123", b"10:23:45", b"[15/Jan/2024:10:23:45 +0000]", b"Jan 15 "),
    *(b'{"', b"{", b'"level":', b'"level" : "', b'"severity":"', b'"lvl":', b'"PRIORITY":"3"'),
    *(b'"log.level":', b'"levelname":', b'"loglevel":', b'"levelx":', b'"level":"', b"30", b"3"),
    *(b"level=", b"lvl=", b'level="', b"xlevel=", b"_lvl=", b"level", b"l", b"evel=", b"vl="),
    *(b"E0115 10:23:47.345678 ", b"I0101 00:00:00.1 ", b"W1231 23:59:59. ", b"E011 "),
    *(b"<13>", b"<191>", b"<192>", b"<007>", b"<1234>", b"<>", b"<3"),
    *(b"1234:M 15 Jan 2024 10:23:45.456 # ", b"[123] 5 Jan 10:23:45 * ", b"7:S 1 Feb 2024 "),
    *(b"12:34:56.7 - ", b"1:X 15 Jan 2024 10:23:45 . ", b"[1] 15 Jan 10:23:45.1 - "),
    *(b"goroutine 1 [running]:", b"main.main()", b"main.(*T).m(0x1)", b"net/http.(*conn)"),
    *(b"created by ", b"panic: ", b"fatal error: ", b"[signal ", b"Exception in thread "),
    *(b"Traceback (most recent call last):", b"Caused by: ", b"Suppressed: ", b"During handling "),
    *(b"of the above exception", b"The above exception was the direct cause"),
    *(b"ValueError: ", b"java.lang.IllegalStateException: ", b"KeyboardInterrupt:", b"SystemExit"),
    *(b"Error: ", b"Exception: ", b"a.b.Throwable: ", b"$x.Y_z$Error: ", b"9a.BError: ", b"a..B"),
]
_CORPUS_LINES = [
    line for name in FORMATS for line in (CORPUS / f"{name}.log").read_bytes().splitlines()
]
_LINE = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=30).map(b"".join),
    st.lists(st.sampled_from(_PIECES), max_size=30).map(lambda p: b'{"' + b"".join(p)),
    st.lists(st.sampled_from(_PIECES), max_size=30).map(lambda p: b"  " + b"".join(p)),
    st.sampled_from(_CORPUS_LINES),
    st.just(b""),
)
_PARTS = st.one_of(
    st.sampled_from(PART_SETS),
    st.permutations(ALL_PARTS).flatmap(
        lambda p: st.integers(1, len(p)).map(lambda n: tuple(p[:n]))
    ),
)


def block_of(lines: list[bytes], end: bytes) -> bytes:
    return b"\n".join(line.replace(b"\n", b"") for line in lines) + end


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(_LINE, min_size=1, max_size=30), st.sampled_from([b"\n", b"", b"\nERROR x"]), _PARTS
)
def test_lines_built_from_the_rules_pieces_get_the_codes_the_regexes_give(
    lines: list[bytes], end: bytes, parts: tuple[str, ...]
) -> None:
    block = block_of(lines, end)
    assert scan(block, parts) == classify._regex_codes(block, parts)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400), _PARTS)
def test_random_bytes_get_the_codes_the_regexes_give(block: bytes, parts: tuple[str, ...]) -> None:
    assert scan(block, parts) == classify._regex_codes(block, parts)


@pytest.mark.parametrize(
    "line",
    [
        b"x" * 10_000_000,
        b"ERROR" * 200_000,
        b"\x00" * 100_000,
        b'{"' + b'"a":"b",' * 100_000,
        b"level" * 100_000 + b"=error",
        b"[" * 100_000 + b"ERROR]",
        b"\x1b[" + b"1;" * 100_000 + b"m ERROR",
        b"a." * 100_000 + b"BError: x",
        b"x(" * 100_000 + b")",
        b"x(" * 100_000 + b" ERROR x",
        b"\xff\xfe\xc3(" * 100_000,
    ],
    ids=lambda line: repr(line[:12]),
)
def test_a_huge_or_hostile_line_gets_the_code_the_regexes_give(line: bytes) -> None:
    for block in (line + b"\n", line, b"INFO a\n" + line, b"INFO a\n" + line + b"\n\n"):
        for parts in classify._BY_FORMAT.values():
            assert scan(block, parts) == classify._regex_codes(block, parts)


PAGE = mmap.PAGESIZE


@pytest.fixture(scope="module")
def fenced() -> Iterator[memoryview]:
    """A page of memory between two that may not be read: a read outside it kills the test."""
    memory = mmap.mmap(-1, 3 * PAGE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for fence in (address, address + 2 * PAGE):
        assert libc.mprotect(fence, PAGE, 0) == 0, os.strerror(ctypes.get_errno())  # PROT_NONE
    yield memoryview(memory)[PAGE : 2 * PAGE]


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, min_size=1, max_size=80), st.binary(max_size=8), _PARTS)
def test_the_scan_reads_nothing_before_or_after_the_block(
    fenced: memoryview, lines: list[bytes], tail: bytes, parts: tuple[str, ...]
) -> None:
    from perview import _levels

    # The block fills the page exactly: its first byte follows a fence, its last precedes one.
    unit = block_of(lines, b"\n") + tail
    block = (unit * (PAGE // len(unit) + 1))[:PAGE]
    for last in (b"\n", block[-1:]):
        page = block[:-1] + last
        fenced[:] = page
        ids = bytes(_levels.PARTS.index(part) for part in parts)
        lines = page.count(b"\n")
        assert _levels.scan(fenced, ids, lines) == classify._regex_codes(page, parts)


@pytest.mark.parametrize("lines", [0, 1, 3, 1000, -1, 2**62])
def test_a_wrong_count_of_lines_is_refused_not_read_past(lines: int) -> None:
    assert classify.SCAN is not None
    with pytest.raises(ValueError, match="lines, not"):
        classify.SCAN(b"ERROR a\nWARN b\n", ALL_PARTS, lines)
