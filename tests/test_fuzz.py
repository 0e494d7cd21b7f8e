"""Property tests: the framer and the config loader take anything without crashing or losing
bytes (hypothesis generates the inputs; every example is bounded in size)."""

from __future__ import annotations

import contextlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from perview.config import ConfigError, parse
from perview.framing import CUT_MARK, LineFramer

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


toml_values = st.recursive(
    st.none().map(lambda _: '""')
    | st.integers(-(2**40), 2**40).map(str)
    | st.booleans().map(lambda b: str(b).lower())
    | st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    max_leaves=8,
)
keys = st.sampled_from(
    [
        "command",
        "file",
        "host",
        "hosts",
        "backlog",
        "keep",
        "linger",
        "env",
        "cwd",
        "shell",
        "title",
        "group",
        "port",
        "ssh",
        "every",
        "unit",
        "bogus",
    ]
)
tables = st.sampled_from(["server", "sources.a", "sources.b", "hosts.h", "metrics.m", "x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(tables, st.lists(st.tuples(keys, toml_values), max_size=5)), max_size=5))
def test_config_loader_answers_every_toml_with_a_config_or_located_errors(
    sections: list[tuple[str, list[tuple[str, str]]]],
) -> None:
    seen: set[str] = set()
    lines = []
    for table, pairs in sections:
        if table in seen:
            continue
        seen.add(table)
        lines.append(f"[{table}]")
        used: set[str] = set()
        for key, value in pairs:
            if key not in used:
                used.add(key)
                lines.append(f"{key} = {value}")
    try:
        parse("\n".join(lines) + "\n", "f.toml")
    except ConfigError as error:
        for problem in str(error).splitlines():
            assert problem.startswith("f.toml:"), problem
            assert problem.split(":")[1].isdigit(), problem


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_config_loader_survives_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ConfigError):  # refusing is fine; crashing is not
        parse(text, "f.toml")
