"""The hub's promises against a live server: how long one viewer may hold a command back."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LINES = 3_000_000  # 21 MB: far more than the socket buffers of a viewer that reads nothing hold


async def state(server: Server, name: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/sources", headers=AUTH) as response,
    ):
        found: list[dict[str, object]] = await response.json()
        return next(source for source in found if source["name"] == name)


def read_response(connection: socket.socket, within: float) -> bytes:
    """The body of the chunked response on `connection`, read to its last chunk."""
    connection.settimeout(within)
    raw = b""
    while not raw.endswith(b"\r\n0\r\n\r\n"):
        data = connection.recv(1 << 20)
        assert data, "the server closed the connection mid-response"
        raw += data
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if not size:
            return body
        body, rest = body + rest[:size], rest[size + 2 :]


async def test_a_viewer_that_stops_reading_holds_the_command_back_only_for_hold(
    serve: Serve, tmp_path: Path
) -> None:
    config = tmp_path / "perview.toml"
    config.write_text(
        f'[server]\nhold = "1s"\n\n[sources.count]\ncommand = ["seq", "1", "{LINES}"]\n'
        "backlog = 1000\n"
    )
    server = serve("serve", "--config", str(config))
    with socket.socket() as connection:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
        connection.connect(("127.0.0.1", server.port))
        connection.sendall(
            f"GET /api/sources/count/text HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )  # and read nothing for now
        started = time.monotonic()
        while (await state(server, "count"))["state"] != "exited":
            # Held for a second, then free to run to its end (about a second more here).
            assert time.monotonic() - started < 8, "the command is still held back"
            await asyncio.sleep(0.05)
        assert (await state(server, "count"))["status"] == 0
        body = read_response(connection, within=10)
    # What the viewer took before it stopped, an exact gap, then the rest: every line counted.
    found = re.search(rb"\[perview\] (\d+) lines skipped\n", body)
    assert found, "no gap in the stream"
    before, after = body[: found.start()].split(), body[found.end() :].split()
    skipped = int(found[1])
    assert before == [b"%d" % n for n in range(1, len(before) + 1)]
    assert after == [b"%d" % n for n in range(len(before) + skipped + 1, LINES + 1)]
