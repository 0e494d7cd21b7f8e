"""The aiohttp application: the page, the JSON API and the streams, over a set of hubs."""

from __future__ import annotations

import asyncio
import hashlib
import math
import mimetypes
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from perview import __version__
from perview.alerts.engine import AlertEngine
from perview.catalog import Changes
from perview.config import Config, Network, ServerConfig
from perview.errors import PerviewError
from perview.history.service import History
from perview.hub import Hub
from perview.metrics.hub import MetricsHub
from perview.metrics.prometheus import exposition
from perview.metrics.service import MetricsService
from perview.sources.process import GuardPool
from perview.web.alerts import ALERTS, add_alert_routes
from perview.web.auth import (
    Access,
    add_security_headers,
    arrived_directly,
    require_operator,
    security_middleware,
)
from perview.web.history import add_history_routes, histories
from perview.web.limits import StreamLimits, Streams
from perview.web.login import add_login_routes
from perview.web.proxy import proxy_middleware
from perview.web.streams import (
    LEVEL_CHOICES,
    STREAM_HEADERS,
    Grep,
    GrepError,
    level_of_query,
    parse_cursor,
    relay_events,
    relay_text,
    sse_event,
    whole_number,
)


@dataclass(frozen=True, slots=True)
class WebSettings:
    access: Access
    root_path: str = ""  # "" or "/prefix", without a trailing slash
    default_stream: str | None = None  # `perview run`: what `GET /` streams to non-browsers
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))  # this run of the server
    hsts: bool = False  # served over TLS: tell browsers to insist on https
    limits: StreamLimits = field(default_factory=StreamLimits)
    trusted_proxies: tuple[Network, ...] = ()  # whose X-Forwarded-* headers name the client


MAX_BODY = 64 * 1024  # bytes of a request body: only login forms have one

HUBS = web.AppKey("hubs", dict[str, Hub])
METRICS = web.AppKey("metrics", MetricsService)
STREAMS = web.AppKey("streams", Streams)
SETTINGS = web.AppKey("settings", WebSettings)
STATIC = web.AppKey("static", dict[str, tuple[bytes, str]])
Reload = Callable[[], Awaitable[Changes]]
RELOAD: web.AppKey[Reload | None] = web.AppKey("reload")  # None: serving no config file


def create_app(
    hubs: dict[str, Hub],
    settings: WebSettings,
    metrics: MetricsService | None = None,
    reload: Reload | None = None,
    history: History | None = None,
    alerts: AlertEngine | None = None,
) -> web.Application:
    """The application for these hubs (and metrics); it owns neither: the server starts and
    closes them. `hubs` is read live, not copied: a reload adds and removes sources in it.
    `reload` applies the config file again (an operator's POST /api/reload)."""
    # The proxy middleware comes first, so that every later check sees the client, not the proxy.
    middlewares = [proxy_middleware(settings.trusted_proxies), security_middleware(settings.access)]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    add_security_headers(app, settings.hsts)
    app[HUBS] = hubs
    app[RELOAD] = reload
    app[STREAMS] = Streams(settings.limits)
    app.cleanup_ctx.append(_tend_streams)
    app[METRICS] = metrics or MetricsService(Config(ServerConfig(), ()), GuardPool())
    app[SETTINGS] = settings
    app[STATIC] = _load_static()
    root = settings.root_path
    if root:
        app.router.add_get(root, _redirect_to_root)
    app.router.add_get(root + "/", index)
    app.router.add_get(root + "/static/{name}", static_file)
    app.router.add_get(root + "/healthz", healthz)
    app.router.add_get(root + "/api/sources", list_sources)
    app.router.add_get(root + "/api/sources/{name}/text", text_stream)
    app.router.add_get(root + "/api/events", event_stream)
    app.router.add_post(root + "/api/sources/{name}/stop", stop_source)
    app.router.add_post(root + "/api/sources/{name}/restart", restart_source)
    app.router.add_post(root + "/api/reload", reload_config)
    app.router.add_get(root + "/api/metrics", list_metrics)
    app.router.add_get(root + "/api/metrics/{series:.+}", metric_history)
    app.router.add_get(root + "/metrics", prometheus_metrics)
    if history is not None:
        add_history_routes(app, root, history, app[STREAMS], hubs)
    add_login_routes(app, settings.access, _fill_assets("login.html", app[STATIC]))
    if alerts is not None:
        add_alert_routes(app, alerts, root)
    return app


