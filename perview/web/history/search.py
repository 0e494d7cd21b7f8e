"""`GET /api/search`: recorded lines that match `q` (a substring, or `re:` and an RE2 pattern)
and/or a level, in the sources asked (else every recorded one and every `file` source), newest
or oldest first, with context lines, up to a limit."""

from __future__ import annotations

import asyncio

from aiohttp import web

from perview.history.far import RemoteRefused, far_grep
from perview.history.files import FileQuery, Skipped, Target, targets
from perview.history.search import MAX_CONTEXT, Matcher, Query, level_number
from perview.web.history.kinds import HISTORY, HUBS, history_of, recorded_sources
from perview.web.history.params import bad, number, time_range
from perview.web.history.render import respond
from perview.web.history.results import batches
from perview.web.streams import GrepError

MAX_LIMIT = 100_000  # matches one search may return
DEFAULT_LIMIT = 1000
MAX_QUERY = 4096  # characters of `q`
MAX_SOURCES = 200


async def search(request: web.Request) -> web.StreamResponse:
    history = request.app[HISTORY]
    params = request.query
    q = params.get("q", "")
    if len(q) > MAX_QUERY:
        raise bad(f"q is longer than {MAX_QUERY} characters")
    level = None
    if "level" in params:
        try:
            level = level_number(params["level"])
        except ValueError as exc:
            raise bad(str(exc)) from None
    if not q and level is None:
        raise bad("q is required: a substring, or re: and an RE2 pattern (or level=)")
    order = params.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise bad(f"order must be newest or oldest, not {order[:20]!r}")
    context = number(params, "context", 0, MAX_CONTEXT)
    limit = number(params, "limit", DEFAULT_LIMIT, MAX_LIMIT, least=1)
    since, until = time_range(params)
    recorded = await asyncio.to_thread(recorded_sources, history)
    files = {
        name: targets(hub)
        for name, hub in list(request.app[HUBS].items())
        if history_of(hub, recorded) == "file"
    }
    asked = params.getall("source", [])
    if len(asked) > MAX_SOURCES:
        raise bad(f"at most {MAX_SOURCES} sources")
    unknown = [s for s in asked if s not in recorded and s not in files]
    if unknown:
        raise bad(f"source {unknown[0][:64]!r} has no recorded history and is not a file")
    try:
        matcher = Matcher(q) if q else None
    except GrepError as exc:
        raise bad(f"q {exc}") from None
    parts: list[Target] = []
    skipped: list[Skipped] = []
    for name in asked or files:
        if name not in files:
            continue
        why = _unsearchable(q, level, files[name])
        if why is not None and asked:
            raise bad(f"source {name!r} {why}")
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
    return await respond(request, batches(history, query, file_query, parts, skipped))


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
