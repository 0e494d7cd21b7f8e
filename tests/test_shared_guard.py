"""Many commands behind one shared guard process (the parts of a multi-host source): each still
streams, ends and is stopped on its own, and nothing is left behind, even by a SIGKILLed parent."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from perview.hub import Ended
from perview.sources.process import GuardPool, ProcessSource
from perview.sources.shared_guard import SharedGuard
from perview.sources.ssh import SshSource
from tests.conftest import eventually, marked_processes
from tests.sshd import Sshd
from tests.test_process import (
    TURNS,
    Collect,
    cancel_after,
    guards_running,
    left_nothing,
    marked_env,
    open_fds,
    sigkill_parent_running,
)

PARTS = 5


def part(argv: list[str], guards: SharedGuard, **kwargs: object) -> ProcessSource:
    return ProcessSource(argv, guards=guards, group_only=True, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("spare", [False, True], ids=["started", "the pool's spare"])
async def test_parts_stream_and_end_each_with_its_status_through_one_guard_process(
    spare: bool,
) -> None:
    pool = GuardPool()
    if spare:
        pool.warm()
    guards = SharedGuard(pool if spare else None)
    outs = [Collect() for _ in range(PARTS)]
    script = "echo part {n}; sleep 0.5; exit {n}"
    sources = [part(["sh", "-c", script.format(n=n)], guards) for n in range(PARTS)]
    runs = [
        asyncio.create_task(source.run(out, asyncio.Event()))
        for source, out in zip(sources, outs, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(out.got_data.wait() for out in outs)), 10)
    assert len(guards_running()) == 1  # one guard, however many parts
    ended = await asyncio.wait_for(asyncio.gather(*runs), 10)
    assert ended == [Ended(n) for n in range(PARTS)]
    assert [bytes(out.data) for out in outs] == [b"part %d\n" % n for n in range(PARTS)]
    await pool.close()
    await eventually(lambda: not guards_running(), within=3)  # it leaves with the last part


async def test_stopping_one_part_takes_its_whole_group_and_leaves_the_others_running() -> None:
    guards = SharedGuard()
    marks = [marked_env() for _ in range(2)]
    outs = [Collect() for _ in marks]
    stops = [asyncio.Event() for _ in marks]
    script = "sleep 300 & sleep 301 & while :; do echo up; sleep 0.05; done"
    runs = [
        asyncio.create_task(part(["sh", "-c", script], guards, env=env).run(out, stop))
        for (_, env), out, stop in zip(marks, outs, stops, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(out.got_data.wait() for out in outs)), 10)
    await eventually(lambda: all(len(marked_processes(m)) >= 3 for m, _ in marks), within=5)
    stops[0].set()
    ended = await asyncio.wait_for(runs[0], 5)
    assert ended.status == -signal.SIGTERM
    assert marked_processes(marks[0][0]) == []
    seen = len(outs[1].data)
    await eventually(lambda: len(outs[1].data) > seen, within=5)  # the other part goes on
    assert len(marked_processes(marks[1][0])) >= 3
    stops[1].set()
    await asyncio.wait_for(runs[1], 5)
    assert marked_processes(marks[1][0]) == []
    await eventually(lambda: not guards_running(), within=3)


async def test_a_part_that_cannot_start_says_why_and_the_others_run() -> None:
    guards = SharedGuard()
    out, missing = Collect(), Collect()
    good = asyncio.create_task(part(["sh", "-c", "echo fine"], guards).run(out, asyncio.Event()))
    bad = part(["perview-no-such-command"], guards).run(missing, asyncio.Event())
    assert await asyncio.wait_for(bad, 5) == Ended(
        None, "perview-no-such-command: command not found"
    )
    assert await asyncio.wait_for(good, 5) == Ended(0)
    assert bytes(out.data) == b"fine\n"


async def test_a_parts_stderr_apart_goes_to_its_own_reader() -> None:
    guards = SharedGuard()
    said: list[bytes] = []
    outs = [Collect(), Collect()]
    runs = [
        part(["sh", "-c", "echo out; echo err >&2"], guards, stderr=said.append).run(
            outs[0], asyncio.Event()
        ),
        part(["sh", "-c", "echo other; echo mixed >&2"], guards).run(outs[1], asyncio.Event()),
    ]
    assert await asyncio.wait_for(asyncio.gather(*runs), 5) == [Ended(0), Ended(0)]
    assert (bytes(outs[0].data), b"".join(said)) == (b"out\n", b"err\n")
    assert sorted(bytes(outs[1].data).splitlines()) == [b"mixed", b"other"]


async def test_a_ticked_part_reads_a_newline_each_tick_and_its_stdin_ends_on_stop() -> None:
    guards = SharedGuard()
    out, stop = Collect(), asyncio.Event()
    script = "while read -r _; do echo tick; done; echo eof; sleep 300"
    run = asyncio.create_task(part(["sh", "-c", script], guards, tick=0.05).run(out, stop))
    await eventually(lambda: out.data.count(b"tick") >= 3, within=5)
    stop.set()
    ended = await asyncio.wait_for(run, 5)
    assert out.data.endswith(b"eof\n")  # the EOF came first, then the group was stopped
    assert ended.status == -signal.SIGTERM


async def together(sources: list[ProcessSource]) -> None:
    """Run `sources` as a multi-host source does: in a TaskGroup, which (unlike gather) waits
    for every run to end when it is cancelled."""
    async with asyncio.TaskGroup() as group:
        for source in sources:
            group.create_task(source.run(Collect(), asyncio.Event()))


@pytest.mark.parametrize("spare", [False, True], ids=["started", "the pool's spare"])
@pytest.mark.parametrize("turns", range(TURNS))
async def test_parts_cancelled_at_any_turn_leave_no_process_and_no_descriptor(
    spare: bool, turns: int
) -> None:
    """Parts started together (a TaskGroup, as a multi-host source runs them) and cancelled
    while the shared guard starts, while it takes their pipes, or once they run."""
    mark, env = marked_env()
    fds = open_fds()
    pool = GuardPool()
    if spare:
        pool.warm()
    guards = SharedGuard(pool if spare else None)
    await cancel_after(turns, together([part(["sleep", "300"], guards, env=env) for _ in "abc"]))
    await pool.close()
    await left_nothing(fds)
    assert marked_processes(mark) == []


def test_sigkilled_parent_leaves_no_part_and_no_guard_behind() -> None:
    mark, env = marked_env()
    program = textwrap.dedent(
        f"""
        import asyncio
        from perview.sources.process import ProcessSource
        from perview.sources.shared_guard import SharedGuard

        class Out:
            def __init__(self):
                self.said = False
            async def write(self, data):
                if not self.said:
                    self.said = True
                    print("output", flush=True)
            def started(self, pid):
                pass

        async def main():
            guards = SharedGuard()
            argv = ["sh", "-c", "sleep 300 & echo up; sleep 301"]
            sources = [ProcessSource(argv, guards=guards, group_only=True) for _ in range({PARTS})]
            await asyncio.gather(*(s.run(Out(), asyncio.Event()) for s in sources))

        asyncio.run(main())
        """
    )
    # the parent, one guard, and a shell and two sleeps per part
    sigkill_parent_running(program, mark, env, processes=2 + 3 * PARTS, outputs=PARTS)


async def test_parts_on_several_hosts_keep_a_control_master_the_user_made_persistent(
    sshd: Sshd,
) -> None:
    """The master ssh detaches (ControlPersist) is reparented to the shared guard, a subreaper,
    while it runs: it must outlive the parts and the guard all the same."""
    control = Path(tempfile.mkdtemp(prefix="pv-cm-")) / "cm-%n"  # a socket path must be short
    options = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}"]
    ssh_args = ["-F", str(sshd.config), *options, "-o", "ControlPersist=60"]
    aliases = [sshd.alias(n) for n in (1, 2, 3)]

    def master(command: str, alias: str) -> int:
        argv = ["ssh", "-F", str(sshd.config), *options, "-O", command, alias]
        return subprocess.run(argv, capture_output=True, timeout=10).returncode

    guards = SharedGuard()
    try:
        outs = [Collect() for _ in aliases]
        sources = [SshSource(a, "echo hi", ssh_args=ssh_args, guards=guards) for a in aliases]
        runs = [s.run(out, asyncio.Event()) for s, out in zip(sources, outs, strict=True)]
        assert await asyncio.wait_for(asyncio.gather(*runs), 15) == [Ended(0)] * len(aliases)
        assert [bytes(out.data) for out in outs] == [b"hi\n"] * len(aliases)
        await eventually(lambda: not guards_running(), within=3)
        assert [master("check", alias) for alias in aliases] == [0] * len(aliases)
    finally:
        for alias in aliases:
            master("exit", alias)
        shutil.rmtree(control.parent, ignore_errors=True)
