"""Faults a viewer must come through (issue 6), with nothing lost that the ring still holds.

Followed files deleted, replaced by a directory, made unreadable, or filling their disk; commands
that ignore SIGTERM (their children too), flood stderr, or exit before their first byte. Each test
breaks something for real, checks what the viewer is told, repairs it, and checks that following
carries on with no line lost or repeated.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from perview.metrics.history import History
from perview.sources import files
from perview.sources.process import GRACE
from tests.conftest import TOKEN, Server, eventually, small_tmpfs
from tests.test_files import WITHIN, Collect, append, following, numbered, write
from tests.test_live import api_sources, sse_events

Serve = Callable[..., Server]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# -- a followed file deleted, or replaced by a directory ----------------------------------------


async def test_a_deleted_file_is_waited_for_then_its_successor_is_read_from_its_first_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "DELETED_IDLE", 0.1)  # instead of a minute
    log = tmp_path / "app.log"
    write(log, numbered(1, 3))
    async with following(log, poll_interval=0.05) as out:
        await eventually(lambda: out.text() == numbered(1, 3).encode(), WITHIN)
        log.unlink()
        reason = f"waiting for {log} to appear"
        await eventually(lambda: out.state == reason, WITHIN)
        write(log, numbered(4, 6))
        await eventually(lambda: out.text() == numbered(1, 6).encode(), WITHIN)
    assert out.states == ["running", reason, "running"]


async def test_a_file_replaced_by_a_directory_says_so_and_resumes_when_a_file_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "DELETED_IDLE", 0.1)
    log = tmp_path / "app.log"
    write(log, numbered(1, 3))
    async with following(log, poll_interval=0.05) as out:
        await eventually(lambda: out.text() == numbered(1, 3).encode(), WITHIN)
        log.unlink()
        log.mkdir()
        reason = f"{log} is a directory"
        await eventually(lambda: out.state == reason, WITHIN)
        log.rmdir()
        write(log, numbered(4, 6))
        await eventually(lambda: out.text() == numbered(1, 6).encode(), WITHIN)
    # "waiting for it to appear" may come between, if a poll fell between unlink and mkdir.
    assert out.states[0] == "running"
    assert out.states[-2:] == [reason, "running"]


# -- a followed file made unreadable -------------------------------------------------------------
# Root reads whatever the mode says, so these run the FileSource in a process that has given up
# root for good (setuid to `nobody`): the kernel then checks permissions as for any user.

NOBODY = 65534

# Reports what a FileSource tells it, one JSON object a line; closing its stdin stops it. It
# imports everything while still root (the interpreter lives under /root, which nobody cannot
# read), including what asyncio only imports when first used (the thread pool closing inotify).
AS_NOBODY = """
import asyncio, concurrent.futures.thread, json, os, sys
from perview.sources.files import FileSource

path, uid = sys.argv[1], int(sys.argv[2])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)

def emit(**event):
    print(json.dumps(event), flush=True)

class Out:
    async def write(self, data, part=None):
        emit(data=data.decode("latin-1"))
    def started(self, pid):
        emit(state="running")
    def waiting(self, reason):
        emit(state=reason)
    def end_line(self, part=None):
        emit(end_line=True)

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(0, stop.set)
    emit(uid=os.getuid(), euid=os.geteuid())
    await FileSource(path, poll_interval=0.05).run(Out(), stop)

