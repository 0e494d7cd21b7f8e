"""The classifier: every line's level and where entries start, on a corpus of real formats.

Each `tests/data/levels/NAME.log` has a sibling `NAME.expected`: one `LEVEL +` (the line starts
an entry) or `LEVEL .` (it continues the entry before it) per line of the log.
"""

from __future__ import annotations

import json
import random
import re
from itertools import repeat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perview import classify
from perview.classify import (
    DEFAULTS,
    HEAD,
    LEVEL_NAMES,
    Classifier,
    ClassifyError,
    Options,
    check,
    level_of,
)
from perview.framing import LineFramer

CORPUS = Path(__file__).parent / "data" / "levels"
FORMATS = sorted(p.stem for p in CORPUS.glob("*.log"))


def marks_as_text(marks: bytes) -> list[str]:
    return [f"{level_of(m)} {'+' if m & HEAD else '.'}" for m in marks]


def expected(name: str) -> list[str]:
    return (CORPUS / f"{name}.expected").read_text().splitlines()


def classify_all(data: bytes, options: Options = DEFAULTS) -> list[str]:
    marks, _ = Classifier(options).classify(data)
    return marks_as_text(marks)


def test_the_corpus_covers_the_formats_the_issue_names() -> None:
    assert set(FORMATS) >= {
        "nginx_access",
        "nginx_error",
        "apache_error",
        "syslog_rfc3164",
        "syslog_rfc5424",
        "journald_json",
        "python",
        "java",
        "go_panic",
        "pino",
        "bunyan",
        "logfmt",
        "klog",
        "postgresql",
        "redis",
    }


