"""Behind a reverse proxy, in-process: which forwarded headers name the client and its scheme, and
from whom they are believed. Behind a real nginx: test_proxy_live.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from perview.config import network
from perview.hub import Hub
from perview.sources.process import ProcessSource
from perview.web.app import WebSettings, create_app
from perview.web.auth import Access
from perview.web.proxy import proxy_middleware
from tests.conftest import TOKEN

Client = TestClient[Any, Any]


MakeClient = Callable[..., Awaitable[Client]]


async def echo(request: web.Request) -> web.StreamResponse:
    return web.json_response({"remote": request.remote, "scheme": request.scheme})


async def seen(
    aiohttp_client: MakeClient, proxies: tuple[str, ...], headers: list[tuple[str, str]]
) -> tuple[int, dict[str, str]]:
    """What a handler behind the proxy middleware sees of a request from 127.0.0.1 (the test
    client), with `proxies` trusted and these headers sent."""
    app = web.Application(middlewares=[proxy_middleware(tuple(map(network, proxies)))])
    app.router.add_get("/", echo)
    client = await aiohttp_client(app)
    response = await client.get("/", headers=CIMultiDict(headers))
    return response.status, (await response.json() if response.status == 200 else {})


@pytest.mark.parametrize(
    ("headers", "remote", "scheme"),
    [
        (
            [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https")],
            "198.51.100.7",
            "https",
        ),
        # What the client wrote itself is to the left of what the proxy added: ignored.
        ([("X-Forwarded-For", "203.0.113.9, 198.51.100.7")], "198.51.100.7", "http"),
        (
            [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7")],
            "198.51.100.7",
            "http",
        ),
        # An inner proxy on a trusted network is walked past.
        (
            [
                ("X-Forwarded-For", "203.0.113.9, 198.51.100.7, 10.1.2.3"),
                ("X-Forwarded-Proto", "https"),
            ],
            "198.51.100.7",
            "https",
        ),
        (
            [("X-Forwarded-For", "198.51.100.7, 10.1.2.3"), ("X-Forwarded-Proto", "https, http")],
            "198.51.100.7",
            "https",
        ),
        # A client on the proxy's own machine.
        ([("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-Proto", "https")], "127.0.0.1", "https"),
        ([("X-Forwarded-For", "198.51.100.7:50123")], "198.51.100.7", "http"),
        ([("X-Forwarded-For", "[2001:db8::7]:50123")], "2001:db8::7", "http"),
        ([("X-Forwarded-For", "2001:db8::7")], "2001:db8::7", "http"),
        ([("X-Forwarded-Proto", "HTTPS")], "127.0.0.1", "https"),
        ([("Forwarded", 'for="[2001:db8::7]:4711";proto=https')], "2001:db8::7", "https"),
        (
            [("Forwarded", "for=198.51.100.7;proto=https, for=10.1.2.3;proto=http")],
            "198.51.100.7",
            "https",
        ),
        # A proxy that sets X-Forwarded-* passes a client's own Forwarded header on: ignored.
        (
            [("Forwarded", "for=203.0.113.9;proto=https"), ("X-Forwarded-For", "198.51.100.7")],
            "198.51.100.7",
            "http",
        ),
    ],
)
async def test_a_trusted_proxy_names_the_client_and_its_scheme(
    aiohttp_client: MakeClient, headers: list[tuple[str, str]], remote: str, scheme: str
) -> None:
    status, view = await seen(aiohttp_client, ("127.0.0.1", "10.0.0.0/8"), headers)
    assert (status, view) == (200, {"remote": remote, "scheme": scheme})


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-For", "unknown")],
        [("X-Forwarded-For", "")],
        [("X-Forwarded-For", "198.51.100.7,,")],
        [("X-Forwarded-For", "not an address, 10.1.2.3")],
        [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "javascript")],
        [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https, http")],
        [("Forwarded", "for=_hidden;proto=https")],
        [("Forwarded", "proto=https")],
        [("Forwarded", 'for="\\";;;,,=')],
        [("X-Forwarded-For", "[::1, 1.2.3.4:5:6")],
    ],
)
async def test_malformed_forwarded_headers_leave_the_connection_as_it_is(
    aiohttp_client: MakeClient, headers: list[tuple[str, str]]
) -> None:
    status, view = await seen(aiohttp_client, ("127.0.0.1", "10.0.0.0/8"), headers)
    assert (status, view) == (200, {"remote": "127.0.0.1", "scheme": "http"})


@pytest.mark.parametrize("proxies", [(), ("10.0.0.0/8", "::1")])
async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    aiohttp_client: MakeClient, proxies: tuple[str, ...]
) -> None:
    headers = [
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=198.51.100.8;proto=https"),
    ]
    status, view = await seen(aiohttp_client, proxies, headers)
    assert (status, view) == (200, {"remote": "127.0.0.1", "scheme": "http"})


@pytest.mark.parametrize(("proto", "secure"), [("https", True), ("http", False)])
async def test_hsts_follows_the_scheme_a_trusted_proxy_reports_and_no_cookie_is_set(
    aiohttp_client: MakeClient, proto: str, secure: bool
) -> None:
    hubs = {"run": Hub("run", ProcessSource(["echo", "hello"]))}
    access = Access(token=TOKEN, allowed_hosts=frozenset())
    settings = WebSettings(access, trusted_proxies=(network("127.0.0.1"),))
    client = await aiohttp_client(create_app(hubs, settings))
    forwarded = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": proto}
    login = await client.get(
        f"/?token={TOKEN}",
        headers={"Accept": "text/html", **forwarded},
        allow_redirects=False,
    )
    assert login.status == 303
    assert "Set-Cookie" not in login.headers  # the session is the page's, never a cookie
    # A response the app returns (aiohttp prepares it), a stream (the handler does), a refusal.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path, credential in (
        ("/healthz", {}),
        ("/api/sources/run/text?follow=0", auth),
        ("/api/sources", {}),
    ):
        response = await client.get(path, headers=forwarded | credential)
        assert ("Strict-Transport-Security" in response.headers) is secure, path
