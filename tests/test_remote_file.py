"""Remote files resume exactly: across a dropped link, a rotation, a truncation, a deletion, and
for the next viewer; and the far side's script needs only busybox."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from perview.sources.remote_file import RemoteFileSource, follow_file_command
from tests.sshd import Sshd
from tests.test_files import COPYING_ROTATIONS, logrotate_once
from tests.test_ssh import WITHIN, Record


def lines(first: int, last: int) -> str:
    return "".join(f"line {n}\n" for n in range(first, last + 1))


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def far_file(sshd: Sshd, path: Path) -> RemoteFileSource:
    return RemoteFileSource(sshd.alias(), str(path), ssh_args=["-F", str(sshd.config)])


@contextlib.asynccontextmanager
async def running(source: RemoteFileSource, out: Record) -> AsyncIterator[None]:
    """`source` runs into `out` for the block, and is stopped (and awaited) after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(out, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, WITHIN)


async def watched_until(source: RemoteFileSource, last: str) -> Record:
    """What a viewer of `source` got until it showed `last` and left."""
    out = Record()
    async with running(source, out):
        await out.until(lambda: out.data.endswith(last.encode()))
    return out


async def follow_across_an_outage(
    sshd: Sshd, log: Path, outage: Callable[[], None], last: str
) -> Record:
    """Follow `log`, drop the link once its first lines are in, run `outage` while the link is
    down, and return what arrived once `last` has."""
    out = Record(on_waiting=outage)
    async with running(far_file(sshd, log), out):
        await out.until(lambda: out.data.endswith(b"line 3\n"))
        assert sshd.drop_sessions() > 0
        await out.until(lambda: out.data.endswith(last.encode()))
    return out


