"""Perview's event loop (perview/loop.py): asyncio's, with a selector that reports what
asyncio's epoll selector reports, and keeps the GIL when it only polls. CI sets
PERVIEW_REQUIRE_C=1, so there the C poll (perview/_epoll.c) is what is tested."""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from perview import loop

if loop.POLL_NOW is None and os.environ.get("PERVIEW_REQUIRE_C") != "1":
    pytest.skip("no C poll: not built (no compiler), or PERVIEW_NO_C=1", allow_module_level=True)


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(100)]
    yield made
    for a, b in made:
        a.close()
        b.close()


def test_the_c_poll_is_built_and_used() -> None:
    assert loop.POLL_NOW is not None
    new = loop.new_event_loop()
    try:
        assert isinstance(new._selector, loop.Selector)  # type: ignore[attr-defined]
    finally:
        new.close()


def ready(selector: selectors.BaseSelector, timeout: float) -> set[tuple[int, int]]:
    return {(key.fd, events) for key, events in selector.select(timeout)}


@pytest.mark.parametrize("timeout", [0, 0.001])
def test_the_selector_reports_what_asyncios_reports(
    pairs: list[tuple[socket.socket, socket.socket]], timeout: float
) -> None:
    ours, theirs = loop.Selector(), selectors.EpollSelector()
    try:
        for i, (a, b) in enumerate(pairs):
            # Read, write or both; half of them with something to read, one peer closed.
            events = (selectors.EVENT_READ, selectors.EVENT_WRITE, 3)[i % 3]
            for selector in (ours, theirs):
                selector.register(a, events)
            if i % 2 == 0:
                b.send(b"x")
        pairs[10][1].close()
        found = ready(ours, timeout)
        assert found == ready(theirs, timeout)
        assert len(found) == 100 - sum(1 for i in range(100) if i % 3 == 0 and i % 2)
        # More ready than fit on the C side's stack, after a change of interest and a removal.
        ours.modify(pairs[1][0], selectors.EVENT_READ)
        theirs.modify(pairs[1][0], selectors.EVENT_READ)
        ours.unregister(pairs[2][0])
        theirs.unregister(pairs[2][0])
        assert ready(ours, timeout) == ready(theirs, timeout)
    finally:
        ours.close()
        theirs.close()


def test_an_empty_selector_polls_and_waits() -> None:
    selector = loop.Selector()
    try:
        assert selector.select(0) == []
        assert selector.select(0.001) == []
    finally:
        selector.close()


def counted_during(poll: selectors.BaseSelector, polls: int) -> int:
    """What another thread counted while this one polled `polls` times. That thread lets the
    GIL go after each count, and the switch interval is too long to take it from this one: it
    counts only where a poll lets the GIL go."""
    counts = 0
    done = threading.Event()

    def count() -> None:
        nonlocal counts
        while not done.is_set():
            counts += 1
            time.sleep(0)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    counter = threading.Thread(target=count)
    try:
        counter.start()
        while not counts:  # it runs
            time.sleep(0.001)
        before = counts
        for _ in range(polls):
            poll.select(0)
        return counts - before
    finally:
        done.set()
        counter.join()
        sys.setswitchinterval(interval)


def test_a_poll_that_cannot_block_keeps_the_gil(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    ours, theirs = loop.Selector(), selectors.EpollSelector()
    try:
        for a, _ in pairs[:4]:
            ours.register(a, selectors.EVENT_WRITE)
            theirs.register(a, selectors.EVENT_WRITE)
        assert counted_during(ours, 20_000) == 0
        # The control: asyncio's own poll lets it go, and the counting thread gets it.
        assert counted_during(theirs, 200_000) > 0
    finally:
        ours.close()
        theirs.close()


def test_a_program_runs_on_it_with_sockets_subprocesses_and_threads() -> None:
    async def main() -> tuple[bytes, bytes, int, type]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        line = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        child = await asyncio.create_subprocess_exec(
            "printf", "out", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await child.communicate()
        threaded = await asyncio.to_thread(lambda: 7)
        selector = type(asyncio.get_running_loop()._selector)  # type: ignore[attr-defined]
        return line, out, threaded, selector

    assert loop.run(main()) == (b"hello\n", b"out", 7, loop.Selector)


def test_without_the_c_part_it_is_asyncios_own_loop() -> None:
    code = (
        "import asyncio; from perview import loop; "
        "print(loop.POLL_NOW, type(loop.new_event_loop()) is type(asyncio.new_event_loop()))"
    )
    env = {**os.environ, "PERVIEW_NO_C": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["None", "True"]
