"""Remote files resume exactly: across a dropped link, a rotation, a truncation, a deletion, and
for the next viewer; and the far side's script needs only busybox."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from perview.sources.remote_file import RemoteFileSource, follow_file_command
from tests.sshd import Sshd
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


async def test_a_file_copied_and_truncated_while_the_link_was_down_says_what_is_not_shown(
    sshd: Sshd, tmp_path: Path
) -> None:
    """After the truncation the file grows past the old position: only the bytes before it tell
    that it is not the same content."""
    log = tmp_path / "far.log"
    log.write_text(lines(1, 3))

    def copytruncate() -> None:
        append(log, lines(4, 10))
        shutil.copyfile(log, tmp_path / "far.log.1")
        with log.open("r+") as file:
            file.truncate(0)
        append(log, lines(11, 40))

    out = await follow_across_an_outage(sshd, log, copytruncate, "line 40\n")
    assert out.data.decode() == lines(1, 3) + lines(11, 40)
    assert len(out.notices) == 1
    assert out.notices[0].startswith("was truncated or rewritten after ")


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
    first = Record()
    async with running(source, first):
        await first.until(lambda: first.data.endswith(b"line 30\n"))
    assert first.data.decode() == lines(21, 30)  # a file starts with its last 10 lines

    append(log, lines(31, 45))  # while nobody watched
    second = Record()
    async with running(source, second):
        await second.until(lambda: second.data.endswith(b"line 45\n"))
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


# -- ssh's own words -----------------------------------------------------------------------------


def test_remote_home_is_expanded_on_the_far_side() -> None:
    from perview.sources.remote_file import far_path, follow_file_command

    assert far_path("~/logs/a b.log") == "\"$HOME\"/'logs/a b.log'"
    assert far_path("/var/log/x") == "/var/log/x"
    assert follow_file_command("~/logs/a b.log", 5).startswith("f=\"$HOME\"/'logs/a b.log' ")
