"""The guard protocol as both sides speak it (perview/guard/wire.py): what Perview writes, the
guard reads as meant, and what the guard answers, Perview reads as meant."""

from __future__ import annotations

import asyncio
import errno
import os
import socket

from perview.guard import wire
from perview.hub import Ended
from perview.sources.process import Lines, ProcessSource
from tests.test_process import Collect

SPEC = wire.Spec(
    argv=["ssh", "host", "tail -F 'a b'"],
    env={"LANG": "C.UTF-8"},
    cwd="/tmp",
    grace=1.5,
    stdin_pipe=True,
    group_only=True,
    stderr_pipe=True,
)


def test_a_spec_perview_writes_is_the_spec_the_guard_reads() -> None:
    message = wire.spec_message(SPEC)
    assert wire.parse_spec(message) == SPEC
    assert wire.parse_spec(message + b"more") == SPEC  # read no further than its length says


def test_a_spec_in_pieces_is_read_only_once_whole() -> None:
    spec = wire.Spec(["sh", "-c", "printf 'a\\nb\\n'\n"], {"K": "é\n"}, None, 0.5)  # newlines
    message = wire.spec_message(spec)
    assert [wire.parse_spec(message[:n]) for n in range(len(message))] == [None] * len(message)
    assert wire.parse_spec(message) == spec


def test_the_guards_answers_read_as_a_pid_or_the_reason_it_refused() -> None:
    assert wire.parse_answer(wire.started(4321).decode().strip()) == 4321
    refusal = wire.refused(FileNotFoundError(errno.ENOENT, "No such file or directory"), "exec")
    assert wire.parse_answer(refusal.decode().strip()) == wire.Refused(
        errno.ENOENT, "exec", "No such file or directory"
    )
    assert wire.parse_answer("") is None


def test_a_parts_exit_code_reads_back_signals_included() -> None:
    for code in (0, 3, -9):
        assert wire.parse_exited(wire.exited(code).decode().strip()) == code
    assert wire.parse_exited("P12") is None


def test_a_parts_descriptors_arrive_in_their_order() -> None:
    ours, theirs = socket.socketpair()
    pipes = [os.pipe() for _ in range(wire.PART_FDS)]
    try:
        wire.send_part(ours, [w for _, w in pipes])
        got = wire.read_part(theirs)
        assert got is not None and len(got) == wire.PART_FDS
        for fd, (r, _) in zip(got, pipes, strict=True):
            os.write(fd, b"x")  # each received end writes into the pipe it was sent for
            assert os.read(r, 1) == b"x"
            os.close(fd)
        ours.close()
        assert wire.read_part(theirs) is None  # Perview let go
    finally:
        theirs.close()
        for r, w in pipes:
            os.close(r)
            os.close(w)


class FakeGuard:
    """A GuardHandle whose far end the test plays, as the guard would."""

    stdin: int | None = None

    def __init__(self) -> None:
        self.lifeline, self.far = socket.socketpair()
        self.lifeline.setblocking(False)
        self.output, self.output_w = os.pipe()
        self.errors, self.errors_w = os.pipe()
        os.set_blocking(self.output, False)
        self.lines = Lines(self.lifeline)

    async def read_line(self) -> str:
        return await self.lines.read_line()

    async def ended(self) -> int | None:
        return 127  # as a guard that could not start its command exits

    async def reap(self, grace: float, pgid: int | None) -> None:
        pass

    def let_go(self) -> None:
        pass

    def close(self) -> None:
        self.lifeline.close()
        os.close(self.output)
        os.close(self.errors)


class OneGuard:
    def __init__(self, guard: FakeGuard) -> None:
        self.guard = guard

    async def take(self, stdin: bool = False) -> FakeGuard:
        return self.guard


async def test_a_command_perview_starts_is_the_spec_the_guard_reads_and_its_refusal_is_said() -> (
    None
):
    guard = FakeGuard()
    source = ProcessSource(
        SPEC.argv,
        env=SPEC.env,
        cwd=SPEC.cwd,
        grace=SPEC.grace,
        guards=OneGuard(guard),
        stdin_pipe=True,
        group_only=True,
        stderr=lambda data: None,
    )
    run = asyncio.create_task(source.run(Collect(), asyncio.Event()))
    with guard.far.makefile("rb") as far:
        header = await asyncio.wait_for(asyncio.to_thread(far.readline), 5)
        body = await asyncio.wait_for(asyncio.to_thread(far.read, int(header)), 5)
    assert wire.parse_spec(header + body) == SPEC
    guard.far.sendall(wire.refused(FileNotFoundError(errno.ENOENT, "No such file"), "exec"))
    guard.far.close()
    for fd in (guard.output_w, guard.errors_w):
        os.close(fd)
    ended = await asyncio.wait_for(run, 5)
    assert ended == Ended(reason="ssh: command not found")
