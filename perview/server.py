"""Runs the web server: owns the signals, reloads, and the guarantee that every child is reaped."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
import signal
import socket
import sqlite3
import ssl
import sys
import webbrowser
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from perview import __version__
from perview import loop as event_loop
from perview.accounts import SessionKeys
from perview.alerts.engine import AlertEngine
from perview.catalog import Catalog, Changes
from perview.config import Config, UserConfig, data_dir, load
from perview.errors import ExitCode, PerviewError
from perview.history.service import History
from perview.hub import Hub
from perview.metrics.service import MetricsService
from perview.private import private_dir
from perview.sources.process import GRACE, GuardPool
from perview.tokenfile import kept_token
from perview.web.access_log import AccessLog
from perview.web.app import STREAMS, WebSettings, create_app
from perview.web.auth import Access, secure_parse_errors, still_let_in
from perview.web.limits import StreamLimits

log = logging.getLogger(__name__)

# Stopping every source takes at most the guard's grace; a stream still open after that is cut.
SHUTDOWN_TIMEOUT = 0.5
MAX_HEADER_BYTES = 8190  # a request line or one header; larger is answered with 400
MAX_HEADERS = 100


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    config: Config,
    *,
    announce: Callable[[str], None] = print,
    open_browser: bool = False,
    reread: Callable[[str], Config] = load,
) -> ExitCode:
    """Serve `config` until a signal (or, with `once`, the first viewer leaving); then stop
    every source, wait for each to be reaped, and return the exit code. A reload reads the
    config file with `reread` (the command line's flags applied over it, as at start)."""
    server = config.server
    if not server.auth and not is_loopback(server.host):
        raise PerviewError(
            f"--no-auth is only allowed on a loopback address, not {server.host}", ExitCode.USAGE
        )
    raise_file_limit()
    return event_loop.run(_serve(config, announce, open_browser, reread))


def raise_file_limit() -> None:
    """Every viewer is a socket: lift the soft limit on open files (often 1,024) to the hard
    one, so a thousand viewers do not run into EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _serve(
    config: Config,
    announce: Callable[[str], None],
    open_browser: bool,
    reread: Callable[[str], Config],
) -> ExitCode:
    server = config.server
    directory = data_dir(server)
    try:
        private_dir(directory)
    except OSError as exc:
        log.warning("cannot make the data directory %s: %s", directory, exc.strerror)
    token = (server.token or kept_token(directory)) if server.auth else None
    guards = GuardPool()
    catalog = Catalog(config, guards)
    hubs = catalog.hubs
    metrics = MetricsService(config, guards, hubs)
    history = await _open_history(directory, config)
    alerts = AlertEngine(config, hubs, metrics.hub, guards, directory)
    done = asyncio.Event()
    if config.once:
        _exit_when_first_viewer_leaves(hubs.values(), done)
    users = dict(config.users)
    reloader = Reloader(catalog, history, users, reread)

    # Signals first: a SIGTERM that arrives while starting must stop us cleanly too.
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("stopping (signal %d); again to force", signum)
            done.set()
        else:
            # The guards see our end of their lifelines close and take every command down.
            os._exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, reloader.request)

    allowed = set(server.allowed_hosts)
    if not is_loopback(server.host):
        allowed |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    access = Access(
        token=token,
        allowed_hosts=frozenset(h.lower() for h in allowed),
        root_path=server.root_path,
        users=users,
        sessions=SessionKeys(directory, server.session_lifetime),
    )
    limits = StreamLimits.of(server)
    settings = WebSettings(
        access,
        server.root_path,
        config.default_stream,
        limits=limits,
        trusted_proxies=server.trusted_proxies,
    )
    tls = tls_context(server.certfile, server.keyfile)
    settings = replace(settings, hsts=tls is not None)
    app = create_app(
        hubs, settings, metrics, reload=reloader.reload, history=history, alerts=alerts
    )
    streams = app[STREAMS]

    def end_revoked_streams() -> None:
        ended = streams.end_unless(lambda request: still_let_in(request, access))
        if ended:
            log.info("ended %d open stream(s) of sessions the reload ended", ended)

    reloader.on_users_changed = end_revoked_streams
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        # aiohttp closes a connection that has not sent a whole request within this time,
        # which also ends one that sends its headers a byte at a time.
        keepalive_timeout=server.idle_timeout,
        max_line_size=MAX_HEADER_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        max_headers=MAX_HEADERS,
        access_log_class=AccessLog,  # what -v logs, without the token
    )
    await runner.setup()
    assert runner.server is not None  # set up just above
    secure_parse_errors(runner.server, settings.hsts)
    try:
        site = web.TCPSite(
            runner, server.host, server.port, shutdown_timeout=SHUTDOWN_TIMEOUT, ssl_context=tls
        )
        try:
            await site.start()
        except OSError as exc:
            raise PerviewError(
                f"cannot listen on {server.host}:{server.port}: {exc.strerror} (try --port)"
            ) from exc
        guards.warm()
        await metrics.start()
        await alerts.start()  # before the kept sources start: it reads them from their first line
        catalog.start_kept()
        if history is not None:
            history.sync(hubs, config.sources, config)
        port = _bound_port(runner) or server.port
        url = _announce(announce, config, server.host, port, token, "https" if tls else "http")
        if open_browser:
            await asyncio.to_thread(webbrowser.open, url)
        await done.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await reloader.close()
        await alerts.close()
        await _stop_all(hubs.values())
        if history is not None:
            await history.close()  # after the sources: their last lines and states are recorded
        await metrics.close()
        await guards.close()
        await runner.cleanup()
    return ExitCode.OK


class Reloader:
    """Reads the config file again and applies it (SIGHUP, or an operator from the page); an
    invalid config is refused with its errors, and the running one kept. One at a time.

    Sources and users change at once; server settings, metrics and alerts at the next start,
    and a reload that changed them says so."""

    def __init__(
        self,
        catalog: Catalog,
        history: History | None = None,
        users: dict[str, UserConfig] | None = None,
        reread: Callable[[str], Config] = load,
    ) -> None:
        self.catalog = catalog
        self.history = history
        self.reread = reread
        # The mapping the server's Access reads, changed in place: a removed user's sessions
        # fail their next request, and a new password ends the sessions bound to the old one.
        self.users = users
        self.on_users_changed: Callable[[], None] | None = None  # set once the app exists
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[object]] = set()

    def request(self) -> None:
        """SIGHUP: reload in the background; the outcome goes to the log."""
        task: asyncio.Task[object] = asyncio.create_task(self._logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> Changes:
        """Apply the config file as it is now; raises PerviewError (ConfigError: every problem
        with file and line) and changes nothing if it cannot."""
        path = self.catalog.config.path
        if path is None:
            raise PerviewError(
                "nothing to reload: serving the command line or the embedded default, "
                "not a config file"
            )
        async with self._lock:
            config = await asyncio.to_thread(self.reread, path)
            waiting = _waiting(self.catalog.config, config)
            changes = await self.catalog.apply(config)
            if self.history is not None:
                self.history.sync(self.catalog.hubs, config.sources, config)
            changes = replace(changes, users=self._apply_users(config), waiting=waiting)
            if changes.users and self.on_users_changed is not None:
                self.on_users_changed()
        log.info("reloaded %s: %s", path, changes)
        return changes

    def _apply_users(self, config: Config) -> tuple[str, ...]:
        if self.users is None:
            return ()
        changed = sorted(
            name
            for name in self.users.keys() | config.users.keys()
            if self.users.get(name) != config.users.get(name)
        )
        self.users.clear()
        self.users.update(config.users)
        return tuple(changed)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _logged(self) -> object:
        try:
            return await self.reload()
        except PerviewError as exc:
            log.error("not reloaded, still serving the config as it was:\n%s", exc)
            return None


def _waiting(old: Config, new: Config) -> tuple[str, ...]:
    """The tables a reload changed that only the next start applies."""
    tables = (
        ("server", old.server, new.server),
        ("metrics", old.metrics, new.metrics),
        ("alerts", old.alerts, new.alerts),
        ("notify", old.notify, new.notify),
    )
    return tuple(name for name, before, after in tables if before != after)


async def _open_history(directory: Path, config: Config) -> History | None:
    """The history store, recovered from any crash; None (and a warning) if it cannot be opened:
    live views do not depend on it."""
    try:
        return await History.open(directory, config)
    except (OSError, sqlite3.Error) as exc:
        log.warning("history: cannot open the store in %s: %s", directory, exc)
        return None


def _exit_when_first_viewer_leaves(hubs: Iterable[Hub], done: asyncio.Event) -> None:
    watched = False

    def changed(hub: Hub) -> None:
        nonlocal watched
        if hub.viewers:
            watched = True
        elif watched:
            done.set()

    for hub in hubs:
        hub.on_viewers_changed(changed)


async def _stop_all(hubs: Iterable[Hub]) -> None:
    closing = [hub.close() for hub in hubs]
    try:
        await asyncio.wait_for(asyncio.gather(*closing), GRACE + 1.0)
    except TimeoutError:
        log.error("some sources did not stop in time")


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """A server TLS context (TLS 1.2 and newer), or None without a certificate."""
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        raise PerviewError(
            "TLS needs both a certificate (--certfile) and a key (--keyfile)", ExitCode.USAGE
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise PerviewError(f"cannot load the TLS certificate or key: {exc}") from exc
    return context


def _announce(
    announce: Callable[[str], None],
    config: Config,
    host: str,
    port: int,
    token: str | None,
    scheme: str = "http",
) -> str:
    """Print what is served and where; return the URL to open."""
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    elif ":" in host:
        shown = f"[{host}]"
    base = f"{scheme}://{shown}:{port}{config.server.root_path}/"
    names = ", ".join(s.name for s in config.sources) or "metrics only"
    # In the fragment, which no server, proxy log or Referer sees; the page trades it for a session.
    url = base + (f"#token={quote(token, safe='')}" if token else "")
    announce(f"Perview {__version__}: serving {names}")
    announce(f"  open  {url}")
    # `GET /` streams the default source to curl; otherwise show the first source's stream.
    stream = None if not config.sources else f"api/sources/{config.sources[0].name}/text"
    if config.default_stream:
        stream = ""
    if stream is not None:
        auth = f"-H 'Authorization: Bearer {token}' " if token else ""
        announce(f"  curl  curl -N {auth}{base}{stream}")
    sys.stdout.flush()
    return url