def test_every_format_of_the_corpus_is_classified_without_a_mistake(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report, wrong = [], []
    for name in FORMATS:
        data = (CORPUS / f"{name}.log").read_bytes()
        want = expected(name)
        got = classify_all(data)
        assert len(got) == len(want) == data.count(b"\n"), name
        right = sum(g == w for g, w in zip(got, want, strict=True))
        report.append(
            f"{name:16s} {right:3d}/{len(want):3d} lines  {100 * right / len(want):5.1f}%"
        )
        lines = data.decode().splitlines()
        wrong += [
            f"{name}:{i + 1}: got {g}, want {w}: {lines[i]!r}"
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            if g != w
        ]
    with capsys.disabled():
        print("\nclassification accuracy per format\n  " + "\n  ".join(report))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", FORMATS)
def test_a_format_split_into_blocks_anywhere_gives_the_same_marks(name: str) -> None:
    data = (CORPUS / f"{name}.log").read_bytes()
    lines = data.splitlines(keepends=True)
    classifier = Classifier()
    for cut in range(1, len(lines)):
        first, carry = classifier.classify(b"".join(lines[:cut]))
        second, _ = classifier.classify(b"".join(lines[cut:]), carry)
        assert marks_as_text(first + second) == expected(name), f"cut after line {cut}"


def test_a_word_like_error_in_an_info_message_leaves_it_info() -> None:
    assert classify_all(b"INFO could not connect: error 5\n") == ["info +"]
    assert classify_all(b"2024-01-15 10:23:45 INFO retry after ERROR: timeout\n") == ["info +"]


def test_ansi_coloured_level_tokens_are_read_through_the_colour() -> None:
    data = b"\x1b[31mERROR\x1b[0m boom\n\x1b[2m10:23:45\x1b[0m \x1b[33mWARN\x1b[0m slow\n"
    assert classify_all(data) == ["error +", "warning +"]


def test_a_traceback_cut_by_a_block_boundary_stays_one_entry() -> None:
    classifier = Classifier()
    first, carry = classifier.classify(
        b'INFO:root:working\nTraceback (most recent call last):\n  File "a.py", line 1\n'
    )
    second, _ = classifier.classify(b"    boom()\nKeyError: 'x'\nINFO:root:next\n", carry)
    assert marks_as_text(first) == ["info +", "error +", "error ."]
    assert marks_as_text(second) == ["error .", "error .", "info +"]


def test_the_carry_is_a_few_bytes() -> None:
    _, carry = Classifier().classify(b"ERROR boom\nTraceback (most recent call last):\n")
    assert isinstance(carry, bytes) and len(carry) <= 2


def test_lines_of_digits_are_heads_without_a_level() -> None:
    data = b"".join(b"%d\n" % n for n in range(1, 10_001))
    marks, carry = Classifier().classify(data)
    assert marks == bytes([HEAD]) * 10_000
    assert Classifier().classify(data, carry)[0] == marks


def test_a_ten_megabyte_json_line_is_classified_without_parsing_it() -> None:
    big = b'{"level":"warn","blob":"' + b"x" * 10_000_000 + b'"}\n'
    assert classify_all(big) == ["warning +"]
    no_level = b'{"blob":"' + b"ERROR " * 2_000_000 + b'"}\n'
    assert classify_all(no_level) == ["none +"]


def test_a_json_line_nested_ten_thousand_deep_does_not_recurse() -> None:
    deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"\n"
    with_level = b'{"level":"error","a":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001 + b"\n"
    assert classify_all(deep + with_level) == ["none +", "error +"]


def test_a_json_line_cut_after_its_level_key_does_not_take_the_next_line() -> None:
    data = b'{"level":\nerror: disk full\n{"level": \t\n"warn"}\nINFO x\n'
    assert classify_all(data) == ["none +", "error +", "none +", "none +", "info +"]


def test_invalid_json_is_read_as_text() -> None:
    assert classify_all(b'{not json ERROR: bad\n{"level":"info",\n') == ["error +", "info +"]


def test_invalid_utf8_never_breaks_a_block() -> None:
    raw = b"\xff\xfe ERROR \xc3(\n\x80 INFO: ok\n"
    assert classify_all(raw) == ["error +", "info +"]
    framed, _ = LineFramer().feed(raw)  # what the hub really holds
    assert classify_all(framed) == ["error +", "info +"]


def test_format_json_reads_only_json_fields() -> None:
    data = b'{"level":"error"}\nERROR plain text\nlevel=warn\n'
    assert classify_all(data, Options(format="json")) == ["error +", "none +", "none +"]
    assert classify_all(data, Options(format="logfmt")) == ["none +", "none +", "warning +"]
    assert classify_all(data, Options(format="text")) == ["none +", "error +", "none +"]


def test_a_configured_level_regex_decides_the_levels() -> None:
    options = Options(level=r"^\S+ (?P<level>[a-z]+) ")
    data = b"12:00 err disk full\n12:01 warn hot\n12:02 chatty ERROR word\n"
    assert classify_all(data, options) == ["error +", "warning +", "none +"]


def test_a_configured_entry_start_decides_where_entries_begin() -> None:
    options = Options(entry_start=r"^=== ")
    data = b"=== ERROR run 1\nstep one\nstep two\n=== INFO run 2\nstep one\n"
    assert classify_all(data, options) == ["error +", "error .", "error .", "info +", "info ."]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (Options(level="(?P<level>[a-z]+"), "level: not a valid RE2"),
        (Options(level=r"(\w)\1"), "level: not a valid RE2"),
        (Options(level=r"\w+"), "level: needs a named group (?P<level>"),
        (Options(entry_start="(?=x)"), "entry_start: not a valid RE2"),
        (Options(format="yaml"), "format: 'yaml' is not one of auto, json, logfmt, text"),  # type: ignore[arg-type]
    ],
)
def test_an_invalid_option_is_refused_with_a_clear_error(options: Options, words: str) -> None:
    problems = check(options)
    assert len(problems) == 1 and problems[0].startswith(words), problems
    with pytest.raises(ClassifyError, match=words.split(":")[0]):
        Classifier(options)


def test_valid_options_have_no_problems() -> None:
    assert check(Options(level=r"\[(?P<level>\w+)\]", entry_start=r"^\d{4}-", format="text")) == []


def test_level_names_are_ordered_by_severity() -> None:
    assert LEVEL_NAMES == ("none", "trace", "debug", "info", "warning", "error", "fatal")
    assert json.dumps(LEVEL_NAMES)  # the page and the API can take them as they are


def test_a_blank_line_continues_an_entry_with_a_level_and_stands_alone_otherwise() -> None:
    data = b"ERROR boom\n\n  detail\n12\n\n13\n"
    assert classify_all(data) == ["error +", "error .", "error .", "none +", "none +", "none +"]


