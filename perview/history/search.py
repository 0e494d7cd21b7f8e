"""Search and ranges over recorded history: the index narrows to blocks by source and time, a
substring's trigrams rule out the blocks whose term summary lacks one (terms.py), and each
block left is decompressed and scanned whole (a substring by `bytes.find`, a pattern by RE2),
never line by line. A sync generator: the caller runs it a step at a time off the loop and
simply stops asking when its client leaves."""

from __future__ import annotations

import bisect
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import accumulate, pairwise

from perview.classify import LEVEL_MASK, LEVEL_NAMES, Classifier
from perview.history.block import Block, Damaged
from perview.history.index import Row
from perview.history.store import Store
from perview.history.terms import hashes
from perview.web.streams import _UNANCHORED, Grep

MAX_CONTEXT = 100  # lines around a match, each side
PROGRESS_EVERY = 0.25  # seconds between progress records
SUMMARIES = 256  # blocks whose term summaries are read at once (up to 1 MB)
_classifier = Classifier()


@dataclass(frozen=True, slots=True)
class Line:
    source: str
    part: str | None
    at: float
    number: int  # the store's line number (per source)
    text: str
    match: bool  # False: a context line


@dataclass(frozen=True, slots=True)
class Lines:
    """Consecutive lines of one block in a range, as the source wrote them (each ending in a
    newline): what a text download sends, with no work per line."""

    source: str
    part: str | None
    first: int  # the store's number of the first
    count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """A state change or notice recorded between lines (`started`, `exited with status 1`)."""

    source: str
    part: str | None
    at: float
    text: str


@dataclass(frozen=True, slots=True)
class Missing:
    """Lines history does not have: not recorded (`damaged` None), or in a damaged block."""

    source: str
    part: str | None
    count: int
    t0: float
    t1: float
    damaged: str | None = None  # why, and where: "segment 12: checksum mismatch"


@dataclass(frozen=True, slots=True)
class Progress:
    blocks: int  # gone through so far (scanned, or ruled out by their term summary)
    of: int  # to scan in all
    bytes: int  # of text scanned
    matches: int


@dataclass(frozen=True, slots=True)
class Total:
    matches: int
    blocks: int  # scanned (not counting those ruled out by their term summary)
    bytes: int
    seconds: float
    complete: bool  # False: stopped at the limit
    received: int = 0  # bytes that came back over ssh from scans on hosts (files.py)


Item = Line | Lines | Event | Missing | Progress | Total


class Matcher:
    """Where lines match in a block: a substring, or RE2 (`re:` prefix) compiled within the
    same limits as `?grep=`. Raises GrepError (a ValueError) for a pattern it refuses."""

    def __init__(self, query: str) -> None:
        self.grep: _Finder | None = None
        self.needle = b""
        self.trigrams: frozenset[int] = frozenset()  # a block lacking one cannot match
        if query.startswith("re:"):
            self.grep = _Finder(query[3:])
        else:
            self.needle = query.encode()
            self.trigrams = hashes(self.needle)

    def starts(self, data: bytes) -> Iterator[int]:
        """Offsets of the first byte of each matching line, in order, each line once."""
        if self.grep is not None:
            yield from self.grep.starts(data)
            return
        if not self.needle:
            yield 0
            yield from (i + 1 for i in _newlines(data, len(data) - 1))
            return
        pos = 0
        find = data.find
        while (hit := find(self.needle, pos)) >= 0:
            start = data.rfind(b"\n", 0, hit) + 1
            yield start
            pos = data.find(b"\n", hit)
            if pos < 0:
                return
            pos += 1


class _Finder(Grep):
    """`?grep=`'s bounded automaton, asked where each matching line starts."""

    def starts(self, data: bytes) -> Iterator[int]:
        match = self._line.Match
        pos, end = 0, len(data)
        while True:
            ((start, pos),) = match(_UNANCHORED, data, pos, end)
            if start < 0:
                return
            yield start


def _newlines(data: bytes, end: int) -> Iterator[int]:
    pos = data.find(b"\n")
    while 0 <= pos < end:
        yield pos
        pos = data.find(b"\n", pos + 1)


LEVELS = {"trace": 1, "debug": 2, "info": 3, "warn": 4, "warning": 4, "error": 5, "err": 5}
LEVELS |= {"fatal": 6, "crit": 6, "critical": 6}


def level_number(name: str) -> int:
    """The level a `level=` names (lines at it or above are kept); ValueError for another."""
    if name.lower() not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVEL_NAMES[1:])}, not {name[:20]!r}")
    return LEVELS[name.lower()]


@dataclass(frozen=True, slots=True)
class Query:
    sources: tuple[str, ...]
    since: float
    until: float
    matcher: Matcher | None = None  # None: every line (a range)
    newest_first: bool = True
    context: int = 0
    level: int | None = None  # at least this level
    limit: int = 1000  # matches; then the search stops (Total.complete False)
    as_text: bool = False  # a range (no matcher) in Lines, not Line by Line; no limit


