"""The alerts API: each rule's state and recent firings, and an operator's silence."""

from __future__ import annotations

from aiohttp import web

from perview.alerts.engine import AlertEngine
from perview.config import parse_duration
from perview.web.auth import require_operator

ALERTS = web.AppKey("alerts", AlertEngine)
LONGEST_SILENCE = 30 * 86400.0  # a silence is for a while; a rule nobody wants is removed


def add_alert_routes(app: web.Application, engine: AlertEngine, root: str = "") -> None:
    app[ALERTS] = engine
    app.router.add_get(root + "/api/alerts", list_alerts)
    app.router.add_post(root + "/api/alerts/{name}/silence", silence_alert)


async def list_alerts(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[ALERTS].describe())


async def silence_alert(request: web.Request) -> web.StreamResponse:
    """`?for=1h` (a duration; `0` lifts a silence): no notification goes out meanwhile, and the
    firings are still recorded. Operators only."""
    who = require_operator(request)
    engine = request.app[ALERTS]
    name = request.match_info["name"]
    if name not in engine.rules:
        raise web.HTTPNotFound(text=f"perview: no alert named {name!r}\n")
    raw = request.query.get("for", "1h")
    seconds = 0.0 if raw.strip() == "0" else parse_duration(raw)
    if seconds is None or not 0 <= seconds <= LONGEST_SILENCE:
        raise web.HTTPBadRequest(
            text=f'perview: for must be a duration like "1h" up to 30d (or 0), not {raw[:40]!r}\n'
        )
    return web.json_response(engine.silence(name, seconds, who))
