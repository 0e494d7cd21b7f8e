"""The guard: sits between Perview and one command, and takes the command's whole group down
with it.

Run as `python -I -S _guard.py` (standard library only). Its stdin is a socket whose other end
only Perview holds: when Perview closes it, or dies in any way (even SIGKILL), the guard reads
EOF and stops the command's process group: SIGTERM, up to `grace` seconds for the group to go,
then SIGKILL. A parent-death signal would only reach the direct child; a process group reaches
grandchildren too.

Perview starts a guard before it knows the command (a warm spare, so that starting a command
costs a spawn, not an interpreter start-up), then sends it one JSON line:
`{"argv": [...], "env": {...} or null, "cwd": "..." or null, "grace": seconds,
"stdin_pipe": bool}`. With `stdin_pipe` the command's stdin is a pipe the guard holds open and
closes first when stopping: an `ssh` passes that EOF on, and the far side stops its command.
The guard answers one line: `P<pid>` once the command runs, or `E<errno> <where>: <text>` if
it could not start (`where` is `cwd` or `exec`). EOF before the spec: the guard exits quietly.

The command's stdout and stderr are the guard's, inherited; the guard itself lets go of them so
Perview sees EOF exactly when the command's group has closed its output. The guard exits the
way the command did (same status, or killed by the same signal), so to Perview it looks like
the command itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from typing import NamedTuple

LIFELINE = 0
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
# Signals Python ignores at start-up: the command must get them back at their defaults, or
# `seq | head` style writers would not die of SIGPIPE.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


class Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise Stop


def become_subreaper() -> None:
    """Have orphaned descendants reparented to the guard, so it can reap them.

    Otherwise a killed grandchild stays a zombie (still a group member) until PID 1 reaps it,
    which some container inits never do, and the group would look alive for the whole grace.
    """
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap(pid: int, status: int | None) -> int | None:
    """Reap every exited child; return the command's wait status once it is known."""
    while True:
        try:
            reaped, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if not reaped:
            return status
        if reaped == pid:
            status = wait_status


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user id; it is still there
        return True
    return True


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_briefly(pidfd: int, seconds: float) -> None:
    select.select([pidfd], [], [], seconds)


def stop_group(pid: int, pidfd: int, status: int | None, grace: float) -> int:
    """SIGTERM the group, wait up to `grace` for it to empty, then SIGKILL.

    Returns the command's wait status."""
    signal_group(pid, signal.SIGTERM)
    signal_group(pid, signal.SIGCONT)  # a stopped process only sees SIGTERM once continued
    deadline = time.monotonic() + grace
    pause = 0.0005
    while True:
        status = reap(pid, status)
        # Reaped processes no longer count as members; the living and unreaped ones do.
        if status is not None and not group_alive(pid):
            return status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            signal_group(pid, signal.SIGKILL)
            if status is None:
                status = os.waitpid(pid, 0)[1]
            reap(pid, status)
            return status
        if status is None:
            select.select([pidfd], [], [], min(remaining, 0.05))
        else:
            time.sleep(min(remaining, pause))
            pause = min(pause * 2, 0.05)


def exit_like(status: int) -> int:
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


# With a stdin pipe, how long the command gets to end by itself after its stdin closes (ssh
# passing the EOF on and the far side stopping) before it is sent SIGTERM.
EOF_GRACE = 0.5


class Spec(NamedTuple):
    argv: list[str]
    env: dict[str, str] | None
    cwd: str | None
    grace: float
    stdin_pipe: bool


def read_spec() -> Spec | None:
    """The command to run, or None if Perview let go before sending one."""
    data = b""
    while not data.endswith(b"\n"):
        part = os.read(LIFELINE, 65536)
        if not part:
            return None
        data += part
    raw = json.loads(data)
    argv = [str(a) for a in raw["argv"]]
    return Spec(argv, raw["env"], raw["cwd"], float(raw["grace"]), bool(raw["stdin_pipe"]))


def spawn(spec: Spec, stdin: int) -> int:
    if spec.env is not None:
        # posix_spawnp searches the PATH of our own environment, so that is the one to replace.
        os.environ.clear()
        os.environ.update(spec.env)
    if spec.cwd:
        try:
            os.chdir(spec.cwd)
        except OSError as exc:
            raise SpawnError(exc, "cwd") from exc
    try:
        return os.posix_spawnp(
            spec.argv[0],
            spec.argv,
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0)],
            setpgroup=0,
            setsigdef=RESET_SIGNALS,
            setsigmask=(),
        )
    except OSError as exc:
        raise SpawnError(exc, "exec") from exc


class SpawnError(Exception):
    def __init__(self, error: OSError, where: str) -> None:
        super().__init__(f"E{error.errno} {where}: {error.strerror}\n")
        self.permission = isinstance(error, PermissionError)


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    try:
        spec = read_spec()
    except Stop:
        return 0
    if spec is None:
        return 0  # a spare nobody needed
    become_subreaper()
    null = os.open(os.devnull, os.O_RDWR)
    stdin, hold = os.pipe() if spec.stdin_pipe else (null, None)
    try:
        pid = spawn(spec, stdin)
    except SpawnError as exc:
        os.write(LIFELINE, str(exc).encode())
        return 126 if exc.permission else 127
    os.write(LIFELINE, b"P%d\n" % pid)
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
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # already stopping; nothing is exec'd from here
    if hold is not None:
        os.close(hold)
        if status is None:
            wait_briefly(pidfd, EOF_GRACE)
            status = reap(pid, status)
    # Whether the command ended, Perview let go, or we were signalled: nothing of the group may
    # outlive the guard.
    return exit_like(stop_group(pid, pidfd, status, spec.grace))


if __name__ == "__main__":
    sys.exit(main())
