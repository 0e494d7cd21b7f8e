"""The guard: sits between Perview and one command, and takes down with it everything the
command started.

Run as `python -I -S _guard.py` (standard library only). Its stdin is a socket whose other end
only Perview holds: when Perview closes it, or dies in any way (even SIGKILL), the guard reads
EOF and stops the command's process group and every other descendant of its own: SIGTERM, up to
`grace` seconds for them to go, then SIGKILL until none is left. A parent-death signal would
only reach the direct child; a process group reaches grandchildren, but not those that left it
(`setsid`, `setpgid`). Those stay descendants: the guard is a child subreaper, so an orphan is
reparented to it rather than to PID 1, and walking /proc from the guard finds everything the
command ever started that is still alive.

A cgroup v2 `cgroup.kill` would do the same in one write, but only in a cgroup delegated to the
user (systemd's `Delegate=`, or root); a plain login session, and the hybrid v1/v2 layout of
this project's test machine, give none, so the walk is what works everywhere.

Perview starts a guard before it knows the command (a warm spare, so that starting a command
costs a spawn, not an interpreter start-up), then sends it one JSON line:
`{"argv": [...], "env": {...} or null, "cwd": "..." or null, "grace": seconds,
"stdin_pipe": bool, "group_only": bool, "stderr_pipe": bool}`. With `stdin_pipe` the command's
stdin is a pipe the guard holds open and closes first when stopping: an `ssh` passes that EOF on,
and the far side stops its command. With `group_only` (optional, false by default) only the
group is stopped: for an `ssh`, whose only child outside it is a `ControlPersist` master that
the user's ssh config means to outlive the connection.
With `stderr_pipe` (optional, false by default) the command's stderr is a pipe of its own: the
guard is then started as `_guard.py FD`, FD being an inherited descriptor (the write end of that
pipe), which becomes the command's stderr; Perview reads the other end apart from the output (an
`ssh` tells its own failures there). A guard started with FD closes it once the command runs, or
at once when the spec does not ask for it, so Perview's end reads EOF either way.
The guard answers one line: `P<pid>` once the command runs, or `E<errno> <where>: <text>` if
it could not start (`where` is `cwd` or `exec`). EOF before the spec: the guard exits quietly.

The command's stdout and stderr (unless `stderr_pipe`) are the guard's, inherited; the guard
itself lets go of them so Perview sees EOF exactly when the command's group has closed its
output. The guard exits the way the command did (same status, or killed by the same signal), so
to Perview it looks like the command itself.

A shared guard is one guard for many commands (the parts of a source on many hosts; see
shared_guard.py): a spare whose first message is a part rather than a spec becomes one (or
`_guard.py --shared` starts one). Its stdin is a Unix socket on which each part comes as one
byte carrying its
own lifeline, the write ends of its output and stderr pipes and, optionally, the read end of a
stdin pipe that Perview writes (SCM_RIGHTS). On its lifeline a part then speaks the protocol
above, and hears `X<exit code>` (negative: the signal) once its group is gone, since the guard
does not exit with it. One select loop drives every part through the same steps as the single
guard; EOF on the shared lifeline (Perview let go, or died) or a signal stops them all, and the
guard exits when none is left. A shared guard stops a part's group only (`group_only`): which
part an orphan reparented to it came from is not known.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

LIFELINE = 0
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
# How long SIGKILLs are repeated for descendants that are still there (a process in the middle
# of forking, or one stuck in the kernel, which no signal reaches). Perview kills the guard
# itself one second after its grace, so this must stay well below that.
KILL_PATIENCE = 0.5
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


def _stat(pid: int | str) -> tuple[int, int, bytes] | None:
    """(parent pid, start time, state) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            raw = file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[19]), fields[0]


def descendants() -> dict[int, int]:
    """Every living (not zombie) descendant of the guard, with its start time.

    One pass over /proc (about 0.5 ms for 80 processes here); /proc/PID/task/*/children
    would be cheaper but is missing from kernels built without CONFIG_PROC_CHILDREN, as here.
    The pass is not atomic, so a process forked during it may be missed: callers walk again.
    """
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is not None and stat[2] not in (b"Z", b"X"):
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, int] = {}
    parents = [os.getpid()]
    while parents:
        for pid, started in children.get(parents.pop(), ()):
            if pid not in found:
                found[pid] = started
                parents.append(pid)
    return found


