"""Search over `file` sources in place: the file and its rotated siblings (rotation.py), with
no recording needed.

Here, files are read in blocks (gzip through the standard library) and each block is scanned
whole by the same Matcher as recorded history: a sync generator, stepped off the loop. On a
host, far.py runs the scan on the far side. What both share is here: the records, the
targets, and the order results come out in.

Files have no arrival times: `since`/`until` only skip whole files by modification time (a
rotated file last written before `since`, or one whose older sibling was written after
`until`), never lines within a file. Lines are numbered from 1 in each file."""

from __future__ import annotations

import collections
import contextlib
import gzip
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from perview.framing import CUT_MARK, MAX_LINE
from perview.history.rotation import local_files
from perview.history.search import PROGRESS_EVERY, Matcher, Progress, Total
from perview.hub import Hub
from perview.labels import MAX_PATH, display_name
from perview.sources.files import FileSource
from perview.sources.merge import MergedSource
from perview.sources.process import Guards
from perview.sources.remote_file import RemoteFileSource

# Bytes read and scanned at once: big enough that a scan is mostly C, small enough that a slow
# pattern (RE2 at a few MB/s) still gives the loop a step, and a leaving client its stop, often.
BLOCK = 1024 * 1024
MAX_AROUND = 1000  # lines one request for a file's lines around a result may ask for


@dataclass(frozen=True, slots=True)
class FileLine:
    source: str
    part: str | None
    file: str  # its path, as the source names it
    number: int  # from 1, in that file
    text: str
    match: bool  # False: a context line


@dataclass(frozen=True, slots=True)
class FileQuery:
    matcher: Matcher
    query: str  # as the client wrote it (`re:` and all), for the far side's grep
    since: float
    until: float
    newest_first: bool = True
    context: int = 0
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class Target:
    """One file (or glob) of a source: here (`destination` None) or on a host."""

    source: str
    part: str | None
    path: str
    destination: str | None = None
    ssh_args: tuple[str, ...] = ()
    guards: Guards | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A part of a source that this search could not cover, and why."""

    source: str
    part: str | None
    reason: str


FileItem = FileLine | Skipped | Progress | Total


def targets(hub: Hub) -> list[Target]:
    """The files a `file` source follows, per part (host); empty for any other kind."""
    source = hub.source
    parts = source.parts.items() if isinstance(source, MergedSource) else [(None, source)]
    found: list[Target] = []
    for label, part in parts:
        if isinstance(part, FileSource):
            found.append(Target(hub.name, label, part.pattern))
        elif isinstance(part, RemoteFileSource):
            found.append(
                Target(hub.name, label, part.path, part.destination, part.ssh_args, part.guards)
            )
    return found


# -- here ----------------------------------------------------------------------------------------


def shown_file(name: str) -> str:
    """A file's name as results show it (and as a client names it back)."""
    return display_name(name, MAX_PATH)


def in_range(mtimes: Sequence[float], since: float, until: float) -> list[bool]:
    """Which of a file's generations (newest first) can hold lines between since and until:
    none of a file is newer than its mtime, nor (for a rotated one) older than the next older
    generation's mtime."""
    keep = []
    for i, mtime in enumerate(mtimes):
        older = mtimes[i + 1] if i + 1 < len(mtimes) else float("-inf")
        keep.append(mtime >= since and older <= until)
    return keep


def scan_local(target: Target, query: FileQuery) -> Iterator[FileItem]:
    """Matches in the target's files here, as found; progress as it goes; a Total at the end.
    A sync generator: stepped off the loop, closed when the client leaves."""
    started = time.monotonic()
    names = local_files(target.path)
    mtimes = []
    for name in names:
        try:
            mtimes.append(os.stat(name).st_mtime)
        except OSError:
            mtimes.append(float("-inf"))
    names = [
        n for n, ok in zip(names, in_range(mtimes, query.since, query.until), strict=True) if ok
    ]
    if not query.newest_first:
        names.reverse()
    matches = scanned = 0
    last_progress = started
    for done, name in enumerate(names):
        ordered = Ordered(query, query.limit - matches)
        for item in _scan_file(target, name, query):
            if isinstance(item, int):
                scanned += item
                if time.monotonic() - last_progress >= PROGRESS_EVERY:
                    last_progress = time.monotonic()
                    yield Progress(done, len(names), scanned, matches + ordered.matches)
                continue
            yield from ordered.add(item)
            if ordered.full:
                yield Total(matches + ordered.matches, done + 1, scanned, elapsed(started), False)
                return
        yield from ordered.end()
        matches += ordered.matches
        yield Progress(done + 1, len(names), scanned, matches)
        if ordered.dropped or (matches >= query.limit and done + 1 < len(names)):
            yield Total(matches, done + 1, scanned, elapsed(started), False)
            return
    yield Total(matches, len(names), scanned, elapsed(started), True)


def elapsed(started: float) -> float:
    return time.monotonic() - started


