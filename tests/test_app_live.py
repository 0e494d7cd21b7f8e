"""The application against a live server: the plain-text stream at the root, and what the API
says of a source's state (exited, waiting, stopped for lack of viewers)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN, Server, eventually
from tests.viewer import AUTH, api_sources, read_text, sse_events

Serve = Callable[..., Server]


def test_curl_at_root_gets_the_live_text_stream(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo first; sleep 0.2; echo second")
    result = subprocess.run(
        ["curl", "-sS", "-N", "-H", f"Authorization: Bearer {TOKEN}", server.base + "/"],
        capture_output=True,
        timeout=10,
        check=True,
    )
    assert result.stdout == b"first\nsecond\n"


async def test_exit_status_is_visible_in_the_api(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo bye; exit 3")
    assert await read_text(server) == b"bye\n"
    [info] = api_sources(server)
    assert (info["state"], info["status"]) == ("exited", 3)
    assert "exited with status 3" in "".join(server.output)


async def test_a_file_not_there_yet_is_waiting_in_the_api_and_the_events(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve("tail", str(tmp_path / "later.log"))
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events", headers=AUTH) as response,
    ):
        async for event in sse_events(response):
            if event.get("event") == "state" and json.loads(event["data"])["state"] == "waiting":
                break
        [info] = api_sources(server)
        assert info["state"] == "waiting"  # not a green "running" while nothing can be read
        assert str(info["summary"]).startswith("waiting: ")
        assert info["kind"] == "file"


async def test_a_stop_for_lack_of_viewers_is_not_an_exit(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo up; exec sleep 60")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        response.close()
    await eventually(lambda: api_sources(server)[0]["state"] == "stopped", within=5.0)
    [info] = api_sources(server)
    assert info["summary"] == "stopped (no viewers)"
    assert info["status"] == -signal.SIGTERM  # kept, for whoever wants it
