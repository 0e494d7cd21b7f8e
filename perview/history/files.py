"""Search over `file` sources in place: the file and its rotated siblings (`app.log.1`,
`app.log.2.gz`, ...), with no recording needed.

Here, files are read in blocks (gzip through the standard library) and each block is scanned
whole by the same Matcher as recorded history: a sync generator, stepped off the loop. On a
host, the scan runs on the far side with `grep` (and `gzip -dc`) through the ssh wrapper of
ssh.py, so only matching lines and their context cross the link, and the far side ends when
the search does (its stdin closes).

Files have no arrival times: `since`/`until` only skip whole files by modification time (a
rotated file last written before `since`, or one whose older sibling was written after
`until`), never lines within a file. Lines are numbered from 1 in each file."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import glob
import gzip
import os
import re
import shlex
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass

from perview.framing import CUT_MARK, MAX_LINE
from perview.history.search import PROGRESS_EVERY, Matcher, Progress, Total
from perview.hub import Ended, Hub, Sink
from perview.sources.files import FileSource
from perview.sources.merge import MergedSource
from perview.sources.process import GuardPool, ProcessSource
from perview.sources.remote_file import RemoteFileSource
from perview.sources.ssh import ssh_argv

# Bytes read and scanned at once: big enough that a scan is mostly C, small enough that a slow
# pattern (RE2 at a few MB/s) still gives the loop a step, and a leaving client its stop, often.
BLOCK = 1024 * 1024
MAX_ROTATED = 999  # siblings looked for: logrotate's `rotate` is rarely above a few hundred
FAR_READ = 64 * 1024  # bytes of the far side's output parsed at once
FAR_QUEUE = 8  # such reads held before ssh is left unread (and TCP paces the far side)
FAR_WIDTH = MAX_LINE + 32  # bytes of a line of grep's output sent back: the line and its `N:`
SAID = 500  # characters of ssh's last line of stderr kept as the reason a far scan failed


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
    guards: GuardPool | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A part of a source that this search could not cover, and why."""

    source: str
    part: str | None
    reason: str


FileItem = FileLine | Skipped | Progress | Total


class RemoteRefused(ValueError):
    """A query the far side's grep cannot run as RE2 would; the message says why."""


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


def rotated(path: str) -> list[str]:
    """`path` and its rotated siblings that are regular files, newest first: `path`, `path.1`
    (or `path.1.gz`), `path.2.gz`, ... while the numbering goes on. A FIFO or a device would
    hold the one search thread for as long as it pleased."""
    found = [path] if os.path.isfile(path) else []
    for n in range(1, MAX_ROTATED + 1):
        for name in (f"{path}.{n}", f"{path}.{n}.gz"):
            if os.path.isfile(name):
                found.append(name)
                break
        else:
            break
    return found


def local_files(pattern: str) -> list[str]:
    """The files a local path or glob covers, newest first within each followed file."""
    if not glob.has_magic(pattern):
        return rotated(pattern)
    names: list[str] = []
    for match in sorted(glob.glob(pattern)):
        names += [n for n in rotated(match) if n not in names]
    return names


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
                yield Total(matches + ordered.matches, done + 1, scanned, _since(started), False)
                return
        yield from ordered.end()
        matches += ordered.matches
        yield Progress(done + 1, len(names), scanned, matches)
        if ordered.dropped or (matches >= query.limit and done + 1 < len(names)):
            yield Total(matches, done + 1, scanned, _since(started), False)
            return
    yield Total(matches, len(names), scanned, _since(started), True)


def _since(started: float) -> float:
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
        return FileLine(target.source, target.part, name, number, _shown(text), match)

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


def _shown(text: bytes) -> str:
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


# -- on a host ----------------------------------------------------------------------------------

# RE2 and POSIX ERE agree on this much: literals, `.`, `[...]` without escapes or POSIX classes,
# `* + ?`, `|`, `( )` (not `(?`), `^ $`, and a backslash before punctuation. Anything else (\d,
# \b, {n,m}, (?i), ...) is refused rather than run with another meaning. Laziness (`*?`) changes
# what RE2 captures, never whether a line matches, so it passes.
_ERE_SAFE = re.compile(
    r"(?:[A-Za-z0-9 _\-/:=,@%'\"<>!~#&;`]|[.*+?|()^$]|\\[.*+?()\[\]{}|^$\\/\-]"
    r"|\[\^?\]?[^\]\\\[]*\])*"
)


