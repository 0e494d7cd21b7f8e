"""Property tests: the framer and the config loader take anything without crashing or losing
bytes, and every route of the web application answers any parameter, path segment and header
without a server error, a crash or a hang (hypothesis generates the inputs; every example is
bounded in size)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import string
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.test_utils import TestServer
from hypothesis import example, given, settings
from hypothesis import strategies as st

from perview.config import (
    _HOST_KEYS,
    _METRIC_KEYS,
    _SERVER_KEYS,
    _SOURCE_KEYS,
    _USER_KEYS,
    Config,
    ConfigError,
    ServerConfig,
    parse,
)
from perview.framing import CUT_MARK, LineFramer
from perview.hub import Hub
from perview.metrics.history import History
from perview.metrics.service import MetricsService
from perview.sources.process import GuardPool, ProcessSource
from perview.web.app import HUBS, METRICS, STREAMS, WebSettings, create_app
from perview.web.auth import Access
from tests.conftest import eventually

MAX_LINE = 64  # small, so long lines and cuts happen often


def frame(pieces: list[bytes]) -> tuple[bytes, int]:
    framer = LineFramer(max_line=MAX_LINE)
    out, count = b"", 0
    for piece in pieces:
        data, n = framer.feed(piece)
        out, count = out + data, count + n
    data, n = framer.flush()
    return out + data, count + n


chunks = st.lists(st.binary(max_size=300), max_size=20)


@settings(max_examples=300, deadline=None)
@given(chunks)
def test_framer_output_is_whole_valid_lines_and_counted(pieces: list[bytes]) -> None:
    out, count = frame(pieces)
    assert out.count(b"\n") == count
    assert out == b"" or out.endswith(b"\n")
    text = out.decode()  # strict: always valid UTF-8
    for line in text.split("\n")[:-1]:
        # At most MAX_LINE input bytes a line; each invalid byte becomes U+FFFD (3 bytes).
        assert len(line.encode()) <= 3 * MAX_LINE + len(CUT_MARK)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=string.printable, max_size=300), max_size=20))
def test_framer_loses_nothing_from_valid_text(pieces: list[str]) -> None:
    raw = "".join(pieces).encode()
    out, _ = frame([p.encode() for p in pieces])
    rebuilt = out.replace(CUT_MARK + b"\n", b"")  # undo the cuts
    expected = raw if raw.endswith(b"\n") or not raw else raw + b"\n"
    assert rebuilt == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=1, max_value=300), max_size=30))
def test_framer_result_does_not_depend_on_how_reads_are_split(
    data: bytes, sizes: list[int]
) -> None:
    pieces, rest = [], data
    for size in sizes:
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    assert frame(pieces) == frame([data])


toml_values = st.recursive(
    st.none().map(lambda _: '""')
    | st.integers(-(2**40), 2**40).map(str)
    | st.booleans().map(lambda b: str(b).lower())
    | st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    max_leaves=8,
)
# Every key some table knows (the loader's own lists, so new keys are fuzzed too), and a bogus one.
keys = st.sampled_from(
    sorted(_SERVER_KEYS | _SOURCE_KEYS | _METRIC_KEYS | _HOST_KEYS | _USER_KEYS | {"bogus"})
)
tables = st.sampled_from(
    ["server", "sources.a", "sources.b", "hosts.h", "metrics.m", "users.u", "x"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(tables, st.lists(st.tuples(keys, toml_values), max_size=5)), max_size=5))
def test_config_loader_answers_every_toml_with_a_config_or_located_errors(
    sections: list[tuple[str, list[tuple[str, str]]]],
) -> None:
    seen: set[str] = set()
    lines = []
    for table, pairs in sections:
        if table in seen:
            continue
        seen.add(table)
        lines.append(f"[{table}]")
        used: set[str] = set()
        for key, value in pairs:
            if key not in used:
                used.add(key)
                lines.append(f"{key} = {value}")
    try:
        parse("\n".join(lines) + "\n", "f.toml")
    except ConfigError as error:
        for problem in str(error).splitlines():
            assert problem.startswith("f.toml:"), problem
            assert problem.split(":")[1].isdigit(), problem


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_config_loader_survives_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ConfigError):  # refusing is fine; crashing is not
        parse(text, "f.toml")


# -- the web application -----------------------------------------------------------------------
#
# One in-process server (aiohttp's TestServer) on an event loop of this module's own serves every
# example: a server per example would cost more than the examples, and hypothesis rightly refuses
# function-scoped fixtures in @given tests (one instance would silently serve every example).
# Requests are written by hand on a raw connection, so any bytes at all reach the server: the
# aiohttp client would quote the target and refuse odd header values before sending them.

TOKEN = "fuzz-token"
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
            b"Bearer " + TOKEN.encode(),
            b"bearer  " + TOKEN.encode() + b" ",
            b"Bearer",
            b"perview_{port}=" + TOKEN.encode(),
            b"perview_default=" + TOKEN.encode(),
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
        given = {"Host": host, "Authorization": b"Bearer " + TOKEN.encode(), **headers}
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
    access = Access(token=TOKEN, allowed_hosts=frozenset({"perview.example"}))
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
    st.sampled_from([b"", b"token=" + TOKEN.encode(), b"token=nope", b"token=%FF"]),
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
