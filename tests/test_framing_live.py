"""The framer's promises against a live server: invalid UTF-8 is replaced, and a line without
an end keeps the server's memory bounded."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import psutil

from tests.conftest import Server
from tests.viewer import AUTH, read_text

Serve = Callable[..., Server]


async def test_invalid_utf8_is_replaced_not_fatal(serve: Serve) -> None:
    server = serve("run", "--", "printf", "caf\\351 \\377\\nnext\\n")
    assert (await read_text(server)).decode() == "caf\ufffd \ufffd\nnext\n"


async def test_huge_line_without_newline_keeps_memory_bounded(serve: Serve) -> None:
    command = "head -c 300000000 /dev/zero | tr '\\0' x"  # one 300 MB line, no newline
    server = serve("run", "--", "sh", "-c", command)
    process = psutil.Process(server.proc.pid)
    peak = 0
    received = 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/sources/run/text", headers=AUTH) as response,
    ):
        async for block in response.content.iter_chunked(1 << 20):
            received += len(block)
            peak = max(peak, process.memory_info().rss)
    assert received >= 300_000_000  # nothing lost: cut into marked pieces, not dropped
    assert peak < 150 * 1024 * 1024, f"server RSS reached {peak / 2**20:.0f} MiB"
