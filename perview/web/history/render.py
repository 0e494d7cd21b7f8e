"""How a history request's results reach its client: a streamed response (gzip when accepted)
of text lines, or of JSON lines (`format=json` or an Accept that asks for JSON), or, for a
range as text, the lines as the source wrote them (a download). Leaving stops every scan."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable
from contextlib import suppress
from datetime import UTC, datetime

from aiohttp import web

from perview.history.files import FileLine, Skipped, shown_file
from perview.history.search import Event, Line, Lines, Missing, Progress, Total
from perview.web.history.params import wants_json
from perview.web.history.results import Result
from perview.web.limits import Streams
from perview.web.streams import STREAM_HEADERS

STREAMS = web.AppKey("history_streams", Streams)


async def respond(
    request: web.Request,
    batches: AsyncGenerator[list[Result], None],
    render: Callable[[Result], bytes] | None = None,
) -> web.StreamResponse:
    """Stream `batches` to the client, each result as `render` (else text or JSON lines, as
    asked) makes it; closes `batches` however the response ends."""
    as_json = wants_json(request)
    response = web.StreamResponse(headers=STREAM_HEADERS)
    response.content_type = "application/x-ndjson" if as_json else "text/plain"
    response.charset = "utf-8"
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression(web.ContentCoding.gzip)
    render = render or (as_json_line if as_json else as_text)
    with (
        suppress(ConnectionResetError),
        request.app[STREAMS].admit(request, response, [], heartbeat=False),
    ):
        try:
            await response.prepare(request)
            async for items in batches:
                data = b"".join(render(item) for item in items)
                if data:
                    await response.write(data)
            await response.write_eof()
        finally:
            # The client left (or the write failed): every scan stops, the far side's too.
            await asyncio.shield(batches.aclose())
    return response


def _when(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _who(source: str, part: str | None) -> str:
    return f"{source}/{part}" if part else source


def as_text(item: Result) -> bytes:
    match item:
        case FileLine():
            mark = ":" if item.match else "-"
            where = f"{_who(item.source, item.part)} {shown_file(item.file)}:{item.number}"
            return f"{where}{mark} {item.text}\n".encode()
        case Skipped():
            return (
                f"[perview] {_who(item.source, item.part)}: not searched: {item.reason}\n".encode()
            )
        case Line():
            mark = ":" if item.match else "-"
            return f"{_when(item.at)} {_who(item.source, item.part)}{mark} {item.text}\n".encode()
        case Event():
            return (
                f"[perview] {_when(item.at)} {_who(item.source, item.part)}: {item.text}\n".encode()
            )
        case Missing():
            span = f"(from {_when(item.t0)} to {_when(item.t1)})"
            if item.damaged is None:
                what = f"{item.count} lines not recorded {span}"
            else:
                what = f"{item.count} lines unreadable {span}: {item.damaged}"
            return f"[perview] {_who(item.source, item.part)}: {what}\n".encode()
        case Total():
            stop = "" if item.complete else " (stopped at the limit)"
            return (
                f"[perview] {item.matches} matches{stop}; {item.blocks} blocks, "
                f"{item.bytes:,} bytes scanned{_far(item.received)} in {item.seconds:.2f} s\n"
            ).encode()
    return b""  # progress is for JSON clients; a text stream holds lines only


def _far(received: int) -> str:
    return f" ({received:,} bytes back from hosts)" if received else ""


def download(item: Result) -> bytes:
    """A range as text: the lines as the source wrote them (`part: ` first where it has parts),
    and what happened between them as `[perview]` lines."""
    match item:
        case Lines():
            if not item.part:
                return item.data
            prefix = f"{item.part}: ".encode()
            return prefix + item.data[:-1].replace(b"\n", b"\n" + prefix) + item.data[-1:]
        case Line():
            return (f"{item.part}: {item.text}\n" if item.part else item.text + "\n").encode()
        case Total() | Progress():
            return b""
    return as_text(item)


def as_json_line(item: Result) -> bytes:
    record: dict[str, object]
    match item:
        case FileLine():
            record = {"type": "line", "from": "file", "source": item.source, "part": item.part}
            record |= {"file": shown_file(item.file), "line": item.number, "text": item.text}
            record["match"] = item.match
        case Skipped():
            record = {"type": "skipped", "source": item.source, "part": item.part}
            record |= {"reason": item.reason, "text": f"not searched: {item.reason}"}
        case Line():
            record = {
                "type": "line",
                "source": item.source,
                "part": item.part,
                "at": item.at,
                "time": _when(item.at),
                "line": item.number,
                "text": item.text,
                "match": item.match,
            }
        case Event():
            record = {"type": "event", "source": item.source, "part": item.part}
            record |= {"at": item.at, "time": _when(item.at), "text": item.text}
        case Missing():
            record = {
                "type": "gap" if item.damaged is None else "damaged",
                "source": item.source,
                "part": item.part,
                "count": item.count,
                "from": _when(item.t0),
                "to": _when(item.t1),
            }
            if item.damaged is not None:
                record["reason"] = item.damaged
        case Progress():
            record = {"type": "progress", "blocks": item.blocks, "of": item.of}
            record |= {"bytes": item.bytes, "matches": item.matches}
        case Total():
            record = {"type": "total", "matches": item.matches, "blocks": item.blocks}
            record |= {"bytes": item.bytes, "seconds": round(item.seconds, 3)}
            record["complete"] = item.complete
            if item.received:
                record["received"] = item.received
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"
