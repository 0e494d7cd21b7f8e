"""A live `perview run` whose command starts children that leave its process group."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable

import aiohttp
import psutil
import pytest

from perview.sources.process import GRACE
from tests.conftest import Server, eventually
from tests.test_process import LEAVERS
from tests.viewer import AUTH, api_sources, read_text, watching

Serve = Callable[..., Server]
WITHIN = 5.0
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


async def sigkill_once_up(server: Server, commands: int) -> float:
    """View the command until it printed "up" and `commands` processes run under the server,
    SIGKILL the server, and return how long its last descendant took to go."""
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + TEXT, headers=AUTH)
        assert await response.content.readline() == b"up\n"
        await eventually(lambda: len(server.commands()) >= commands, within=5)
        server.proc.kill()
        server.proc.wait()
        took = await eventually(lambda: not server.descendants(), within=3)
        response.close()
    return took


@pytest.mark.parametrize("argv", LEAVERS.values(), ids=LEAVERS.keys())
async def test_children_that_leave_the_group_die_with_a_sigkilled_server(
    serve: Serve, argv: list[str]
) -> None:
    assert await sigkill_once_up(serve("run", "--", *argv), commands=2) < 1


async def test_silent_command_group_dies_within_milliseconds_of_the_viewer_leaving(
    serve: Serve,
) -> None:
    script = "sleep 300 & sleep 301 & echo up; wait"  # grandchildren, and silent after one line
    server = serve("run", "--", "sh", "-c", script)
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        assert len(server.commands()) >= 3  # sh and two sleeps
        response.close()
        took = await eventually(lambda: not server.commands(), within=2, step=0.001)
    assert took < 0.5  # typically a few ms; the bench measures it properly
    assert server.proc.poll() is None  # without --once the server keeps serving


async def test_chatty_command_dies_as_fast_as_a_silent_one(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo up; exec yes")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        response.close()
        took = await eventually(lambda: not server.commands(), within=2, step=0.001)
    assert took < 0.5


async def test_command_that_does_not_exist_says_why(serve: Serve) -> None:
    server = serve("run", "--", "perview-no-such-command")
    body = await read_text(server)
    assert body == b"[perview] failed to start: perview-no-such-command: command not found\n"
    [info] = api_sources(server)
    assert info["state"] == "failed"
    assert info["reason"] == "perview-no-such-command: command not found"


async def test_sigkilled_server_leaves_no_process_behind(serve: Serve) -> None:
    # The shell starts `sleep 301` after it writes "up", which may already be here: wait for 3.
    server = serve("run", "--", "sh", "-c", "sleep 300 & echo up; sleep 301")
    assert await sigkill_once_up(server, commands=3) < 1


# The command and its child both ignore SIGTERM; only the SIGKILL after the grace ends them.
STUBBORN = "trap '' TERM; sh -c \"trap '' TERM; exec sleep 300\" & echo up; wait"


async def test_a_group_ignoring_sigterm_is_killed_after_the_grace_and_restarts_later(
    serve: Serve,
) -> None:
    server = serve("run", "--", "sh", "-c", STUBBORN)
    async with aiohttp.ClientSession() as session:
        url = server.base + "/api/sources/run/text"
        first = await session.get(url, headers=AUTH)
        assert await first.content.readline() == b"up\n"
        assert len(server.commands()) >= 2  # the shell and its child
        first.close()
        started = time.monotonic()
        async with session.get(server.base + "/healthz", headers=AUTH) as health:
            assert health.status == 200  # the server is not waiting on the stubborn group
        assert time.monotonic() - started < 1.0
        took = await eventually(lambda: not server.commands(), within=GRACE + 3)
        assert took > GRACE / 2  # SIGTERM alone did not end them; the SIGKILL did
        await eventually(lambda: api_sources(server)[0]["state"] == "stopped", within=WITHIN)
        assert api_sources(server)[0]["status"] == -signal.SIGKILL
        assert api_sources(server)[0]["summary"] == "stopped (no viewers)"
        second = await session.get(url, headers=AUTH)
        assert await asyncio.wait_for(second.content.readline(), WITHIN) == b"up\n"
        second.close()
    assert api_sources(server)[0]["runs"] == 2


# 50 MB of stderr in 4,000-byte writes, and a numbered stdout line after every tenth. stderr and
# stdout share the command's one output pipe, and writes up to PIPE_BUF (4,096) land whole, so no
# line is split by another.
FLOOD = """
import os
err = (b"e" * 99 + b"\\n") * 40
for n in range(1, 12_501):
    os.write(2, err)
    if n % 10 == 0:
        os.write(1, b"out %d\\n" % (n // 10))
"""

FLOOD_BYTES = 50_000_000

STDOUT_LINES = 1250


async def test_a_stderr_flood_keeps_the_server_responsive_memory_bounded_and_stdout_whole(
    serve: Serve,
) -> None:
    server = serve("run", "--", sys.executable, "-c", FLOOD)
    process = psutil.Process(server.proc.pid)
    peak_rss, slowest, probes = 0, 0.0, 0
    stdout: list[bytes] = []
    stderr_lines = 0
    done = asyncio.Event()

    async def probe(session: aiohttp.ClientSession) -> None:
        nonlocal peak_rss, slowest, probes
        while not done.is_set():
            started = time.monotonic()
            async with session.get(server.base + "/healthz", headers=AUTH) as health:
                assert health.status == 200
            slowest = max(slowest, time.monotonic() - started)
            peak_rss = max(peak_rss, process.memory_info().rss)
            probes += 1
            await asyncio.sleep(0.02)

    async with aiohttp.ClientSession() as session, asyncio.timeout(40):
        prober = asyncio.create_task(probe(session))
        try:
            async with session.get(server.base + "/api/sources/run/text", headers=AUTH) as stream:
                rest = b""
                async for block in stream.content.iter_chunked(1 << 20):
                    lines = (rest + block).split(b"\n")
                    rest = lines.pop()
                    stderr_lines += lines.count(b"e" * 99)
                    stdout += [line for line in lines if line.startswith(b"out ")]
        finally:
            done.set()
            await prober
    assert rest == b""
    assert stdout == [b"out %d" % n for n in range(1, STDOUT_LINES + 1)]
    assert stderr_lines * 100 == FLOOD_BYTES  # every byte of stderr too: paced, not dropped
    assert probes > 0 and slowest < 1.0, f"/healthz took {slowest:.2f} s during the flood"
    assert peak_rss < 150 * 1024 * 1024, f"server RSS reached {peak_rss / 2**20:.0f} MiB"
    [info] = api_sources(server)
    assert (info["state"], info["status"]) == ("exited", 0)


@pytest.mark.parametrize(("command", "status"), [(["true"], 0), (["sh", "-c", "exit 3"], 3)])
async def test_a_command_exiting_before_its_first_byte_shows_its_status_and_restarts(
    serve: Serve, command: list[str], status: int
) -> None:
    server = serve(
        "run", "--rerun", "--", *command
    )  # (without --rerun it runs once: test_hub_live.py)
    async with aiohttp.ClientSession() as session:
        text = session.get(server.base + "/api/sources/run/text", headers=AUTH)
        async with text as response:
            assert await asyncio.wait_for(response.read(), WITHIN) == b""  # ends, no hang
        [info] = api_sources(server)
        assert (info["state"], info["status"], info["runs"]) == ("exited", status, 1)
        # A viewer arriving later starts it again and is told how this run ended.
        async with watching(server, "run") as viewer:
            await eventually(
                lambda: any(s["run"] == 2 and s["state"] == "exited" for s in viewer.states),
                WITHIN,
            )
    [ended] = [s for s in viewer.states if s["run"] == 2 and s["state"] == "exited"]
    assert ended["status"] == status and not ended["history"]
    assert viewer.lines == []
    assert api_sources(server)[0]["runs"] == 2