@given(
    st.lists(
        st.sampled_from([b"", b"7", b"42", b"ERROR", b"INFO", b"x.y()", b"-", b"#"]),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([b"", b"0"]),
)
def test_the_quick_path_for_plain_blocks_agrees_with_the_full_scan(
    lines: list[bytes], carry: bytes
) -> None:
    plain = b"".join(line + b"\n" for line in lines)
    classifier = Classifier()
    quick = classifier.classify(plain, carry)
    full, _ = classifier.classify(plain + b"a line with spaces\n", carry)  # no quick path
    assert quick[0] == full[:-1]
    assert quick[0] == bytes([HEAD]) * len(lines)


# The rules as first written: slow (the text rule tries every level word at each of up to 15
# field positions, the logfmt and JSON ones step through every byte of a line) but plain. The
# classifier must give the marks they give, whatever shortcuts it takes.
def alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_UPPER = [w for words in classify._WORDS.values() for w in words.split()]
_LOWER = [f(w) for w in _UPPER for f in (str.lower, str.capitalize)]
_PG = [w for words in classify._PG_WORDS.values() for w in words.split()]
_REFERENCE_PARTS = {
    "blank": r"(?=(\n))",
    "indent": r"([ \t])",
    "structure": "(" + alternation(list(classify._STRUCTURE)) + ")",
    "klog": r"([IWEF])(?=\d{4} \d\d:\d\d:\d\d\.\d+ )",
    "pri": r"(<\d{1,3}>)",
    "redis": r"(?:\d+:[XCSM] \d{1,2} [A-Z][a-z]{2} \d{4}|\[\d+\] \d{1,2} [A-Z][a-z]{2})"
    r" \d\d:\d\d:\d\d(?:\.\d+)? ([#*.-]) ",
    "go_frame": r"(?=[\w.*/()\[\]-]+\([^\n]*\)\n)[\w./\[\]-]*(?:\(\*[^)\n]*\)[\w./\[\]-]*)?(\()",
    "exception": r"(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*?("
    + "|".join(classify._EXCEPTION_SUFFIXES)
    + r")(?=(:) )",
    "json": r"""(?=\{")(?:\{[^\n]*?"(?:level|severity|lvl|log\.level|levelname|loglevel|"""
    r"""PRIORITY)"[^\S\n]*:[^\S\n]*"?(\w+)|(\{))""",
    "logfmt": r"""(?=[^\n]*?\bl(?:evel|vl)=)[^\n]*?\bl(?:evel|vl)="?(\w+)""",
    "text": rf"(?:[^\s\[:\n\x1b]*{classify._SEP}){{0,{classify.MAX_PREFIX_FIELDS}}}?"
    rf"(?:({alternation(_UPPER)})(?=[ :\]>)|,\t\x1b])|({alternation(_LOWER)})(?=[:\]>)\x1b])"
    rf"|({alternation(_PG)})(?=:))",
}


_STRUCTURAL = ("blank", "indent", "structure")
_REFERENCE_FORMATS = {
    "auto": (
        *_STRUCTURAL,
        "json",
        "klog",
        "pri",
        "redis",
        "logfmt",
        "exception",
        "go_frame",
        "text",
    ),
    "json": (*_STRUCTURAL, "json"),
    "logfmt": (*_STRUCTURAL, "logfmt"),
    "text": (*_STRUCTURAL, "klog", "pri", "redis", "exception", "go_frame", "text"),
}


def reference_marks(block: bytes, carry: bytes = b"", form: str = "auto") -> tuple[bytes, bytes]:
    body = "|".join(_REFERENCE_PARTS[p] for p in _REFERENCE_FORMATS[form])
    lines = re.compile(f"(?m)^(?:{body})?[^\\n]*\\n".encode())
    tokens = map(b"".join, lines.findall(block))
    codes = bytes(map(classify._CODES.get, tokens, repeat(ord("0"))))
    return classify._resolve(carry + codes, len(carry))


# Pieces that make or break the rules: level words in every case with and without the bytes
# that must follow them, separators, ANSI colour (whole and cut), logfmt and JSON keys, heads
# of the other rules.
_PIECES = [
    *(b"ERROR", b"error", b"Error", b"eRRor", b"ERR", b"ERRORS", b"WARN", b"warn", b"Warning"),
    *(b"INFO", b"info", b"DEBUG", b"DEBUG1", b"debug3", b"CRIT", b"Critical", b"LOG", b"HINT"),
    *(b"[", b"]", b" ", b"  ", b"\t", b":", b">", b")", b"|", b",", b"=", b'"', b"\r", b"\x0b"),
    *(b"\x1b[31m", b"\x1b[", b"\x1b", b"\x1b[1;2m", b"x", b"12", b"a.b", b"(", b"()", b"{"),
    *(b"level=", b"lvl=", b"xlevel=", b"level", b"l", b"evel=", b'{"', b'"level":', b"<13>"),
    *(b"Traceback (most recent call last):", b"KeyError: ", b"E0115 10:23:47.345678 "),
    *(b"goroutine ", b"main.main()", b"1234:M 15 Jan 2024 10:23:45.456 # ", b"Caused by: "),
]
_CORPUS_LINES = [
    line for name in FORMATS for line in (CORPUS / f"{name}.log").read_bytes().splitlines()
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join),
            st.lists(st.sampled_from(_PIECES), max_size=40).map(lambda p: b'{"' + b"".join(p)),
            st.sampled_from(_CORPUS_LINES),
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([b"", b"0", b"E", b"EB", b"IG"]),
    st.sampled_from(classify.FORMATS),
)
def test_any_block_gets_the_marks_the_plain_rules_give(
    lines: list[bytes], carry: bytes, form: classify.Format
) -> None:
    block = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    got = Classifier(Options(format=form)).classify(block, carry)
    assert len(got[0]) == len(lines)  # one mark a line, whatever a line holds
    assert got == reference_marks(block, carry, form)