asyncio.run(main())
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can reach (pytest's tmp_path is under a directory only root can)."""
    path = Path(tempfile.mkdtemp(prefix="perview-faults-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@asynccontextmanager
async def following_as_nobody(path: Path) -> AsyncIterator[Collect]:
    """`following`, but with the FileSource in a process running as `nobody`."""
    out = Collect()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        AS_NOBODY,
        str(path),
        str(NOBODY),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdout = proc.stdout

    async def relay() -> None:
        async for line in stdout:
            event = json.loads(line)
            if "data" in event:
                await out.write(event["data"].encode("latin-1"))
            elif "end_line" in event:
                out.end_line()
            elif event["state"] == "running":
                out.started(None)
            else:
                out.waiting(event["state"])

    task: asyncio.Task[None] | None = None
    try:
        identity = json.loads(await asyncio.wait_for(stdout.readline(), WITHIN))
        assert identity == {"uid": NOBODY, "euid": NOBODY}
        task = asyncio.create_task(relay())
        yield out
    finally:
        proc.stdin.close()
        try:
            status = await asyncio.wait_for(proc.wait(), WITHIN)
            if task is not None:
                await asyncio.wait_for(task, WITHIN)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if task is not None:
                task.cancel()
    assert status == 0


def create_unreadable(path: Path, text: str) -> None:
    """Create `path` with mode 000 from the start, so no one but root ever reads it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o000)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


async def test_an_unreadable_file_says_permission_denied_until_it_is_readable(
    shared_dir: Path,
) -> None:
    log = shared_dir / "app.log"
    create_unreadable(log, numbered(1, 3))
    async with following_as_nobody(log) as out:
        reason = f"cannot read {log}: Permission denied"
        await eventually(lambda: out.state == reason, WITHIN)
        log.chmod(0o644)
        await eventually(lambda: out.text() == numbered(1, 3).encode(), WITHIN)
        append(log, numbered(4, 5))
        await eventually(lambda: out.text() == numbered(1, 5).encode(), WITHIN)
    assert out.states == [reason, "running"]


async def test_a_file_made_unreadable_loses_nothing_and_an_unreadable_successor_says_why(
    shared_dir: Path,
) -> None:
    log = shared_dir / "app.log"
    write(log, numbered(1, 2))
    async with following_as_nobody(log) as out:
        await eventually(lambda: out.text() == numbered(1, 2).encode(), WITHIN)
        log.chmod(0o000)  # permission is checked at open: the open descriptor still reads
        append(log, numbered(3, 4))
        await eventually(lambda: out.text() == numbered(1, 4).encode(), WITHIN)
        # Rotated, and the new file is one this user may not read (logrotate's `create 0600`).
        log.rename(shared_dir / "app.log.1")
        append(shared_dir / "app.log.1", numbered(5, 5))  # the writer's last line there
        create_unreadable(log, numbered(6, 7))
        reason = f"cannot read {log}: Permission denied"
        await eventually(lambda: out.state == reason, WITHIN)
        assert out.text() == numbered(1, 5).encode()  # the old file was read to its end first
        log.chmod(0o644)
        await eventually(lambda: out.text() == numbered(1, 7).encode(), WITHIN)
    assert out.states == ["running", reason, "running"]


async def test_a_directory_made_unsearchable_neither_stops_nor_repeats_the_stream(
    shared_dir: Path,
) -> None:
    logs = shared_dir / "logs"
    logs.mkdir()
    logs.chmod(0o755)
    log = logs / "app.log"
    write(log, numbered(1, 2))
    async with following_as_nobody(log) as out:
        await eventually(lambda: out.text() == numbered(1, 2).encode(), WITHIN)
        logs.chmod(0o700)  # root's: nobody can no longer look the name up (EACCES)
        append(log, numbered(3, 4))
        # Read through the open descriptor, although the name cannot be checked for a rotation.
        await eventually(lambda: out.text() == numbered(1, 4).encode(), WITHIN)
        logs.chmod(0o755)
        append(log, numbered(5, 6))
        await eventually(lambda: out.text() == numbered(1, 6).encode(), WITHIN)
    assert out.states == ["running"]


# -- a followed file on a full disk ---------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "256k") as mount:
        yield mount


class Logger:
    """Appends numbered lines; what a full disk refuses is kept and written once there is room."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.next = 1
        self.pending = b""

    def write(self, lines: int) -> bool:
        """Write `lines` more lines; False if the disk filled up first."""
        for _ in range(lines):
            self.pending += b"line %06d %s\n" % (self.next, b"x" * 80)
            self.next += 1
            if not self.flush():
                return False
        return True

    def flush(self) -> bool:
        while self.pending:
            try:
                written = os.write(self.fd, self.pending)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return False
            self.pending = self.pending[written:]
        return True

    def close(self) -> None:
        os.close(self.fd)


class Received:
    """What one SSE viewer of a source has been sent: its lines and its states."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.states: list[dict[str, object]] = []

    @property
    def state(self) -> object:
        return self.states[-1]["state"] if self.states else None


@asynccontextmanager
async def watching(server: Server, source: str) -> AsyncIterator[Received]:
    """An SSE viewer of `source` for the duration of the block, read in the background."""
    viewer = Received()
    url = f"{server.base}/api/events?source={source}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=AUTH) as response:
        assert response.status == 200

        async def read() -> None:
            async for event in sse_events(response):
                if event.get("event") == "lines":
                    viewer.lines += event["data"].partition("\n")[2].split("\n")
                elif event.get("event") == "state":
                    viewer.states.append(json.loads(event["data"]))

        task = asyncio.create_task(read())
        try:
            yield viewer
        finally:
            if task.done():
                task.result()  # the stream broke: say how
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_full_disk_keeps_what_was_written_and_following_goes_on_when_space_frees(
    small_disk: Path, serve: Serve
) -> None:
    log = small_disk / "app.log"
    log.write_bytes(b"")
    ballast = small_disk / "ballast"
    ballast.write_bytes(bytes(64 * 1024))
    server = serve("tail", str(log))
    logger = Logger(log)
    try:
        async with watching(server, "app.log") as viewer:
            await eventually(lambda: viewer.state == "running", WITHIN)
            assert not logger.write(100_000), "the disk never filled up"  # 9 MB on 256 KiB
            on_disk = log.read_text().splitlines(keepends=True)
            whole = [line.rstrip("\n") for line in on_disk if line.endswith("\n")]
            assert len(whole) > 1000
            await eventually(lambda: viewer.lines == whole, WITHIN)
            # A viewer arriving now is served all of it from the ring; the server answers.
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    server.base + "/api/sources/app.log/text?backlog=100000", headers=AUTH
                ) as late,
                session.get(server.base + "/healthz", headers=AUTH) as health,
            ):
                expected = "".join(line + "\n" for line in whole).encode()
                assert await asyncio.wait_for(late.content.readexactly(len(expected)), 5) == (
                    expected
                )
                assert health.status == 200
            ballast.unlink()  # space again: the logger writes what the disk refused, and more
            assert logger.flush()
            assert logger.write(300)
            total = logger.next - 1
            await eventually(lambda: len(viewer.lines) >= total, WITHIN)
            assert viewer.lines == log.read_text().splitlines()
            assert [int(line.split()[1]) for line in viewer.lines] == list(range(1, total + 1))
            # Nothing to report: the file could be read throughout.
            assert [s["state"] for s in viewer.states] == ["running"]
    finally:
        logger.close()


def get_json(server: Server, path: str) -> Any:
    request = urllib.request.Request(server.base + path, headers=AUTH)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def fill(disk: Path) -> None:
    """Take every free byte of `disk`."""
    with (disk / "filler").open("wb", buffering=0) as filler:
        block = bytes(4096)
        for _ in range(1024):  # 4 MiB: more than the disk holds
            try:
                filler.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return
    raise AssertionError("the disk never filled up")


async def test_a_full_disk_under_perview_s_own_state_does_not_break_its_shutdown(
    small_disk: Path, serve: Serve
) -> None:
    state = small_disk / "state"  # metric history, session key: where XDG_STATE_HOME says
    state.mkdir()
    log = small_disk / "app.log"
    log.write_text("one\n")
    server = serve("tail", str(log), env={"XDG_STATE_HOME": str(state)})
    assert (state / "perview" / "metrics.sqlite").exists()
    fill(small_disk)

    # Samples taken (at start, then every 2 s) but not yet written (every 5 s): shutdown writes them
    await eventually(
        lambda: any(s["value"] is not None for s in get_json(server, "/api/metrics")),
        WITHIN,
        step=0.05,
    )
    server.proc.send_signal(signal.SIGTERM)
    status = await asyncio.to_thread(server.proc.wait, 10)
    await eventually(lambda: not server.descendants(), WITHIN)  # guards see their lifelines close
    assert status == 0
    assert server.drain is not None
    server.drain.join(5)
    assert "Traceback" not in "".join(server.output)


async def test_metric_history_on_a_full_disk_loses_batches_not_the_history(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="perview.metrics.history")
    history = History(small_disk / "metrics.sqlite", retention=3600)
    await history.open()
    try:
        now = time.time()
        await history.write([("local/x", now - 30, 1.0)])
        fill(small_disk)
        # Batches big enough to need new pages: the full disk refuses them, quietly.
        for _ in range(5):
            await history.write([("local/x", now - 20 + i * 0.001, 2.0) for i in range(2000)])
        assert "samples not kept (database or disk is full); will retry" in caplog.text
        assert caplog.text.count("not kept") == 1  # said once, not for every batch
        (small_disk / "filler").unlink()
        await history.write([("local/x", now - 10, 3.0)])
        points = await history.query("local/x", now - 60, 1.0)
    finally:
        await history.close()
    values = [v for _, v in points]
    assert values[0] == 1.0 and values[-1] == 3.0
    assert "metric history: writing again" in caplog.text


# -- commands that ignore SIGTERM, with children that do too ------------------------------------

# The command and its child both ignore SIGTERM; only the SIGKILL after the grace ends them.
STUBBORN = "trap '' TERM; sh -c \"trap '' TERM; exec sleep 300\" & echo up; wait"


async def test_a_group_ignoring_sigterm_is_killed_after_the_grace_and_restarts_later(
    serve: Serve,
) -> None:
    server = serve("run", "--", "sh", "-c", STUBBORN)
    async with aiohttp.ClientSession() as session:
        url = server.base + "/api/sources/run/text"
        first = await session.get(url, headers=AUTH)
        assert await first.content.readline() == b"up\n"
        assert len(server.commands()) >= 2  # the shell and its child
        first.close()
        started = time.monotonic()
        async with session.get(server.base + "/healthz", headers=AUTH) as health:
            assert health.status == 200  # the server is not waiting on the stubborn group
        assert time.monotonic() - started < 1.0
        took = await eventually(lambda: not server.commands(), within=GRACE + 3)
        assert took > GRACE / 2  # SIGTERM alone did not end them; the SIGKILL did
        await eventually(lambda: api_sources(server)[0]["state"] == "stopped", within=WITHIN)
        assert api_sources(server)[0]["status"] == -signal.SIGKILL
        assert api_sources(server)[0]["summary"] == "stopped (no viewers)"
        second = await session.get(url, headers=AUTH)
        assert await asyncio.wait_for(second.content.readline(), WITHIN) == b"up\n"
        second.close()
    assert api_sources(server)[0]["runs"] == 2


async def test_shutdown_with_a_group_ignoring_sigterm_is_bounded_and_leaves_nothing(
    serve: Serve,
) -> None:
    server = serve("run", "--", "sh", "-c", STUBBORN)
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(response.read(), GRACE + 3)  # the stream ends, not cut
        assert await asyncio.to_thread(server.proc.wait, GRACE + 3) == 0
        took = time.monotonic() - started
    assert rest == b""
    # The grace, then the server's own cleanup: 0.2 to 0.75 s measured on this busy 2-core box.
    assert took < GRACE + 1.5
    assert server.descendants() == []


# -- a command flooding stderr -------------------------------------------------------------------

# 50 MB of stderr in 4,000-byte writes, and a numbered stdout line after every tenth. stderr and
# stdout share the command's one output pipe, and writes up to PIPE_BUF (4,096) land whole, so no
# line is split by another.
FLOOD = """
import os
err = (b"e" * 99 + b"\\n") * 40
for n in range(1, 12_501):
    os.write(2, err)
    if n % 10 == 0:
        os.write(1, b"out %d\\n" % (n // 10))
"""
FLOOD_BYTES = 50_000_000
STDOUT_LINES = 1250


async def test_a_stderr_flood_keeps_the_server_responsive_memory_bounded_and_stdout_whole(
    serve: Serve,
) -> None:
    server = serve("run", "--", sys.executable, "-c", FLOOD)
    process = psutil.Process(server.proc.pid)
    peak_rss, slowest, probes = 0, 0.0, 0
    stdout: list[bytes] = []
    stderr_lines = 0
    done = asyncio.Event()

    async def probe(session: aiohttp.ClientSession) -> None:
        nonlocal peak_rss, slowest, probes
        while not done.is_set():
            started = time.monotonic()
            async with session.get(server.base + "/healthz", headers=AUTH) as health:
                assert health.status == 200
            slowest = max(slowest, time.monotonic() - started)
            peak_rss = max(peak_rss, process.memory_info().rss)
            probes += 1
            await asyncio.sleep(0.02)

    async with aiohttp.ClientSession() as session, asyncio.timeout(40):
        prober = asyncio.create_task(probe(session))
        try:
            async with session.get(server.base + "/api/sources/run/text", headers=AUTH) as stream:
                rest = b""
                async for block in stream.content.iter_chunked(1 << 20):
                    lines = (rest + block).split(b"\n")
                    rest = lines.pop()
                    stderr_lines += lines.count(b"e" * 99)
                    stdout += [line for line in lines if line.startswith(b"out ")]
        finally:
            done.set()
            await prober
    assert rest == b""
    assert stdout == [b"out %d" % n for n in range(1, STDOUT_LINES + 1)]
    assert stderr_lines * 100 == FLOOD_BYTES  # every byte of stderr too: paced, not dropped
    assert probes > 0 and slowest < 1.0, f"/healthz took {slowest:.2f} s during the flood"
    assert peak_rss < 150 * 1024 * 1024, f"server RSS reached {peak_rss / 2**20:.0f} MiB"
    [info] = api_sources(server)
    assert (info["state"], info["status"]) == ("exited", 0)


# -- a command exiting before its first byte ----------------------------------------------------


@pytest.mark.parametrize(("command", "status"), [(["true"], 0), (["sh", "-c", "exit 3"], 3)])
async def test_a_command_exiting_before_its_first_byte_shows_its_status_and_restarts(
    serve: Serve, command: list[str], status: int
) -> None:
    server = serve("run", "--rerun", "--", *command)  # (without --rerun it runs once: test_live)
    async with aiohttp.ClientSession() as session:
        text = session.get(server.base + "/api/sources/run/text", headers=AUTH)
        async with text as response:
            assert await asyncio.wait_for(response.read(), WITHIN) == b""  # ends, no hang
        [info] = api_sources(server)
        assert (info["state"], info["status"], info["runs"]) == ("exited", status, 1)
        # A viewer arriving later starts it again and is told how this run ended.
        async with watching(server, "run") as viewer:
            await eventually(
                lambda: any(s["run"] == 2 and s["state"] == "exited" for s in viewer.states),
                WITHIN,
            )
    [ended] = [s for s in viewer.states if s["run"] == 2 and s["state"] == "exited"]
    assert ended["status"] == status and not ended["history"]
    assert viewer.lines == []
    assert api_sources(server)[0]["runs"] == 2
