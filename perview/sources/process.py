"""A command as a source: started through the guard, read block-wise, stopped with its group."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from perview.hub import Ended, Output

GUARD = Path(__file__).with_name("_guard.py")

# Between SIGTERM and SIGKILL. Long enough for ssh to close its channel (so the far side is told)
# and for a well-behaved program to flush; short enough that shutdown stays within 2 s overall.
GRACE = 1.5

# One pipe read. Reading whole blocks (never readline) is what makes relaying cheap: 64 KiB is the
# Linux pipe capacity, so one read usually drains the pipe.
READ_SIZE = 64 * 1024


class ProcessSource:
    """Runs `argv` in its own process group behind the guard; stdout and stderr are the output.

    The command's stdin is /dev/null. Setting `stop` lets go of the guard's lifeline, and the
    guard takes the whole group down; if Perview dies, the kernel closes the lifeline and the
    same happens.
    """

    kind = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        grace: float = GRACE,
    ) -> None:
        if not argv:
            raise ValueError("a command needs at least a program name")
        self.argv = tuple(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.grace = grace

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        ours, theirs = socket.socketpair()
        proc: asyncio.subprocess.Process | None = None
        pgid: int | None = None
        stopper = asyncio.create_task(_let_go_when_set(stop, ours))
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-I",
                    "-S",
                    str(GUARD),
                    str(self.grace),
                    *self.argv,
                    stdin=theirs.fileno(),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    env=self.env,
                    cwd=self.cwd,
                )
            except OSError as exc:
                where = f" in {self.cwd}" if self.cwd else ""
                return Ended(reason=f"cannot start {self.argv[0]}{where}: {exc.strerror}")
            finally:
                theirs.close()
            hello = await _read_line(ours)
            if hello.startswith("P"):
                pgid = int(hello[1:])
                out.started(pgid)
            assert proc.stdout is not None
            while data := await proc.stdout.read(READ_SIZE):
                await out.write(data)
            status = await proc.wait()
            if hello.startswith("E"):
                return Ended(reason=self._start_error(hello[1:]))
            if not hello:
                return Ended(status, reason="the process guard ended unexpectedly")
            return Ended(status)
        finally:
            stopper.cancel()
            ours.close()
            if proc is not None and proc.returncode is None:
                await self._reap(proc, pgid)

    async def _reap(self, proc: asyncio.subprocess.Process, pgid: int | None) -> None:
        # The guard normally exits within its grace period; if it does not (it was stopped, or is
        # wedged), kill it and the command's group directly.
        try:
            await asyncio.wait_for(proc.wait(), self.grace + 1.0)
        except TimeoutError:
            _kill_groups(proc.pid, pgid)
            await proc.wait()
        except asyncio.CancelledError:
            _kill_groups(proc.pid, pgid)
            raise

    def _start_error(self, message: str) -> str:
        code, _, text = message.partition(" ")
        if code == str(errno.ENOENT):
            return f"{self.argv[0]}: command not found"
        return f"{self.argv[0]}: {text}"


async def _let_go_when_set(stop: asyncio.Event, lifeline: socket.socket) -> None:
    await stop.wait()
    with contextlib.suppress(OSError):  # already closed: the run is ending anyway
        lifeline.shutdown(socket.SHUT_WR)  # the guard reads EOF and stops the group


async def _read_line(sock: socket.socket) -> str:
    """One line from the guard, or "" if it closed the socket first."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    data = b""
    while not data.endswith(b"\n"):
        part = await loop.sock_recv(sock, 4096)
        if not part:
            break
        data += part
    return data.decode(errors="replace").strip()


def _kill_groups(*pgids: int | None) -> None:
    for pgid in pgids:
        if pgid is None:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