async def _tend_streams(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[STREAMS].tend())
    yield
    task.cancel()


# -- the page ----------------------------------------------------------------------------------


# `new URL("./x.js", import.meta.url)` names a worker's script.
IMPORT = re.compile(rb'(from\s+|import\s+|new URL\()"\./([\w.-]+\.js)"')
ASSET = re.compile(r"\{\{ *([\w-]+\.(?:js|css)) *\}\}")  # {{app.js}} in a page


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every static file with a short content hash, so asset URLs change when the file does.

    Imports between modules get the imported file's hash too (`./store.js?v=...`), so a change
    deep in the module graph changes every URL above it and no browser keeps a stale module."""
    raw = {
        entry.name: entry.read_bytes()
        for entry in resources.files("perview.web").joinpath("static").iterdir()
        if entry.is_file()
    }
    files: dict[str, tuple[bytes, str]] = {}
    while len(files) < len(raw):
        progress = False
        for name, body in raw.items():
            deps = [dep.decode() for _, dep in IMPORT.findall(body)]
            if name in files or any(dep not in files for dep in deps if dep in raw):
                continue
            body = IMPORT.sub(
                lambda m: m[1] + b'"./' + m[2] + b"?v=" + files[m[2].decode()][1].encode() + b'"',
                body,
            )
            files[name] = (body, hashlib.sha256(body).hexdigest()[:12])
            progress = True
        if not progress:
            raise RuntimeError(f"circular imports among {sorted(set(raw) - set(files))}")
    return files


async def _redirect_to_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(request.path + "/")


async def index(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if settings.default_stream and "text/html" not in request.headers.get("Accept", ""):
        # The original contract: `curl host:port` gets the command's output as it comes.
        return await _text(request, request.app[HUBS][settings.default_stream])
    access = settings.access
    # A page another site opened (a link, a script's navigation) could name sources to start:
    # then the page starts nothing until the person says so.
    marks = {
        "{{version}}": __version__,
        "{{arrival}}": "direct" if arrived_directly(request) else "linked",
        "{{auth}}": "none" if access.token is None else ("users" if access.users else "token"),
    }
    page = _fill_assets("index.html", request.app[STATIC])
    for mark, value in marks.items():
        page = page.replace(mark, value)
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Cache-Control": "no-cache", "Vary": "Sec-Fetch-Site"},
    )


def _fill_assets(name: str, static: dict[str, tuple[bytes, str]]) -> str:
    """The page `name` with each `{{file.js}}` replaced by that file's versioned URL."""
    page = static[name][0].decode()
    return ASSET.sub(lambda m: f"static/{m[1]}?v={static[m[1]][1]}", page)


async def static_file(request: web.Request) -> web.StreamResponse:
    found = request.app[STATIC].get(request.match_info["name"])
    if found is None or request.match_info["name"].endswith(".html"):  # pages have routes
        raise web.HTTPNotFound(text="perview: no such file\n")
    body, digest = found
    immutable = request.query.get("v") == digest
    content_type = mimetypes.guess_type(request.match_info["name"])[0] or "application/octet-stream"
    cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": cache})


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True, "version": __version__})


# -- the API -----------------------------------------------------------------------------------


def _hub(request: web.Request) -> Hub:
    name = request.match_info["name"]
    hub = request.app[HUBS].get(name)
    if hub is None:
        raise web.HTTPNotFound(text=f"perview: no source named {name!r}\n")
    return hub


