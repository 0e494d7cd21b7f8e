"""The shared guard: one guard process for many commands (the parts of a source on many hosts;
Perview's side is perview/sources/shared_guard.py).

One poll loop drives every part through the steps a single guard takes, as a state machine per
part; EOF on the shared lifeline (Perview let go, or died) or a signal stops them all, and the
guard exits when none is left. A shared guard stops a part's group only (`group_only`): which
part an orphan reparented to it came from is not known.
"""

from __future__ import annotations

import math
import os
import select
import time

from perview.guard import wire
from perview.guard.builtin import signal, socket, suppress
from perview.guard.spawn import SpawnError, spawn
from perview.guard.tree import (
    EOF_GRACE,
    FIRST_PAUSE,
    KILL_PATIENCE,
    LAST_PAUSE,
    STOP_SIGNALS,
    group_alive,
    signal_group,
    terminate_group,
)
from perview.guard.wire import LIFELINE, Spec, parse_spec


class Part:
    """One command of a shared guard: `phase` goes spec -> running -> (eof) -> term -> kill ->
    done, each timed phase giving up at `deadline`; `wake` is when it must be looked at next."""

    def __init__(self, fds: list[int]) -> None:
        self.lifeline, self.output, self.errors = fds[:3]
        self.stdin = fds[3] if len(fds) > 3 else None
        self.data = b""
        self.spec: Spec | None = None
        self.pid = 0
        self.pidfd: int | None = None
        self.hold: int | None = None
        self.status: int | None = None
        self.phase = "spec"
        self.deadline = self.wake = math.inf
        self.pause = FIRST_PAUSE

    def readers(self) -> list[int]:
        fds = [self.lifeline] if self.phase in ("spec", "running") else []
        if self.pidfd is not None and self.status is None:
            fds.append(self.pidfd)
        return fds

    def on_lifeline(self, now: float) -> None:
        try:
            data = os.read(self.lifeline, 65536)
        except OSError:
            data = b""
        if not data:
            self.let_go(now)
        elif self.phase == "spec":
            self.data += data
            spec = parse_spec(self.data)
            if spec is not None:
                self.start(spec, now)

    def start(self, spec: Spec, now: float) -> None:
        self.spec = spec
        null = os.open(os.devnull, os.O_RDWR)
        if self.stdin is not None:
            stdin = self.stdin
        elif spec.stdin_pipe:
            stdin, self.hold = os.pipe()
        else:
            stdin = null
        errors = self.errors if spec.stderr_pipe else None
        environ, cwd = dict(os.environ), os.getcwd()
        try:
            self.pid = spawn(spec, stdin, errors, self.output)
        except SpawnError as exc:
            self.say(exc.answer)
            self.status = exc.code << 8
            self.phase = "done"
            return
        finally:
            os.environ.clear()
            os.environ.update(environ)
            os.chdir(cwd)
            for fd in {null, stdin, self.output, self.errors}:
                os.close(fd)
            self.stdin = None
        self.say(wire.started(self.pid))
        self.pidfd = os.pidfd_open(self.pid)
        self.phase = "running"

    def let_go(self, now: float) -> None:
        """Perview let go of this part (or of all): stop it."""
        if self.phase == "spec":
            self.phase = "done"
        elif self.phase == "running":
            assert self.spec is not None
            if self.hold is not None:
                os.close(self.hold)
                self.hold = None
            if self.spec.stdin_pipe and self.status is None:
                self.phase, self.deadline = "eof", now + EOF_GRACE
                self.wake = self.deadline
            else:
                self.terminate(now)

    def ended(self, status: int, now: float) -> None:
        self.status = status
        if self.phase in ("running", "eof"):
            self.terminate(now)

    def terminate(self, now: float) -> None:
        assert self.spec is not None
        terminate_group(self.pid)
        self.phase, self.deadline, self.wake = "term", now + self.spec.grace, now

    def step(self, now: float) -> None:
        """Move on whatever is due."""
        if now < self.wake:
            return
        if self.phase == "eof":
            self.terminate(now)
            return
        if self.phase == "kill":
            signal_group(self.pid, signal.SIGKILL)
        gone = self.status is not None and not group_alive(self.pid)
        if gone or (self.phase == "kill" and self.status is not None and now > self.deadline):
            self.phase = "done"
            return
        if self.phase == "term" and now >= self.deadline:
            self.phase, self.deadline, self.pause = "kill", now + KILL_PATIENCE, FIRST_PAUSE
            signal_group(self.pid, signal.SIGKILL)
        self.wake = now + self.pause
        self.pause = min(self.pause * 2, LAST_PAUSE)

    def say(self, line: bytes) -> None:
        with suppress(OSError):  # Perview is gone: nobody to tell
            os.write(self.lifeline, line)

    def close(self) -> None:
        """Tell Perview how the command ended (as `X<exit code>`) and let go of everything."""
        if self.status is not None:
            self.say(wire.exited(os.waitstatus_to_exitcode(self.status)))
        for fd in (self.lifeline, self.pidfd, self.hold, self.stdin):
            if fd is not None:
                os.close(fd)
        if self.phase == "spec" or self.spec is None:  # never started: its pipes are still ours
            with suppress(OSError):
                os.close(self.output)
                os.close(self.errors)


def reap_parts(parts: list[Part], now: float) -> None:
    """Reap every exited child, telling the part whose command it was; orphans that came to us
    (we are their subreaper) are reaped and forgotten."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        for part in parts:
            if part.pid == pid:
                part.ended(status, now)


def serve_parts(first: list[int] | None = None) -> int:
    """The shared guard: parts arrive on LIFELINE (a Unix socket) as one byte carrying
    wire.PART_FDS descriptors (`first`: those of the first part, already read); each part then
    speaks the single guard's protocol on its own lifeline, and hears `X<exit code>` once its
    group is gone. EOF on LIFELINE (Perview let go, or died) or a signal stops every part; the
    guard exits once none is left; main() made it its descendants' subreaper."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    main = socket.socket(fileno=LIFELINE)
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)
    stopping: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: stopping.append(signum))
    parts = [Part(first)] if first else []
    closing = False
    while True:
        now = time.monotonic()
        for part in parts:
            part.step(now)
        for part in [p for p in parts if p.phase == "done"]:
            part.close()
            parts.remove(part)
        if closing and not parts:
            return 0
        readers = [wake, *([] if closing else [LIFELINE])]
        readers += [fd for part in parts for fd in part.readers()]
        due = min((part.wake for part in parts), default=math.inf)
        timeout = None if due == math.inf else max(0.0, due - now) * 1000
        # poll, not select: a few hundred parts hold descriptors past select's 1024.
        poller = select.poll()
        for fd in readers:
            poller.register(fd, select.POLLIN)
        ready = {fd for fd, _ in poller.poll(timeout)}
        now = time.monotonic()
        if wake in ready:
            os.read(wake, 512)
        if LIFELINE in ready:
            fds = wire.read_part(main)
            if fds is not None:
                parts.append(Part(fds))
            else:
                closing = True
        if stopping:
            closing = True
        for part in parts:
            if closing:
                part.let_go(now)
            elif part.lifeline in ready:
                part.on_lifeline(now)
        reap_parts(parts, now)