def run(store: Store, query: Query) -> Generator[Item, None, None]:
    """Results as they are found; progress every PROGRESS_EVERY s; a Total at the end."""
    started = time.monotonic()
    last_progress = started
    matches = scanned = blocks = 0
    wanted = query.matcher.trigrams if query.matcher is not None else frozenset()
    ruled_out: set[int] = set()
    with store.reader() as reader:
        rows = reader.rows(query.sources, query.since, query.until, query.newest_first)
        for done, row in enumerate(rows, 1):
            if wanted and done % SUMMARIES == 1:
                ruled_out = reader.ruled_out(rows[done - 1 : done - 1 + SUMMARIES], wanted)
            if row.kind == "gap":
                yield Missing(row.source, row.part, row.count, row.t0, row.t1)
            elif row.id not in ruled_out:
                try:
                    block = reader.load(row)
                except Damaged as exc:
                    yield _damaged(row, str(exc))
                    continue
                blocks += 1
                scanned += len(block.data)
                if query.matcher is None and query.as_text:
                    for piece in _text(block, query):
                        matches += piece.count if isinstance(piece, Lines) else 0
                        yield piece
                    continue
                for item in _scan(block, query):
                    if isinstance(item, Line) and item.match:
                        if matches >= query.limit:
                            seconds = time.monotonic() - started
                            yield Total(matches, blocks, scanned, seconds, False)
                            return
                        matches += 1
                    yield item
            now = time.monotonic()
            if now - last_progress >= PROGRESS_EVERY:
                last_progress = now
                yield Progress(done, len(rows), scanned, matches)
    yield Total(matches, blocks, scanned, time.monotonic() - started, True)


def _damaged(row: Row, reason: str) -> Missing:
    where = f"segment {row.segment} at {row.offset}"
    return Missing(row.source, row.part, row.count, row.t0, row.t1, f"{where}: {reason}")


def _scan(block: Block, query: Query) -> Iterator[Line | Event]:
    data = block.data
    starts: list[int] = []
    if query.matcher is not None:
        # Most blocks hold no match: they cost one C-level scan, no per-line work.
        starts = list(query.matcher.starts(data))
        if not starts:
            return
    ends = list(_newlines(data, len(data)))  # offset of each line's newline
    runs = list(accumulate(n for n, _ in block.times))

    def at(index: int) -> float:
        found = bisect.bisect_right(runs, index)
        return block.times[min(found, len(block.times) - 1)][1] if block.times else block.t0

    def line(index: int, match: bool) -> Line:
        start = ends[index - 1] + 1 if index else 0
        text = data[start : ends[index]].decode(errors="replace")
        return Line(block.source, block.part, at(index), block.first + index, text, match)

    if query.matcher is None:
        indices: range | list[int] = range(len(ends))
        if block.t0 < query.since or block.t1 > query.until:
            indices = [i for i in indices if query.since <= at(i) <= query.until]
        yield from _with_events(block, (line(i, True) for i in indices), query)
        return
    hits = [bisect.bisect_left(ends, s) for s in starts]
    if block.t0 < query.since or block.t1 > query.until:
        hits = [i for i in hits if query.since <= at(i) <= query.until]
    if query.level is not None:
        marks = block.marks or _classifier.classify(data, count=len(ends))[0]
        hits = [i for i in hits if marks[i] & LEVEL_MASK >= query.level]
    if query.newest_first:
        hits.reverse()
    if not query.context:
        yield from (line(hit, True) for hit in hits)
        return
    matched = set(hits)
    shown: set[int] = set()
    for hit in hits:
        low = max(0, hit - query.context)
        high = min(len(ends) - 1, hit + query.context)
        for index in range(low, high + 1):
            if index not in shown:
                shown.add(index)
                yield line(index, index in matched)


def _text(block: Block, query: Query) -> Iterator[Lines | Event]:
    """The block's lines within the query's range as Lines, cut where its events fall. A block
    wholly in range with no events (most of them) is handed on as it is."""
    low, high = 0, block.count
    if block.t0 < query.since or block.t1 > query.until:
        # Arrival times only grow within a block: the lines in range are one slice of it.
        seen = 0
        low = high = -1
        for count, at in block.times or ((block.count, block.t0),):
            if at >= query.since and low < 0:
                low = seen
            if at <= query.until:
                high = seen + count
            seen += count
        if low < 0 or high <= low:
            low = high = 0
    events = [e for e in block.events if query.since <= e[1] <= query.until]
    if not events and (low, high) == (0, block.count):
        yield Lines(block.source, block.part, block.first, block.count, block.data)
        return
    cuts = sorted({low, high, *(min(max(e[0], low), high) for e in events)})
    starts = [0, *(i + 1 for i in _newlines(block.data, len(block.data)))]
    for a, b in pairwise(cuts):
        for event in [e for e in events if min(max(e[0], low), high) == a]:
            yield Event(block.source, block.part, event[1], event[2])
        if b > a:
            data = block.data[starts[a] : starts[b]]
            yield Lines(block.source, block.part, block.first + a, b - a, data)
    for event in [e for e in events if min(max(e[0], low), high) == cuts[-1]]:
        yield Event(block.source, block.part, event[1], event[2])


def _with_events(block: Block, lines: Iterator[Line], query: Query) -> Iterator[Line | Event]:
    events = [e for e in block.events if query.since <= e[1] <= query.until]
    for item in lines:
        while events and events[0][0] <= item.number - block.first:
            yield Event(block.source, block.part, events[0][1], events[0][2])
            events.pop(0)
        yield item
    for _, moment, text in events:
        yield Event(block.source, block.part, moment, text)
