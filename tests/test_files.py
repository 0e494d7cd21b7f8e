"""Files followed by name: backlog, appends, rotation by a real logrotate, waiting, globs, stop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from perview.hub import Ended, Hub
from perview.ring import Chunk
from perview.sources import files
from perview.sources.files import FileSource
from tests.conftest import eventually

LOGROTATE = "/usr/sbin/logrotate"
WITHIN = 5.0  # the bound on every wait: generous, the test machine is a noisy 2-core box

# Appends a numbered line about every millisecond with O_APPEND, like a logger; on SIGHUP it
# reopens its log by name, which is what logrotate's `postrotate` asks of it in `create` mode.
WRITER = """
import os, signal, sys, time
path, count = sys.argv[1], int(sys.argv[2])
reopen = False
def on_hup(signum, frame):
    global reopen
    reopen = True
signal.signal(signal.SIGHUP, on_hup)
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for n in range(1, count + 1):
    if reopen:
        reopen = False
        os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%d\\n" % n)
    time.sleep(0.001)
"""


class Collect:
    """An Output that keeps each part's bytes and every state it is told."""

    def __init__(self) -> None:
        self.data: defaultdict[str | None, bytearray] = defaultdict(bytearray)
        self.states: list[str] = []  # "running", or the reason it waits
        self.received_before_start: list[int] = []  # bytes received before each "running"
        self.notices: list[str] = []

    async def write(self, data: bytes, part: str | None = None) -> None:
        self.data[part] += data

    def started(self, pid: int | None) -> None:
        self.states.append("running")
        self.received_before_start.append(sum(map(len, self.data.values())))

    def waiting(self, reason: str) -> None:
        self.states.append(reason)

    def notice(self, text: str, part: str | None = None) -> None:
        self.notices.append(text)
        self.data[part] += b"<notice>\n"  # where it fell among the lines

    def end_line(self, part: str | None = None) -> None:
        # What the hub's framer does: an unfinished line ends here.
        if self.data[part] and not self.data[part].endswith(b"\n"):
            self.data[part] += b"\n"

    @property
    def state(self) -> str | None:
        return self.states[-1] if self.states else None

    def text(self, part: str | None = None) -> bytes:
        return bytes(self.data.get(part, b""))

    def lines(self, part: str | None = None) -> list[bytes]:
        return self.text(part).splitlines()

    def numbers(self) -> list[int]:
        return [int(line) for line in self.lines()]


@asynccontextmanager
async def following(
    pattern: Path,
    *,
    backlog: int = 10,
    poll_interval: float = 1.0,
    source: FileSource | None = None,
) -> AsyncIterator[Collect]:
    """Run a FileSource (a new one, or `source` again: its next run) for the duration of the
    block; it must then stop promptly and cleanly."""
    out = Collect()
    stop = asyncio.Event()
    if source is None:
        source = FileSource(str(pattern), backlog=backlog, poll_interval=poll_interval)
    task = asyncio.create_task(source.run(out, stop))
    try:
        yield out
    finally:
        stop.set()
        ended = await asyncio.wait_for(task, WITHIN)
    assert ended == Ended(0)


def write(path: Path, text: str) -> None:
    path.write_text(text)


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def numbered(first: int, last: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {n}\n" for n in range(first, last + 1))


async def test_starts_with_the_last_lines_then_follows_appends(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 100))
    async with following(log, backlog=5) as out:
        await eventually(lambda: out.text() == numbered(96, 100).encode(), WITHIN)
        append(log, numbered(101, 102))
        await eventually(lambda: out.text() == numbered(96, 102).encode(), WITHIN)
    assert out.states == ["running"]


