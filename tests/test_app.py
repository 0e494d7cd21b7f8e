"""The application (perview/web/app.py) in-process: the API, the page, the stream limits, and
any request at all (hypothesis). Who may ask is in test_auth.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import operator
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.test_utils import TestServer
from hypothesis import example, given, settings
from hypothesis import strategies as st

from perview.catalog import Catalog
from perview.config import Config, ServerConfig, SourceConfig, parse
from perview.hub import Hub
from perview.metrics.history import History
from perview.metrics.service import MetricsService
from perview.sources import describe
from perview.sources.merge import MergedSource
from perview.sources.process import GuardPool, ProcessSource
from perview.web.app import HUBS, METRICS, STREAMS, WebSettings, create_app
from perview.web.auth import Access
from perview.web.limits import StreamLimits
from tests.conftest import eventually
from tests.webapp import AUTH, TOKEN, Client, MakeClient, echo_app


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    return await echo_app(aiohttp_client)


async def test_unknown_source_is_404(client: Client) -> None:
    response = await client.get("/api/sources/nope/text", headers=AUTH)
    assert response.status == 404
    assert "nope" in await response.text()


async def test_bad_backlog_is_400(client: Client) -> None:
    response = await client.get("/api/sources/run/text?backlog=-1", headers=AUTH)
    assert response.status == 400
    assert "backlog" in await response.text()


@pytest.mark.parametrize("cursor", ["garbage", "run:abc", "run:1,:2", "e/run", "run:²"])
async def test_a_malformed_resume_position_is_400_not_a_full_replay(
    client: Client, cursor: str
) -> None:
    for header, query in (({"Last-Event-ID": cursor}, {}), ({}, {"since": cursor})):
        response = await client.get("/api/events", headers=AUTH | header, params=query)
        assert response.status == 400
        assert "position" in await response.text()


async def test_bad_grep_is_400(client: Client) -> None:
    response = await client.get("/api/sources/run/text?grep=(", headers=AUTH)
    assert response.status == 400
    assert "grep is not a valid RE2 regular expression: missing )" in await response.text()


async def test_grep_refuses_what_only_backtracking_engines_do(client: Client) -> None:
    response = await client.get("/api/sources/run/text?grep=(a)\\1", headers=AUTH)
    assert response.status == 400
    assert "invalid escape sequence" in await response.text()


@pytest.mark.parametrize(
    ("pattern", "answer"),
    [
        ("\\w{1000}" * 4, "grep is too large: 12,004 RE2 instructions (limit: 10,000)"),
        ("\\pL{1000}", "grep is too large (limit: 10,000 RE2 instructions)"),  # not even built
    ],
)
async def test_a_huge_grep_is_refused_naming_the_limit(
    client: Client, pattern: str, answer: str
) -> None:
    response = await client.get(f"/api/sources/run/text?grep={quote(pattern)}", headers=AUTH)
    assert response.status == 400
    assert answer in await response.text()


async def test_a_grep_of_the_largest_allowed_size_streams(client: Client) -> None:
    response = await client.get(
        f"/api/sources/run/text?grep={quote('.{1000}|hello')}", headers=AUTH
    )
    assert response.status == 200
    assert await response.text() == "hello\n"


async def test_browser_gets_the_page_with_hashed_assets_and_a_strict_policy(client: Client) -> None:
    response = await client.get("/", headers={**AUTH, "Accept": "text/html"})
    assert response.status == 200
    page = await response.text()
    assert "static/app.js?v=" in page
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_static_files_are_immutable_only_at_their_hash(client: Client) -> None:
    page = await (await client.get("/", headers={**AUTH, "Accept": "text/html"})).text()
    url = page.split('src="', 1)[1].split('"', 1)[0]
    hashed = await client.get("/" + url, headers=AUTH)
    assert "immutable" in hashed.headers["Cache-Control"]
    assert hashed.content_type == "text/javascript"
    plain = await client.get("/static/app.js", headers=AUTH)
    assert plain.headers["Cache-Control"] == "no-cache"


async def test_curl_gets_the_command_output_as_plain_text(client: Client) -> None:
    response = await client.get("/", headers={**AUTH, "Accept": "*/*"})
    assert response.status == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # streams get them too
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.content_type == "text/plain"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert await response.text() == "hello\n"


async def test_root_path_prefixes_every_route(aiohttp_client: MakeClient) -> None:
    hubs = {"run": Hub("run", ProcessSource(["true"]))}
    access = Access(token=None, allowed_hosts=frozenset(), root_path="/pv")
    client = await aiohttp_client(create_app(hubs, WebSettings(access, root_path="/pv")))
    assert (await client.get("/pv/api/sources")).status == 200
    assert (await client.get("/api/sources")).status == 404
    redirect = await client.get("/pv", allow_redirects=False)
    assert redirect.headers["Location"] == "/pv/"


async def test_stream_limits_answer_clearly_and_free_up(aiohttp_client: MakeClient) -> None:
    hubs = {"slow": Hub("slow", ProcessSource(["sleep", "30"]))}
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    limits = StreamLimits(per_client=1, total=10, per_source=10)
    client = await aiohttp_client(create_app(hubs, WebSettings(access, limits=limits)))
    first = await client.get("/api/sources/slow/text", headers=AUTH)
    assert first.status == 200
    refused = await client.get("/api/events?source=slow", headers=AUTH)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "5"
    assert "too many streams from 127.0.0.1 (limit 1)" in await refused.text()
    first.close()
    for _ in range(100):  # the server notices the first stream is gone
        again = await client.get("/api/sources/slow/text?follow=0", headers=AUTH)
        if again.status == 200:
            break
        await asyncio.sleep(0.01)
    assert again.status == 200
    await hubs["slow"].close()


async def test_a_source_with_too_many_viewers_refuses_more(aiohttp_client: MakeClient) -> None:
    hubs = {"slow": Hub("slow", ProcessSource(["sleep", "30"]))}
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    limits = StreamLimits(per_client=10, total=10, per_source=1)
    client = await aiohttp_client(create_app(hubs, WebSettings(access, limits=limits)))
    first = await client.get("/api/sources/slow/text", headers=AUTH)
    refused = await client.get("/api/sources/slow/text", headers=AUTH)
    assert refused.status == 503
    assert "source slow has too many viewers (limit 1)" in await refused.text()
    first.close()
    await hubs["slow"].close()


async def parts_said(client: Client, name: str, count: int) -> tuple[dict[str, Any], set[str]]:
    """What the event stream of `name` says: its `source` event, and `part: line` for each of
    `count` lines (and notices, as `part: text`)."""
    response = await client.get(f"/api/events?source={name}", headers=AUTH)
    source: dict[str, Any] = {}
    said: set[str] = set()
    event, header = "", None
    async with asyncio.timeout(10):
        while len(said) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event, header = line[7:], None
            elif line.startswith("data: ") and event == "source":
                source = json.loads(line[6:])
            elif line.startswith("data: ") and event == "lines":
                if header is None:
                    header = json.loads(line[6:])
                    assert "host" not in header  # one name for it: `part`
                else:
                    said.add(f"{header.get('part')}: {line[6:]}")
    response.close()
    return source, said


async def test_a_glob_s_lines_are_tagged_with_their_file_as_part_in_events_and_text(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    (tmp_path / "a.log").write_text("from a\n")
    (tmp_path / "b.log").write_text("from b\n")
    guards = GuardPool()
    catalog = Catalog(parse(f'[sources.logs]\nfile = "{tmp_path}/*.log"\n'), guards)
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    client = await aiohttp_client(create_app(catalog.hubs, WebSettings(access)))
    source, said = await parts_said(client, "logs", 2)
    assert source["parts"] == "files"
    assert said == {"a.log: from a", "b.log: from b"}
    listed = await (await client.get("/api/sources", headers=AUTH)).json()
    assert listed[0]["parts"] == "files"
    text = await client.get("/api/sources/logs/text?backlog=10&follow=0", headers=AUTH)
    assert sorted((await text.text()).splitlines()) == ["a.log: from a", "b.log: from b"]
    await catalog.close()
    await guards.close()


async def test_a_merged_source_s_lines_are_tagged_with_their_host_as_part(
    aiohttp_client: MakeClient,
) -> None:
    spec = SourceConfig("m", command=("echo", "hi"), hosts=("web1", "web2"))
    parts = {name: ProcessSource(["echo", f"hi from {name}"]) for name in spec.hosts}
    hubs = {"m": Hub("m", MergedSource(parts), meta=describe(spec))}
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    client = await aiohttp_client(create_app(hubs, WebSettings(access)))
    source, said = await parts_said(client, "m", 2)
    assert source["parts"] == "hosts" and source["kind"] == "merged"
    assert said == {"web1: hi from web1", "web2: hi from web2"}
    text = await client.get("/api/sources/m/text?backlog=10&follow=0", headers=AUTH)
    assert sorted((await text.text()).splitlines()) == ["web1: hi from web1", "web2: hi from web2"]
    await hubs["m"].close()


def test_a_source_of_one_part_says_no_parts() -> None:
    assert "parts" not in describe(SourceConfig("a", file="/var/log/syslog"))
    assert "parts" not in describe(SourceConfig("a", command=("true",), hosts=("web1",)))


async def test_a_quiet_event_stream_sends_its_heartbeat(aiohttp_client: MakeClient) -> None:
    hubs = {"quiet": Hub("quiet", ProcessSource(["sleep", "30"]))}
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    limits = StreamLimits(heartbeat=0.3)
    client = await aiohttp_client(create_app(hubs, WebSettings(access, limits=limits)))
    response = await client.get("/api/events?source=quiet", headers=AUTH)
    received = b""
    async with asyncio.timeout(5):
        while received.count(b": keep-alive\n\n") < 2:  # and again, not just once
            received += await response.content.readany()
    response.close()
    await hubs["quiet"].close()


async def test_a_quiet_event_stream_gets_its_heartbeat_without_being_woken(
    aiohttp_client: MakeClient,
) -> None:
    # A task woken per heartbeat costs more than the heartbeat: with a thousand quiet viewers,
    # Streams.tend writes them all itself.
    hub = Hub("quiet", ProcessSource(["sleep", "30"]))
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    limits = StreamLimits(heartbeat=0.2)
    client = await aiohttp_client(create_app({"quiet": hub}, WebSettings(access, limits=limits)))
    response = await client.get("/api/events?source=quiet", headers=AUTH)
    received = b""
    async with asyncio.timeout(5):
        while b": keep-alive\n\n" not in received:  # the stream has settled
            received += await response.content.readany()
        [viewer] = hub.viewers
        woken = 0
        set_wake = viewer.wake.set

        def counting() -> None:
            nonlocal woken
            woken += 1
            set_wake()

        viewer.wake.set = counting  # type: ignore[method-assign]  # to count the wake-ups
        while received.count(b": keep-alive\n\n") < 3:
            received += await response.content.readany()
    assert woken == 0
    response.close()
    await hub.close()


async def test_a_stream_s_socket_probes_a_silent_peer(aiohttp_client: MakeClient) -> None:
    # A peer that vanished without a word is found by TCP keep-alive within about 90 s,
    # not the system's two hours: what a quiet text stream (no heartbeat) relies on.
    hubs = {"quiet": Hub("quiet", ProcessSource(["sleep", "30"]))}
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    app = create_app(hubs, WebSettings(access))
    client = await aiohttp_client(app)
    response = await client.get("/api/sources/quiet/text", headers=AUTH)
    [wire] = app[STREAMS].wires
    sock = wire.request.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
    interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
    count = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
    assert idle + interval * count <= 120
    response.close()
    await hubs["quiet"].close()


# -- any request at all -------------------------------------------------------------------------
#
# Every route answers any parameter, path segment and header without a server error, a crash or
# a hang (hypothesis generates the inputs; every example is bounded in size).
# One in-process server (aiohttp's TestServer) on an event loop of this module's own serves every
# example: a server per example would cost more than the examples, and hypothesis rightly refuses
# function-scoped fixtures in @given tests (one instance would silently serve every example).
# Requests are written by hand on a raw connection, so any bytes at all reach the server: the
# aiohttp client would quote the target and refuse odd header values before sending them.

FUZZ_TOKEN = "fuzz-token"

EPOCH = "e90c4a1b"  # fixed, so that strategies can write cursors of this server's run

PRINTF = ["printf", "%s\\n", "one", "two", "\u00e9 \u00fcn\u00ef", "\x1b[31mred\x1b[0m"]

REQUEST_TIMEOUT = 5.0  # far beyond any honest answer here: a request still open then hangs

WEB_EXAMPLES = 200  # per route test: a second or two each

# What the routes read, and anything else: numbers out of range and not numbers at all, digits
# that str.isdigit accepts and int() refuses, any unicode (NUL included), very long strings.
NUMBERS = st.one_of(
    st.integers(-(2**80), 2**80).map(str),
    st.floats().map(repr),  # nan, inf, -0.0, 1e+308
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),  # ², ٣, ½
    st.integers(4301, 5000).map(lambda n: "9" * n),  # past int()'s 4300-digit limit
)

LONG = st.builds(
    operator.mul, st.sampled_from(["a", "\u00e9", "%", "\x00", "9", "/"]), st.integers(100, 1500)
)

TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "0", "1", "false", "no", "%", "%ff", "%00", "..", "../..", "/", "\\"]),
    LONG,
)

VALUES = NUMBERS | TEXT

CURSORS = st.builds(
    lambda epoch, parts: epoch + ",".join(f"{name}:{value}" for name, value in parts),
    st.sampled_from(["", f"{EPOCH}/", "0badc0de/", "/"]),
    st.lists(st.tuples(st.sampled_from(["run", "once", ""]) | st.text(max_size=5), NUMBERS)),
)

PATTERNS = st.text("ab.*+?()[]{}|^$\\1,-dwsCpP:<>=!", max_size=20) | st.sampled_from(
    ["(a+)+$", "(a{1000}){1000}", "\\C", "(?P<n>a)(?P=n)", "[[:alpha:]]", "\\p{Greek}"]
)

# Percent-encoded garbage and raw bytes, sent as they are.
GARBAGE = st.text("%0123456789abcdefgzABCDEF+&=;/?#.", max_size=20).map(str.encode) | st.binary(
    max_size=20
)


@st.composite
def queries(draw: st.DrawFn, params: Mapping[str, st.SearchStrategy[str]]) -> bytes:
    """A query string giving each of a route's parameters none, one or two times, with unknown
    keys and raw garbage besides."""
    pairs = [
        (key, value)
        for key, values in params.items()
        for value in draw(st.lists(values, max_size=2))
    ]
    pairs += draw(st.lists(st.tuples(st.text(max_size=8), VALUES), max_size=2))
    items = [
        quote(key, safe="").encode() + b"=" + quote(value, safe="").encode() for key, value in pairs
    ]
    items += draw(st.lists(GARBAGE, max_size=1))
    return b"?" + b"&".join(items) if items else b""


# Header values; `{host}` and `{port}` stand for the server's own, which strategies cannot know.
HEADER_VALUES = st.one_of(
    TEXT.map(str.encode),
    st.binary(max_size=40),  # CR, LF, NUL, invalid UTF-8
    st.binary(max_size=20).map(b"Bearer ".__add__),
    st.binary(max_size=20).map(b"perview_{port}=".__add__),
    CURSORS.map(str.encode),
    st.sampled_from(
        [
            b"{host}",
            b"perview.example",
            b"http://{host}",
            b"Bearer " + FUZZ_TOKEN.encode(),
            b"bearer  " + FUZZ_TOKEN.encode() + b" ",
            b"Bearer",
            b"perview_{port}=" + FUZZ_TOKEN.encode(),
            b"perview_default=" + FUZZ_TOKEN.encode(),
            b"text/html",
            b"*/*",
            b"cross-site",
            b"[::1]:9999",
            b"evil.example",
        ]
    ),
)

ACCESS_HEADERS = ["Host", "Accept", "Authorization", "Cookie", "Origin", "Sec-Fetch-Site"]


class ErrorLog(logging.Handler):
    """Keeps what is logged as an error: a handler's exception once its response has started (or
    a task's that nobody awaited) shows up here and nowhere else."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # aiohttp logs a request its parser refused as an error too, and answers it with a 400
        # (the CLI filters these out of the log the same way).
        if not (record.exc_info and isinstance(record.exc_info[1], HttpProcessingError)):
            self.records.append(record)


