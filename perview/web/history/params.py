"""What a history request asks, read from its query and headers: whole numbers within bounds, a
time range, JSON or text; anything else is a 400 that says what was wrong."""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiohttp import web

from perview.history.times import parse_time
from perview.web.streams import whole_number


def time_range(params: Mapping[str, str]) -> tuple[float, float]:
    """`since` and `until` (from the start of time, to now by default) as Unix times."""
    now = time.time()
    try:
        since = parse_time(params.get("since", "0"), now)
        until = parse_time(params.get("until", "now"), now)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if since > until:
        raise bad("since is after until")
    return since, until


def number(params: Mapping[str, str], key: str, default: int, most: int, least: int = 0) -> int:
    text = params.get(key)
    if text is None:
        return default
    value = whole_number(text)
    if value is None or not least <= value <= most:
        raise bad(f"{key} must be a whole number from {least} to {most}")
    return value


def bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f"perview: {message}\n")


def wants_json(request: web.Request) -> bool:
    if request.query.get("format") == "json":
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept or "application/x-ndjson" in accept
