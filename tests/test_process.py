"""Commands run behind the guard: output, exit status, start failures, and nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Awaitable
from pathlib import Path

import psutil
import pytest

from perview.guard import wire
from perview.hub import Ended
from perview.sources.process import GRACE, GUARD, Guard, GuardPool, ProcessSource, start_guard
from tests.conftest import eventually, marked_processes, wait_until


class Collect:
    """An Output that keeps everything."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.pid: int | None = None
        self.got_data = asyncio.Event()

    async def write(self, data: bytes, part: str | None = None) -> None:
        self.data += data
        self.got_data.set()

    def started(self, pid: int | None) -> None:
        self.pid = pid

    def waiting(self, reason: str) -> None:
        pass


def marked_env() -> tuple[str, dict[str, str]]:
    mark = uuid.uuid4().hex
    return mark, {**os.environ, "PERVIEW_TEST_MARK": mark}


async def run(argv: list[str], **kwargs: object) -> tuple[Ended, bytes]:
    out = Collect()
    ended = await asyncio.wait_for(ProcessSource(argv, **kwargs).run(out, asyncio.Event()), 10)  # type: ignore[arg-type]
    return ended, bytes(out.data)


async def test_output_and_exit_status() -> None:
    ended, data = await run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert ended == Ended(3)
    assert sorted(data.splitlines()) == [b"err", b"out"]


async def test_every_byte_arrives_before_the_end_is_reported() -> None:
    ended, data = await run(["sh", "-c", "seq 1 200000; printf tail"])
    assert ended.status == 0
    assert data.endswith(b"199999\n200000\ntail")
    assert data.count(b"\n") == 200000


async def test_killed_by_signal_reports_negative_status() -> None:
    ended, _ = await run(["sh", "-c", "kill -9 $$"])
    assert ended.status == -signal.SIGKILL


async def test_command_not_found_is_a_clear_reason() -> None:
    ended, _ = await run(["perview-no-such-command", "x"])
    assert ended == Ended(None, "perview-no-such-command: command not found")


