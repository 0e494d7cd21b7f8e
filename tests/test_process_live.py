"""A live `perview run` whose command starts children that leave its process group."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from tests.conftest import TOKEN, Server, eventually
from tests.test_process import LEAVERS

Serve = Callable[..., Server]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TEXT = "/api/sources/run/text"


async def visit(server: Server, session: aiohttp.ClientSession) -> None:
    """Open the text stream, wait for the command (and its escaped child) to be up, leave."""
    response = await session.get(server.base + TEXT, headers=AUTH)
    assert await response.content.readline() == b"up\n"
    await eventually(lambda: len(server.commands()) >= 2, within=5)
    response.close()


@pytest.mark.parametrize("argv", LEAVERS.values(), ids=LEAVERS.keys())
async def test_children_that_leave_the_group_die_when_the_viewer_leaves(
    serve: Serve, argv: list[str]
) -> None:
    server = serve("run", "--", *argv)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # and repeated visits do not pile them up
            await visit(server, session)
            await eventually(lambda: not server.commands(), within=3)


@pytest.mark.parametrize("argv", LEAVERS.values(), ids=LEAVERS.keys())
async def test_children_that_leave_the_group_die_with_a_sigkilled_server(
    serve: Serve, argv: list[str]
) -> None:
    server = serve("run", "--", *argv)
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + TEXT, headers=AUTH)
        assert await response.content.readline() == b"up\n"
        await eventually(lambda: len(server.commands()) >= 2, within=5)
        server.proc.kill()
        server.proc.wait()
        took = await eventually(lambda: not server.descendants(), within=3)
        response.close()
    assert took < 1
