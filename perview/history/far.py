"""File search on a host: the scan runs on the far side with `grep` (and `gzip -dc`) through the
ssh wrapper of ssh.py, so only matching lines and their context cross the link, and the far
side ends when the search does (its stdin closes). The lines around one result are read there
the same way.

The far scripts are fixed text; all the client's input is in their positional parameters,
never in the script. A generation crosses as its suffix after the source's path (rotation.py),
which the near side checks before it names a file with it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shlex
import time
from collections.abc import AsyncGenerator

from perview.framing import MAX_LINE
from perview.history.files import (
    FileItem,
    FileLine,
    FileQuery,
    Ordered,
    Skipped,
    Target,
    elapsed,
    result_text,
)
from perview.history.rotation import FAR_GENERATIONS, MAX_ROTATED, is_generation
from perview.history.search import Total
from perview.hub import Ended, Sink
from perview.sources.process import ProcessSource
from perview.sources.ssh import ssh_argv

FAR_QUEUE = 8  # reads of ssh's output held before it is left unread (and TCP paces the far side)
FAR_WIDTH = MAX_LINE + 32  # bytes of a line of grep's output sent back: the line and its `N:`
SAID = 500  # characters of ssh's last line of stderr kept as the reason a far scan failed


class RemoteRefused(ValueError):
    """A query the far side's grep cannot run as RE2 would; the message says why."""


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


# What both scripts start with: the path (`~/` as the far user's home), bytes not characters
# (LC_ALL=C: like RE2 on bytes, and `sort` in byte order), and the generations (rotation.py).
_PREAMBLE = (
    r"""case $p in "~/"*) p=$HOME/${p#\~/} ;; esac
export LC_ALL=C
"""
    + FAR_GENERATIONS
    + "\n"
)

# The scan: lists the generations (newest first) with their mtimes, keeps those that can hold
# lines in the range, and greps each in the asked order, saying `=SUFFIX` before its lines and
# `=end` at the end (no suffix is `end`). `gens` puts a `+` before each suffix, so that the
# file's own (empty) one survives word splitting. -a: a stray NUL must not make "Binary file
# matches".
FAR_SCAN = (
    r"""p=$1 how=$2 q=$3 c=$4 since=$5 until=$6 order=$7 m=$8 w=$9
"""
    + _PREAMBLE
    + r"""mt() { stat -c %Y -- "$1" 2>/dev/null || date -r "$1" +%s 2>/dev/null || echo 0; }
l=
for g in $(gens | sed 's/^/+/'); do l="$l $g/$(mt "$p${g#+}")"; done
k= prev=
for e in $l; do
  t=${e##*/}
  if [ -n "$prev" ] && [ "$t" -le "$until" ] && [ "${prev##*/}" -ge "$since" ]; then
    if [ "$order" = newest ]; then k="$k ${prev%/*}"; else k="${prev%/*} $k"; fi
  fi
  prev=$e
done
if [ -n "$prev" ] && [ "${prev##*/}" -ge "$since" ]; then
  if [ "$order" = newest ]; then k="$k ${prev%/*}"; else k="${prev%/*} $k"; fi
fi
for g in $k; do
  s=${g#+}
  echo "=$s"
  case $s in
    *.gz) gzip -dc -- "$p$s" | grep -a -n "$how" -C "$c" -e "$q" ;;
    *) grep -a -n "$how" -C "$c" -e "$q" -- "$p$s" ;;
  esac | cut -b "1-$w"
done
echo =end"""
)

# Lines `first` to `last` of one generation, each after a `:`, after `=SUFFIX` (or `=gone`),
# then `=end`.
FAR_LINES = (
    r"""p=$1 s=$2 first=$3 last=$4 w=$5
"""
    + _PREAMBLE
    + r"""[ -f "$p$s" ] || { echo =gone; echo =end; exit 0; }
echo "=$s"
case $s in *.gz) gzip -dc -- "$p$s" ;; *) cat -- "$p$s" ;; esac |
  sed -n "${first},${last}s/^/:/p;${last}q" | cut -b "1-$w"
echo =end"""
)


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


