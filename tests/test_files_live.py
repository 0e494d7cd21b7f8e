"""File sources across a restart of Perview: one that runs always (`keep`, or recorded) resumes
where the last Perview stopped reading, here and on another host; one that does not starts, as
ever, with the file's last lines."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Server, eventually, start_server, stop_server
from tests.sshd import Sshd
from tests.viewer import AUTH, api_sources, watching

Serve = Callable[..., Server]
WITHIN = 15.0
LINE = re.compile(r"(?:\S+: )?(line \d+)$")  # a remote source's lines carry no host: one host


def shown(text: str) -> list[str]:
    """Each line, and `[perview]` for each notice, in the order of the stream."""
    found = []
    for line in text.splitlines():
        if line.startswith("[perview]"):
            found.append("[perview]")
        elif match := LINE.match(line):
            found.append(match[1])
    return found


def numbered(first: int, last: int) -> list[str]:
    return [f"line {n}" for n in range(first, last + 1)]


def text(first: int, last: int) -> str:
    return "".join(f"{line}\n" for line in numbered(first, last))


def write(path: Path, content: str) -> None:
    path.write_text(content)


def append(path: Path, content: str) -> None:
    with path.open("a") as file:
        file.write(content)


@contextmanager
def perview(path: Path) -> Iterator[Server]:
    server = start_server(["serve", "-c", str(path)])
    try:
        yield server
    finally:
        stop_server(server)  # SIGTERM: every source ends its run, and saves where it is


async def read(server: Server, until: Callable[[list[str]], bool]) -> tuple[list[str], str]:
    """What a viewer of `app` (with all of the ring first) has seen once `until` holds."""
    url = f"{server.base}/api/sources/app/text?backlog=1000"
    seen = ""
    async with aiohttp.ClientSession() as session, session.get(url, headers=AUTH) as response:
        try:
            async with asyncio.timeout(WITHIN):
                while not until(shown(seen)):
                    line = await response.content.readline()
                    assert line, f"the stream ended: {seen!r}"
                    seen += line.decode()
        except TimeoutError:
            raise AssertionError(f"not seen within {WITHIN} s: {seen!r}") from None
    return shown(seen), seen


def config(tmp_path: Path, log: Path, source: str = "keep = true\n", extra: str = "") -> Path:
    path = tmp_path / "perview.toml"
    write(
        path,
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n\n{extra}'
        f'[sources.app]\nfile = "{log}"\n{source}',
    )
    return path


def ends_with(last: int) -> Callable[[list[str]], bool]:
    return lambda seen: seen[-1:] == [f"line {last}"]


async def first_run(path: Path, log: Path) -> None:
    """A Perview that reads `log` (lines 1 to 20, then 21 to 25 while it runs) and stops."""
    write(log, text(1, 20))
    with perview(path) as server:
        assert (await read(server, ends_with(20)))[0] == numbered(11, 20)
        append(log, text(21, 25))
        await read(server, ends_with(25))


@pytest.mark.parametrize("kept", ["keep = true\n", 'record = "1d"\n'])
async def test_lines_written_while_perview_was_down_arrive_once_after_its_restart(
    tmp_path: Path, kept: str
) -> None:
    log = tmp_path / "app.log"
    path = config(tmp_path, log, kept)
    await first_run(path, log)
    append(log, text(26, 60))  # more than the ten lines a fresh start shows
    with perview(path) as server:
        seen, said = await read(server, ends_with(60))
        append(log, text(61, 61))
        assert (await read(server, ends_with(61)))[0] == ["[perview]", *numbered(26, 61)]
    assert seen == ["[perview]", *numbered(26, 60)]  # and not 16 to 25 again
    assert "resumed where it was left at " in said


async def test_a_file_rotated_while_perview_was_down_is_finished_first(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    path = config(tmp_path, log)
    await first_run(path, log)
    append(log, text(26, 30))
    log.rename(tmp_path / "app.log.1")  # logrotate's `create`, while Perview is down
    write(log, text(31, 35))
    with perview(path) as server:
        seen, said = await read(server, ends_with(35))
    assert seen == ["[perview]", *numbered(26, 35)]
    assert "reading the rest of it as app.log.1 first" in said


async def test_a_file_replaced_while_perview_was_down_says_what_is_not_shown(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    path = config(tmp_path, log)
    await first_run(path, log)
    append(log, text(26, 30))  # lost with the old file
    fresh = tmp_path / "app.log.new"
    write(fresh, text(100, 102))
    fresh.replace(log)
    with perview(path) as server:
        seen, said = await read(server, ends_with(102))
    assert seen == ["[perview]", *numbered(100, 102)]
    assert re.search(r"was replaced after [-\d]+ [:\d]+: what was written to the old file", said)


async def test_a_file_deleted_while_perview_was_down_says_so_once(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    path = config(tmp_path, log)
    await first_run(path, log)
    log.unlink()
    with perview(path) as server:
        await state_is(server, "waiting")  # it found neither the file nor a sibling with its inode
        write(log, text(1, 3))  # a new file: read from its start
        seen, said = await read(server, ends_with(3))
    assert seen == ["[perview]", *numbered(1, 3)]
    assert "was deleted after " in said
    with perview(path) as server:  # said once: the next restart goes on from line 3, silently
        await state_is(server, "running")
        append(log, text(4, 4))
        assert (await read(server, ends_with(4)))[0] == ["line 4"]


async def state_is(server: Server, state: str) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(WITHIN):
        while True:
            async with session.get(f"{server.base}/api/sources", headers=AUTH) as response:
                if (await response.json())[0]["state"] == state:
                    return
            await asyncio.sleep(0.02)


async def test_a_perview_killed_outright_resumes_from_where_it_last_saved(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    path = config(tmp_path, log)
    state = tmp_path / "data" / "files" / "app@local.json"
    write(log, text(1, 20))
    with perview(path) as server:
        await read(server, ends_with(20))
        append(log, text(21, 25))
        # Saved while it runs (at most once a second), not only when it stops.
        await eventually(
            lambda: saved_position(state, log) == log.stat().st_size, WITHIN, step=0.05
        )
        server.proc.kill()
        server.proc.wait()
        await eventually(lambda: not server.descendants(), WITHIN)  # its spare guard ends too
    append(log, text(26, 30))
    with perview(path) as server:
        seen, _ = await read(server, ends_with(30))
    assert seen == ["[perview]", *numbered(26, 30)]


def saved_position(state: Path, log: Path) -> int | None:
    try:
        return int(json.loads(state.read_text())["files"][str(log)]["pos"])
    except (OSError, ValueError, KeyError):
        return None


async def test_a_source_that_is_not_kept_starts_with_the_last_lines_after_a_restart(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    path = config(tmp_path, log, source="")
    await first_run(path, log)
    append(log, text(26, 40))
    with perview(path) as server:
        assert (await read(server, ends_with(40)))[0] == numbered(31, 40)
    assert not (tmp_path / "data" / "files").exists()


async def test_where_a_file_was_left_is_kept_for_perview_s_user_only(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    await first_run(config(tmp_path, log), log)
    state = tmp_path / "data" / "files" / "app@local.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    kept = json.loads(state.read_text())
    assert kept["files"][str(log)]["pos"] == log.stat().st_size
    assert kept["settings"] == {"file": str(log)}


async def test_a_kept_remote_file_resumes_after_a_restart_of_perview(
    sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "far.log"
    path = config(tmp_path, log, 'keep = true\nhost = "web1"\n', sshd.hosts_toml("web1"))
    await first_run(path, log)
    append(log, text(26, 30))
    log.rename(tmp_path / "far.log.1")  # and rotated, while Perview is down
    write(log, text(31, 40))
    with perview(path) as server:
        seen, said = await read(server, ends_with(40))
    assert seen == ["[perview]", *numbered(26, 40)]
    assert "reading the rest of it as far.log.1 first" in said
    state = tmp_path / "data" / "files" / "app@web1.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


async def test_a_returning_viewer_of_a_file_gets_what_was_written_meanwhile(
    serve: Serve, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 11)))
    server = serve("tail", str(log))
    url = server.base + "/api/sources/app.log/text"
    async with aiohttp.ClientSession() as session:
        first = await session.get(url, headers=AUTH)
        assert await first.content.readline() == b"line 1\n"
        first.close()
        await eventually(lambda: api_sources(server)[0]["state"] == "stopped", within=WITHIN)
        with log.open("a") as f:  # 70 lines while nobody watches
            f.write("".join(f"line {n}\n" for n in range(11, 81)))
        async with session.get(url, headers=AUTH) as second:
            notice = await second.content.readline()
            assert notice.startswith(b"[perview] resumed where it was left at ")
            got = [await second.content.readline() for _ in range(70)]
    assert got == [f"line {n}\n".encode() for n in range(11, 81)]


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
