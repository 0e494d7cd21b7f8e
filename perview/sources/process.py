"""A command as a source: started through the guard, read block-wise, stopped with its group."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from perview.guard import wire
from perview.hub import Ended, Output
from perview.sources.reader import relay

GUARD = Path(__file__).with_name("_guard.py")

# Between SIGTERM and SIGKILL. Long enough for ssh to close its channel (so the far side is told)
# and for a well-behaved program to flush; short enough that shutdown stays within 2 s overall.
GRACE = 1.5

# The pipe measured with reader.READ_SIZE: 1 MiB where the default is 64 KiB.
PIPE_SIZE = 1024 * 1024  # Linux's default limit for an unprivileged process (pipe-max-size)
F_SETPIPE_SZ = 1031  # from <linux/fcntl.h>; not in Python's fcntl module before 3.12
REPLACE_AFTER = 0.25  # seconds between taking the spare guard and starting the next one
STDERR_PATIENCE = 0.5  # seconds a separate stderr may stay open after the command has ended


class GuardHandle(Protocol):
    """What a ProcessSource holds while its command runs: a lifeline (closing it stops the
    command; the guard answers on it), the read ends of the command's output and stderr, and
    the write end of its stdin when one was asked for."""

    lifeline: socket.socket
    output: int
    errors: int
    stdin: int | None

    async def read_line(self) -> str:
        """The guard's next line, or "" once it closed the lifeline."""

    async def ended(self) -> int | None:
        """The command's exit status (negative: the signal), once everything it started is
        gone; None if the guard itself ended without saying."""

    async def reap(self, grace: float, pgid: int | None) -> None:
        """Called only if `ended` did not return: wait (bounded) for the guard to finish, else
        kill the command's group (and a guard of its own)."""

    def let_go(self) -> None:
        """Stop the command: its stdin ends first, then the lifeline."""

    def close(self) -> None: ...


class Guards(Protocol):
    async def take(self, stdin: bool = False) -> GuardHandle:
        """A guard ready for one command; with `stdin`, one whose stdin Perview writes."""


class Lines:
    """Lines read from a guard's lifeline (its answers may come in one read)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    async def read_line(self) -> str:
        loop = asyncio.get_running_loop()
        while b"\n" not in self.data:
            try:
                part = await loop.sock_recv(self.sock, 4096)
            except OSError:
                part = b""
            if not part:
                line, self.data = self.data, b""
                return line.decode(errors="replace").strip()
            self.data += part
        line, _, self.data = self.data.partition(b"\n")
        return line.decode(errors="replace").strip()


class Guard:
    """A started guard of its own: its process, our end of its lifeline (also its reply
    channel), and the read ends of the pipes its command will write to (output, and stderr when
    asked apart). It exits the way its command did."""

    stdin: int | None = None  # a guard of its own gives its command /dev/null or a pipe it holds

    def __init__(
        self, proc: asyncio.subprocess.Process, lifeline: socket.socket, output: int, errors: int
    ):
        self.proc = proc
        self.lifeline = lifeline
        self.output = output
        self.errors = errors
        self.lines = Lines(lifeline)

    async def read_line(self) -> str:
        return await self.lines.read_line()

    async def ended(self) -> int | None:
        return await self.proc.wait()

    async def reap(self, grace: float, pgid: int | None) -> None:
        # The guard normally exits within its grace period; if it does not (it was stopped, or
        # is wedged), kill it and the command's group directly.
        if self.proc.returncode is not None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), grace + 1.0)
        except TimeoutError:
            kill_groups(self.proc.pid, pgid)
            await self.proc.wait()
        except asyncio.CancelledError:
            kill_groups(self.proc.pid, pgid)
            raise

    def let_go(self) -> None:
        with contextlib.suppress(OSError):  # already closed: the run is ending anyway
            self.lifeline.shutdown(socket.SHUT_WR)  # the guard reads EOF and stops the group

    def close(self) -> None:
        self.lifeline.close()
        os.close(self.output)
        os.close(self.errors)

    async def discard(self) -> None:
        """Let go of an unused guard; it exits as soon as it reads EOF."""
        self.close()
        await self.proc.wait()


async def start_guard() -> Guard:
    ours, theirs = socket.socketpair()
    output, output_w = os.pipe()
    errors, errors_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(GUARD),
            str(errors_w),
            stdin=theirs.fileno(),
            stdout=output_w,
            stderr=output_w,
            pass_fds=(errors_w,),
            start_new_session=True,
        )
    except BaseException:
        ours.close()
        os.close(output)
        os.close(errors)
        raise
    finally:
        theirs.close()
        os.close(output_w)
        os.close(errors_w)
    ours.setblocking(False)
    prepare_output(output, errors)
    return Guard(proc, ours, output, errors)


def prepare_output(output: int, errors: int) -> None:
    """Our ends of a command's output and stderr pipes, made ready to relay."""
    os.set_blocking(output, False)
    os.set_blocking(errors, False)
    # A bigger pipe lets a fast command run ahead while we relay; if the user's pipe budget
    # (pipe-user-pages-soft) is spent, the default size still works.
    with contextlib.suppress(OSError):
        fcntl.fcntl(output, F_SETPIPE_SZ, PIPE_SIZE)