def far_grep(query: str) -> tuple[str, str]:
    """grep's flag and pattern for a query (`-F` for a substring, `-E` for a safe `re:`);
    RemoteRefused for one that grep could not run as RE2 would."""
    if "\n" in query or "\0" in query:
        raise RemoteRefused("holds a newline or NUL, which grep would read as several patterns")
    if not query.startswith("re:"):
        return "-F", query
    pattern = query[3:]
    if not pattern.isascii() or "(?" in pattern or not _ERE_SAFE.fullmatch(pattern):
        raise RemoteRefused(
            "uses RE2 syntax that grep -E on a host does not share (only literals, . [...] "
            "* + ? | ( ) ^ $ and a backslash before punctuation can be searched there)"
        )
    return "-E", pattern


# The far side: lists the file's generations (regular files, newest first) with their mtimes,
# keeps those that can hold lines in the range, and greps each in the asked order, saying `=N`
# (N: the generation, `z` if gzipped) before its lines. Names never cross: the near side knows
# them from N. All the client's input is in positional parameters, never in the script.
# LC_ALL=C: bytes, like RE2 on bytes; -a: a stray NUL must not make "Binary file matches".
FAR_SCAN = r"""p=$1 how=$2 q=$3 c=$4 since=$5 until=$6 order=$7 m=$8 w=$9
case $p in "~/"*) p=$HOME/${p#\~/} ;; esac
mt() { stat -c %Y -- "$1" 2>/dev/null || date -r "$1" +%s 2>/dev/null || echo 0; }
l= n=0
while [ "$n" -le "$m" ]; do
  if [ "$n" -eq 0 ]; then f=$p z=; [ -f "$f" ] || { n=1; continue; }
  elif [ -f "$p.$n" ]; then f=$p.$n z=
  elif [ -f "$p.$n.gz" ]; then f=$p.$n.gz z=z
  else break; fi
  l="$l $n$z:$(mt "$f")"; n=$((n + 1))
done
k= prev=
for e in $l; do
  t=${e#*:}
  if [ -n "$prev" ] && [ "$t" -le "$until" ] && [ "${prev#*:}" -ge "$since" ]; then
    if [ "$order" = newest ]; then k="$k ${prev%%:*}"; else k="${prev%%:*} $k"; fi
  fi
  prev=$e
done
if [ -n "$prev" ] && [ "${prev#*:}" -ge "$since" ]; then
  if [ "$order" = newest ]; then k="$k ${prev%%:*}"; else k="${prev%%:*} $k"; fi
fi
export LC_ALL=C
for e in $k; do
  n=${e%z}
  echo "=$e"
  if [ "$n" -eq 0 ]; then grep -a -n "$how" -C "$c" -e "$q" -- "$p"
  elif [ "$n" = "$e" ]; then grep -a -n "$how" -C "$c" -e "$q" -- "$p.$n"
  else gzip -dc -- "$p.$n.gz" | grep -a -n "$how" -C "$c" -e "$q"; fi | cut -b "1-$w"
done
echo =end"""


def far_command(target: Target, query: FileQuery) -> str:
    """The shell command line that runs the far scan (for ssh.py's wrapper)."""
    how, pattern = far_grep(query.query)
    since = max(0, int(query.since)) if query.since > 0 else 0
    until = min(int(query.until) + 1, 2**62)
    args = [target.path, how, pattern, str(query.context), str(since), str(until)]
    args += ["newest" if query.newest_first else "oldest", str(MAX_ROTATED), str(FAR_WIDTH)]
    return "sh -c " + shlex.join([FAR_SCAN, "perview-far-scan", *args])


