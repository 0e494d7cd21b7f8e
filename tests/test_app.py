"""The application in-process, for responses that end: access rules, the API, the page."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from perview.catalog import Catalog
from perview.config import SourceConfig, parse
from perview.hub import Hub
from perview.sources import describe
from perview.sources.merge import MergedSource
from perview.sources.process import GuardPool, ProcessSource
from perview.web.app import STREAMS, WebSettings, create_app
from perview.web.auth import Access, host_allowed
from perview.web.limits import StreamLimits

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    hubs = {
        "run": Hub("run", ProcessSource(["echo", "hello"]), meta={"command": ["echo", "hello"]})
    }
    access = Access(token=TOKEN, allowed_hosts=frozenset({"perview.example"}))
    app = create_app(hubs, WebSettings(access, default_stream="run"))
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:9999", True),
        ("[::1]:9999", True),
        ("localhost:9999", True),
        ("app.localhost", True),
        ("10.1.2.3", True),
        ("perview.example:9999", True),
        ("PERVIEW.EXAMPLE.", True),
        ("evil.example:9999", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_host_check_allows_only_names_safe_from_rebinding(host: str, allowed: bool) -> None:
    assert host_allowed(host, frozenset({"perview.example"})) is allowed


async def test_without_token_api_is_refused(client: Client) -> None:
    response = await client.get("/api/sources")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" in await response.text()


async def test_wrong_token_is_refused(client: Client) -> None:
    response = await client.get("/api/sources", headers={"Authorization": "Bearer nope"})
    assert response.status == 401


async def test_forged_cookie_is_refused(client: Client) -> None:
    name = f"perview_{client.port}"
    response = await client.get("/api/sources", cookies={name: "forged"})
    assert response.status == 401


async def test_bearer_token_is_accepted(client: Client) -> None:
    response = await client.get("/api/sources", headers=AUTH)
    assert response.status == 200
    [source] = await response.json()
    assert source["name"] == "run"
    assert source["state"] == "idle"
    assert source["command"] == ["echo", "hello"]


async def session_of(client: Client) -> str:
    """A session made from the token, as the page makes one from the URL Perview prints."""
    response = await client.post("/api/session", headers=AUTH)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    session: str = (await response.json())["session"]
    return session


async def test_the_token_is_traded_for_a_session_sent_as_a_bearer(client: Client) -> None:
    session = await session_of(client)
    assert TOKEN not in session
    bearer = {"Authorization": f"Bearer {session}"}
    assert (await client.get("/api/sources", headers=bearer)).status == 200
    info = await (await client.get("/api/session", headers=bearer)).json()
    assert info == {"user": None, "role": "operator", "logout": True}
    # A session cannot be traded for another (a stolen one would never end).
    assert (await client.post("/api/session", headers=bearer)).status == 400


async def test_a_session_in_a_cookie_is_no_credential(client: Client) -> None:
    # A browser sends a cookie to every port of the host, so any other service there has it.
    session = await session_of(client)
    for name in (f"perview_{client.port}", "perview_default"):
        response = await client.get("/api/sources", cookies={name: session})
        assert response.status == 401
        stop = await client.post("/api/sources/run/stop", cookies={name: session})
        assert stop.status == 401


async def test_a_query_token_is_no_credential_for_the_api(client: Client) -> None:
    response = await client.get(f"/api/sources?token={TOKEN}")
    assert response.status == 401
    assert "Set-Cookie" not in response.headers


async def test_a_query_token_moves_to_the_fragment_of_the_same_address(client: Client) -> None:
    response = await client.get(
        f"/?token={TOKEN}&source=run", headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/?source=run#token={TOKEN}"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    ("site", "arrival"),
    [
        ("none", "direct"),
        ("same-origin", "direct"),
        ("same-site", "linked"),
        ("cross-site", "linked"),
        (None, "linked"),
    ],
)
async def test_the_page_needs_no_credential_and_says_how_it_was_reached(
    client: Client, site: str | None, arrival: str
) -> None:
    headers = {"Accept": "text/html"} | ({"Sec-Fetch-Site": site} if site else {})
    response = await client.get("/?source=run", headers=headers)
    assert response.status == 200
    page = await response.text()
    assert f'data-arrival="{arrival}"' in page and 'data-auth="token"' in page
    assert response.headers["Vary"] == "Sec-Fetch-Site"


async def test_in_run_mode_the_stream_at_the_root_needs_a_credential(client: Client) -> None:
    response = await client.get("/", headers={"Accept": "*/*"})
    assert response.status == 401


async def test_foreign_host_is_refused_even_with_token(client: Client) -> None:
    response = await client.get("/api/sources", headers={**AUTH, "Host": "evil.example"})
    assert response.status == 403


async def test_cross_origin_post_is_refused(client: Client) -> None:
    response = await client.post(
        "/api/sources/run/stop", headers={**AUTH, "Origin": "http://evil.example"}
    )
    assert response.status == 403


async def test_cross_site_stream_is_refused(client: Client) -> None:
    response = await client.get(
        "/api/sources/run/text", headers={**AUTH, "Sec-Fetch-Site": "cross-site"}
    )
    assert response.status == 403


async def test_a_post_from_another_port_of_the_same_site_is_refused(client: Client) -> None:
    # Another server on localhost (another port) is "same-site", not same-origin.
    headers = {**AUTH, "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}
    response = await client.post("/api/sources/run/stop", headers=headers)
    assert response.status == 403


async def test_a_form_posted_under_no_referrer_is_same_origin(client: Client) -> None:
    # Chromium sends `Origin: null` for a form posted from a no-referrer page, such as the
    # logout button; the browser's own Sec-Fetch-Site says where it came from.
    headers = {**AUTH, "Origin": "null", "Sec-Fetch-Site": "same-origin"}
    response = await client.post("/api/sources/run/stop", headers=headers)
    assert response.status == 200


async def test_same_origin_post_is_accepted(client: Client) -> None:
    origin = f"http://{client.host}:{client.port}"
    response = await client.post("/api/sources/run/stop", headers={**AUTH, "Origin": origin})
    assert response.status == 200
    assert (await response.json())["name"] == "run"


async def test_healthz_needs_no_token(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["ok"] is True


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
