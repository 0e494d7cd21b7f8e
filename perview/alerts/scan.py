"""A line rule's look at a block: one RE2 scan over the whole block, one call per run of matching
lines (a storm of matching lines is one call per block, not one per line), and levels read from
the block's marks (one byte per line, see perview/classify.py) with `bytes.count`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2
from re2 import _re2  # the automaton without re2.compile's cache, as streams.Grep

from perview.classify import HEAD, LEVEL_NAMES

# As streams.Grep bounds a `?grep=`: a configured pattern is probed alone within a small budget
# and refused above PROGRAM instructions, so a typo such as `\pL{5000}` is a config error, not a
# second of CPU per block. MEMORY is the matching automaton's budget (program and DFA cache).
PROBE_MEMORY = 256 * 1024
PROGRAM = 10_000
MEMORY = 2 * 1024 * 1024
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED

# What a notification carries of the lines that matched: a few, each cut, so a document stays
# far below a pipe's 64 KiB (a command's stdin is written whole before it starts) and a chat
# message stays readable.
SAMPLE_LINES = 5
SAMPLE_CHARS = 1000


def compile_match(pattern: str) -> Any:
    """The automaton finding runs of lines that match `pattern` (RE2 syntax); ValueError says
    what is wrong with a pattern that cannot be used."""
    alone = _re2.RE2(pattern.encode(), _options(PROBE_MEMORY))
    if not alone.ok():
        reason = alone.error().decode(errors="replace")
        if reason.startswith("pattern too large"):
            raise ValueError(f"is too large (limit: {PROGRAM:,} RE2 instructions)")
        raise ValueError(f"is not a valid RE2 regular expression: {reason}")
    if alone.ProgramSize() > PROGRAM:
        raise ValueError(f"is too large: {alone.ProgramSize():,} RE2 instructions")
    runs = _re2.RE2(b"(?m)(?:^.*(?:" + pattern.encode() + b").*\n)+", _options(MEMORY))
    if not runs.ok():
        raise ValueError(f"cannot be matched line by line: {runs.error().decode(errors='replace')}")
    return runs


def _options(max_mem: int) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    options.max_mem = max_mem
    return options


def wanted_marks(level: str) -> bytes:
    """The marks of entries (head lines) at `level` or worse: what a `level = ...` rule counts. A
    traceback is one error, not one per line."""
    lowest = LEVEL_NAMES.index(level)
    return bytes(n | HEAD for n in range(lowest, len(LEVEL_NAMES)))


class Matcher:
    """A rule's `match` (compiled) and/or `level` (as marks); `scan` costs one RE2 scan."""

    __slots__ = ("runs", "wanted")

    def __init__(self, match: str | None, level: str | None) -> None:
        self.runs = compile_match(match) if match is not None else None
        self.wanted = wanted_marks(level) if level is not None else None

    def scan(self, data: bytes, marks: bytes | None) -> Hits | None:
        """The lines of `data` the rule matches (None: none). `marks`: one per line, needed
        when the rule has a level."""
        wanted = self.wanted
        if wanted is not None and marks is None:
            raise ValueError("a level rule needs the block's marks")
        if self.runs is None:
            assert wanted is not None and marks is not None
            total = sum(marks.count(mark) for mark in wanted)
            return Hits(total, data, marks, wanted, []) if total else None
        match = self.runs.Match
        pos, line, end = 0, 0, len(data)
        total = sampled = 0
        runs: list[tuple[int, int, int]] = []  # (start, end, first line) of the first hits
        while True:
            # Every run ends with a newline, so pos always moves on.
            ((start, stop),) = match(_UNANCHORED, data, pos, end)
            if start < 0:
                break
            line += data.count(b"\n", pos, start)
            n = data.count(b"\n", start, stop)
            if wanted is None:
                hits = n
            else:
                assert marks is not None
                hits = sum(marks.count(mark, line, line + n) for mark in wanted)
            if hits:
                total += hits
                if sampled < SAMPLE_LINES:
                    runs.append((start, stop, line))
                    sampled += hits
            line += n
            pos = stop
        return Hits(total, data, marks, wanted, runs) if total else None


@dataclass(slots=True)
class Hits:
    """How many lines of a block a rule matched, and what it takes to quote the first few (taken
    only if a notification needs them)."""

    count: int
    data: bytes
    marks: bytes | None
    wanted: bytes | None
    runs: list[tuple[int, int, int]]

    def sample(self, limit: int = SAMPLE_LINES) -> list[tuple[int, str]]:
        """Up to `limit` matched lines: (index of the line in the block, its text, cut)."""
        found: list[tuple[int, bytes]] = []
        if self.runs:
            for start, stop, first in self.runs:
                for offset, text in enumerate(self.data[start:stop].split(b"\n")[:-1]):
                    index = first + offset
                    if self.wanted is None or (self.marks and self.marks[index] in self.wanted):
                        found.append((index, text))
                    if len(found) >= limit:
                        break
                if len(found) >= limit:
                    break
        elif self.marks is not None and self.wanted is not None:
            indices: list[int] = []
            start = 0
            while len(indices) < limit:
                places = [p for m in self.wanted if (p := self.marks.find(m, start)) >= 0]
                if not places:
                    break
                indices.append(min(places))
                start = indices[-1] + 1
            if indices:
                lines = self.data.split(b"\n", indices[-1] + 1)
                found = [(i, lines[i]) for i in indices]
        return [(i, _cut(text.decode(errors="replace"))) for i, text in found]


def _cut(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…[cut]"
