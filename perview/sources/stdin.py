"""Perview's own standard input as a source: `journalctl -f | perview`."""

from __future__ import annotations

import asyncio
import os
import stat

from perview.hub import Ended, Output
from perview.sources.process import wait_readable

READ_SIZE = 64 * 1024


def usable_stdin(fd: int = 0) -> bool:
    """Is `fd` something to serve: a pipe, a socket or a regular file (not a terminal, not
    /dev/null, not closed)?"""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode)


class StdinSource:
    """Reads `fd` to its end, once: standard input cannot be started again, so its hub keeps
    it running without viewers and its history is the point."""

    kind = "stdin"

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self._done = False

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        if self._done:
            return Ended(0, "standard input was read to its end")
        os.set_blocking(self.fd, False)  # no effect on a regular file, which never blocks
        out.started(None)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                try:
                    data = os.read(self.fd, READ_SIZE)
                except BlockingIOError:
                    readable = asyncio.ensure_future(wait_readable(self.fd))
                    try:
                        await asyncio.wait(
                            {readable, stopping}, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        readable.cancel()
                    continue
                if not data:
                    self._done = True
                    return Ended(0)
                await out.write(data)
            return Ended(0, "stopped before the end of standard input")
        finally:
            stopping.cancel()
