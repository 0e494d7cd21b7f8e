"""History over HTTP: `GET /api/search` (recorded lines that match, streamed as found) and
`GET /api/sources/{name}/history` (a recorded source's lines in a time range, or a file
source's lines around one), as text or JSON lines. Scans run a block at a time on a thread of
their own and stop when the client leaves. Unrecorded `file` sources are searched in their
files (files.py): here on that thread, on a host by grep on the far side (far.py).
`history_of` is the one answer to what history a source has, for the API and for search."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncGenerator, Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing, suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web

from perview.history.far import RemoteRefused, far_grep, lines_remote, remote_suffix, scan_remote
from perview.history.files import (
    FileItem,
    FileLine,
    FileQuery,
    Skipped,
    Target,
    lines_local,
    local_file,
    scan_local,
    shown_file,
    targets,
)
from perview.history.search import (
    MAX_CONTEXT,
    Event,
    Item,
    Line,
    Lines,
    Matcher,
    Missing,
    Progress,
    Query,
    Total,
    level_number,
    run,
)
from perview.history.service import History
from perview.history.times import parse_time
from perview.hub import Hub
from perview.web.limits import Streams
from perview.web.streams import STREAM_HEADERS, GrepError, whole_number

HISTORY = web.AppKey("history", History)
MAX_LIMIT = 100_000  # matches one search may return
DEFAULT_LIMIT = 1000
MAX_QUERY = 4096  # characters of `q`
MAX_SOURCES = 200
# One thread for every search, as for `?grep=`: it leaves the other core to the loop, and
# searches take turns a step (a block) at a time.
_searchers = ThreadPoolExecutor(1, thread_name_prefix="perview-search")
STEP_ITEMS = 500  # items one step hands back at most
STEP_BYTES = 4 * 1024 * 1024  # ... or this much text of a range (Lines: a block each)
STEP_SECONDS = 0.05  # ... or after this long, so progress flows
FIRST_WAIT = 0.005  # ... or this long after its first item: a rare match goes out at once


def add_history_routes(
    app: web.Application,
    root: str,
    history: History,
    streams: Streams,
    hubs: Mapping[str, Hub] | None = None,
) -> None:
    """`hubs` (read live) are where unrecorded `file` sources are found for search."""
    app[HISTORY] = history
    app[_STREAMS] = streams
    app[_HUBS] = hubs if hubs is not None else {}
    app.router.add_get(root + "/api/search", search)
    app.router.add_get(root + "/api/sources/{name}/history", source_history)


_STREAMS = web.AppKey("history_streams", Streams)
_HUBS = web.AppKey("history_hubs", Mapping[str, Hub])

HistoryKind = Literal["recorded", "file", "none"]


def history_of(hub: Hub, recorded: Collection[str]) -> HistoryKind:
    """What history a served source has: its record (recorded now, or held from before), else
    its files searched in place (a `file` source, here or on a host), else none."""
    if hub.name in recorded:
        return "recorded"
    return "file" if targets(hub) else "none"


async def histories(app: web.Application, hubs: Mapping[str, Hub]) -> dict[str, HistoryKind]:
    """`history_of` each of `hubs`; all none when history is not served (no store)."""
    history = app.get(HISTORY)
    if history is None:
        return dict.fromkeys(hubs, "none")
    recorded = await asyncio.to_thread(_recorded, history)
    return {name: history_of(hub, recorded) for name, hub in hubs.items()}


async def search(request: web.Request) -> web.StreamResponse:
    history = request.app[HISTORY]
    params = request.query
    q = params.get("q", "")
    if len(q) > MAX_QUERY:
        raise _bad(f"q is longer than {MAX_QUERY} characters")
    level = None
    if "level" in params:
        try:
            level = level_number(params["level"])
        except ValueError as exc:
            raise _bad(str(exc)) from None
    if not q and level is None:
        raise _bad("q is required: a substring, or re: and an RE2 pattern (or level=)")
    order = params.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise _bad(f"order must be newest or oldest, not {order[:20]!r}")
    context = _number(params, "context", 0, MAX_CONTEXT)
    limit = _number(params, "limit", DEFAULT_LIMIT, MAX_LIMIT, least=1)
    since, until = _range(params)
    recorded = await asyncio.to_thread(_recorded, history)
    files = {
        name: targets(hub)
        for name, hub in list(request.app[_HUBS].items())
        if history_of(hub, recorded) == "file"
    }
    asked = params.getall("source", [])
    if len(asked) > MAX_SOURCES:
        raise _bad(f"at most {MAX_SOURCES} sources")
    unknown = [s for s in asked if s not in recorded and s not in files]
    if unknown:
        raise _bad(f"source {unknown[0][:64]!r} has no recorded history and is not a file")
    try:
        matcher = Matcher(q) if q else None
    except GrepError as exc:
        raise _bad(f"q {exc}") from None
    parts: list[Target] = []
    skipped: list[Skipped] = []
    for name in asked or files:
        if name not in files:
            continue
        why = _unsearchable(q, level, files[name])
        if why is not None and asked:
            raise _bad(f"source {name!r} {why}")
        if why is not None:
            skipped += [Skipped(name, None, why)]
        else:
            parts += files[name]
    query = Query(
        tuple(s for s in asked or recorded if s in recorded),
        since,
        until,
        matcher if matcher is not None else Matcher(""),
        newest_first=order == "newest",
        context=context,
        level=level,
        limit=limit,
    )
    file_query = None
    if matcher is not None and parts:
        file_query = FileQuery(matcher, q, since, until, order == "newest", context, limit)
    batches = _batches(history, query, file_query, parts, skipped)
    return await _stream(request, batches)


def _unsearchable(q: str, level: int | None, parts: list[Target]) -> str | None:
    """Why a file source cannot be searched for this query, or None."""
    if level is not None:
        return "is a file: level= does not apply to it (its lines are not classified)"
    if not q:
        return "is a file: it needs a q"
    if any(part.destination is not None for part in parts):
        try:
            far_grep(q)
        except RemoteRefused as exc:
            return f"is on a host, where q {exc}"
    return None


async def source_history(request: web.Request) -> web.StreamResponse:
    history = request.app[HISTORY]
    name = request.match_info["name"]
    recorded = await asyncio.to_thread(_recorded, history)
    hub = request.app[_HUBS].get(name)
    if name not in recorded and hub is not None and history_of(hub, recorded) == "file":
        return await _file_lines(request, hub)
    if name not in recorded:
        raise web.HTTPNotFound(text=f"perview: source {name[:64]!r} has no recorded history\n")
    since, until = _range(request.query)
    as_text = not _wants_json(request)
    query = Query((name,), since, until, None, False, limit=sys.maxsize, as_text=as_text)
    batches = _batches(history, query, None, [], [])
    return await _stream(request, batches, _download if as_text else None)


async def _file_lines(request: web.Request, hub: Hub) -> web.StreamResponse:
    """`?file=F&line=N&context=C` (and `part=` of a multi-host source): the lines of F, one of
    the files search named, around line N, as search results (N is the `match`)."""
    params = request.query
    if "file" not in params or "line" not in params:
        raise _bad(f"source {hub.name!r} is a file: its history is its lines around file= line=")
    line = _number(params, "line", 1, sys.maxsize, least=1)
    context = _number(params, "context", 0, MAX_CONTEXT)
    first, last = max(1, line - context), line + context
    part = params.get("part")
    target = next((t for t in targets(hub) if t.part == part), None)
    if target is None:
        raise _bad(f"source {hub.name!r} has no part {str(part)[:64]!r}")
    batches: AsyncGenerator[list[Result], None]
    if target.destination is None:
        name = await asyncio.to_thread(local_file, target, params["file"])
        if name is None:
            raise _bad(f"{params['file'][:256]!r} is not a file of source {hub.name!r}")
        batches = _stepped(lines_local(target, name, first, last, line))
    else:
        suffix = remote_suffix(target, params["file"])
        if suffix is None:
            raise _bad(f"{params['file'][:256]!r} is not a file of source {hub.name!r}")
        batches = _far_batches(lines_remote(target, suffix, first, last, line))
    return await _stream(request, batches)


async def _far_batches(
    batches: AsyncGenerator[list[FileItem], None],
) -> AsyncGenerator[list[Result], None]:
    async with aclosing(batches):
        async for batch in batches:
            yield list[Result](batch)


def _recorded(history: History) -> list[str]:
    """Sources with history: in the store, or recorded by the config (perhaps nothing yet). From
    the store's own list of segments, not its index: the page asks every few seconds. On a
    thread: that list's lock is held while the writer commits."""
    held = sorted(history.store.held())
    return held + sorted(set(history.store.retention.ages) - set(held))