class _Far:
    """One far command over ssh: `chunks()` is its output as it comes; `why()` says why it
    failed. Leaving `chunks()` (or closing it) stops the far side."""

    def __init__(self, target: Target, command: str) -> None:
        assert target.destination is not None
        argv = ssh_argv(target.destination, target.ssh_args, command)
        # ssh's own last words (the far side's stderr joins its stdout)
        self.said: collections.deque[bytes] = collections.deque(maxlen=16)
        self.process = ProcessSource(
            argv, guards=target.guards, stdin_pipe=True, group_only=True, stderr=self.said.append
        )
        self.ended = Ended()
        self.received = 0  # bytes that came back over the link

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        pipe = _Pipe()
        stop = asyncio.Event()

        async def run() -> None:
            try:
                self.ended = await self.process.run(pipe, stop)
            finally:
                await pipe.queue.put(None)

        task = asyncio.create_task(run(), name="far file search")
        try:
            while (data := await pipe.queue.get()) is not None:
                self.received += len(data)
                yield data
        finally:
            stop.set()
            while not task.done():  # let the process go, even while the queue is full
                with contextlib.suppress(asyncio.QueueEmpty):
                    pipe.queue.get_nowait()
                await asyncio.wait([task], timeout=0.05)

    def why(self) -> str:
        words = b"".join(self.said).decode(errors="replace").strip().splitlines()
        return self.ended.reason or (words[-1][:SAID] if words else f"exit {self.ended.status}")


async def scan_remote(target: Target, query: FileQuery) -> AsyncGenerator[list[FileItem], None]:
    """Matches in the target's files on its host, in batches; ends with a Total whose
    `received` are the bytes that crossed the link (what the far side read is not known).
    Leaving the iteration (or closing it) stops the far side."""
    started = time.monotonic()
    far = _Far(target, far_command(target, query))
    parser = _FarParser(target, query)
    async with contextlib.aclosing(far.chunks()) as chunks:
        async for data in chunks:
            items = parser.feed(data)
            if items:
                yield items
            if parser.stopped:
                break
    last: list[FileItem] = list(parser.finish())
    if not parser.done and not parser.stopped:
        last.append(Skipped(target.source, target.part, f"the far scan failed: {far.why()}"))
    complete = parser.done and not parser.stopped
    total = Total(parser.matches, parser.files, 0, elapsed(started), complete, far.received)
    yield [*last, total]


_GREP_LINE = re.compile(rb"(\d+)([:-])")


class _FarParser:
    """grep -n output (`N:match`, `N-context`, `--`) with `=SUFFIX` before each file, into
    lines in the order asked."""

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
                elif is_generation(tag):
                    self.name = self.target.path + tag
                    self.files += 1
                    self.ordered = Ordered(self.query, self.query.limit - self.matches)
                continue
            found = _GREP_LINE.match(raw)
            if found is None or self.ordered is None:
                continue  # `--` between groups: numbers say where a group starts
            text = result_text(raw[found.end() :])
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


# -- the lines around a result -----------------------------------------------------------------


def remote_suffix(target: Target, shown: str) -> str | None:
    """The generation a client names by its shown name (`path` and a suffix), or None."""
    if not shown.startswith(target.path):
        return None
    suffix = shown[len(target.path) :]
    return suffix if is_generation(suffix) else None


async def lines_remote(
    target: Target, suffix: str, first: int, last: int, mark: int
) -> AsyncGenerator[list[FileItem], None]:
    """Lines `first` to `last` of one generation on the target's host, as results (`mark`, the
    one asked about, is a `match`); a Skipped saying why if it cannot be read."""
    args = [target.path, suffix, str(first), str(last), str(FAR_WIDTH + 1)]
    far = _Far(target, "sh -c " + shlex.join([FAR_LINES, "perview-far-lines", *args]))
    name, number, rest, said = target.path + suffix, first, b"", None
    async with contextlib.aclosing(far.chunks()) as chunks:
        async for data in chunks:
            *lines, rest = (rest + data).split(b"\n")
            rest = rest[: FAR_WIDTH + 1]
            out: list[FileItem] = []
            for raw in lines:
                if said is None:
                    said = raw if raw.startswith(b"=") else None  # before it: stderr
                    continue
                if not raw.startswith(b":") or number > last:
                    continue
                text = result_text(raw[1:])
                part = FileLine(target.source, target.part, name, number, text, number == mark)
                out.append(part)
                number += 1
            if out:
                yield out
    if said != b"=" + suffix.encode():
        why = "it is not there any more" if said == b"=gone" else f"reading failed: {far.why()}"
        yield [Skipped(target.source, target.part, f"{name}: {why}")]