def _count(request: web.Request, key: str, default: int | None) -> int | None:
    raw = request.query.get(key)
    if raw is None:
        return default
    number = whole_number(raw)
    if number is None:
        raise web.HTTPBadRequest(text=f"perview: {key} must be a whole number, not {raw!r}\n")
    return number


def _least_level(request: web.Request) -> int | None:
    """`?level=`: the least level of the entries a stream keeps (None: every line)."""
    raw = request.query.get("level")
    if raw is None:
        return None
    level = level_of_query(raw)
    if level is None:
        raise web.HTTPBadRequest(
            text=f"perview: level must be one of {LEVEL_CHOICES}, not {raw[:100]!r}\n"
        )
    return level


async def list_sources(request: web.Request) -> web.StreamResponse:
    hubs = request.app[HUBS]
    kinds = await histories(request.app, hubs)
    # A source added by a reload meanwhile has no kind yet: the next poll gives it.
    return web.json_response(
        [hub.describe() | {"history": kinds.get(n, "none")} for n, hub in list(hubs.items())]
    )


async def stop_source(request: web.Request) -> web.StreamResponse:
    who = require_operator(request)
    hub = _hub(request)
    hub.stop(by=who)
    await hub.wait_stopped()
    return web.json_response(hub.describe())


async def restart_source(request: web.Request) -> web.StreamResponse:
    who = require_operator(request)
    hub = _hub(request)
    await hub.restart(by=who)
    return web.json_response(hub.describe())


async def reload_config(request: web.Request) -> web.StreamResponse:
    """Apply the config file as it is now (as SIGHUP does): 200 with what changed, or 400 with
    every problem of the file (the running config is kept)."""
    require_operator(request)
    reload = request.app[RELOAD]
    if reload is None:
        raise web.HTTPBadRequest(text="perview: not serving a config file: nothing to reload\n")
    try:
        changes = await reload()
    except PerviewError as exc:
        raise web.HTTPBadRequest(text=f"perview: not reloaded:\n{exc}\n") from None
    return web.json_response(asdict(changes) | {"summary": str(changes)})


async def text_stream(request: web.Request) -> web.StreamResponse:
    return await _text(request, _hub(request))


async def _text(request: web.Request, hub: Hub) -> web.StreamResponse:
    # Live output by default; all that is held for a source that has ended for good (stdin).
    backlog = _count(request, "backlog", None if hub.finished else 0)
    pattern = request.query.get("grep")
    least = _least_level(request)
    # ?follow=0: what is held, then the end (a download); it does not start the source.
    follow = request.query.get("follow", "1") not in ("0", "false", "no")
    response = web.StreamResponse(headers=STREAM_HEADERS)
    response.content_type = "text/plain"
    response.charset = "utf-8"
    with (
        suppress(ConnectionResetError),  # the client left mid-stream: an end, not an error
        request.app[STREAMS].admit(request, response, [hub], heartbeat=False) as wire,
    ):
        # Compiled once admitted: a client over its limits costs no compiling.
        grep = _grep(pattern) if pattern is not None else None
        with hub.watch(backlog=backlog, start=follow) as viewer:
            wire.wake = viewer.wake
            await response.prepare(request)
            await relay_text(wire, viewer, grep, follow, least)
            await response.write_eof()
    return response


def _grep(pattern: str) -> Grep:
    try:
        return Grep(pattern)
    except GrepError as exc:
        raise web.HTTPBadRequest(text=f"perview: grep {exc}\n") from None


