"""Perview's own standard input as a source: `journalctl -f | perview`."""

from __future__ import annotations

import asyncio
import os
import stat

from perview.hub import Ended, Output
from perview.sources.reader import relay


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
        if not await relay(self.fd, out.write, stop):
            return Ended(0, "stopped before the end of standard input")
        self._done = True
        return Ended(0)