def test_a_long_random_log_gets_the_marks_the_plain_rules_give() -> None:
    rng = random.Random(13)
    lines = [
        rng.choice(_CORPUS_LINES)
        if rng.random() < 0.3
        else b"".join(rng.choices(_PIECES, k=rng.randint(0, 60)))
        for _ in range(20_000)
    ]
    block = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    for form in classify.FORMATS:
        assert Classifier(Options(format=form)).classify(block) == reference_marks(
            block, b"", form
        ), form


def test_a_block_of_json_lines_is_read_by_their_fields_whatever_their_values_hold() -> None:
    data = b'{"msg":"ERROR: x level=error"}\n{"level":"warn","m":"INFO: y"}\n{"a":1}\n'
    assert classify_all(data) == ["none +", "warning +", "none +"]
    assert classify_all(data + b"ERROR: text\n") == ["none +", "warning +", "none +", "error +"]


def test_a_block_without_a_level_word_in_its_place_is_all_heads_without_a_level() -> None:
    data = (CORPUS / "nginx_access.log").read_bytes() * 100
    marks, carry = Classifier().classify(data)
    assert marks == bytes([HEAD]) * data.count(b"\n")
    assert carry == b"0"


def test_format_json_leaves_a_block_without_json_lines_without_levels() -> None:
    data = b"ERROR plain text\n  indented\nlevel=warn\n"
    assert classify_all(data, Options(format="json")) == ["none +", "none .", "none +"]


# Lines no rule can read (no level word, no structure, nothing a format needs), as in a block of
# plain text: a block of them is classified by one scan for where a rule could start.
_PLAIN_LINES = [
    b"processing item 42 of 9000 (batch 7), took 13 ms",
    b"2024-01-15 10:23:45 status installed libc6:amd64 2.36-9",
    b'127.0.0.1 - - [15/Jan/2024:10:23:45 +0000] "GET / HTTP/1.1" 200 612',
    b"12345",
    b"a=b c|d <e> [f] g, h",
    b"",
]


@pytest.mark.parametrize("form", classify.FORMATS)
def test_any_line_among_plain_lines_gets_the_marks_the_plain_rules_give(
    form: classify.Format,
) -> None:
    classifier = Classifier(Options(format=form))
    plain = b"".join(line + b"\n" for line in _PLAIN_LINES)
    others = [a + b for a in _PIECES for b in (b"", *_PIECES)] + _CORPUS_LINES
    carries = (b"", b"0", b"E", b"0G", b"EB")  # none open; an error, a Go stack, a traceback
    for n, line in enumerate(others):
        # First (where the carry's entry may go on into it) or among plain lines; and a blank
        # line after it, which continues its entry if it has a level.
        block = (b"" if n % 2 else plain) + line.replace(b"\n", b"") + b"\n\n" + plain
        carry = carries[n % len(carries)]
        assert classifier.classify(block, carry) == reference_marks(block, carry, form), line


def test_a_block_of_plain_text_is_all_heads_without_a_level() -> None:
    block = b"".join(line + b"\n" for line in _PLAIN_LINES) * 1000
    marks, carry = Classifier().classify(block, b"0")
    assert marks == bytes([HEAD]) * block.count(b"\n")
    assert carry == b"0"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_PLAIN_LINES),
            st.sampled_from(_PLAIN_LINES),
            st.lists(st.sampled_from(_PIECES), max_size=4).map(b"".join),
            st.sampled_from(_CORPUS_LINES),
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([b"", b"0", b"E", b"EB", b"IG", b"0G"]),
    st.sampled_from(classify.FORMATS),
)
def test_lines_a_rule_may_read_among_plain_ones_get_the_marks_the_plain_rules_give(
    lines: list[bytes], carry: bytes, form: classify.Format
) -> None:
    block = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    assert Classifier(Options(format=form)).classify(block, carry) == reference_marks(
        block, carry, form
    )