async def event_stream(request: web.Request) -> web.StreamResponse:
    hubs = request.app[HUBS]
    names = request.query.getall("source", []) or list(hubs)
    unknown = [name for name in names if name not in hubs]
    if unknown:
        raise web.HTTPNotFound(text=f"perview: no source named {unknown[0]!r}\n")
    epoch = request.app[SETTINGS].epoch
    resume = request.headers.get("Last-Event-ID") or request.query.get("since", "")
    if len(names) == 1 and (line := whole_number(resume)) is not None:
        since = {names[0]: line}
    else:
        try:
            since = parse_cursor(resume, epoch)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"perview: {exc}\n") from None
    backlog = _count(request, "backlog", None)  # default: all that is held
    least = _least_level(request)
    response = web.StreamResponse(headers=STREAM_HEADERS)
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    wake = asyncio.Event()
    metrics = request.app[METRICS].hub if request.query.get("metrics") == "1" else None
    with suppress(ConnectionResetError), ExitStack() as stack:  # see _text
        wire = stack.enter_context(
            request.app[STREAMS].admit(request, response, [hubs[n] for n in names])
        )
        wire.wake = wake
        viewers = []
        for name in dict.fromkeys(names):
            hub = hubs[name]
            viewers.append(
                stack.enter_context(hub.watch(backlog=backlog, since=since.get(name), wake=wake))
            )
        await response.prepare(request)
        hello = [b"retry: 1000\n\n"]
        kinds = await histories(request.app, {v.hub.name: v.hub for v in viewers})
        hello += [
            sse_event("source", v.hub.describe() | {"history": kinds[v.hub.name], "epoch": epoch})
            for v in viewers
        ]
        await wire.write(b"".join(hello))
        forward = asyncio.create_task(_forward_metrics(metrics, wake)) if metrics else None
        alerts = request.app.get(ALERTS)
        alerts = alerts if alerts is not None and alerts.enabled else None
        told = asyncio.create_task(_forward_alerts(alerts, wake)) if alerts else None
        try:
            await relay_events(wire, viewers, epoch, metrics, least, alerts)
        finally:
            for task in (forward, told):
                if task is not None:
                    task.cancel()
        await response.write_eof()
    return response


async def _forward_metrics(metrics: MetricsHub, wake: asyncio.Event) -> None:
    """Wake an event stream when samples are published (they share its one wake event)."""
    while True:
        await metrics.changed.wait()
        wake.set()


async def _forward_alerts(alerts: AlertEngine, wake: asyncio.Event) -> None:
    """Wake an event stream when an alert changes (as _forward_metrics)."""
    while True:
        await alerts.updated.wait()
        wake.set()


# -- metrics -----------------------------------------------------------------------------------


async def list_metrics(request: web.Request) -> web.StreamResponse:
    hub = request.app[METRICS].hub
    return web.json_response([s.describe() for s in hub.series.values()])


async def metric_history(request: web.Request) -> web.StreamResponse:
    """Points of one series: `?since=` (epoch seconds, default an hour ago) and `?step=`
    (seconds per point, default: about 600 points over the range)."""
    service = request.app[METRICS]
    key = request.match_info["series"]
    series = service.hub.series.get(key)
    now = time.time()
    try:
        since = float(request.query.get("since", now - 3600))
        step = float(request.query.get("step", max((now - since) / 600, 1.0)))
    except ValueError:
        raise web.HTTPBadRequest(text="perview: since and step must be numbers\n") from None
    if not (math.isfinite(since) and math.isfinite(step)):
        # nan and inf (float() reads "9" * 400 as inf) would reach SQLite as NULL buckets
        raise web.HTTPBadRequest(text="perview: since and step must be finite\n")
    if step <= 0:
        raise web.HTTPBadRequest(text="perview: step must be positive\n")
    if service.history is not None:
        await service.history.write(service.hub.take_pending())
        points = await service.history.query(key, since, step)
    elif series is not None:
        points = [(t, v) for t, v in series.recent if t >= since]
    else:
        points = []
    if series is None and not points:
        raise web.HTTPNotFound(text=f"perview: no metric series {key!r}\n")
    info = series.describe() if series else {"id": key}
    return web.json_response(info | {"since": since, "step": step, "points": points})


async def prometheus_metrics(request: web.Request) -> web.StreamResponse:
    hubs = request.app[HUBS]
    body = exposition(hubs, request.app[METRICS].hub, request.app.get(ALERTS))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