async def test_command_not_executable_is_a_clear_reason(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")  # not executable
    ended, _ = await run([str(script)])
    assert ended.status is None
    assert ended.reason == f"{script}: Permission denied"


async def test_missing_working_directory_is_a_clear_reason() -> None:
    ended, _ = await run(["true"], cwd="/nonexistent/perview")
    assert ended.status is None
    assert ended.reason is not None and "/nonexistent/perview" in ended.reason


async def test_stdin_is_not_inherited() -> None:
    ended, data = await run(["sh", "-c", "cat; echo done"])
    assert (ended.status, data) == (0, b"done\n")


async def test_sigpipe_is_back_at_its_default_for_the_command() -> None:
    ended, data = await run(["sh", "-c", "yes | head -n 2"])
    assert (ended.status, data) == (0, b"y\ny\n")


async def test_stop_kills_the_whole_group_quickly() -> None:
    mark, env = marked_env()
    out = Collect()
    stop = asyncio.Event()
    source = ProcessSource(["sh", "-c", "sleep 300 & sleep 301 & echo up; wait"], env=env)
    task = asyncio.create_task(source.run(out, stop))
    await asyncio.wait_for(out.got_data.wait(), 5)
    assert len(marked_processes(mark)) >= 3  # sh, two sleeps (the guard gets env by message)
    stop.set()
    ended = await asyncio.wait_for(task, 5)
    assert ended.status == -signal.SIGTERM
    assert marked_processes(mark) == []


async def test_children_that_ignore_sigterm_are_killed_after_the_grace() -> None:
    mark, env = marked_env()
    out = Collect()
    stop = asyncio.Event()
    script = "trap '' TERM; sh -c \"trap '' TERM; sleep 300\" & echo up; wait"
    source = ProcessSource(["sh", "-c", script], env=env, grace=0.3)
    task = asyncio.create_task(source.run(out, stop))
    await asyncio.wait_for(out.got_data.wait(), 5)
    stop.set()
    ended = await asyncio.wait_for(task, 5)
    assert ended.status == -signal.SIGKILL
    assert marked_processes(mark) == []


async def test_leftover_background_processes_die_when_the_command_exits() -> None:
    mark, env = marked_env()
    ended, data = await run(["sh", "-c", "sleep 300 & echo bye"], env=env)
    assert (ended.status, data) == (0, b"bye\n")
    assert marked_processes(mark) == []


def sigkill_parent_of(argv: list[str], processes: int) -> None:
    """Run `argv` from a Python parent through ProcessSource, SIGKILL that parent once the
    command's first output came (and `processes` marked processes run), and check that every
    one of them is gone within a second: the guard notices its lifeline closing."""
    mark, env = marked_env()
    program = textwrap.dedent(
        f"""
        import asyncio, sys
        from perview.sources.process import ProcessSource

        class Out:
            async def write(self, data):
                print("output", flush=True)
            def started(self, pid):
                pass

        asyncio.run(ProcessSource({argv!r}).run(Out(), asyncio.Event()))
        """
    )
    sigkill_parent_running(program, mark, env, processes)


def sigkill_parent_running(
    program: str, mark: str, env: dict[str, str], processes: int, outputs: int = 1
) -> None:
    """Run the Python `program`, SIGKILL it once it has printed `outputs` lines "output" and
    `processes` processes carry `mark`, and check that every one of them is gone within a
    second."""
    with subprocess.Popen(
        [sys.executable, "-c", program], env=env, stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            for _ in range(outputs):
                assert parent.stdout.readline() == "output\n"
            wait_until(lambda: len(marked_processes(mark)) >= processes, timeout=5)
            parent.kill()
            parent.wait()
            took = wait_until(lambda: not marked_processes(mark), timeout=3)
            assert took < 1.0
        finally:
            parent.kill()


def test_sigkilled_parent_leaves_nothing_behind() -> None:
    # parent, guard, sh, two sleeps
    sigkill_parent_of(["sh", "-c", "sleep 300 & sleep 301 & echo up; wait"], processes=5)


# Children that leave the command's process group: `setsid` makes a new session, and a Python
# child calls setpgid or setsid itself. Each stays a descendant of the guard (a subreaper), so
# each must die with it.
LEAVERS = {
    "setsid": ["sh", "-c", "setsid sleep 300 & echo up; sleep 301"],
    "setpgid": [
        sys.executable,
        "-c",
        "import os, subprocess, sys\n"
        "subprocess.Popen(['sleep', '300'], process_group=0)\n"
        "print('up', flush=True)\n"
        "os.execvp('sleep', ['sleep', '301'])",
    ],
    "python setsid": [
        sys.executable,
        "-c",
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    os.execvp('sleep', ['sleep', '300'])\n"
        "print('up', flush=True)\n"
        "os.execvp('sleep', ['sleep', '301'])",
    ],
}


def left_the_group(mark: str, pgid: int) -> list[int]:
    """Marked processes outside the command's group (so the test proves what it claims)."""
    return [p.pid for p in marked_processes(mark) if os.getpgid(p.pid) != pgid]


@pytest.mark.parametrize("argv", LEAVERS.values(), ids=LEAVERS.keys())
async def test_children_that_leave_the_group_die_when_stopped(argv: list[str]) -> None:
    mark, env = marked_env()
    out = Collect()
    stop = asyncio.Event()
    task = asyncio.create_task(ProcessSource(argv, env=env).run(out, stop))
    await asyncio.wait_for(out.got_data.wait(), 5)
    assert out.pid is not None
    await eventually(lambda: left_the_group(mark, out.pid or 0), within=5)
    stop.set()
    await asyncio.wait_for(task, 5)  # the output ends: nothing holds the pipe any more
    assert marked_processes(mark) == []


async def test_children_that_leave_the_group_die_when_the_command_exits() -> None:
    mark, env = marked_env()
    ended, data = await run(["sh", "-c", "setsid sleep 300 & echo bye"], env=env)
    assert (ended.status, data) == (0, b"bye\n")
    assert marked_processes(mark) == []


async def test_a_child_that_forks_while_being_stopped_is_caught() -> None:
    """A new session that keeps forking (each child in a session of its own) is still stopped:
    the guard walks its descendants again until none is left."""
    mark, env = marked_env()
    out = Collect()
    stop = asyncio.Event()
    spawner = "trap '' TERM; for i in $(seq 500); do setsid sleep 30 & sleep 0.01; done"  # bounded
    argv = ["sh", "-c", f"setsid sh -c {shlex.quote(spawner)} & echo up; sleep 301"]
    task = asyncio.create_task(ProcessSource(argv, env=env, grace=0.3).run(out, stop))
    await asyncio.wait_for(out.got_data.wait(), 5)
    await eventually(lambda: len(marked_processes(mark)) >= 6, within=5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert marked_processes(mark) == []


def test_sigkilled_parent_leaves_no_child_that_left_the_group() -> None:
    sigkill_parent_of(["sh", "-c", "setsid sleep 300 & echo up; sleep 301"], processes=5)


# -- cancellation: a caller cancelled while a guard starts for it ------------------------------
# Alert channels, metric collectors and a multi-host source's TaskGroup cancel a run that may
# still be taking its guard. Each test cancels after every number of loop turns up to TURNS, so
# every await on the way (the spare, an interpreter starting, the first words to the guard)
# is hit, including the turn where what was awaited is done but its awaiter not yet resumed.
TURNS = 12


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def guards_running() -> list[psutil.Process]:
    """The guard processes below this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if str(GUARD) in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


async def cancel_after(turns: int, work: Awaitable[object]) -> object:
    """Run `work` as a task, cancel it after `turns` turns of the loop; what it returned if it
    finished first (None if it was cancelled)."""
    task = asyncio.ensure_future(work)
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


async def left_nothing(fds: int) -> None:
    await eventually(lambda: open_fds() <= fds and not guards_running(), within=5)


@pytest.mark.parametrize("warm", [True, False], ids=["spare", "no spare"])
@pytest.mark.parametrize("turns", range(TURNS))
async def test_a_taker_cancelled_at_any_turn_loses_no_guard(warm: bool, turns: int) -> None:
    fds = open_fds()
    pool = GuardPool()
    if warm:
        pool.warm()
    guard = await cancel_after(turns, pool.take())
    if isinstance(guard, Guard):
        await guard.discard()
    await pool.close()
    await left_nothing(fds)


@pytest.mark.parametrize("pooled", [True, False], ids=["pool", "no pool"])
@pytest.mark.parametrize("turns", range(TURNS))
async def test_a_run_cancelled_at_any_turn_leaves_no_process_and_no_descriptor(
    pooled: bool, turns: int
) -> None:
    mark, env = marked_env()
    fds = open_fds()
    pool = GuardPool()
    if pooled:
        pool.warm()
    source = ProcessSource(["sleep", "300"], env=env, guards=pool if pooled else None)
    await cancel_after(turns, source.run(Collect(), asyncio.Event()))
    await pool.close()
    await left_nothing(fds)
    assert marked_processes(mark) == []


async def test_a_run_cancelled_while_its_command_runs_leaves_nothing() -> None:
    mark, env = marked_env()
    fds = open_fds()
    pool = GuardPool()
    pool.warm()
    out = Collect()
    source = ProcessSource(["sh", "-c", "echo up; exec sleep 300"], env=env, guards=pool)
    run = asyncio.create_task(source.run(out, asyncio.Event()))
    await asyncio.wait_for(out.got_data.wait(), 5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert marked_processes(mark) == []
    await pool.close()
    await left_nothing(fds)


async def test_a_guard_let_go_before_it_answers_still_stops_its_command() -> None:
    """Perview closing the lifeline right after the spec (its run cancelled) must not make the
    guard die of writing its answer to nobody, leaving the command running."""
    mark, env = marked_env()
    guard = await start_guard()
    spec = wire.Spec(["sleep", "300"], env, None, GRACE, False, False, False)
    guard.lifeline.sendall(wire.spec_message(spec))
    guard.close()
    assert await asyncio.wait_for(guard.proc.wait(), 5) is not None
    assert marked_processes(mark) == []


def test_the_guard_starts_without_the_standard_librarys_heavier_modules() -> None:
    """Each is milliseconds of every guard's start-up (see perview/guard/builtin.py), on the
    critical path of a command that finds no spare ready."""
    heavy = {"collections", "contextlib", "enum", "json", "re", "selectors", "signal", "socket"}
    heavy |= {"typing"}
    program = (
        f"import sys; sys.path.append({str(GUARD.parents[2])!r}); import perview.guard; "
        "print(' '.join(sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-I", "-S", "-c", program], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "perview.guard.single" in loaded
    assert heavy.isdisjoint(loaded)


@pytest.mark.parametrize("turns", range(TURNS))
async def test_a_run_cancelled_again_while_it_cleans_up_leaves_nothing(turns: int) -> None:
    # Shutdown cancels every task, and may cancel one that is already cleaning up after a first
    # cancellation: its stderr relay being awaited, its guard being reaped.
    mark, env = marked_env()
    fds = open_fds()
    pool = GuardPool()
    pool.warm()
    out = Collect()
    source = ProcessSource(
        ["sh", "-c", "echo up; echo err >&2; exec sleep 300"],
        env=env,
        guards=pool,
        stderr=lambda data: None,
    )
    run = asyncio.create_task(source.run(out, asyncio.Event()))
    await asyncio.wait_for(out.got_data.wait(), 5)
    run.cancel()
    for _ in range(turns):
        await asyncio.sleep(0)
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    await pool.close()
    await left_nothing(fds)
    await eventually(lambda: marked_processes(mark) == [], within=5)
