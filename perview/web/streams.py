"""Viewers on the wire: the live text/plain stream and the multiplexed Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import re2
from re2 import _re2  # the automaton without re2.compile's cache (see Grep)

from perview.alerts.engine import AlertEngine
from perview.classify import ERROR, FATAL, HEAD, INFO, LEVEL_MASK, LEVEL_NAMES, WARNING
from perview.hub import Hub
from perview.labels import MAX_PATH, display_name
from perview.metrics.hub import MetricsHub
from perview.ring import ENDINGS, Chunk, State
from perview.viewers import DIRECT, Batch, Gap, Viewer
from perview.web.wire import Wire

STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer this response
}

MAX_DIGITS = 18  # of a line id or count from a client: more than any ring will ever hold

# What one `?grep=` may cost. Compiling holds the GIL (measured: a thread compiling stops the
# event loop as surely as compiling on it), so it stays on the loop and is bounded by size: the
# pattern is first compiled alone within GREP_PROBE_MEMORY, where RE2 gives up after about 21,000
# instructions, which bounds a hostile compile (`\pL{1000}`) to about 1.3 ms of CPU here (42 ms
# within the 8 MiB budget it had before). A program of more than GREP_PROGRAM instructions is
# refused: `.{1000}` (8,007) passes, `\p{Greek}{999}x` (61,961) does not.
GREP_PROBE_MEMORY = 256 * 1024
GREP_PROGRAM = 10_000
# RE2's budget for the automaton that matches: the program and the DFA's cache of states. Above
# it RE2 throws the cache away and rebuilds it, so a hostile pattern costs time, not memory.
# Measured on 1 MiB of log lines: ordinary patterns scan as fast at 2 MiB as at 8 MiB.
GREP_MEMORY = 2 * 1024 * 1024
# Matching runs on these threads, never on the loop: RE2 lets go of the GIL while it matches
# (measured: the loop kept its 1 ms ticks while 20 scans ran on a thread), so one hard pattern
# (`[a-q][^u-z]{25}x` scans 6 to 13 MB/s) or twenty cannot hold up requests. One thread leaves
# the other core of a two-core machine to the loop; streams take turns, a block each.
GREP_WORKERS = 1
_scanners = ThreadPoolExecutor(GREP_WORKERS, thread_name_prefix="perview-grep")
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED


class Grep:
    """Keeps the lines of blocks that match a pattern: RE2 syntax, matched by RE2 off the loop.

    RE2 runs in linear time whatever the pattern, so a hostile `?grep=` such as `(a+)+$` cannot
    pin a core (Python's engine takes over a second on 24 characters of it). The automaton is
    built here, not through `re2.compile`, which keeps the last 128 patterns in an LRU cache
    (up to 8 MiB each): what a client asked for must go when its stream does.
    Raises GrepError for a pattern RE2 cannot compile (backreferences, for one) or too large."""

    __slots__ = ("_line",)

    def __init__(self, pattern: str) -> None:
        alone = _re2.RE2(pattern.encode(), _options(GREP_PROBE_MEMORY))
        if not alone.ok():  # so an error names the user's pattern alone
            reason = alone.error().decode(errors="replace")
            if reason.startswith("pattern too large"):
                raise GrepError(f"is too large (limit: {GREP_PROGRAM:,} RE2 instructions)")
            raise GrepError(f"is not a valid RE2 regular expression: {reason}")
        if alone.ProgramSize() > GREP_PROGRAM:
            raise GrepError(
                f"is too large: {alone.ProgramSize():,} RE2 instructions (limit: {GREP_PROGRAM:,})"
            )
        line = b"(?m)^.*(?:" + pattern.encode() + b").*\n"
        self._line = _re2.RE2(line, _options(GREP_MEMORY))
        if not self._line.ok():
            reason = self._line.error().decode(errors="replace")
            raise GrepError(f"cannot be matched line by line: {reason}")

    async def keep(self, blocks: list[bytes]) -> list[bytes]:
        """The matching lines of each block, found on a scanner thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_scanners, self._scan, blocks)

    def _scan(self, blocks: list[bytes]) -> list[bytes]:
        kept: list[bytes] = []
        match = self._line.Match
        for data in blocks:
            lines: list[bytes] = []
            pos, end = 0, len(data)
            while True:
                # Every match ends with a newline, so pos always moves on.
                ((start, pos),) = match(_UNANCHORED, data, pos, end)
                if start < 0:
                    break
                lines.append(data[start:pos])
            kept.append(b"".join(lines))
        return kept