class _Pipe(Sink):
    """The far side's output into a small queue: when it is full, ssh is not read, and the
    link paces the far side."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(FAR_QUEUE)

    async def write(self, data: bytes, label: str | None = None) -> None:
        await self.queue.put(data)


async def scan_remote(target: Target, query: FileQuery) -> AsyncGenerator[list[FileItem], None]:
    """Matches in the target's files on its host, in batches; ends with a Total whose
    `received` are the bytes that crossed the link (what the far side read is not known).
    Leaving the iteration (or closing it) stops the far side."""
    assert target.destination is not None
    started = time.monotonic()
    argv = ssh_argv(target.destination, target.ssh_args, far_command(target, query))
    # ssh's own last words (the far side's stderr joins its stdout)
    said: collections.deque[bytes] = collections.deque(maxlen=16)
    process = ProcessSource(
        argv, guards=target.guards, stdin_pipe=True, group_only=True, stderr=said.append
    )
    pipe = _Pipe()
    stop = asyncio.Event()
    ended = Ended()

    async def run() -> None:
        nonlocal ended
        try:
            ended = await process.run(pipe, stop)
        finally:
            await pipe.queue.put(None)

    task = asyncio.create_task(run(), name=f"far scan of {target.source}")
    parser = _FarParser(target, query)
    received = 0
    try:
        while not parser.stopped and (data := await pipe.queue.get()) is not None:
            received += len(data)
            items = parser.feed(data)
            if items:
                yield items
        last: list[FileItem] = list(parser.finish())
        if not parser.done and not parser.stopped:
            words = b"".join(said).decode(errors="replace").strip().splitlines()
            why = ended.reason or (words[-1][:SAID] if words else f"exit status {ended.status}")
            last.append(Skipped(target.source, target.part, f"the far scan failed: {why}"))
        complete = parser.done and not parser.stopped
        total = Total(parser.matches, parser.files, 0, _since(started), complete, received)
        yield [*last, total]
    finally:
        stop.set()
        while not task.done():  # let the process go, even while the queue is full
            with contextlib.suppress(asyncio.QueueEmpty):
                pipe.queue.get_nowait()
            await asyncio.wait([task], timeout=0.05)


_GREP_LINE = re.compile(rb"(\d+)([:-])")


class _FarParser:
    """grep -n output (`N:match`, `N-context`, `--`) with `=N[z]` before each file, into lines
    in the order asked."""

    def __init__(self, target: Target, query: FileQuery) -> None:
        self.target, self.query = target, query
        self.rest = b""
        self.name = target.path
        self.ordered: Ordered | None = None
        self.matches = self.files = 0
        self.done = False  # the far side said it had finished
        self.stopped = False  # the limit was reached

    def feed(self, data: bytes) -> list[FileItem]:
        *lines, self.rest = (self.rest + data).split(b"\n")
        self.rest = self.rest[: FAR_WIDTH + 1]  # the far side cuts; a far side that did not
        out: list[FileItem] = []
        for raw in lines:
            if raw.startswith(b"="):
                out += self.finish()
                if self.stopped:
                    return out
                tag = raw[1:].decode(errors="replace")
                if tag == "end":
                    self.done = True
                    continue
                n = tag.rstrip("z")
                self.name = self.target.path if n == "0" else f"{self.target.path}.{n}"
                self.name += ".gz" if tag.endswith("z") else ""
                self.files += 1
                self.ordered = Ordered(self.query, self.query.limit - self.matches)
                continue
            found = _GREP_LINE.match(raw)
            if found is None or self.ordered is None:
                continue  # `--` between groups: numbers say where a group starts
            text = _shown(raw[found.end() :])
            match = found[2] == b":"
            item = FileLine(
                self.target.source, self.target.part, self.name, int(found[1]), text, match
            )
            out += self.ordered.add(item)
            if self.ordered.full:
                self.stopped = True
                self.matches += self.ordered.matches
                self.ordered = None
                return out
        return out

    def finish(self) -> list[FileItem]:
        """The current file's held results, at its end."""
        if self.ordered is None:
            return []
        out: list[FileItem] = list(self.ordered.end())
        self.matches += self.ordered.matches
        self.stopped = self.ordered.dropped or self.matches >= self.query.limit
        self.ordered = None
        return out
