"""The hub's promises against a live server: how long one viewer may hold a command back."""

from __future__ import annotations

import asyncio
import re
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN, Server, eventually
from tests.viewer import AUTH, api_sources, read_text, sse_events

Serve = Callable[..., Server]
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


async def test_viewer_arriving_while_the_command_stops_restarts_it(serve: Serve) -> None:
    # The command ignores SIGTERM, so stopping it takes the guard's whole grace period.
    server = serve("run", "--", "sh", "-c", "trap '' TERM; echo up; exec sleep 300")
    async with aiohttp.ClientSession() as session:
        first = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await first.content.readline() == b"up\n"
        first.close()
        await asyncio.sleep(0.05)
        second = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await asyncio.wait_for(second.content.readline(), 5) == b"up\n"
        second.close()
    [info] = api_sources(server)
    assert info["runs"] == 2


async def test_with_rerun_a_command_runs_again_for_the_next_viewer(serve: Serve) -> None:
    server = serve("run", "--rerun", "--", "echo", "again")
    assert await read_text(server) == b"again\n"
    assert await read_text(server) == b"again\n"
    [info] = api_sources(server)
    assert info["runs"] == 2


async def page_load(server: Server) -> list[dict[str, str]]:
    """What a page's event stream gets for source `run`, up to the end of its run."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events?source=run", headers=AUTH) as response,
    ):
        seen: list[dict[str, str]] = []
        async with asyncio.timeout(10):
            async for event in sse_events(response):
                seen.append(event)
                if event.get("event") == "state" and '"exited"' in event["data"]:
                    return seen
    raise AssertionError(f"the run did not end: {seen}")


async def test_a_command_that_ran_to_completion_is_not_run_again_by_a_new_viewer(
    serve: Serve, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    server = serve("run", "--", "sh", "-c", f"echo ran >> {shlex.quote(str(ran))}; echo done")
    for _ in range(2):  # the first page load runs it; a reload shows what it printed
        events = await page_load(server)
        assert [e["data"].split("\n")[1:] for e in events if e.get("event") == "lines"] == [
            ["done"]
        ]
    assert await read_text(server) == b"done\n"  # curl: the held output, then the end
    assert ran.read_text() == "ran\n"
    [info] = api_sources(server)
    assert (info["state"], info["status"], info["runs"]) == ("exited", 0, 1)
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.base + "/api/sources/run/restart", headers=AUTH) as response,
    ):
        assert response.status == 200
    await eventually(lambda: ran.read_text() == "ran\nran\n", 5)


async def test_many_viewers_each_get_every_line(serve: Serve) -> None:
    # The command waits so that every viewer is subscribed before the first line.
    server = serve("run", "--", "sh", "-c", "sleep 1; seq 1 20000")
    expected = b"".join(b"%d\n" % n for n in range(1, 20001))
    bodies = await asyncio.gather(*(read_text(server) for _ in range(20)))
    assert all(body == expected for body in bodies)
    [info] = api_sources(server)
    assert info["runs"] == 1


async def test_stalled_viewer_neither_blocks_nor_slows_another(serve: Serve) -> None:
    server = serve("run", "--backlog", "1000", "--", "sh", "-c", "sleep 0.5; seq 1 1000000")
    stalled = socket.create_connection(("127.0.0.1", server.port))
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            f"GET /api/sources/run/text HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )  # and never read a byte
        body = await asyncio.wait_for(read_text(server), 30)
    finally:
        stalled.close()
    assert body == b"".join(b"%d\n" % n for n in range(1, 1000001))