class GrepError(ValueError):
    """A `?grep=` pattern that is refused; the message says why, for the client."""


def _options(max_mem: int) -> Any:
    options = re2.Options()
    options.log_errors = False  # a user's typo is answered with a 400, not logged as an error
    options.never_capture = True  # whole lines, and a faster automaton
    options.max_mem = max_mem
    return options


# `?level=`: the level names, and the other words people write for them.
LEVELS: dict[str, int] = {name: level for level, name in enumerate(LEVEL_NAMES) if level} | {
    "notice": INFO,
    "warn": WARNING,
    "err": ERROR,
    "crit": FATAL,
    "critical": FATAL,
}
LEVEL_CHOICES = ", ".join(LEVEL_NAMES[1:]) + " (or warn, err, crit, critical, notice)"

# A mark to its letter in a `lines` event's `levels`: upper case for a line that starts an
# entry, lower case for one that continues it.
_LETTERS = bytearray(b"n" * 256)
for _level, (_head, _continued) in enumerate(zip(b"NTDIWEF", b"ntdiwef", strict=True)):
    _LETTERS[_level | HEAD], _LETTERS[_level] = _head, _continued
# A mark to 1 if its level is at least the index's, else 0.
_AT_LEAST = [bytes(int((m & LEVEL_MASK) >= least) for m in range(256)) for least in range(7)]
_KEPT_RUN = re.compile(rb"\x01+")


def level_of_query(text: str) -> int | None:
    """The level a `?level=` names (any case), or None if it names none."""
    return LEVELS.get(text.lower())


def at_least(chunk: Chunk, least: int) -> list[Chunk]:
    """The runs of consecutive lines of `chunk` whose level is `least` or above, each as a chunk
    of its own (with its own first id): `chunk` itself when every line is kept. A continuation
    line carries its entry's level, so entries are kept or dropped whole."""
    if chunk.marks is None:  # not classified: every line's level is none
        return []
    keep = chunk.marks.translate(_AT_LEAST[least])
    if keep.find(1) < 0:
        return []
    if keep.find(0) < 0:
        return [chunk]
    lines = chunk.data.split(b"\n")
    runs: list[Chunk] = []
    line = pos = 0  # the line `pos` (a byte offset in chunk.data) starts
    for found in _KEPT_RUN.finditer(keep):
        start, end = found.span()
        pos += sum(map(len, lines[line:start])) + start - line
        size = sum(map(len, lines[start:end])) + end - start
        runs.append(
            Chunk(
                chunk.seq,
                chunk.first + start,
                end - start,
                chunk.data[pos : pos + size],
                chunk.offset + pos,
                part=chunk.part,
                at=chunk.at,
                marks=chunk.marks[start:end],
            )
        )
        line, pos = end, pos + size
    return runs


def text_at_least(chunk: Chunk, least: int) -> bytes:
    """The lines of `chunk`'s entries of level `least` or above, as a text stream writes them:
    made once per chunk and level, and kept on the chunk for every viewer of that level."""
    key = f"text>={least}"
    if chunk.cache is not None and (kept := chunk.cache.get(key)) is not None:
        return kept
    kept = b"".join(run.data for run in at_least(chunk, least))
    if chunk.cache is None:
        chunk.cache = {}
    chunk.cache[key] = kept
    return kept


