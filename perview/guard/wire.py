"""What Perview and a guard say to each other, on the guard's stdin (its lifeline).

Perview sends the spec: its length in bytes as a decimal line, then the fields of `Spec` (argv,
env or None, cwd or None, grace in seconds, stdin_pipe, group_only, stderr_pipe) as a tuple in
`marshal`'s format (built in, where `json` would bring `re` into every guard's start-up: 6 ms
here; both ends are the same interpreter, and only Perview writes on the lifeline). With
`stdin_pipe` the command's stdin is a pipe the guard holds open and closes first when stopping:
an `ssh` passes that EOF on, and the far side stops its command. With `group_only` (optional,
false by default) only the group is stopped: for an `ssh`, whose only child outside it is a
`ControlPersist` master that the user's ssh config means to outlive the connection.
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

A shared guard's lifeline is a Unix socket on which each part comes as one byte carrying
PART_FDS descriptors (SCM_RIGHTS): a spare whose first message is a part rather than a spec
becomes one (or `_guard.py --shared` starts one). On its own lifeline a part then speaks the
protocol above, and hears `X<exit code>` (negative: the signal) once its group is gone, since
the guard does not exit with it.

Both sides speak it through this module: the guard with `read_first`, `parse_spec`, `started`,
`refused` and `exited`; Perview (sources/process.py, sources/shared_guard.py) with
`spec_message`, `send_part`, `parse_answer` and `parse_exited`. It imports only what is built
in (see builtin.py): the guard's start-up is on a command's critical path.
"""

from __future__ import annotations

import marshal
import os

from perview.guard.builtin import socket

LIFELINE = 0
SHARED = "--shared"  # the argument that starts a shared guard
# What a part brings on the shared lifeline: its own lifeline, the write ends of its output and
# stderr pipes, and optionally the read end of its stdin (a pipe Perview writes to).
PART_FDS = 4
PART = b"p"  # the one byte that carries them


class Record:
    """Fields compared as a tuple's are, as NamedTuple gives, which would bring `typing` (7 ms
    of every guard's start-up here)."""

    __slots__: tuple[str, ...] = ()

    def fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(self.fields())

    def __repr__(self) -> str:
        pairs = ", ".join(f"{n}={v!r}" for n, v in zip(self.__slots__, self.fields(), strict=True))
        return f"{type(self).__name__}({pairs})"


class Spec(Record):
    """What a guard runs, and how (see above)."""

    # In the order of the constructor and of the wire.
    __slots__ = ("argv", "env", "cwd", "grace", "stdin_pipe", "group_only", "stderr_pipe")  # noqa: RUF023

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str] | None,
        cwd: str | None,
        grace: float,
        stdin_pipe: bool = False,
        group_only: bool = False,
        stderr_pipe: bool = False,
    ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.grace = grace
        self.stdin_pipe = stdin_pipe
        self.group_only = group_only
        self.stderr_pipe = stderr_pipe


def read_first() -> Spec | list[int] | None:
    """The command to run, or None if Perview let go before sending one; or, when Perview's
    first message is a part, its descriptors: this guard becomes a shared one."""
    lifeline = socket.socket(fileno=LIFELINE)
    try:
        # One byte: a part is one, and nothing after it may be read along with it.
        data, fds = _recv_fds(lifeline)
    finally:
        lifeline.detach()
    if fds:
        return fds
    while data:
        spec = parse_spec(data)
        if spec is not None:
            return spec
        part = os.read(LIFELINE, 65536)
        if not part:
            return None
        data += part
    return None


def _recv_fds(lifeline: socket.socket) -> tuple[bytes, list[int]]:
    """One byte and the descriptors it carries (socket.recv_fds, which the guard does without:
    see builtin.py)."""
    size = socket.CMSG_LEN(PART_FDS * 4)  # C ints
    data, ancillary, _, _ = lifeline.recvmsg(1, size, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            whole = len(payload) - len(payload) % 4
            fds += memoryview(payload)[:whole].cast("i").tolist()
    return data, fds


def read_part(lifeline: socket.socket) -> list[int] | None:
    """The next part's descriptors from the shared lifeline, or None once Perview let go."""
    message, fds = _recv_fds(lifeline)
    return fds if message else None


def send_part(lifeline: socket.socket, fds: list[int]) -> None:
    """Perview's side: hand a shared guard a part's descriptors (see PART_FDS, in that order)."""
    import socket as full  # Perview's side: already imported there, so free

    if not 3 <= len(fds) <= PART_FDS:
        raise ValueError(f"a part brings 3 or {PART_FDS} descriptors, not {len(fds)}")
    full.send_fds(lifeline, [PART], fds)


def spec_message(spec: Spec) -> bytes:
    """Perview's side: what tells a guard what to run."""
    flags = (spec.stdin_pipe, spec.group_only, spec.stderr_pipe)
    body = marshal.dumps((spec.argv, spec.env, spec.cwd, spec.grace, *flags))
    return b"%d\n" % len(body) + body


def parse_spec(data: bytes) -> Spec | None:
    """The spec `data` holds, or None while it holds only a first part of one."""
    header, newline, body = data.partition(b"\n")
    if not newline or len(body) < int(header):
        return None
    argv, env, cwd, grace, stdin_pipe, group_only, stderr_pipe = marshal.loads(body)
    return Spec(argv, env, cwd, float(grace), stdin_pipe, group_only, stderr_pipe)


def started(pid: int) -> bytes:
    return b"P%d\n" % pid


def refused(error: OSError, where: str) -> bytes:
    """The answer when the command could not start: `where` is `cwd` or `exec`."""
    return f"E{error.errno} {where}: {error.strerror}\n".encode()


def exited(code: int) -> bytes:
    """A shared guard's last word on a part: its exit code, negative for a signal."""
    return b"X%d\n" % code


class Refused(Record):
    """Why a command could not start, as the guard said it (see `refused`)."""

    __slots__ = ("errno", "where", "text")  # noqa: RUF023  (the constructor's order)

    def __init__(self, errno: int, where: str, text: str) -> None:
        self.errno = errno
        self.where = where  # `cwd` or `exec`
        self.text = text


def parse_answer(line: str) -> int | Refused | None:
    """Perview's side: the guard's answer to a spec (one line, without its newline): the
    command's pid, why it could not start, or None if the guard ended without saying."""
    if line.startswith("P") and line[1:].isdecimal():
        return int(line[1:])
    if line.startswith("E"):
        code, _, rest = line[1:].partition(" ")
        where, _, text = rest.partition(": ")
        return Refused(int(code) if code.isdecimal() else 0, where, text)
    return None


def parse_exited(line: str) -> int | None:
    """Perview's side: a shared guard's exit code for a part from its `X` line, None for any
    other line."""
    if line.startswith("X") and line[1:].lstrip("-").isdecimal():
        return int(line[1:])
    return None
