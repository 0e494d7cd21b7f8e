"""What a viewer of a live server does, for the tests: read a text stream, parse an event
stream, list the sources, and watch one source's events in the background."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from tests.conftest import TOKEN, Server

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def read_text(server: Server, path: str = "/api/sources/run/text") -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + path, headers=AUTH) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.read()


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, str]]:
    """Parse a Server-Sent Events body into {event, id, data} dicts."""
    event: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(": ")
            event[field] = (
                event[field] + "\n" + value if field == "data" and field in event else value
            )


def api_sources(server: Server) -> list[dict[str, object]]:
    import urllib.request

    request = urllib.request.Request(server.base + "/api/sources", headers=AUTH)
    with urllib.request.urlopen(request, timeout=5) as response:
        result: list[dict[str, object]] = json.load(response)
        return result


class Received:
    """What one SSE viewer of a source has been sent: its lines and its states."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.states: list[dict[str, object]] = []

    @property
    def state(self) -> object:
        return self.states[-1]["state"] if self.states else None


@asynccontextmanager
async def watching(server: Server, source: str) -> AsyncIterator[Received]:
    """An SSE viewer of `source` for the duration of the block, read in the background."""
    viewer = Received()
    url = f"{server.base}/api/events?source={source}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=AUTH) as response:
        assert response.status == 200

        async def read() -> None:
            async for event in sse_events(response):
                if event.get("event") == "lines":
                    viewer.lines += event["data"].partition("\n")[2].split("\n")
                elif event.get("event") == "state":
                    viewer.states.append(json.loads(event["data"]))

        task = asyncio.create_task(read())
        try:
            yield viewer
        finally:
            if task.done():
                task.result()  # the stream broke: say how
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