def sse_at_least(hub: Hub, chunk: Chunk, least: int, epoch: str, next_ids: dict[str, int]) -> bytes:
    """The `lines` events of `chunk`'s runs of level `least` or above, each with its id, moving
    `next_ids` on past each. In a stream of one source the ids name that source alone, so the
    events are the same for every viewer: made once per chunk and level, as `sse_lines` is."""
    shared = len(next_ids) == 1
    key = f"sse>={least} {epoch}"
    if shared and chunk.cache is not None and (events := chunk.cache.get(key)) is not None:
        next_ids[hub.name] = chunk.first + chunk.count
        return events
    parts: list[bytes] = []
    for run in at_least(chunk, least):
        next_ids[hub.name] = run.first + run.count
        parts += (sse_lines(hub, run), b"id: ", format_cursor(epoch, next_ids).encode(), b"\n\n")
    next_ids[hub.name] = chunk.first + chunk.count
    events = b"".join(parts)
    if shared:
        if chunk.cache is None:
            chunk.cache = {}
        chunk.cache[key] = events
    return events


def tagged(data: bytes, part: str) -> bytes:
    """Every line of `data` prefixed with `part: `, block-wise (no per-line Python work)."""
    if not data:
        return data
    prefix = part.encode() + b": "
    return prefix + data[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def marker(text: str) -> bytes:
    """An in-band notice in a text stream: what Perview itself has to say, on one line of its own
    whatever `text` holds (a reason may quote a command or a path)."""
    return f"[perview] {display_name(text, MAX_PATH)}\n".encode()


async def relay_text(
    wire: Wire,
    viewer: Viewer,
    grep: Grep | None,
    follow: bool = True,
    least: int | None = None,
) -> None:
    """Write the viewer's lines as plain text until the source's current run ends (or, without
    `follow`, until what the ring holds has been written). With `least`, only the entries of that
    level or above are written; `grep` then keeps the lines of those that match.

    Gaps and a failure to start appear as `[perview] ...` lines; the stream ends after the last
    byte of the run this viewer came for (not an earlier one still stopping), or when the hub
    closes. Unfiltered, it takes new lines straight from the hub while it waits (`TextPush`).
    """
    hub = viewer.hub
    push = TextPush(wire) if DIRECT and grep is None and least is None else None
    while True:
        items = viewer.read()
        if not items:
            if hub.closed or hub.finished or not follow:
                return
            viewer.push = push
            try:
                await viewer.wait()
            finally:
                viewer.push = None
            continue
        kept = None
        if grep is not None or least is not None:
            blocks = [
                i.data if least is None else text_at_least(i, least)
                for i in items
                if isinstance(i, Chunk) and i.note is None and i.state is None
            ]
            kept = iter(await grep.keep(blocks) if grep is not None else blocks)
        parts: list[bytes] = []
        ended = False
        for item in items:
            if isinstance(item, Gap):
                parts.append(marker(f"{item.count} lines skipped"))
            elif item.note is not None:
                parts.append(marker(f"{item.part}: {item.note}" if item.part else item.note))
            elif item.state is None:
                data = item.data if kept is None else next(kept)
                if data:
                    parts.append(tagged(data, item.part) if item.part else data)
            elif item.state.run >= viewer.first_run and item.state.state in ENDINGS:
                if item.state.state == "failed":
                    parts.append(marker(f"failed to start: {item.state.reason}"))
                ended = True
                break
        if parts:
            await wire.write(parts[0] if len(parts) == 1 else b"".join(parts))
        if ended:
            return


class TextPush:
    """A text stream's push (perview.viewers.Push): the batch's lines as `relay_text` writes
    them, the same for every text stream of the source framed alike."""

    __slots__ = ("outlet",)

    def __init__(self, wire: Wire) -> None:
        self.outlet = wire

    @property
    def key(self) -> Hashable:
        return ("text", self.outlet.chunked)

    def encode(self, viewer: Viewer, batch: Batch) -> bytes:
        data = b"".join(tagged(c.data, c.part) if c.part else c.data for c in batch.chunks)
        return self.outlet.frame(data)


# -- Server-Sent Events ----------------------------------------------------------------------


def sse_lines(hub: Hub, chunk: Chunk) -> bytes:
    """A `lines` event without its id: a JSON header line, then one `data:` line per log line.

    The header's `levels` has one letter per line (`n t d i w e f`: none to fatal), upper case
    where the line starts an entry. Cached on the chunk, so a thousand viewers of one source
    encode each chunk once.
    """
    if chunk.cache is not None and "sse" in chunk.cache:
        return chunk.cache["sse"]
    data = chunk.data[:-1]
    if b"\r" in data:
        # SSE treats a lone CR as a line break too; a CR inside a log line (progress bars) is
        # shown as the control picture U+240D instead of splitting the line.
        data = data.replace(b"\r\n", b"\n").replace(b"\r", "\u240d".encode())
    # The time is the server's, when the block arrived: the same for every viewer and after a
    # reload (milliseconds are all a person or a merge needs).
    fields: dict[str, object] = {"source": hub.name, "id": chunk.first, "time": round(chunk.at, 3)}
    if chunk.part is not None:
        fields["part"] = chunk.part
    marks = chunk.marks
    # Not classified (format "raw"): every line an entry of its own, without a level.
    fields["levels"] = "N" * chunk.count if marks is None else marks.translate(_LETTERS).decode()
    header = json.dumps(fields).encode()
    encoded = (
        b"event: lines\ndata: " + header + b"\ndata: " + data.replace(b"\n", b"\ndata: ") + b"\n"
    )
    if chunk.cache is None:
        chunk.cache = {}
    chunk.cache["sse"] = encoded
    return encoded


def sse_event(event: str, payload: Mapping[str, object], event_id: str | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return (head + "data: " + json.dumps(payload) + "\n\n").encode()


def state_payload(hub: Hub, state: State) -> dict[str, object]:
    return {"source": hub.name, **asdict(state), "summary": state.summary}


def format_cursor(epoch: str, next_ids: Mapping[str, int]) -> str:
    """`epoch/name:next-line-id,...`: what `Last-Event-ID` (or `?since=`) resumes from.

    Line ids start again at 1 when Perview restarts; the epoch names this run of the server, so a
    cursor from an earlier one is recognised (and ignored) instead of skipping new lines."""
    return epoch + "/" + ",".join(f"{name}:{next_id}" for name, next_id in next_ids.items())


def whole_number(text: str) -> int | None:
    """`text` as a whole number if it is at most MAX_DIGITS ASCII digits, else None.

    `str.isdigit` alone is not enough: it accepts "²", which int() refuses, as it refuses more
    than 4300 digits (each was a 500 for a `?backlog=` or a cursor)."""
    if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS:
        return int(text)
    return None


def parse_cursor(text: str, epoch: str) -> dict[str, int]:
    """The inverse of `format_cursor`; "" is no cursor. A cursor of another epoch (from before a
    restart of Perview) gives nothing: a fresh start. Without an epoch (`run:1234`) it is taken
    as this server's. Raises ValueError for anything that is not a cursor, so a client with a
    mangled id is told so instead of silently getting a full replay."""
    if not text:
        return {}
    given, slash, rest = text.rpartition("/")
    cursor: dict[str, int] = {}
    for part in rest.split(","):
        name, _, value = part.strip().rpartition(":")
        number = whole_number(value)
        if not name or number is None:
            raise ValueError(f"not a stream position (source:line,...): {text[:100]!r}")
        cursor[name] = number
    return cursor if not slash or given == epoch else {}


async def relay_events(
    wire: Wire,
    viewers: list[Viewer],
    epoch: str,
    metrics: MetricsHub | None = None,
    least: int | None = None,
    alerts: AlertEngine | None = None,
) -> None:
    """Multiplex the viewers' sources (and metric samples, alert changes) as SSE until the
    server closes them.

    Every `lines` and `gap` event carries an id naming, for each source, the next line to send,
    so a reconnecting browser (Last-Event-ID) resumes exactly where it left off. With `least`,
    only entries of that level or above are sent: a `lines` event per run of kept lines (its
    ids consecutive), encoded once for every stream of that one source and level. Without, new
    lines come straight from the hub while the stream waits (`EventRelay` is its push).
    """
    await EventRelay(wire, viewers, epoch, metrics, least, alerts).run()


class EventRelay:
    """One event stream: what `relay_events` does, and its push (perview.viewers.Push)."""

    def __init__(
        self,
        wire: Wire,
        viewers: list[Viewer],
        epoch: str,
        metrics: MetricsHub | None,
        least: int | None,
        alerts: AlertEngine | None,
    ) -> None:
        self.wire = wire
        self.viewers = viewers
        self.epoch = epoch
        self.metrics = metrics
        self.least = least
        self.alerts = alerts
        # Where the stream is in each source: the ids its events name. Between writes they are
        # the viewers' own positions (`sync`), which the hub moves when it pushes.
        self.next_ids = {v.hub.name: v.next_id for v in viewers}
        self.outlet = wire
        self.pushes = DIRECT and least is None
        # With one source, a batch's events (their ids included) are the same for every stream
        # that reads it from the same place, so they are encoded once for all of them; with
        # several, they name this stream's place in each.
        self.shared = len(viewers) == 1

    @property
    def key(self) -> Hashable:
        return ("sse", self.epoch, self.wire.chunked) if self.shared else self

    async def run(self) -> None:
        wire, viewers, metrics, alerts = self.wire, self.viewers, self.metrics, self.alerts
        metric_cursor = metrics.next_batch if metrics else 0
        alert_cursor = alerts.next_event if alerts else 0
        while True:
            self.sync()
            parts: list[bytes] = []
            if metrics is not None:
                samples, metric_cursor = metrics.since(metric_cursor)
                if samples:
                    parts.append(sse_event("metric", {"samples": samples}))
            if alerts is not None:
                changes, alert_cursor = alerts.since(alert_cursor)
                parts += [sse_event("alert", change) for change in changes]
            for viewer in viewers:
                self._encode(viewer, viewer.read(), parts)
            if parts:
                await wire.write(b"".join(parts))
                continue
            if (viewers or metrics is None) and all(v.hub.closed for v in viewers):
                return  # every source has ended for good (a stream of metrics alone goes on)
            await wire.beat()  # if that is what woke us (Streams.tend does)
            # The viewers and the metrics share the stream's one wake event.
            assert wire.wake is not None
            if self.pushes:
                for viewer in viewers:
                    viewer.push = self
            try:
                await wire.wake.wait()
            finally:
                for viewer in viewers:
                    viewer.push = None
            wire.wake.clear()

    def sync(self) -> None:
        """Take up the viewers' positions: the hub moves them past what it pushes."""
        for viewer in self.viewers:
            self.next_ids[viewer.hub.name] = viewer.next_id

    def encode(self, viewer: Viewer, batch: Batch) -> bytes:
        """The push's bytes (perview.viewers.Push): `batch`'s events, framed."""
        if not self.shared:
            self.sync()  # the ids name every source, and the hub moved some since
        parts: list[bytes] = []
        self._encode(viewer, batch.chunks, parts)
        return self.wire.frame(b"".join(parts))

    def _encode(self, viewer: Viewer, items: Sequence[Chunk | Gap], parts: list[bytes]) -> None:
        """Append `items`' events to `parts`, moving this stream's ids on past them."""
        hub, epoch, next_ids, least = viewer.hub, self.epoch, self.next_ids, self.least
        for item in items:
            if isinstance(item, Gap):
                next_ids[hub.name] = item.first + item.count
                payload = {"source": hub.name, "id": item.first, "count": item.count}
                parts.append(sse_event("gap", payload, format_cursor(epoch, next_ids)))
            elif item.note is not None:
                payload = {"source": hub.name, "text": item.note, "time": round(item.at, 3)}
                if item.part is not None:
                    payload["part"] = item.part
                parts.append(sse_event("notice", payload))
            elif item.state is not None:
                payload = state_payload(hub, item.state) | {"history": item.seq < viewer.live_from}
                parts.append(sse_event("state", payload))
            elif least is not None:
                parts.append(sse_at_least(hub, item, least, epoch, next_ids))
            else:
                next_ids[hub.name] = item.first + item.count
                parts += (
                    sse_lines(hub, item),
                    b"id: ",
                    format_cursor(epoch, next_ids).encode(),
                    b"\n\n",
                )
