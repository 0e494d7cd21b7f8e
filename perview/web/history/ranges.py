"""`GET /api/sources/{name}/history`: a recorded source's lines in a time range (as text, the
lines as the source wrote them: a download), or a `file` source's lines around one line of one
of its files (as search results, to show a match in its place)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing

from aiohttp import web

from perview.history.far import lines_remote, remote_suffix
from perview.history.files import FileItem, lines_local, local_file, targets
from perview.history.search import MAX_CONTEXT, Query
from perview.hub import Hub
from perview.web.history.kinds import HISTORY, HUBS, history_of, recorded_sources
from perview.web.history.params import bad, number, time_range, wants_json
from perview.web.history.render import download, respond
from perview.web.history.results import Result, batches, stepped


async def source_history(request: web.Request) -> web.StreamResponse:
    history = request.app[HISTORY]
    name = request.match_info["name"]
    recorded = await asyncio.to_thread(recorded_sources, history)
    hub = request.app[HUBS].get(name)
    if name not in recorded and hub is not None and history_of(hub, recorded) == "file":
        return await _file_lines(request, hub)
    if name not in recorded:
        raise web.HTTPNotFound(text=f"perview: source {name[:64]!r} has no recorded history\n")
    since, until = time_range(request.query)
    as_text = not wants_json(request)
    query = Query((name,), since, until, None, False, limit=sys.maxsize, as_text=as_text)
    found = batches(history, query, None, [], [])
    return await respond(request, found, download if as_text else None)


async def _file_lines(request: web.Request, hub: Hub) -> web.StreamResponse:
    """`?file=F&line=N&context=C` (and `part=` of a multi-host source): the lines of F, one of
    the files search named, around line N, as search results (N is the `match`)."""
    params = request.query
    if "file" not in params or "line" not in params:
        raise bad(f"source {hub.name!r} is a file: its history is its lines around file= line=")
    line = number(params, "line", 1, sys.maxsize, least=1)
    context = number(params, "context", 0, MAX_CONTEXT)
    first, last = max(1, line - context), line + context
    part = params.get("part")
    target = next((t for t in targets(hub) if t.part == part), None)
    if target is None:
        raise bad(f"source {hub.name!r} has no part {str(part)[:64]!r}")
    found: AsyncGenerator[list[Result], None]
    if target.destination is None:
        name = await asyncio.to_thread(local_file, target, params["file"])
        if name is None:
            raise bad(f"{params['file'][:256]!r} is not a file of source {hub.name!r}")
        found = stepped(lines_local(target, name, first, last, line))
    else:
        suffix = remote_suffix(target, params["file"])
        if suffix is None:
            raise bad(f"{params['file'][:256]!r} is not a file of source {hub.name!r}")
        found = _far_batches(lines_remote(target, suffix, first, last, line))
    return await respond(request, found)


async def _far_batches(
    far: AsyncGenerator[list[FileItem], None],
) -> AsyncGenerator[list[Result], None]:
    async with aclosing(far):
        async for batch in far:
            yield list[Result](batch)
