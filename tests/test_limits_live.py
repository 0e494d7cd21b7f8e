"""Limits on what a client may send or hold, against a live server: oversized requests, idle and
half-sent requests, a viewer that stops reading. Each is refused or cut off, and the server
carries on serving everyone else."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from perview.accounts import hash_password
from tests.conftest import TOKEN, Server

AUTH = {"Authorization": f"Bearer {TOKEN}"}
Serve = Callable[..., Server]
ALICE = hash_password("alice-pw", n=2**10)

CONFIG = f"""
[server]
idle_timeout = "1s"
write_timeout = "1s"

[users.alice]
password = "{ALICE}"

[sources.yes]
command = ["yes", "a line that is long enough to fill a socket buffer quickly"]

[sources.quiet]
command = ["sleep", "30"]
"""


@pytest.fixture
def server(serve: Serve, tmp_path: Path) -> Server:
    config = tmp_path / "perview.toml"
    config.write_text(CONFIG)
    started: Server = serve("serve", "--config", str(config))
    return started


def raw_connection(server: Server) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast when unread
    return connection


def closed_by_server(connection: socket.socket, within: float) -> bool:
    """Read (and drop) until the server closes the connection; False if it is still open."""
    connection.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not connection.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


async def sources(server: Server) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/sources", headers=AUTH) as response,
    ):
        assert response.status == 200
        answer: list[dict[str, Any]] = await response.json()
        return answer


async def healthy(server: Server) -> bool:
    return len(await sources(server)) == 2


async def streams_open(server: Server) -> int:
    return sum(source["viewers"] for source in await sources(server))


def test_a_connection_that_never_finishes_its_request_is_closed(server: Server) -> None:
    with raw_connection(server) as connection:
        connection.sendall(b"GET /api/sources HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end
        started = time.monotonic()
        assert closed_by_server(connection, within=10)
        assert time.monotonic() - started < 5  # idle_timeout is 1 s


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with raw_connection(server) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        )
        assert b"200 OK" in connection.recv(65536)
        started = time.monotonic()
        assert closed_by_server(connection, within=10)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz?" + b"x" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"y" * 10_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(200))
        + b"\r\n",
    ],
    ids=["long request line", "long header", "too many headers"],
)
async def test_oversized_requests_are_refused(server: Server, request_bytes: bytes) -> None:
    with raw_connection(server) as connection:
        connection.sendall(request_bytes)
        answer = connection.recv(65536)
    assert re.match(rb"HTTP/1\.[01] 4(00|31) ", answer), answer[:100]
    assert await healthy(server)
    assert "Traceback" not in "".join(server.output)  # the client's mistake is not logged


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1 junk\r\nHost: 127.0.0.1\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"y" * 10_000 + b"\r\n\r\n",
    ],
    ids=["malformed request line", "bad method", "long header"],
)
def test_answers_to_unparseable_requests_carry_the_security_headers(
    server: Server, request_bytes: bytes
) -> None:
    """aiohttp answers these itself, before any route or hook of ours (aiohttp#6463)."""
    with raw_connection(server) as connection:
        connection.sendall(request_bytes)
        answer = b""
        while b"\r\n\r\n" not in answer and (part := connection.recv(65536)):
            answer += part
    head = answer.split(b"\r\n\r\n")[0].decode("latin-1")
    assert re.match(r"HTTP/1\.[01] 4\d\d ", head), head
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in head.split("\r\n"))}
    assert headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"


async def test_an_oversized_login_form_is_refused(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        form = {"user": "alice", "password": "y" * 100_000}
        async with session.post(server.base + "/login", data=form) as response:
            assert response.status == 413
    assert await healthy(server)


def test_a_login_form_sent_too_slowly_is_refused(server: Server) -> None:
    with raw_connection(server) as connection:
        connection.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"user=alice&pass"  # ... and the rest never comes
        )
        connection.settimeout(20)
        answer = connection.recv(65536)
    assert re.match(rb"HTTP/1\.[01] 408 ", answer), answer[:100]


async def test_a_viewer_that_stops_reading_is_cut_off(server: Server) -> None:
    with raw_connection(server) as connection:
        connection.sendall(
            f"GET /api/sources/yes/text HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        assert b"200 OK" in connection.recv(4096)
        assert await streams_open(server) == 1
        # Read nothing more: the socket buffers fill, the server's write waits, and after
        # write_timeout (1 s) the server drops the connection, and with it the viewer.
        started = time.monotonic()
        for _ in range(100):
            if await streams_open(server) == 0:
                break
            await asyncio.sleep(0.1)
        assert await streams_open(server) == 0
        assert time.monotonic() - started < 8
    assert await healthy(server)
