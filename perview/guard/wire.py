"""What Perview and a guard say to each other, on the guard's stdin (its lifeline).

Perview sends one JSON line: `{"argv": [...], "env": {...} or null, "cwd": "..." or null,
"grace": seconds, "stdin_pipe": bool, "group_only": bool, "stderr_pipe": bool}`. With
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

Both sides speak it through this module: the guard with `read_first`, `started`, `refused` and
`exited`; Perview (sources/process.py, sources/shared_guard.py) with `spec_line`, `send_part`,
`parse_answer` and `parse_exited`.
"""

from __future__ import annotations

import json
import os
import socket
from typing import NamedTuple

LIFELINE = 0
SHARED = "--shared"  # the argument that starts a shared guard
# What a part brings on the shared lifeline: its own lifeline, the write ends of its output and
# stderr pipes, and optionally the read end of its stdin (a pipe Perview writes to).
PART_FDS = 4
PART = b"p"  # the one byte that carries them


class Spec(NamedTuple):
    argv: list[str]
    env: dict[str, str] | None
    cwd: str | None
    grace: float
    stdin_pipe: bool
    group_only: bool
    stderr_pipe: bool


def read_first() -> Spec | list[int] | None:
    """The command to run, or None if Perview let go before sending one; or, when Perview's
    first message is a part, its descriptors: this guard becomes a shared one."""
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


def read_part(lifeline: socket.socket) -> list[int] | None:
    """The next part's descriptors from the shared lifeline, or None once Perview let go."""
    message, fds, _, _ = socket.recv_fds(lifeline, 1, PART_FDS, socket.MSG_CMSG_CLOEXEC)
    return fds if message else None


def send_part(lifeline: socket.socket, fds: list[int]) -> None:
    """Perview's side: hand a shared guard a part's descriptors (see PART_FDS, in that order)."""
    if not 3 <= len(fds) <= PART_FDS:
        raise ValueError(f"a part brings 3 or {PART_FDS} descriptors, not {len(fds)}")
    socket.send_fds(lifeline, [PART], fds)


def spec_line(spec: Spec) -> bytes:
    """Perview's side: the one line that tells a guard what to run."""
    return json.dumps(spec._asdict()).encode() + b"\n"


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


def started(pid: int) -> bytes:
    return b"P%d\n" % pid


def refused(error: OSError, where: str) -> bytes:
    """The answer when the command could not start: `where` is `cwd` or `exec`."""
    return f"E{error.errno} {where}: {error.strerror}\n".encode()


def exited(code: int) -> bytes:
    """A shared guard's last word on a part: its exit code, negative for a signal."""
    return b"X%d\n" % code


class Refused(NamedTuple):
    """Why a command could not start, as the guard said it (see `refused`)."""

    errno: int
    where: str  # `cwd` or `exec`
    text: str


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