async def test_backlog_is_found_from_the_end_of_a_large_file(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    lines = [f"{n:06d} " + "x" * (n % 500) for n in range(40_000)]  # 10 MB, lines of every size
    write(log, "\n".join(lines))  # and no final newline
    async with following(log, backlog=3) as out:
        await eventually(lambda: out.text() == "\n".join(lines[-3:]).encode(), WITHIN)


async def test_an_append_is_delivered_by_its_event(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "")
    # With an hour between polls, only the inotify event can deliver the line in time.
    async with following(log, poll_interval=3600) as out:
        await eventually(lambda: out.state == "running", WITHIN)
        append(log, "hello\n")
        await eventually(lambda: out.text() == b"hello\n", WITHIN)


async def test_without_inotify_it_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_inotify() -> None:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(files, "Inotify", no_inotify)
    log = tmp_path / "app.log"
    write(log, "one\n")
    with caplog.at_level(logging.WARNING, logger=files.__name__):
        async with following(log, poll_interval=0.05) as out:
            await eventually(lambda: out.text() == b"one\n", WITHIN)
            append(log, "two\n")
            await eventually(lambda: out.text() == b"one\ntwo\n", WITHIN)
    assert "no inotify (Too many open files)" in caplog.text


async def test_a_file_that_does_not_exist_yet_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    async with following(log, backlog=2) as out:
        await eventually(lambda: out.state == f"waiting for {log} to appear", WITHIN)
        write(log, numbered(1, 5))
        # All of it: a file that appears while followed is new from its first line.
        await eventually(lambda: out.text() == numbered(1, 5).encode(), WITHIN)
    assert out.states == [f"waiting for {log} to appear", "running"]
    assert out.received_before_start == [0]  # viewers see it start, then its lines


async def test_a_directory_is_a_clear_reason_to_wait(tmp_path: Path) -> None:
    # (Permission denied is provoked further down, as an unprivileged user.)
    log = tmp_path / "app.log"
    log.mkdir()
    async with following(log) as out:
        await eventually(lambda: out.state == f"{log} is a directory", WITHIN)
        log.rmdir()
        write(log, "now a file\n")
        await eventually(lambda: out.text() == b"now a file\n", WITHIN)
        assert out.state == "running"


async def test_a_glob_follows_every_match_with_its_name(tmp_path: Path) -> None:
    write(tmp_path / "a.log", "a1\n")
    write(tmp_path / "b.log", "b1\n")
    write(tmp_path / "notes.txt", "not followed\n")
    async with following(tmp_path / "*.log") as out:
        await eventually(lambda: out.text("a.log") == b"a1\n", WITHIN)
        await eventually(lambda: out.text("b.log") == b"b1\n", WITHIN)
        write(tmp_path / "c.log", "c1\nc2\n")
        append(tmp_path / "a.log", "a2\n")
        await eventually(lambda: out.text("c.log") == b"c1\nc2\n", WITHIN)
        await eventually(lambda: out.text("a.log") == b"a1\na2\n", WITHIN)
    assert sorted(out.data, key=str) == ["a.log", "b.log", "c.log"]
    assert out.states == ["running"]


async def test_a_glob_labels_hostile_names_printably(tmp_path: Path) -> None:
    write(tmp_path / "a\n[perview] 12345 lines skipped\nforged.log", "forged\n")
    write(tmp_path / os.fsdecode(b"bad\xff\xfe.log"), "bad\n")
    write(tmp_path / "\u202egol.txt\u202d.log", "bidi\n")
    async with following(tmp_path / "*.log") as out:
        await eventually(lambda: len(out.data) == 3, WITHIN)
    assert out.text("a\\n[perview] 12345 lines skipped\\nforged.log") == b"forged\n"
    assert out.text("bad\\xff\\xfe.log") == b"bad\n"
    assert out.text("\\u202egol.txt\\u202d.log") == b"bidi\n"


async def test_a_glob_with_no_match_waits_for_one(tmp_path: Path) -> None:
    async with following(tmp_path / "app-*.log") as out:
        reason = f"waiting for a file matching {tmp_path}/app-*.log"
        await eventually(lambda: out.state == reason, WITHIN)
        write(tmp_path / "app-2.log", "first\n")
        await eventually(lambda: out.text("app-2.log") == b"first\n", WITHIN)
    assert out.states == [reason, "running"]


async def test_stop_returns_promptly_and_leaves_nothing_open(tmp_path: Path) -> None:
    write(tmp_path / "a.log", "a\n")
    write(tmp_path / "b.log", "b\n")
    fds = set(os.listdir("/proc/self/fd"))
    tasks = asyncio.all_tasks()
    out, stop = Collect(), asyncio.Event()
    source = FileSource(str(tmp_path / "*.log"), poll_interval=3600)
    task = asyncio.create_task(source.run(out, stop))
    await eventually(lambda: out.text("a.log") and out.text("b.log"), WITHIN)
    assert len(set(os.listdir("/proc/self/fd")) - fds) >= 3  # two files and the inotify
    stop.set()
    assert await asyncio.wait_for(task, 1.0) == Ended(0)
    assert set(os.listdir("/proc/self/fd")) == fds
    assert asyncio.all_tasks() == tasks


async def test_shell_truncation_is_read_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20, "old"))
    async with following(log, backlog=20) as out:
        await eventually(lambda: len(out.lines()) == 20, WITHIN)
        shell = await asyncio.create_subprocess_exec(
            "sh", "-c", 'printf "new 1\\nnew 2\\n" > "$0"', str(log)
        )
        assert await shell.wait() == 0
        expected = (numbered(1, 20, "old") + numbered(1, 2, "new")).encode()
        await eventually(lambda: out.text() == expected, WITHIN)