def signal_each(found: dict[int, int], signum: int) -> None:
    """Signal each process in `found` that is still the one found (its pid not reused)."""
    for pid, started in found.items():
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # gone
            continue
        try:
            # The pidfd pins the process now behind `pid`; the start time says it is ours.
            stat = _stat(pid)
            if stat is not None and stat[1] == started:
                signal.pidfd_send_signal(pidfd, signum)
        except (ProcessLookupError, PermissionError):
            pass
        finally:
            os.close(pidfd)


def wait_briefly(pidfd: int, seconds: float) -> None:
    select.select([pidfd], [], [], seconds)


def kill_everything(pid: int, status: int | None, walk: Callable[[], dict[int, int]]) -> int | None:
    """SIGKILL the group and every descendant, again until none is left (or KILL_PATIENCE has
    passed); reaps what it can. Returns the command's wait status if it is known."""
    deadline = time.monotonic() + KILL_PATIENCE
    pause = 0.0005
    while True:
        signal_group(pid, signal.SIGKILL)
        found = walk()
        signal_each(found, signal.SIGKILL)
        # Reap only after signalling: until then no child of ours can be reaped and its pid
        # given to a stranger (deeper descendants are pinned by the pidfd and start time).
        status = reap(pid, status)
        if not found or time.monotonic() > deadline:
            return status
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def no_descendants() -> dict[int, int]:
    return {}


def stop_group(pid: int, pidfd: int, status: int | None, grace: float, everything: bool) -> int:
    """SIGTERM the group and (with `everything`) every descendant, wait up to `grace` for all of
    them to go, then SIGKILL them all.

    Returns the command's wait status."""
    walk = descendants if everything else no_descendants
    signal_group(pid, signal.SIGTERM)
    signal_group(pid, signal.SIGCONT)  # a stopped process only sees SIGTERM once continued
    strays = walk()
    signal_each(strays, signal.SIGTERM)
    signal_each(strays, signal.SIGCONT)
    deadline = time.monotonic() + grace
    pause = 0.0005
    while True:
        status = reap(pid, status)
        # Reaped processes no longer count; the living and unreaped ones do. The walk comes
        # last: it is the dearest check, and needed only once the rest are gone.
        if status is not None and not group_alive(pid) and not walk():
            return status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = kill_everything(pid, status, walk)
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
    group_only: bool
    stderr_pipe: bool


def read_spec() -> Spec | list[int] | None:
    """The command to run, or None if Perview let go before sending one; or, when Perview's
    first message is a part (see serve_parts), its descriptors: this guard becomes a shared one."""
    lifeline = socket.socket(fileno=LIFELINE)
    try:
        # One byte: a part is one, and nothing after it may be read along with it.
        data, fds, _, _ = socket.recv_fds(lifeline, 1, PART_FDS, socket.MSG_CMSG_CLOEXEC)
    finally:
        lifeline.detach()
    if fds:
        return fds
    while data and not data.endswith(b"\n"):
        part = os.read(LIFELINE, 65536)
        if not part:
            return None
        data += part
    return parse_spec(data) if data else None


def parse_spec(data: bytes) -> Spec:
    raw = json.loads(data)
    argv = [str(a) for a in raw["argv"]]
    group_only = bool(raw.get("group_only", False))
    stderr_pipe = bool(raw.get("stderr_pipe", False))
    return Spec(
        argv,
        raw["env"],
        raw["cwd"],
        float(raw["grace"]),
        bool(raw["stdin_pipe"]),
        group_only,
        stderr_pipe,
    )