class GuardPool:
    """Keeps one guard started ahead of need, so starting a command costs about a millisecond
    instead of an interpreter start-up (about 20 ms here) on the viewer's critical path.

    The replacement for a spare that was taken is started a little later (REPLACE_AFTER): the
    moment a command starts is when it is busiest, and an interpreter starting then competes
    with it for the CPU.

    A guard started for a taker that is cancelled while it waits (an alert channel closing, a
    multi-host source's TaskGroup, shutdown) is never lost: it becomes the spare, or is let go
    once started if there is one already."""

    def __init__(self) -> None:
        self._spare: asyncio.Task[Guard] | None = None
        self._replace: asyncio.TimerHandle | None = None
        self._letting_go: set[asyncio.Task[Guard]] = set()  # held: the loop keeps tasks weakly

    def warm(self) -> None:
        if self._replace is not None:
            self._replace.cancel()
            self._replace = None
        if self._spare is None:
            self._spare = asyncio.create_task(start_guard(), name="spare guard")

    async def take(self, stdin: bool = False) -> Guard:
        if stdin:
            raise ValueError("a guard of its own gives its command no stdin to write to")
        spare, self._spare = self._spare, None
        if self._replace is None:
            self._replace = asyncio.get_running_loop().call_later(REPLACE_AFTER, self.warm)
        if spare is not None:
            try:
                return await self._claim(spare)
            except OSError:
                pass  # the spare could not start; try once more, and let that error show
        return await self._claim(asyncio.create_task(start_guard(), name="guard"))

    async def _claim(self, starting: asyncio.Task[Guard]) -> Guard:
        """The guard `starting` starts. Awaited through a shield: cancelling the taker must not
        cancel the start (which kills a guard that may be all but ready), nor drop a guard that
        started in the same turn as the cancellation, its process and descriptors with it."""
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            if self._spare is None:
                self._spare = starting
            else:
                self._let_go(starting)
            raise

    def _let_go(self, starting: asyncio.Task[Guard]) -> None:
        """Close the guard `starting` starts, once it has; it exits on reading EOF."""
        self._letting_go.add(starting)
        starting.add_done_callback(self._close_started)

    def _close_started(self, starting: asyncio.Task[Guard]) -> None:
        self._letting_go.discard(starting)
        if not starting.cancelled() and starting.exception() is None:
            starting.result().close()

    async def close(self) -> None:
        if self._replace is not None:
            self._replace.cancel()
            self._replace = None
        spare, self._spare = self._spare, None
        if spare is None:
            return
        try:
            guard = await asyncio.shield(spare)
        except OSError:
            return
        except asyncio.CancelledError:
            self._let_go(spare)
            raise
        await guard.discard()


