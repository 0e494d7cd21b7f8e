"""Journal sources in a live Perview: a returning viewer, a restart of Perview with `keep`, and
a journal on another host across a dropped link, each with nothing lost or repeated."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN, Server, eventually, start_server, stop_server
from tests.journald import Journal, record
from tests.sshd import Sshd

Serve = Callable[..., Server]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WITHIN = 15.0
RECORD = re.compile(r"<\d>\S+ \S+: (message \d+)\b")


def shown(text: str) -> list[str]:
    """Each record's message, and `[perview]` for each notice, in the order of the stream."""
    found = []
    for line in text.splitlines():
        if line.startswith("[perview]"):
            found.append("[perview]")
        elif match := RECORD.match(line):
            found.append(match[1])
    return found


def numbered(first: int, last: int) -> list[str]:
    return [f"message {n}" for n in range(first, last + 1)]


class Reader:
    """A viewer of a source's text stream, collecting what it has read so far."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.text = ""

    async def until(self, condition: Callable[[list[str]], bool]) -> list[str]:
        async with asyncio.timeout(WITHIN):
            while not condition(shown(self.text)):
                line = await self.response.content.readline()
                assert line, f"the stream ended: {self.text!r}"
                self.text += line.decode()
        return shown(self.text)


async def watch(session: aiohttp.ClientSession, server: Server, name: str) -> Reader:
    url = f"{server.base}/api/sources/{name}/text?backlog=1000"
    return Reader(await session.get(url, headers=AUTH))


def config(journal: Journal, tmp_path: Path, extra: str = "", source: str = "") -> Path:
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n\n{extra}'
        f'[sources.app]\njournal = true\njournal_directory = "{journal.directory}"\n{source}'
    )
    return path


async def test_a_returning_viewer_gets_what_was_written_meanwhile_once(
    serve: Serve, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 3)
    server = serve("serve", "-c", str(config(journal, tmp_path)))
    async with aiohttp.ClientSession() as session:
        first = await watch(session, server, "app")
        assert await first.until(lambda seen: seen == numbered(1, 3))
        first.response.close()
        await eventually(lambda: not server.commands(), WITHIN)  # journalctl stopped
        journal.messages("app.service", 4, 30)  # more than the ten a fresh start shows
        second = await watch(session, server, "app")
        seen = await second.until(lambda seen: seen[-1:] == ["message 30"])
        second.response.close()
    assert seen == [*numbered(1, 3), "[perview]", *numbered(4, 30)]
    assert "resumed after the last record seen" in second.text


async def test_a_kept_journal_resumes_after_a_restart_of_perview(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 3)
    path = config(journal, tmp_path, source="keep = true\n")
    server = start_server(["serve", "-c", str(path)])
    try:
        async with aiohttp.ClientSession() as session:
            reader = await watch(session, server, "app")
            assert await reader.until(lambda seen: seen == numbered(1, 3))
            reader.response.close()
    finally:
        stop_server(server)
    journal.messages("app.service", 4, 6)
    server = start_server(["serve", "-c", str(path)])
    try:
        async with aiohttp.ClientSession() as session:
            reader = await watch(session, server, "app")
            seen = await reader.until(lambda seen: seen[-1:] == ["message 6"])
            reader.response.close()
        assert seen == ["[perview]", *numbered(4, 6)]  # and not 1 to 3 again
    finally:
        stop_server(server)
    assert (tmp_path / "data" / "journal" / "app@local.json").exists()


async def test_a_remote_journal_resumes_exactly_across_a_dropped_link(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 3)
    path = config(journal, tmp_path, extra=sshd.hosts_toml("web1"), source='host = "web1"\n')
    server = serve("serve", "-c", str(path))
    async with aiohttp.ClientSession() as session:
        reader = await watch(session, server, "app")
        assert await reader.until(lambda seen: seen == numbered(1, 3))
        assert sshd.drop_sessions()  # the link drops
        journal.messages("app.service", 4, 20)  # written during the outage
        seen = await reader.until(lambda seen: seen[-1:] == ["message 20"])
        assert seen == [*numbered(1, 3), "[perview]", *numbered(4, 20)]
        journal.messages("app.service", 21, 21)
        assert await reader.until(lambda seen: seen[-1:] == ["message 21"])
        reader.response.close()
    # Like every source, it stops on the far side when its last viewer leaves.
    await eventually(lambda: not far_journalctl(journal.directory), WITHIN, step=0.02)


def far_journalctl(directory: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-af", f"journalctl.*{directory}"], capture_output=True)
    return [line for line in found.stdout.decode().splitlines() if "pgrep" not in line]


async def test_a_record_s_priority_is_its_level_in_the_streams(
    serve: Serve, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    journal.write(
        *(record("app.service", f"message {p}", priority=p) for p in range(8)),
        record("app.service", "message 8 says ERROR and level=error", priority=6),
        record("app.service", "message 9", priority=3),
    )
    server = serve("serve", "-c", str(config(journal, tmp_path)))
    async with aiohttp.ClientSession() as session:
        url = f"{server.base}/api/sources/app/text?backlog=100&level=warning"
        reader = Reader(await session.get(url, headers=AUTH))
        seen = await reader.until(lambda seen: seen[-1:] == ["message 9"])
        reader.response.close()
    # emerg to warning, not notice, info, debug, nor the info record that says ERROR
    assert seen == [*numbered(0, 4), "message 9"]