async def test_a_file_rewritten_past_the_offset_is_read_again(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a\nb\n")
    async with following(log) as out:
        await eventually(lambda: out.text() == b"a\nb\n", WITHIN)
        # Truncated and rewritten longer before the source looks: the size alone cannot tell.
        write(log, "c\nd\ne\nf\n")
        await eventually(lambda: out.text() == b"a\nb\nc\nd\ne\nf\n", WITHIN)


async def test_an_unfinished_last_line_does_not_run_into_the_next_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "one\nunfinished")
    async with following(log) as out:
        await eventually(lambda: out.text() == b"one\nunfinished", WITHIN)
        log.rename(tmp_path / "app.log.1")
        write(log, "next\n")
        await eventually(lambda: out.text() == b"one\nunfinished\nnext\n", WITHIN)


async def test_through_the_hub_a_file_s_unfinished_line_ends_where_the_file_was_left(
    tmp_path: Path,
) -> None:
    # The source says where a file's bytes stop following on; the hub's framer ends the line.
    (tmp_path / "a.log").write_text("one\nunfinished")
    (tmp_path / "b.log").write_text("other\n")
    hub = Hub("logs", FileSource(str(tmp_path / "*.log"), poll_interval=0.05))
    seen: list[tuple[str | None, str]] = []

    def read(viewer_items: list[object]) -> None:
        for item in viewer_items:
            if isinstance(item, Chunk) and item.state is None and item.note is None:
                seen.extend((item.part, line) for line in item.data.decode().splitlines())

    with hub.watch(backlog=None) as viewer:
        await eventually(lambda: read(viewer.read()) or ("b.log", "other") in seen, WITHIN)
        (tmp_path / "a.log").rename(tmp_path / "a.log.1")
        (tmp_path / "a.log").write_text("next\n")
        await eventually(lambda: read(viewer.read()) or ("a.log", "next") in seen, WITHIN)
    await hub.close()
    assert [line for part, line in seen if part == "a.log"] == ["one", "unfinished", "next"]


async def test_a_deleted_file_is_read_while_its_writer_holds_it(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "before\n")
    writer = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        async with following(log) as out:
            await eventually(lambda: out.text() == b"before\n", WITHIN)
            log.unlink()
            os.write(writer, b"after\n")
            await eventually(lambda: out.text() == b"before\nafter\n", WITHIN)
            write(log, "new file\n")
            await eventually(lambda: out.text() == b"before\nafter\nnew file\n", WITHIN)
    finally:
        os.close(writer)


async def test_a_deleted_file_is_let_go_once_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "DELETED_IDLE", 0.1)
    log = tmp_path / "app.log"
    write(log, "before\n")
    async with following(log, poll_interval=0.05) as out:
        await eventually(lambda: out.text() == b"before\n", WITHIN)
        log.unlink()
        await eventually(lambda: out.state == f"waiting for {log} to appear", WITHIN)
        assert f"{log} (deleted)" not in open_files()