class ProcessSource:
    """Runs `argv` in its own process group behind a guard; stdout and stderr are the output, or
    stderr goes to `stderr` (called with each block, in order) when one is given.

    The command's stdin is /dev/null. Setting `stop` lets go of the guard's lifeline, and the
    guard takes the whole group down, and every other process the command started; if Perview
    dies, the kernel closes the lifeline and the same happens. Guards come from `guards` (a warm
    spare) or are started on demand.
    """

    kind = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        grace: float = GRACE,
        guards: Guards | None = None,
        stdin_pipe: bool = False,
        group_only: bool = False,
        stderr: Callable[[bytes], None] | None = None,
        tick: float | None = None,
    ) -> None:
        if not argv:
            raise ValueError("a command needs at least a program name")
        self.argv = tuple(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.grace = grace
        self.guards = guards
        self.stdin_pipe = stdin_pipe  # stdin is a pipe closed on stop (for ssh), not /dev/null
        self.group_only = group_only  # spare descendants that left the group (see guard/wire.py)
        self.stderr = stderr
        self.tick = tick  # seconds between the newlines written to its stdin (see clock)

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        ticking = self.tick is not None
        try:
            guard = await (self.guards.take(ticking) if self.guards else start_guard())
        except OSError as exc:
            return Ended(reason=f"cannot start the process guard: {exc.strerror}")
        pgid: int | None = None
        stopper = asyncio.create_task(_let_go_when_set(stop, guard))
        errors: asyncio.Task[bool] | None = None
        clock: asyncio.Task[None] | None = None
        ended = False
        try:
            spec = wire.Spec(
                argv=list(self.argv),
                env=self.env,
                cwd=self.cwd,
                grace=self.grace,
                stdin_pipe=self.stdin_pipe or ticking,
                group_only=self.group_only,
                stderr_pipe=self.stderr is not None,
            )
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(guard.lifeline, wire.spec_message(spec))
            hello = await guard.read_line()
            answer = wire.parse_answer(hello)
            if isinstance(answer, int):
                pgid = answer
                out.started(pgid)
                if self.tick is not None and guard.stdin is not None:
                    clock = asyncio.create_task(_clock(guard.stdin, self.tick))
            if self.stderr is not None:
                errors = asyncio.create_task(relay(guard.errors, _awaited(self.stderr)))
            await relay(guard.output, out.write)  # to EOF: on stop the guard ends every writer
            status = await guard.ended()
            ended = True
            if errors is not None:
                # Its last words (why ssh failed) must be in before the end is reported; a
                # process that kept stderr and left the group must not hold the end back.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(errors), STDERR_PATIENCE)
            if isinstance(answer, wire.Refused):
                return Ended(reason=self._start_error(answer))
            if not hello or status is None:
                return Ended(status, reason="the process guard ended unexpectedly")
            return Ended(status)
        finally:
            # Cancelled again while awaiting below (a shutdown cancels every task), the rest of
            # this still runs: the guard has let go of the command first, and our ends close.
            stopper.cancel()
            guard.let_go()
            try:
                for task in (errors, clock):
                    if task is not None:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
            finally:
                guard.close()
                if not ended:
                    await guard.reap(self.grace, pgid)

    def _start_error(self, refused: wire.Refused) -> str:
        """Why the guard could not start the command, as a sentence for the user."""
        if refused.where == "cwd":
            return f"cannot start {self.argv[0]} in {self.cwd}: {refused.text}"
        if refused.errno == errno.ENOENT:
            return f"{self.argv[0]}: command not found"
        return f"{self.argv[0]}: {refused.text}"


def _awaited(to: Callable[[bytes], None]) -> Callable[[bytes], Awaitable[None]]:
    async def write(data: bytes) -> None:
        to(data)

    return write


async def _let_go_when_set(stop: asyncio.Event, guard: GuardHandle) -> None:
    await stop.wait()
    guard.let_go()


async def _clock(stdin: int, every: float) -> None:
    """A newline to the command's stdin at once and then every `every` seconds: the clock of a
    far-side loop that could only wait by starting a `sleep`. A tick the command has not read
    yet is not piled up behind (a full pipe drops it)."""
    while True:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(stdin, b"\n")
        await asyncio.sleep(every)


def kill_groups(*pgids: int | None) -> None:
    for pgid in pgids:
        if pgid is None:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