class Ordered:
    """One file's results in the order asked. Oldest first, lines pass at once, until `room`
    matches have (then `full`). Newest first, they are held to the file's end (a file is read
    forwards: gzip cannot be read backwards), only the last `room` matches of it, and come out
    newest match first, each with its context, as recorded history does."""

    def __init__(self, query: FileQuery, room: int) -> None:
        self.newest_first, self.context, self.room = query.newest_first, query.context, room
        self.lines: list[FileLine] = []
        self.held = 0  # matches in `lines`
        self.matches = 0  # matches passed on
        self.full = False  # oldest first: a match beyond `room` came (stop reading)
        self.dropped = False  # newest first: older matches than the last `room` were left out

    def add(self, line: FileLine) -> list[FileLine]:
        if not self.newest_first:
            if line.match:
                if self.matches >= self.room:
                    self.full = True
                    return []
                self.matches += 1
            return [line]
        self.lines.append(line)
        self.held += line.match
        if self.held > 2 * self.room:
            self._trim()
        return []

    def end(self) -> list[FileLine]:
        if not self.newest_first:
            return []
        by_number = {line.number: line for line in self.lines}
        hits = [line.number for line in self.lines if line.match]
        if len(hits) > self.room:
            self.dropped = True
            hits = hits[len(hits) - self.room :]
        out: list[FileLine] = []
        shown: set[int] = set()
        for hit in reversed(hits):
            for number in range(hit - self.context, hit + self.context + 1):
                if number in by_number and number not in shown:
                    shown.add(number)
                    out.append(by_number[number])
        self.matches, self.lines = len(hits), []
        return out

    def _trim(self) -> None:
        self.dropped = True
        hits = [line.number for line in self.lines if line.match]
        first = hits[len(hits) - self.room] - self.context
        self.lines = [line for line in self.lines if line.number >= first]
        self.held = self.room


def _blocks(name: str) -> Iterator[bytes]:
    """The file in blocks of whole lines, each ending with a newline. A line longer than BLOCK
    is cut there (the rest of it skipped), so a file without newlines holds no more memory."""
    with gzip.open(name, "rb") if name.endswith(".gz") else open(name, "rb") as f:
        rest = b""
        long = False  # `rest` is a cut line: skip to its end
        while block := f.read(BLOCK):
            if long:
                end = block.find(b"\n")
                if end < 0:
                    continue
                block, long = block[end:], False
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest, long = (data[:BLOCK], True) if len(data) > BLOCK else (data, False)
                continue
            rest = data[cut:]
            yield data[:cut]
        if rest:
            yield rest + b"\n"


def _scan_file(target: Target, name: str, query: FileQuery) -> Iterator[FileLine | int]:
    """Lines of one file that match (with their context), in file order; after each block, the
    bytes it held. A file that cannot be read (or is cut short) ends where it could."""
    context = query.context
    before: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=context or 1)
    after = 0  # context lines still owed after the last match
    first = 1  # the number of the block's first line

    def line(number: int, text: bytes, match: bool) -> FileLine:
        return FileLine(target.source, target.part, name, number, result_text(text), match)

    try:
        for data in _blocks(name):
            count = data.count(b"\n")
            starts = list(query.matcher.starts(data))
            if not starts and not after:
                # Most blocks hold no match: one C-level scan, and the last lines kept as
                # context for a match at the start of the next block.
                if context:
                    tail = (
                        data.split(b"\n")[:-1]
                        if count <= context
                        else (data.rsplit(b"\n", context + 1)[1:-1])
                    )
                    base = first + count - len(tail)
                    before.extend((base + i, t) for i, t in enumerate(tail))
                first += count
                yield len(data)
                continue
            hits = set(_indices(data, starts))
            for index, text in enumerate(data.split(b"\n")[:-1]):
                number = first + index
                if index in hits:
                    for n, t in before:
                        yield line(n, t, False)
                    before.clear()
                    yield line(number, text, True)
                    after = context
                elif after:
                    yield line(number, text, False)
                    after -= 1
                elif context:
                    before.append((number, text))
            first += count
            yield len(data)
    except (OSError, EOFError, gzip.BadGzipFile):
        return


def result_text(text: bytes) -> str:
    """A line as a result: cut at MAX_LINE like a line of the live view, and marked."""
    if len(text) > MAX_LINE:
        return (text[:MAX_LINE] + CUT_MARK).decode(errors="replace")
    return text.decode(errors="replace")


def _indices(data: bytes, starts: list[int]) -> Iterator[int]:
    """The line index of each offset (in order)."""
    index = pos = 0
    for start in starts:
        index += data.count(b"\n", pos, start)
        pos = start
        yield index


# -- the lines around a result -----------------------------------------------------------------


def local_file(target: Target, shown: str) -> str | None:
    """The file of the target's generations here whose shown name is `shown`, or None: a client
    can name a file that the source covers, and no other."""
    return next((n for n in local_files(target.path) if shown_file(n) == shown), None)


def lines_local(target: Target, name: str, first: int, last: int, mark: int) -> Iterator[FileLine]:
    """Lines `first` to `last` of one file here (`mark` is the one asked about: `match`), as
    results; fewer where the file is shorter. A sync generator, like scan_local."""
    number = 1
    with contextlib.suppress(OSError, EOFError, gzip.BadGzipFile):
        for data in _blocks(name):
            count = data.count(b"\n")
            if number + count <= first:
                number += count
                continue
            for text in data.split(b"\n")[:-1]:
                if first <= number <= last:
                    yield FileLine(
                        target.source, target.part, name, number, result_text(text), number == mark
                    )
                number += 1
                if number > last:
                    return