@pytest.mark.parametrize(
    "tail",
    [b"", b"\n", b"  continued\n", b"Traceback (most recent call last):\n", b"<3>x\n", b"a(b)\n"],
)
def test_a_block_of_text_lines_read_by_the_text_rule_alone_gets_every_rules_marks(
    tail: bytes,
) -> None:
    # Ordinary text lines only: the other rules are left out (one pass finds none of their
    # candidates); a single line any of them may read, at the very end, brings them back.
    words = [b"INFO  "] * 90 + [b"WARN  "] * 8 + [b"ERROR "] * 2
    block = b"".join(b"%09d " % n + words[n % 100] + b"x" * 83 + b"\n" for n in range(500))
    assert Classifier().classify(block + tail, b"0") == reference_marks(block + tail, b"0")


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_PLAIN_LINES),
            st.lists(st.sampled_from(_PIECES), max_size=4).map(b"".join),
            st.sampled_from(_CORPUS_LINES),
            st.binary(max_size=12),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_cheap_test_for_other_rules_agrees_with_the_whole_one(lines: list[bytes]) -> None:
    block = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    assert classify._beyond_text(block) == (classify._FIND_OTHER.search(block) is not None)


@given(
    st.lists(
        st.one_of(
            st.sampled_from([b"7", b"42", b"x", b"ERROR", b"\n", b"\xff", b"\x7f"]),
            st.sampled_from(classify._TELLING),
            st.binary(max_size=6),
        ),
        min_size=1,
        max_size=30,
    ).map(lambda pieces: b"".join(pieces) + b"\n")
)
def test_a_block_is_plain_exactly_when_it_holds_no_byte_a_rule_reads(block: bytes) -> None:
    assert classify._plain(block) == (
        block[0] != 10 and not any(byte in block for byte in classify._TELLING)
    )


def resolve_every_pass(codes: bytes, skip: int) -> tuple[bytes, bytes]:
    """`classify._resolve` as first written, every pass over every block."""
    c = classify
    if codes.rstrip(b"Cb")[-1:] == b"B":
        mode = b"B"
    else:
        mode = b"G" if codes.rstrip(b"Cgb")[-1:] == b"G" else b""
    codes = re.sub(rb"(B[Cb]*)[^Cb]", rb"\1C", codes)
    codes = c._GO_STACK.sub(lambda m: m[0].replace(b"g", b"C"), codes)
    codes = codes.replace(b"g", b"0")
    codes = c._AFTER_SEVERE.sub(lambda m: m[0][:1] + m[0][1:].translate(c._XBG_TO_C), codes)
    codes = c._NEW_SEVERE.sub(lambda m: b"E" + m[0][1:].translate(c._XBG_TO_C), codes)
    codes = codes.replace(b"G", b"0")
    codes = re.sub(rb"(?:^|0)[Cb]*b[Cb]*", lambda m: m[0].replace(b"b", b"0"), codes)
    codes = codes.replace(b"b", b"C")
    last = max(codes.rfind(h) for h in c._HEADS)
    head = codes[last : last + 1] if last >= 0 else b""
    continued = bytes.maketrans(b"FEWIDT0", b"fewidtn")
    codes = re.sub(
        rb"[FEWIDT0]C+", lambda m: m[0][:1] + m[0][:1].translate(continued) * (len(m[0]) - 1), codes
    )
    return codes[skip:].translate(c._TO_MARK), head + mode if head else b""


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from([b"", b"0", b"E", b"EB", b"IG", b"0G", b"WB"]),
    # Runs of heads too, so that continuations are sometimes many and sometimes few.
    st.lists(st.sampled_from([*(bytes([c]) for c in b"FEWIDT0CbXBGg"), b"I" * 40, b"0" * 40])).map(
        b"".join
    ),
)
def test_entries_are_resolved_as_by_every_pass_whichever_passes_are_skipped(
    carry: bytes, codes: bytes
) -> None:
    assert classify._resolve(carry + codes, len(carry)) == resolve_every_pass(
        carry + codes, len(carry)
    )


@pytest.mark.timeout(20)
@pytest.mark.parametrize("scanner", ["C", "regexes"])
def test_a_line_of_open_parentheses_takes_linear_time(
    scanner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A level word brings the line to the regex of every rule, whose Go frame look-ahead tried
    # each `(` against the rest of the line: this one took minutes.
    if scanner == "regexes":
        monkeypatch.setattr(classify, "SCAN", None)
    elif classify.SCAN is None:
        pytest.skip("no C scanner: not built (no compiler), or PERVIEW_NO_C=1")
    line = b"x(" * 200_000 + b" ERROR x\n"
    assert classify_all(line + b"main.main()\n") == ["error +", "none +"]
