"""One guard process for every part of a source (the same log on a hundred hosts), instead of a
Python interpreter per part.

An interpreter starting costs about 20 ms of CPU here; a source on 100 hosts started 99 of them
at once (the pool keeps one spare), which was most of the time to the first line from all of
them. The shared guard is `_guard.py --shared` (perview/guard/shared.py): each part sends it,
over the one lifeline, its own lifeline and the write ends of its pipes (SCM_RIGHTS), and then
speaks the single guard's protocol on its own lifeline, so each part is still stopped on its own
(a host whose ssh failed is retried while the others stream). When Perview dies, every lifeline
closes at once and the guard stops every part. Only commands whose group is all there is to
stop share a guard (`group_only`, as ssh's are): the walk for descendants that left the group
is one guard's, and would find every part's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys

from perview.guard import wire
from perview.sources.process import GUARD, GuardPool, Lines, kill_groups, prepare_output

# How long the shared guard may take to exit once its last part is done (it has nothing left
# to wait for, so this only bounds a wedged one) before it is killed.
EXIT_PATIENCE = 2.0


class SharedPart:
    """One command's handle on the shared guard (a GuardHandle)."""

    def __init__(
        self, owner: SharedGuard, lifeline: socket.socket, output: int, errors: int, stdin: int
    ) -> None:
        self.owner = owner
        self.lifeline = lifeline
        self.output = output
        self.errors = errors
        self.stdin: int | None = stdin if stdin >= 0 else None
        self.lines = Lines(lifeline)
        self.released = False

    async def read_line(self) -> str:
        return await self.lines.read_line()

    async def ended(self) -> int | None:
        """The `X<status>` the guard sends once the part's group is gone."""
        while line := await self.lines.read_line():
            if (code := wire.parse_exited(line)) is not None:
                await self.release()
                return code
        await self.release()
        return None

    async def reap(self, grace: float, pgid: int | None) -> None:
        try:
            async with asyncio.timeout(grace + 1.0):
                while await self.lines.read_line():
                    pass
        except TimeoutError:
            kill_groups(pgid)
        except asyncio.CancelledError:
            kill_groups(pgid)
            raise
        finally:
            await self.release()

    def let_go(self) -> None:
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None
        with contextlib.suppress(OSError):
            self.lifeline.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.let_go()
        self.lifeline.close()
        os.close(self.output)
        os.close(self.errors)

    async def release(self) -> None:
        if not self.released:
            self.released = True
            await self.owner.release()


class SharedGuard:
    """Hands out parts of one guard process (Guards, like GuardPool); the process is started
    for the first part and let go after the last, so it lives exactly while a part runs."""

    def __init__(self, pool: GuardPool | None = None) -> None:
        self.pool = pool  # whose warm spare becomes the shared guard, saving a start-up
        self._proc: asyncio.subprocess.Process | None = None
        self._main: socket.socket | None = None
        self._parts = 0
        self._starting = asyncio.Lock()

    async def take(self, stdin: bool = False) -> SharedPart:
        async with self._starting:
            if self._main is None:
                await self._start()
            main = self._main
            assert main is not None
            self._parts += 1
        ours, theirs = socket.socketpair()
        output, output_w = os.pipe()
        errors, errors_w = os.pipe()
        given, given_w = os.pipe() if stdin else (-1, -1)
        fds = [theirs.fileno(), output_w, errors_w] + ([given] if stdin else [])
        try:
            wire.send_part(main, fds)
        except OSError:
            ours.close()
            for fd in (output, errors, given_w):
                if fd >= 0:
                    os.close(fd)
            await self.release()
            raise
        finally:
            theirs.close()
            for fd in (output_w, errors_w, given):
                if fd >= 0:
                    os.close(fd)
        ours.setblocking(False)
        prepare_output(output, errors)
        if given_w >= 0:
            os.set_blocking(given_w, False)
        return SharedPart(self, ours, output, errors, given_w)

    async def _start(self) -> None:
        if self.pool is not None:
            spare = await self.pool.take()
            os.close(spare.output)  # a shared guard writes nothing of its own
            os.close(spare.errors)
            self._proc, self._main = spare.proc, spare.lifeline
            return
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                str(GUARD),
                wire.SHARED,
                stdin=theirs.fileno(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._main = ours

    async def release(self) -> None:
        """A part is done; after the last, the guard reads EOF and exits (and is reaped)."""
        self._parts -= 1
        if self._parts or self._main is None:
            return
        proc, self._proc = self._proc, None
        self._main.close()
        self._main = None
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), EXIT_PATIENCE)
        except TimeoutError:
            kill_groups(proc.pid)
            await proc.wait()
        except asyncio.CancelledError:
            kill_groups(proc.pid)
            raise
