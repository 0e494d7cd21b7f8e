"""Reading block-wise: the one read size of every source, and the loop that relays a
non-blocking pipe (a command's output or its stderr, Perview's standard input)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

# Reading whole blocks (never readline) is what makes relaying cheap, and bigger blocks mean
# fewer trips through the framer, the ring and the viewers. Measured with bench/throughput.py
# (seq 1 3000000 read by curl, 21 interleaved trials): the default 64 KiB pipe read 64 KiB at a
# time reached 0.58 of `seq | cat`; a 1 MiB pipe read 256 KiB at a time, 0.75 (1 MiB reads: 0.70).
# Files are read in the same blocks, and a file's backlog is searched for backwards in them.
READ_SIZE = 256 * 1024


async def relay(
    fd: int, write: Callable[[bytes], Awaitable[None]], stop: asyncio.Event | None = None
) -> bool:
    """Pass what the non-blocking `fd` gives to `write` until its end (True) or until `stop` is
    set (False). A block goes straight into one bytes object, and the next is read only once
    `write` took this one: that is the backpressure that reaches the writer through its pipe."""
    while stop is None or not stop.is_set():
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            await _readable_or_stopped(fd, stop)
            continue
        if not data:
            return True
        await write(data)
    return False


async def _readable_or_stopped(fd: int, stop: asyncio.Event | None) -> None:
    if stop is None:
        await wait_readable(fd)
        return
    readable = asyncio.ensure_future(wait_readable(fd))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({readable, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        readable.cancel()
        stopping.cancel()


async def wait_readable(fd: int) -> None:
    """Return once `fd` is readable (or at EOF).

    The reader removes itself when it fires: the loop calls a reader in every iteration while
    the fd stays readable, and whoever awaits may only run iterations later (through
    `asyncio.wait`, for one), so a plain `future.set_result` reader would set it twice and log
    an InvalidStateError traceback each time."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        loop.remove_reader(fd)
        if not readable.done():  # cancelled in the same iteration
            readable.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await readable
    finally:
        loop.remove_reader(fd)