async def test_lines_written_while_the_link_was_down_arrive_once_and_in_order(
    sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "far.log"
    log.write_text(lines(1, 3))
    out = await follow_across_an_outage(sshd, log, lambda: append(log, lines(4, 500)), "line 500\n")
    assert out.data.decode() == lines(1, 500)
    assert any("retrying in" in reason for reason in out.waited())
    assert [n for n in out.notices if n.startswith("resumed where it was left at ")] == out.notices
    assert len(out.notices) == 1


async def test_a_file_rotated_while_the_link_was_down_is_read_to_its_end_then_the_new_one(
    sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "far.log"
    log.write_text(lines(1, 3))

    def rotate() -> None:  # logrotate's `create`: the old file renamed, a new one made
        append(log, lines(4, 10))
        log.rename(tmp_path / "far.log.1")
        log.write_text(lines(11, 20))

    out = await follow_across_an_outage(sshd, log, rotate, "line 20\n")
    assert out.data.decode() == lines(1, 20)
    assert len(out.notices) == 1
    assert out.notices[0].startswith("rotated after ")
    assert out.notices[0].endswith(": reading the rest of it as far.log.1 first")


async def test_a_file_truncated_while_the_link_was_down_says_what_is_not_shown(
    sshd: Sshd, tmp_path: Path
) -> None:
    """After the truncation the file grows past the old position: only the bytes before it tell
    that it is not the same content; and no rotated copy holds what it had."""
    log = tmp_path / "far.log"
    log.write_text(lines(1, 3))

    def truncate() -> None:
        append(log, lines(4, 10))
        with log.open("r+") as file:
            file.truncate(0)
        append(log, lines(11, 40))

    out = await follow_across_an_outage(sshd, log, truncate, "line 40\n")
    assert out.data.decode() == lines(1, 3) + lines(11, 40)
    assert len(out.notices) == 1
    assert out.notices[0].startswith("was truncated or rewritten after ")


@pytest.mark.parametrize(("directives", "suffix"), COPYING_ROTATIONS)
async def test_a_file_logrotate_copied_or_compressed_while_nobody_watched_is_finished_there(
    sshd: Sshd, tmp_path: Path, directives: str, suffix: str
) -> None:
    log = tmp_path / "app.log"
    log.write_text(lines(1, 20))
    source = far_file(sshd, log)
    await watched_until(source, "line 20\n")
    append(log, lines(21, 25))  # while nobody watched
    await logrotate_once(tmp_path, log, "create\n  " + directives)
    sibling = suffix.format(date=time.strftime("%Y%m%d"))
    assert f"app.log{sibling}" in os.listdir(tmp_path) and log.stat().st_size == 0
    append(log, lines(26, 30))
    second = await watched_until(source, "line 30\n")
    assert second.data.decode() == lines(21, 30)
    assert len(second.notices) == 1
    assert second.notices[0].startswith("rotated after ")
    assert second.notices[0].endswith(f": reading the rest of it as app.log{sibling} first")


async def test_a_file_compressed_away_with_none_made_in_its_place_is_finished_in_its_copy(
    sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text(lines(1, 20))
    source = far_file(sshd, log)
    await watched_until(source, "line 20\n")
    append(log, lines(21, 25))
    await logrotate_once(tmp_path, log, "nocreate\n  compress\n")
    assert not log.exists()
    second = Record()
    async with running(source, second):
        await second.until(lambda: second.data.endswith(b"line 25\n"))
        log.write_text(lines(26, 30))  # the writer makes it again
        await second.until(lambda: second.data.endswith(b"line 30\n"))
    assert second.data.decode() == lines(21, 30)
    assert len(second.notices) == 1
    assert second.notices[0].endswith(": reading the rest of it as app.log.1.gz first")


async def test_a_file_deleted_while_the_link_was_down_is_a_notice_and_a_wait(
    sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "far.log"
    log.write_text(lines(1, 3))
    out = Record(on_waiting=log.unlink)
    async with running(far_file(sshd, log), out):
        await out.until(lambda: out.data.endswith(b"line 3\n"))
        assert sshd.drop_sessions() > 0
        await out.until(lambda: any("to appear" in reason for reason in out.waited()))
        assert len(out.notices) == 1
        assert out.notices[0].startswith("was deleted after ")
        log.write_text("again\n")  # a new file at the name is read from its start
        await out.until(lambda: out.data.endswith(b"again\n"))
    assert out.data.decode() == lines(1, 3) + "again\n"


async def test_a_returning_viewer_gets_what_was_written_meanwhile(
    sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "far.log"
    log.write_text(lines(1, 30))
    source = far_file(sshd, log)
    first = await watched_until(source, "line 30\n")
    assert first.data.decode() == lines(21, 30)  # a file starts with its last 10 lines

    append(log, lines(31, 45))  # while nobody watched
    second = await watched_until(source, "line 45\n")
    assert second.data.decode() == lines(31, 45)
    assert len(second.notices) == 1
    assert second.notices[0].startswith("resumed where it was left at ")


async def test_a_sibling_with_the_old_inode_but_other_bytes_is_not_the_rotated_file(
    sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "far.log"
    log.write_text(lines(1, 3))

    def rotate_and_overwrite() -> None:
        rotated = tmp_path / "far.log.1"
        log.rename(rotated)
        with rotated.open("r+") as file:  # the inode now holds other bytes, as a reused one would
            file.write("other\n" * 30)
        log.write_text(lines(11, 20))

    out = await follow_across_an_outage(sshd, log, rotate_and_overwrite, "line 20\n")
    assert out.data.decode() == lines(1, 3) + lines(11, 20)
    assert len(out.notices) == 1
    assert out.notices[0].startswith("was replaced after ")


async def test_the_far_side_script_needs_only_busybox(busybox_tools: Path, tmp_path: Path) -> None:
    """A BusyBox host has its `sh`, `stat`, `dd`, `tail` and `od`, and nothing else."""
    from perview.sources.process import ProcessSource
    from perview.sources.remote_file import _Reader

    tools = busybox_tools
    log = tmp_path / "far.log"
    log.write_text(lines(1, 30))
    source = RemoteFileSource("unused", str(log))
    out = Record()
    stop = asyncio.Event()
    far = ProcessSource(
        [str(tools / "sh"), "-c", follow_file_command(str(log), 10)],
        env={"PATH": str(tools)},
    )
    task = asyncio.create_task(far.run(_Reader(out, source), stop))
    try:
        await out.until(lambda: out.data.endswith(b"line 30\n"))
        append(log, "partial")
        await out.until(lambda: out.data.endswith(b"partial"))
        append(log, " line\n")
        log.rename(tmp_path / "far.log.1")
        log.write_text("new file\n")
        await out.until(lambda: out.data.endswith(b"new file\n"))
    finally:
        stop.set()
        await asyncio.wait_for(task, WITHIN)
    assert out.data.decode() == lines(21, 30) + "partial line\nnew file\n"


async def test_the_far_side_finds_a_compressed_copy_with_busybox_alone(
    busybox_tools: Path, tmp_path: Path
) -> None:
    """Resuming from a `.gz` sibling takes BusyBox's `gzip`, `mktemp` and `dd` (a sparse file)."""
    from perview.sources.process import ProcessSource
    from perview.sources.remote_file import _Reader
    from perview.sources.resume import FINGERPRINT, Left

    log = tmp_path / "far.log"
    log.write_text(lines(1, 30))
    info = log.stat()
    data = log.read_bytes()
    left = Left((info.st_dev, info.st_ino), len(data), data[-FINGERPRINT:], time.time())
    append(log, lines(31, 40))  # then compressed away, and a new file made at the name
    with log.open("rb") as plain, gzip.open(tmp_path / "far.log.1.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    log.unlink()
    log.write_text(lines(41, 42))
    source = RemoteFileSource("unused", str(log))
    source.left = left
    out = Record()
    stop = asyncio.Event()
    far = ProcessSource(
        [str(busybox_tools / "sh"), "-c", follow_file_command(str(log), 10, left=left)],
        env={"PATH": str(busybox_tools), "TMPDIR": str(tmp_path)},
    )
    task = asyncio.create_task(far.run(_Reader(out, source), stop))
    try:
        await out.until(lambda: out.data.endswith(b"line 42\n"))
    finally:
        stop.set()
        await asyncio.wait_for(task, WITHIN)
    assert out.data.decode() == lines(31, 42)
    assert out.notices == [out.notices[0]] and out.notices[0].endswith("as far.log.1.gz first")
    assert sorted(os.listdir(tmp_path)) == ["bin", "far.log", "far.log.1.gz"]  # no copy left


# -- ssh's own words -----------------------------------------------------------------------------


def test_remote_home_is_expanded_on_the_far_side() -> None:
    from perview.sources.remote_file import far_path, follow_file_command

    assert far_path("~/logs/a b.log") == "\"$HOME\"/'logs/a b.log'"
    assert far_path("/var/log/x") == "/var/log/x"
    assert follow_file_command("~/logs/a b.log", 5).startswith("f=\"$HOME\"/'logs/a b.log' ")
