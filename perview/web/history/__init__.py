"""History over HTTP: `GET /api/search` (recorded lines that match, streamed as found; search.py)
and `GET /api/sources/{name}/history` (a recorded source's lines in a time range, or a file
source's lines around one; ranges.py), as text or JSON lines (render.py). Scans run a block at a
time on a thread of their own and stop when the client leaves (results.py). Unrecorded `file`
sources are searched in their files (perview/history/files.py): here on that thread, on a host
by grep on the far side (far.py). What history a source has is kinds.py's one answer, for the
API and for search; what a request asks is read by params.py."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from perview.history.service import History
from perview.hub import Hub
from perview.web.history.kinds import HISTORY, HUBS, histories
from perview.web.history.ranges import source_history
from perview.web.history.render import STREAMS
from perview.web.history.search import search
from perview.web.limits import Streams

__all__ = ["add_history_routes", "histories"]


def add_history_routes(
    app: web.Application,
    root: str,
    history: History,
    streams: Streams,
    hubs: Mapping[str, Hub] | None = None,
) -> None:
    """`hubs` (read live) are where unrecorded `file` sources are found for search."""
    app[HISTORY] = history
    app[STREAMS] = streams
    app[HUBS] = hubs if hubs is not None else {}
    app.router.add_get(root + "/api/search", search)
    app.router.add_get(root + "/api/sources/{name}/history", source_history)