def _range(params: Mapping[str, str]) -> tuple[float, float]:
    now = time.time()
    try:
        since = parse_time(params.get("since", "0"), now)
        until = parse_time(params.get("until", "now"), now)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    if since > until:
        raise _bad("since is after until")
    return since, until


def _number(params: Mapping[str, str], key: str, default: int, most: int, least: int = 0) -> int:
    text = params.get(key)
    if text is None:
        return default
    value = whole_number(text)
    if value is None or not least <= value <= most:
        raise _bad(f"{key} must be a whole number from {least} to {most}")
    return value


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f"perview: {message}\n")


def _wants_json(request: web.Request) -> bool:
    if request.query.get("format") == "json":
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept or "application/x-ndjson" in accept


async def _stream(
    request: web.Request,
    batches: AsyncGenerator[list[Result], None],
    render: Callable[[Result], bytes] | None = None,
) -> web.StreamResponse:
    as_json = _wants_json(request)
    response = web.StreamResponse(headers=STREAM_HEADERS)
    response.content_type = "application/x-ndjson" if as_json else "text/plain"
    response.charset = "utf-8"
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression(web.ContentCoding.gzip)
    render = render or (_json if as_json else _text)
    with (
        suppress(ConnectionResetError),
        request.app[_STREAMS].admit(request, response, [], heartbeat=False),
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


Result = Item | FileLine | Skipped


async def _batches(
    history: History,
    query: Query,
    file_query: FileQuery | None,
    parts: list[Target],
    skipped: list[Skipped],
) -> AsyncGenerator[list[Result], None]:
    """Recorded history's results, then each file part's, in batches, with one Total for all
    (what the limit left for each part is what it may find)."""
    matches = blocks = scanned = received = 0
    seconds = 0.0
    complete = True
    gathered: list[Result] = list(skipped)

    def tally(items: list[Result]) -> list[Result]:
        nonlocal matches, blocks, scanned, received, seconds, complete
        kept: list[Result] = list(gathered)
        gathered.clear()
        for item in items:
            if isinstance(item, Total):
                matches += item.matches
                blocks += item.blocks
                scanned += item.bytes
                received += item.received
                seconds += item.seconds
                complete = complete and item.complete
            else:
                kept.append(item)
        return kept

    if query.sources:
        async with aclosing(_stepped(run(history.store, query))) as steps:
            async for items in steps:
                yield tally(items)
    for part in parts:
        if file_query is None or matches >= file_query.limit:
            complete = complete and file_query is None
            break
        room = replace(file_query, limit=file_query.limit - matches)
        if part.destination is None:
            async with aclosing(_stepped(scan_local(part, room))) as steps:
                async for items in steps:
                    yield tally(items)
        else:
            async with aclosing(scan_remote(part, room)) as batches:
                async for batch in batches:
                    yield tally(list[Result](batch))
    yield [*tally([]), Total(matches, blocks, scanned, seconds, complete, received)]


async def _stepped(results: Iterator[Result]) -> AsyncGenerator[list[Result], None]:
    """A sync scan run a step at a time on the search thread; closed when its reader stops."""
    loop = asyncio.get_running_loop()
    step: Future[list[Result]] | None = None
    try:
        while True:
            step = _searchers.submit(_step, results)
            items = await asyncio.wrap_future(step, loop=loop)
            if not items:
                return
            yield items
    finally:
        # A step still running on the thread closes the scan when it ends.
        close = getattr(results, "close", None)
        if close is not None:
            if step is not None and not step.done():
                step.add_done_callback(lambda _: close())
            else:
                close()


def _step(results: Iterator[Result]) -> list[Result]:
    items: list[Result] = []
    size = 0
    deadline = time.monotonic() + STEP_SECONDS
    for item in results:
        items.append(item)
        now = time.monotonic()
        if len(items) == 1:
            deadline = min(deadline, now + FIRST_WAIT)
        if isinstance(item, Lines):
            size += len(item.data)
        if len(items) >= STEP_ITEMS or size >= STEP_BYTES or now >= deadline:
            break
        if isinstance(item, Total):
            break
    return items


def _when(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _who(source: str, part: str | None) -> str:
    return f"{source}/{part}" if part else source


def _text(item: Result) -> bytes:
    match item:
        case FileLine():
            mark = ":" if item.match else "-"
            where = f"{_who(item.source, item.part)} {_file(item.file)}:{item.number}"
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


def _file(name: str) -> str:
    return shown_file(name)


def _download(item: Result) -> bytes:
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
    return _text(item)


def _json(item: Result) -> bytes:
    record: dict[str, object]
    match item:
        case FileLine():
            record = {"type": "line", "from": "file", "source": item.source, "part": item.part}
            record |= {"file": _file(item.file), "line": item.number, "text": item.text}
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
