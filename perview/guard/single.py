"""One command's guard: starts the command, waits for it to end or for Perview to let go (or
for a signal), stops everything it started, and exits the way the command did."""

from __future__ import annotations

import os
import select

from perview.guard import wire
from perview.guard.builtin import signal, suppress
from perview.guard.spawn import SpawnError, spawn
from perview.guard.tree import EOF_GRACE, STOP_SIGNALS, reap, stop_group
from perview.guard.wire import LIFELINE, Spec


class Stop(Exception):
    """A signal asked the guard to stop."""


def raise_stop(signum: int, frame: object) -> None:
    raise Stop


def guard_one(spec: Spec, errors: int | None) -> int:
    """Run `spec` to its end and return the guard's exit code; `errors` is the inherited write
    end of a separate stderr pipe (`_guard.py FD`), if the guard was started with one."""
    if errors is not None:
        if spec.stderr_pipe:
            os.set_inheritable(errors, False)  # the command gets it as fd 2 only
        else:
            os.close(errors)
            errors = None
    null = os.open(os.devnull, os.O_RDWR)
    stdin, hold = os.pipe() if spec.stdin_pipe else (null, None)
    try:
        pid = spawn(spec, stdin, errors)
    except SpawnError as exc:
        say(exc.answer)
        return exc.code
    finally:
        if errors is not None:
            os.close(errors)
    say(wire.started(pid))
    if hold is not None:
        os.close(stdin)
    os.dup2(null, 1)
    os.dup2(null, 2)
    pidfd = os.pidfd_open(pid)
    status: int | None = None
    try:
        ready, _, _ = select.select([LIFELINE, pidfd], [], [])
        if pidfd in ready:
            status = reap(pid, status)
    except Stop:
        pass
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # already stopping; nothing is exec'd from here
    if hold is not None:
        os.close(hold)
        if status is None:
            select.select([pidfd], [], [], EOF_GRACE)
            status = reap(pid, status)
    # Whether the command ended, Perview let go, or we were signalled: nothing the command
    # started may outlive the guard.
    return exit_like(stop_group(pid, pidfd, status, spec.grace, not spec.group_only))


def say(line: bytes) -> None:
    # Perview may have let go already (its run was cancelled right after sending the spec):
    # the write then fails, and the guard must go on to stop the command, not die of it.
    with suppress(OSError):
        os.write(LIFELINE, line)


def exit_like(status: int) -> int:
    """Die of the command's signal, or return its exit code."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        import resource  # only here: no core file for the guard itself

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught
            signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
        return 128 + signum  # not reached for a fatal signal
    return os.waitstatus_to_exitcode(status)