def open_files() -> list[str]:
    """What this process's descriptors lead to."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the descriptor that listed the directory
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


# -- rotation by a real logrotate, under a writer -------------------------------------------

LINES = 1500  # about 1.6 s of writing
ROTATIONS = 4


async def start_writer(log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, str(log), str(LINES))


def logrotate_command(tmp_path: Path, log: Path, directives: str) -> list[str]:
    config = tmp_path / "logrotate.conf"
    write(config, f"{log} {{\n  rotate 2\n  nocompress\n{directives}}}\n")
    return [LOGROTATE, "-f", "-s", str(tmp_path / "logrotate.state"), str(config)]


# logrotate's ways of leaving the lines written since a file was last read in a copy of it:
# (directives, the copy's name after the file's; "{date}" is today's, as dateext writes it).
COPYING_ROTATIONS = [
    ("dateext\n  compress\n", "-{date}.gz"),  # renamed, then gzip replaces it
    ("compress\n", ".1.gz"),
    ("dateext\n  copytruncate\n", "-{date}"),  # copied, and the file emptied in place
    ("copytruncate\n", ".1"),
]


async def logrotate_once(tmp_path: Path, log: Path, directives: str) -> None:
    """Rotate `log` now, as logrotate does with `directives` (two old copies kept)."""
    config = tmp_path / "logrotate.conf"
    write(config, f"{log} {{\n  rotate 2\n  {directives}}}\n")
    await rotate([LOGROTATE, "-f", "-s", str(tmp_path / "logrotate.state"), str(config)])


async def rotate(command: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await proc.communicate()
    assert proc.returncode == 0, output.decode()


async def received(out: Collect, count: int) -> None:
    await eventually(lambda: len(out.lines()) >= count, WITHIN)


async def last_line(out: Collect) -> None:
    await eventually(lambda: out.lines()[-1:] == [str(LINES).encode()], WITHIN)


async def test_rename_and_create_rotation_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "")
    async with following(log, backlog=0) as out:
        await eventually(lambda: out.state == "running", WITHIN)
        writer = await start_writer(log)
        try:
            postrotate = f"  postrotate\n    kill -HUP {writer.pid}\n  endscript\n"
            command = logrotate_command(tmp_path, log, "  create\n" + postrotate)
            for k in range(1, ROTATIONS + 1):
                await received(out, k * LINES // (ROTATIONS + 1))
                await rotate(command)
            assert await asyncio.wait_for(writer.wait(), 30) == 0
            await last_line(out)
        finally:
            if writer.returncode is None:
                writer.kill()
                await writer.wait()
    assert out.numbers() == list(range(1, LINES + 1))
    assert (tmp_path / "app.log.2").exists()  # it did rotate, more than once


async def test_copytruncate_rotation_repeats_nothing_and_loses_only_the_inherent(
    tmp_path: Path,
) -> None:
    """Lines written between logrotate's copy and its truncation are in neither file; those may
    be missing, nothing else. Each window runs from a line already delivered when logrotate
    started to the first line in the file after it finished."""
    log = tmp_path / "app.log"
    write(log, "")
    windows: list[tuple[int, int]] = []
    async with following(log, backlog=0) as out:
        await eventually(lambda: out.state == "running", WITHIN)
        writer = await start_writer(log)
        try:
            command = logrotate_command(tmp_path, log, "  copytruncate\n")
            for k in range(1, ROTATIONS + 1):
                await received(out, k * LINES // (ROTATIONS + 1))
                last = await delivered_so_far(out, log)
                await rotate(command)
                windows.append((last, await first_line_now(log, writer)))
            assert await asyncio.wait_for(writer.wait(), 30) == 0
            await last_line(out)
        finally:
            if writer.returncode is None:
                writer.kill()
                await writer.wait()
    numbers = out.numbers()
    assert all(a < b for a, b in itertools.pairwise(numbers)), "repeated or out of order"
    missing = sorted(set(range(1, LINES + 1)) - set(numbers))
    unexplained = [n for n in missing if not any(lo < n < hi for lo, hi in windows)]
    assert not unexplained, f"lost outside rotations {windows}: {unexplained}"
    assert (tmp_path / "app.log.2").exists()


async def delivered_so_far(out: Collect, log: Path) -> int:
    """The last line in the file now, once the source has delivered it."""
    last = numbers_in(log)[-1]  # never empty: see first_line_now
    await eventually(lambda: last in out.numbers(), WITHIN)
    return last


async def first_line_now(log: Path, writer: asyncio.subprocess.Process) -> int:
    """The first line in the (just truncated) file, once the writer has written one."""
    await eventually(lambda: log.stat().st_size or writer.returncode is not None, WITHIN)
    numbers = numbers_in(log)
    return numbers[0] if numbers else LINES + 1


def numbers_in(log: Path) -> list[int]:
    return [int(line) for line in log.read_bytes().splitlines()]


# -- a returning viewer: the next run resumes where the last one stopped -----------------------


async def first_run(log: Path, lines: int) -> FileSource:
    """A source that has read `log` up to line `lines` and stopped (its viewer left)."""
    source = FileSource(str(log), backlog=10)
    async with following(log, source=source) as out:
        await eventually(lambda: len(out.lines()) == min(lines, 10), WITHIN)
    return source


async def test_the_next_run_gets_what_was_written_while_nobody_watched(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20))
    source = await first_run(log, 20)
    append(log, numbered(21, 90))  # 70 lines while nobody watches
    async with following(log, source=source) as out:
        await eventually(lambda: out.lines()[-1:] == [b"line 90"], WITHIN)
        append(log, numbered(91, 91))
        await eventually(lambda: out.lines()[-1:] == [b"line 91"], WITHIN)
    assert out.lines() == [b"<notice>", *numbered(21, 91).encode().splitlines()]
    assert out.notices[0].startswith("resumed where it was left at ")


@pytest.mark.parametrize(
    "sibling",
    ["app.log.1", "app.log-20261203"],  # logrotate's create mode, and with `dateext`
)
async def test_a_file_rotated_while_nobody_watched_is_finished_in_its_new_name_first(
    tmp_path: Path, sibling: str
) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20))
    source = await first_run(log, 20)
    append(log, numbered(21, 25))
    log.rename(tmp_path / sibling)  # while nobody watches
    write(log, numbered(26, 30))
    async with following(log, source=source) as out:
        await eventually(lambda: out.lines()[-1:] == [b"line 30"], WITHIN)
    assert out.lines() == [b"<notice>", *numbered(21, 30).encode().splitlines()]
    assert f"reading the rest of it as {sibling} first" in out.notices[0]


@pytest.mark.parametrize(("directives", "suffix"), COPYING_ROTATIONS)
async def test_a_file_logrotate_copied_or_compressed_while_nobody_watched_is_finished_there(
    tmp_path: Path, directives: str, suffix: str
) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20))
    source = await first_run(log, 20)
    append(log, numbered(21, 25))
    await logrotate_once(tmp_path, log, "create\n  " + directives)
    sibling = suffix.format(date=time.strftime("%Y%m%d"))
    assert f"app.log{sibling}" in os.listdir(tmp_path) and log.stat().st_size == 0
    append(log, numbered(26, 30))
    async with following(log, source=source) as out:
        await eventually(lambda: out.lines()[-1:] == [b"line 30"], WITHIN)
    assert out.lines() == [b"<notice>", *numbered(21, 30).encode().splitlines()]
    assert f"reading the rest of it as app.log{sibling} first" in out.notices[0]


async def test_a_file_compressed_away_with_none_made_in_its_place_is_finished_in_its_copy(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20))
    source = await first_run(log, 20)
    append(log, numbered(21, 25))
    await logrotate_once(tmp_path, log, "nocreate\n  compress\n")
    assert not log.exists()
    async with following(log, source=source) as out:
        await eventually(lambda: out.lines()[-1:] == [b"line 25"], WITHIN)
        write(log, numbered(26, 30))  # the writer makes it again
        await eventually(lambda: out.lines()[-1:] == [b"line 30"], WITHIN)
    assert out.lines() == [b"<notice>", *numbered(21, 30).encode().splitlines()]
    assert "reading the rest of it as app.log.1.gz first" in out.notices[0]


async def test_a_file_replaced_while_nobody_watched_says_what_is_lost(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20))
    source = await first_run(log, 20)
    fresh = tmp_path / "app.log.new"
    write(fresh, numbered(100, 102))
    fresh.replace(log)  # the old file is gone (and its inode not reused: the new one has it)
    async with following(log, source=source) as out:
        await eventually(lambda: out.lines()[-1:] == [b"line 102"], WITHIN)
    assert out.lines() == [b"<notice>", *numbered(100, 102).encode().splitlines()]
    assert "was replaced after " in out.notices[0]
    assert "is not shown" in out.notices[0]


async def test_a_sibling_with_the_old_inode_but_other_bytes_is_not_the_rotated_file(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20))
    source = await first_run(log, 20)
    rotated = tmp_path / "app.log.1"
    log.rename(rotated)
    with rotated.open("r+") as f:  # the inode now holds other bytes, as a reused one would
        f.write(numbered(1, 30, "other"))
    write(log, numbered(100, 102))
    async with following(log, source=source) as out:
        await eventually(lambda: out.lines()[-1:] == [b"line 102"], WITHIN)
    assert out.lines() == [b"<notice>", *numbered(100, 102).encode().splitlines()]
    assert "was replaced after " in out.notices[0]


async def test_a_file_truncated_while_nobody_watched_says_so(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, numbered(1, 20))
    source = await first_run(log, 20)
    with log.open("r+") as f:  # copytruncate: same file, emptied, then written again
        f.truncate(0)
    append(log, numbered(1, 3, "new"))
    async with following(log, source=source) as out:
        await eventually(lambda: out.lines()[-1:] == [b"new 3"], WITHIN)
    assert out.lines() == [b"<notice>", b"new 1", b"new 2", b"new 3"]
    assert "was truncated or rewritten after " in out.notices[0]


# -- after a restart of Perview: a kept source's state file -----------------------------------


async def test_each_file_of_a_glob_resumes_where_it_was_left_by_a_source_before_it(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    write(a, numbered(1, 3, "a"))
    write(b, numbered(1, 3, "b"))
    pattern, state = tmp_path / "*.log", tmp_path / "data" / "files" / "app@local.json"
    async with following(pattern, source=FileSource(str(pattern), state=state)) as out:
        await eventually(lambda: out.data["b.log"].endswith(b"b 3\n"), WITHIN)
        await eventually(lambda: out.data["a.log"].endswith(b"a 3\n"), WITHIN)
    append(a, numbered(4, 5, "a"))
    # A new source with the same state file: as after a restart of Perview.
    async with following(pattern, source=FileSource(str(pattern), state=state)) as out:
        await eventually(lambda: out.data["a.log"].endswith(b"a 5\n"), WITHIN)
        append(b, numbered(4, 4, "b"))
        await eventually(lambda: out.data["b.log"].endswith(b"b 4\n"), WITHIN)
    assert (out.data["a.log"], out.data["b.log"]) == (b"<notice>\na 4\na 5\n", b"b 4\n")
    assert len(out.notices) == 1  # a.log resumed; b.log had nothing new then
    assert out.notices[0].startswith("resumed where it was left at ")


async def test_a_kept_position_of_another_file_or_unreadable_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log, other, state = tmp_path / "app.log", tmp_path / "other.log", tmp_path / "app.json"
    write(log, numbered(1, 20))
    async with following(log, source=FileSource(str(log), state=state)) as out:
        await eventually(lambda: out.lines()[-1:] == [b"line 20"], WITHIN)
    write(other, numbered(1, 20, "other"))
    # The source's file changed in the config: what was kept for the old one means nothing.
    async with following(other, source=FileSource(str(other), state=state)) as out:
        await eventually(lambda: out.lines()[-1:] == [b"other 20"], WITHIN)
    assert out.lines() == numbered(11, 20, "other").encode().splitlines()
    write(state, "{not json")
    with caplog.at_level(logging.WARNING):
        async with following(log, source=FileSource(str(log), state=state)) as out:
            await eventually(lambda: out.lines()[-1:] == [b"line 20"], WITHIN)
    assert out.lines() == numbered(11, 20).encode().splitlines()
    assert "not a saved state" in caplog.text


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