def spawn(spec: Spec, stdin: int, errors: int | None, output: int | None = None) -> int:
    """Start the command in a process group of its own (with `output`, in a session of its own:
    a part of a shared guard); `output` (else our own stdout) is its stdout, and its stderr too
    unless `errors` is given.

    A session per part keeps what a guard per part gave: Linux's scheduler shares the CPU
    fairly between sessions (autogroups), so 100 ssh handshakes in one session get one
    session's share of a busy machine. Measured with 20 hosts at a load of 15 on 2 cores: the
    first output from all in 5.5 to 6.9 s in one session, 2.2 to 2.4 s in one each."""
    if spec.env is not None:
        # posix_spawnp searches the PATH of our own environment, so that is the one to replace.
        os.environ.clear()
        os.environ.update(spec.env)
    if spec.cwd:
        try:
            os.chdir(spec.cwd)
        except OSError as exc:
            raise SpawnError(exc, "cwd") from exc
    actions = [(os.POSIX_SPAWN_DUP2, stdin, 0)]
    if output is not None:
        actions.append((os.POSIX_SPAWN_DUP2, output, 1))
    if errors is not None:
        actions.append((os.POSIX_SPAWN_DUP2, errors, 2))
    elif output is not None:
        actions.append((os.POSIX_SPAWN_DUP2, output, 2))
    try:
        return os.posix_spawnp(
            spec.argv[0],
            spec.argv,
            os.environ,
            file_actions=actions,
            **({"setsid": True} if output is not None else {"setpgroup": 0}),
            setsigdef=RESET_SIGNALS,
            setsigmask=(),
        )
    except OSError as exc:
        raise SpawnError(exc, "exec") from exc


class SpawnError(Exception):
    def __init__(self, error: OSError, where: str) -> None:
        super().__init__(f"E{error.errno} {where}: {error.strerror}\n")
        self.permission = isinstance(error, PermissionError)


# -- one guard for many parts -----------------------------------------------------------------

# What a part brings on the shared lifeline: its own lifeline, the write ends of its output and
# stderr pipes, and optionally the read end of its stdin (a pipe Perview writes to).
PART_FDS = 4
# How often a stopping part's group is looked at: from the first pause, doubled up to the last.
FIRST_PAUSE, LAST_PAUSE = 0.0005, 0.05


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
            if self.data.endswith(b"\n"):
                self.start(now)

    def start(self, now: float) -> None:
        self.spec = spec = parse_spec(self.data)
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
            self.say(str(exc).encode())
            self.status = (126 if exc.permission else 127) << 8
            self.phase = "done"
            return
        finally:
            os.environ.clear()
            os.environ.update(environ)
            os.chdir(cwd)
            for fd in {null, stdin, self.output, self.errors}:
                os.close(fd)
            self.stdin = None
        self.say(b"P%d\n" % self.pid)
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
        signal_group(self.pid, signal.SIGTERM)
        signal_group(self.pid, signal.SIGCONT)  # a stopped process only sees SIGTERM once continued
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
        with contextlib.suppress(OSError):  # Perview is gone: nobody to tell
            os.write(self.lifeline, line)

    def close(self) -> None:
        """Tell Perview how the command ended (as `X<exit code>`) and let go of everything."""
        if self.status is not None:
            self.say(b"X%d\n" % os.waitstatus_to_exitcode(self.status))
        for fd in (self.lifeline, self.pidfd, self.hold, self.stdin):
            if fd is not None:
                os.close(fd)
        if self.phase == "spec" or self.spec is None:  # never started: its pipes are still ours
            with contextlib.suppress(OSError):
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
    """The shared guard: parts arrive on LIFELINE (a Unix socket) as one byte carrying PART_FDS
    descriptors (`first`: those of the first part, already read); each part then speaks the
    single guard's protocol on its own lifeline, and hears `X<exit code>` once its group is
    gone. EOF on LIFELINE (Perview let go, or died) or a signal stops every part; the guard
    exits once none is left."""
    become_subreaper()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    main = socket.socket(fileno=LIFELINE)
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)
    stopping: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
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
            message, fds, _, _ = socket.recv_fds(main, 1, PART_FDS, socket.MSG_CMSG_CLOEXEC)
            if message:
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


def main() -> int:
    if sys.argv[1:] == ["--shared"]:
        return serve_parts()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    try:
        spec = read_spec()
    except Stop:
        return 0
    if spec is None:
        return 0  # a spare nobody needed
    errors = int(sys.argv[1]) if len(sys.argv) > 1 else None
    if isinstance(spec, list):
        if errors is not None:
            os.close(errors)
        return serve_parts(spec)
    become_subreaper()
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
        os.write(LIFELINE, str(exc).encode())
        return 126 if exc.permission else 127
    finally:
        if errors is not None:
            os.close(errors)
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
    # Whether the command ended, Perview let go, or we were signalled: nothing the command
    # started may outlive the guard.
    return exit_like(stop_group(pid, pidfd, status, spec.grace, not spec.group_only))


if __name__ == "__main__":
    sys.exit(main())