class Live:
    """The server every web example talks to, and the loop it runs on between examples."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: TestServer,
        history: History,
        guards: GuardPool,
        errors: ErrorLog,
    ) -> None:
        self.loop = loop
        self.server = server
        self.app = server.app
        self.history = history
        self.guards = guards
        self.errors = errors

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return f"Live(port={self.server.port})"

    def check(
        self, method: bytes, target: bytes, headers: Mapping[str, bytes | None] | None = None
    ) -> int:
        """Send one request and return its status, asserting that it was answered in time and
        below 500, that nothing was logged as an error, that no stream outlived its client, and
        that the server still answers /healthz."""
        return self.loop.run_until_complete(self._check(method, target, headers or {}))

    async def _check(
        self, method: bytes, target: bytes, headers: Mapping[str, bytes | None]
    ) -> int:
        self.errors.records.clear()  # an earlier failure's
        status = await self.send(method, target, headers)
        assert status < 500, (method, target, headers)
        streams = self.app[STREAMS]
        await eventually(lambda: not streams.open, REQUEST_TIMEOUT)
        assert await self.send(b"GET", b"/healthz", {}) == 200
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]
        return status

    async def send(self, method: bytes, target: bytes, headers: Mapping[str, bytes | None]) -> int:
        """One request (with the token unless `headers` say otherwise; None leaves a header out)
        on a connection of its own, closed once the answer has ended, or once an event stream,
        which never ends, has sent its first bytes."""
        host = f"127.0.0.1:{self.server.port}".encode()
        given = {"Host": host, "Authorization": b"Bearer " + FUZZ_TOKEN.encode(), **headers}
        lines = [method + b" " + target + b" HTTP/1.1", b"Connection: close"]
        for name, value in given.items():
            if value is not None:
                value = value.replace(b"{host}", host).replace(b"{port}", host.split(b":")[1])
                lines.append(name.encode() + b": " + value)
        async with asyncio.timeout(REQUEST_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
            try:
                writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                if method == b"HEAD":
                    pass
                elif b"\r\ncontent-type: text/event-stream" in head.lower() and status == 200:
                    assert await reader.read(1), "the event stream ended before it started"
                else:
                    while await reader.read(65536):
                        pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
        return status


async def _serve(state: Path, errors: ErrorLog) -> Live:
    guards = GuardPool()
    hubs = {
        "run": Hub("run", ProcessSource(PRINTF, guards=guards)),
        "once": Hub("once", ProcessSource(PRINTF, guards=guards), restartable=False),
    }
    metrics = MetricsService(Config(ServerConfig(), ()), guards)
    now = time.time()
    for age in range(7200, 0, -60):  # two hours of samples, a minute apart
        metrics.hub.publish("local", {"five": 5.0, "disk.used:/": age / 72}, at=now - age)
    history = History(state / "metrics.sqlite", retention=7 * 86400.0)
    await history.open()
    access = Access(token=FUZZ_TOKEN, allowed_hosts=frozenset({"perview.example"}))
    settings = WebSettings(access, default_stream="run", epoch=EPOCH)
    server = TestServer(create_app(hubs, settings, metrics))  # handler_cancellation, as served
    await server.start_server()
    return Live(asyncio.get_running_loop(), server, history, guards, errors)


async def _close(live: Live) -> None:
    await live.server.close()
    for hub in live.app[HUBS].values():
        await hub.close()
    await live.guards.close()
    await live.history.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    errors = ErrorLog()
    loggers = [logging.getLogger(name) for name in ("aiohttp", "asyncio", "perview")]
    for logger in loggers:
        logger.addHandler(errors)
    loop = asyncio.new_event_loop()
    try:
        live = loop.run_until_complete(_serve(tmp_path_factory.mktemp("fuzz"), errors))
        try:
            yield live
        finally:
            loop.run_until_complete(_close(live))
    finally:
        loop.close()
        for logger in loggers:
            logger.removeHandler(errors)


@settings(max_examples=WEB_EXAMPLES, deadline=None)
@given(
    st.sampled_from([b"run", b"once"]),
    queries(
        {
            "backlog": NUMBERS,
            "grep": PATTERNS | TEXT,
            "follow": st.sampled_from(["0", "1", "false", "no"]) | TEXT,
            "since": CURSORS,
        }
    ),
)
# Were 500s: str.isdigit accepts "²" and int() refuses it, and more than 4300 digits.
@example(name=b"run", query=b"?backlog=%C2%B2")
@example(name=b"once", query=b"?follow=0&backlog=" + b"9" * 4301)
def test_text_stream_answers_any_query(live: Live, name: bytes, query: bytes) -> None:
    live.check(b"GET", b"/api/sources/" + name + b"/text" + query)


@settings(max_examples=WEB_EXAMPLES, deadline=None)
@given(
    queries(
        {
            "source": st.sampled_from(["run", "once"]) | TEXT,
            "sources": TEXT,
            "metrics": st.just("1") | TEXT,
            "backlog": NUMBERS,
            "since": CURSORS | NUMBERS,
        }
    ),
    st.none() | CURSORS.map(str.encode) | HEADER_VALUES,
)
# Were 500s, as for the text stream: in ?backlog=, in a cursor, and in a bare line id.
@example(query=b"?backlog=" + b"9" * 4301, last_event_id=None)
@example(query=b"", last_event_id=f"{EPOCH}/run:\u00b2".encode())
@example(query=b"?source=run", last_event_id="\u00b2".encode())
@example(query=b"?source=once&since=" + b"9" * 4301, last_event_id=None)
def test_event_stream_answers_any_sources_and_cursor(
    live: Live, query: bytes, last_event_id: bytes | None
) -> None:
    live.check(b"GET", b"/api/events" + query, {"Last-Event-ID": last_event_id})


@settings(max_examples=WEB_EXAMPLES, deadline=None)
@given(
    st.sampled_from([b"local/five", b"local/disk.used:/", b"local/none"]),
    queries(
        {
            "since": NUMBERS | st.floats(time.time() - 7200, time.time()).map(repr) | TEXT,
            "step": NUMBERS | st.floats(1e-300, 1e4).map(repr) | TEXT,
        }
    ),
    st.booleans(),
)
# Were 500s: float() reads these as inf and nan, which SQLite turned into NULL buckets.
@example(series=b"local/five", query=b"?step=" + b"9" * 400, with_history=True)
@example(series=b"local/five", query=b"?step=nan", with_history=True)
@example(series=b"local/five", query=b"?since=-inf", with_history=True)
def test_metric_history_answers_any_range(
    live: Live, series: bytes, query: bytes, with_history: bool
) -> None:
    live.app[METRICS].history = live.history if with_history else None
    live.check(b"GET", b"/api/metrics/" + series + query)


@settings(max_examples=WEB_EXAMPLES, deadline=None)
@given(
    st.sampled_from([b"/", b"/healthz", b"/api/sources", b"/api/metrics", b"/metrics"]),
    queries({"v": TEXT, "source": TEXT, "next": TEXT}),
    st.none() | HEADER_VALUES,
)
def test_page_and_listings_answer_any_query(
    live: Live, path: bytes, query: bytes, accept: bytes | None
) -> None:
    live.check(b"GET", path + query, {"Accept": accept})


@settings(max_examples=WEB_EXAMPLES, deadline=None)
@given(
    st.sampled_from(
        [
            (b"GET", b"/api/sources/{}/text?follow=0"),
            (b"GET", b"/api/sources/{}/text"),
            (b"POST", b"/api/sources/{}/stop"),
            (b"POST", b"/api/sources/{}/restart"),
            (b"GET", b"/api/metrics/{}"),
            (b"GET", b"/api/metrics/local/{}"),
            (b"GET", b"/static/{}"),
            (b"GET", b"/static/{}?v=0"),
        ]
    ),
    st.sampled_from([b"run", b"once", b"app.js", b"index.html", b"five"])
    | TEXT.map(lambda value: quote(value, safe="").encode())
    | GARBAGE,
)
def test_any_path_segment_is_answered(
    live: Live, route: tuple[bytes, bytes], segment: bytes
) -> None:
    method, template = route
    live.check(method, template.replace(b"{}", segment))


ROUTES = [
    b"/",
    b"/static/app.js",
    b"/healthz",
    b"/api/sources",
    b"/api/sources/run/text",
    b"/api/sources/once/text?backlog=2",
    b"/api/sources/run/text?follow=0&grep=o",
    b"/api/events",
    b"/api/events?source=run&metrics=1",
    b"/api/metrics",
    b"/api/metrics/local/five",
    b"/metrics",
    b"/api/sources/run/stop",
    b"/api/sources/run/restart",
    b"/login?next=/",
    b"/logout",
    b"/api/session",
]


@settings(max_examples=2 * WEB_EXAMPLES, deadline=None)
@given(
    st.sampled_from([b"GET", b"HEAD", b"POST"]),
    st.sampled_from(ROUTES),
    st.sampled_from([b"", b"token=" + FUZZ_TOKEN.encode(), b"token=nope", b"token=%FF"]),
    st.dictionaries(st.sampled_from(ACCESS_HEADERS), st.none() | HEADER_VALUES, max_size=4),
    st.none() | HEADER_VALUES,
)
def test_every_route_answers_any_access_headers(
    live: Live,
    method: bytes,
    route: bytes,
    token: bytes,
    headers: dict[str, bytes | None],
    last_event_id: bytes | None,
) -> None:
    target = route + (b"&" if b"?" in route else b"?") + token if token else route
    live.check(method, target, headers | {"Last-Event-ID": last_event_id})


def test_a_bearer_token_of_invalid_utf8_is_refused(live: Live) -> None:
    assert live.check(b"GET", b"/api/sources", {"Authorization": b"Bearer \xff"}) == 401


@settings(max_examples=WEB_EXAMPLES, deadline=None)
@given(
    st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS", b"G\xc3\xa9T"]),
    st.sampled_from([*ROUTES, b"", b"*", b"//", b"/api/sources/", b"/static/"]),
    GARBAGE,
)
def test_any_request_line_is_answered(live: Live, method: bytes, route: bytes, tail: bytes) -> None:
    live.check(method, route + tail)
