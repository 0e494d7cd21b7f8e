"""Viewers on the wire: the live text/plain stream and the multiplexed Server-Sent Events stream."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict

import re2

from perview.hub import Gap, Hub, Viewer
from perview.metrics.hub import MetricsHub
from perview.ring import ENDINGS, Chunk, State
from perview.web.wire import Wire

STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer this response
}

Filter = Callable[[bytes], bytes]
MAX_DIGITS = 18  # of a line id or count from a client: more than any ring will ever hold
GREP_MEMORY = 8 * 1024 * 1024  # RE2's budget for one ?grep= automaton


def grep_filter(pattern: str) -> Filter:
    """Keep only the lines of a block that match `pattern`.

    RE2 syntax, matched by RE2: linear time whatever the pattern, so a hostile `?grep=` such as
    `(a+)+$` cannot pin a core (Python's engine takes over a second on 24 characters of it).
    Raises re2.error for a pattern RE2 cannot compile (backreferences, for one)."""
    options = re2.Options()
    options.log_errors = False  # a user's typo is answered with a 400, not logged as an error
    options.never_capture = True  # whole lines, and a faster automaton
    options.max_mem = GREP_MEMORY
    re2.compile(pattern.encode(), options)  # so an error names the user's pattern alone
    line = re2.compile(b"(?m)^.*(?:" + pattern.encode() + b").*\n", options)

    def keep(data: bytes) -> bytes:
        return b"".join(line.findall(data))

    return keep


def labelled(data: bytes, label: str) -> bytes:
    """Every line of `data` prefixed with `label: `, block-wise (no per-line Python work)."""
    if not data:
        return data
    prefix = label.encode() + b": "
    return prefix + data[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def marker(text: str) -> bytes:
    """An in-band notice in a text stream: what Perview itself has to say, on its own line."""
    return f"[perview] {text}\n".encode()


async def relay_text(wire: Wire, viewer: Viewer, keep: Filter | None, follow: bool = True) -> None:
    """Write the viewer's lines as plain text until the source's current run ends (or, without
    `follow`, until what the ring holds has been written).

    Gaps and a failure to start appear as `[perview] ...` lines; the stream ends after the last
    byte of the run this viewer came for (not an earlier one still stopping), or when the hub
    closes.
    """
    hub = viewer.hub
    while True:
        items = viewer.read()
        if not items:
            if hub.closed or hub.finished or not follow:
                return
            await viewer.wait()
            continue
        parts: list[bytes] = []
        ended = False
        for item in items:
            if isinstance(item, Gap):
                parts.append(marker(f"{item.count} lines skipped"))
            elif item.note is not None:
                parts.append(marker(f"{item.label}: {item.note}" if item.label else item.note))
            elif item.state is None:
                data = keep(item.data) if keep else item.data
                parts.append(labelled(data, item.label) if item.label else data)
            elif item.state.run >= viewer.first_run and item.state.state in ENDINGS:
                if item.state.state == "failed":
                    parts.append(marker(f"failed to start: {item.state.reason}"))
                ended = True
                break
        if parts:
            await wire.write(parts[0] if len(parts) == 1 else b"".join(parts))
        if ended:
            return


# -- Server-Sent Events ----------------------------------------------------------------------


def sse_lines(hub: Hub, chunk: Chunk) -> bytes:
    """A `lines` event without its id: a JSON header line, then one `data:` line per log line.

    Cached on the chunk, so a thousand viewers of one source encode each chunk once.
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
    if chunk.label is not None:
        fields["host"] = chunk.label
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
) -> None:
    """Multiplex the viewers' sources as SSE until the server closes them.

    Every `lines` and `gap` event carries an id naming, for each source, the next line to send,
    so a reconnecting browser (Last-Event-ID) resumes exactly where it left off.
    """
    next_ids = {v.hub.name: v.next_id for v in viewers}
    metric_cursor = metrics.next_batch if metrics else 0
    while True:
        parts: list[bytes] = []
        if metrics is not None:
            samples, metric_cursor = metrics.since(metric_cursor)
            if samples:
                parts.append(sse_event("metric", {"samples": samples}))
        for viewer in viewers:
            hub = viewer.hub
            for item in viewer.read():
                if isinstance(item, Gap):
                    next_ids[hub.name] = item.first + item.count
                    payload = {"source": hub.name, "id": item.first, "count": item.count}
                    parts.append(sse_event("gap", payload, format_cursor(epoch, next_ids)))
                elif item.note is not None:
                    payload = {"source": hub.name, "text": item.note, "time": round(item.at, 3)}
                    if item.label is not None:
                        payload["host"] = item.label
                    parts.append(sse_event("notice", payload))
                elif item.state is not None:
                    payload = state_payload(hub, item.state) | {
                        "history": item.seq < viewer.live_from
                    }
                    parts.append(sse_event("state", payload))
                else:
                    next_ids[hub.name] = item.first + item.count
                    parts += (
                        sse_lines(hub, item),
                        b"id: ",
                        format_cursor(epoch, next_ids).encode(),
                        b"\n\n",
                    )
        if parts:
            await wire.write(b"".join(parts))
            continue
        if all(v.hub.closed for v in viewers):
            return
        await wire.beat()  # if that is what woke us (Streams.tend does)
        # The viewers share one wake event, so waiting on any of them waits on all.
        await viewers[0].wait()
