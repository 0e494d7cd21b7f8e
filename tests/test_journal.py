"""Journal sources against real journal files: the lines records become, their levels, filters,
following, and exact resume by cursor (a new run, a replaced journal, a cursor refused)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from perview import preflight
from perview.classify import Classifier, level_of
from perview.config import ConfigError, JournalConfig, parse
from perview.sources.journal import JournalSource
from tests.conftest import eventually
from tests.journald import Journal, record

WITHIN = 10.0  # the bound on every wait: journalctl starts in tens of ms, on a noisy machine
LINE = re.compile(rb"<(\d)>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (\S+): (.*)")


class Collect:
    """An Output that keeps the lines, with `<notice>` lines where notices fell."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.notices: list[str] = []
        self.starts = 0

    async def write(self, data: bytes, part: str | None = None) -> None:
        self.data += data

    def started(self, pid: int | None) -> None:
        self.starts += 1

    def waiting(self, reason: str) -> None:
        pass

    def notice(self, text: str, part: str | None = None) -> None:
        self.notices.append(text)
        self.data += b"<notice>\n"

    def lines(self) -> list[bytes]:
        return bytes(self.data).splitlines()

    def messages(self) -> list[str]:
        """Each record's message (without its fields), and `<notice>` where one fell."""
        found = []
        for line in self.lines():
            if line == b"<notice>":
                found.append("<notice>")
            elif match := LINE.match(line):
                found.append(match[3].decode().split("  ")[0])
        return found


@asynccontextmanager
async def following(source: JournalSource) -> AsyncIterator[Collect]:
    """One run of `source` for the duration of the block; it must stop promptly when asked."""
    out = Collect()
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(out, stop))
    try:
        yield out
    finally:
        stop.set()
        await asyncio.wait_for(task, WITHIN)


def journal_source(journal: Journal, **query: object) -> JournalSource:
    return JournalSource(JournalConfig(directory=str(journal.directory), **query))  # type: ignore[arg-type]


def numbered(first: int, last: int) -> list[str]:
    return [f"message {n}" for n in range(first, last + 1)]


async def test_a_record_is_one_line_of_priority_time_identifier_message_and_fields(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal")
    journal.write(record("nginx.service", "bind() to 0.0.0.0:80 failed", priority=3, pid=123))
    async with following(journal_source(journal)) as out:
        await eventually(lambda: out.lines(), WITHIN)
    (line,) = out.lines()
    match = LINE.fullmatch(line)
    assert match is not None, line
    assert match.groups() == (
        b"3",
        b"nginx[123]",
        b"bind() to 0.0.0.0:80 failed  unit=nginx.service pid=123",
    )


async def test_every_priority_is_the_line_s_level_whatever_the_message_says(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal")
    # Messages that would fool a reader of the text: another level word, a logfmt level, JSON.
    lying = ["ERROR in a debug record", "level=debug msg=x", '{"level":"error"}', "WARN: no"]
    journal.write(
        *(record("app.service", lying[p % len(lying)], priority=p) for p in range(8)),
    )
    async with following(journal_source(journal)) as out:
        await eventually(lambda: len(out.lines()) == 8, WITHIN)
    marks, _ = Classifier().classify(bytes(out.data))
    assert [level_of(m) for m in marks] == [
        "fatal",  # 0 emerg
        "fatal",  # 1 alert
        "fatal",  # 2 crit
        "error",  # 3 err
        "warning",  # 4 warning
        "info",  # 5 notice
        "info",  # 6 info
        "debug",  # 7 debug
    ]


async def test_a_message_of_several_lines_is_one_entry_at_the_record_s_level(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal")
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad'
    journal.write(record("app.service", traceback, priority=3), record("app.service", "next"))
    async with following(journal_source(journal)) as out:
        await eventually(lambda: len(out.lines()) == 4, WITHIN)
    lines = out.lines()
    assert lines[1:3] == [b'      File "x.py", line 1', b"    ValueError: bad"]
    marks, _ = Classifier().classify(bytes(out.data))
    assert [(level_of(m), bool(m & 0x80)) for m in marks] == [
        ("error", True),
        ("error", False),
        ("error", False),
        ("info", True),
    ]


async def test_units_and_priority_select_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.write(
        record("nginx.service", "nginx info", priority=6),
        record("postgresql.service", "pg warning", priority=4),
        record("cron.service", "cron error", priority=3),
        record("nginx.service", "nginx error", priority=3),
    )
    units = journal_source(journal, units=("nginx.service", "postgresql.service"))
    async with following(units) as out:
        await eventually(lambda: len(out.lines()) == 3, WITHIN)
    assert out.messages() == ["nginx info", "pg warning", "nginx error"]
    severe = journal_source(journal, units=("nginx.service", "cron.service"), priority="warning")
    async with following(severe) as out:
        await eventually(lambda: len(out.lines()) == 2, WITHIN)
    assert out.messages() == ["cron error", "nginx error"]
    assert all(b"unit=" in line for line in out.lines())


async def test_records_written_while_followed_arrive_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 30)
    async with following(journal_source(journal)) as out:
        await eventually(lambda: out.messages() == numbered(21, 30), WITHIN)  # the last 10
        for first in range(31, 91, 20):
            journal.messages("app.service", first, first + 19)
        await eventually(lambda: out.messages() == numbered(21, 90), WITHIN)


async def test_the_next_run_resumes_after_the_last_record_seen(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 5)
    source = journal_source(journal)
    async with following(source) as out:
        await eventually(lambda: out.messages() == numbered(1, 5), WITHIN)
    journal.messages("app.service", 6, 40)  # while nobody follows: more than the first 10
    async with following(source) as out:
        await eventually(lambda: out.messages()[-1:] == ["message 40"], WITHIN)
        journal.messages("app.service", 41, 42)
        await eventually(lambda: out.messages()[-1:] == ["message 42"], WITHIN)
    assert out.messages() == ["<notice>", *numbered(6, 42)]
    assert out.notices[0].startswith("resumed after the last record seen")


async def test_a_run_with_nothing_new_repeats_nothing(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 3)
    source = journal_source(journal)
    async with following(source) as out:
        await eventually(lambda: out.messages() == numbered(1, 3), WITHIN)
    async with following(source) as out:
        await eventually(lambda: out.starts == 1, WITHIN)
        journal.messages("app.service", 4, 4)
        await eventually(lambda: out.messages() == ["<notice>", "message 4"], WITHIN)


async def test_a_journal_that_no_longer_holds_the_last_record_says_so_and_loses_no_more(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 3)
    source = journal_source(journal)
    async with following(source) as out:
        await eventually(lambda: out.messages() == numbered(1, 3), WITHIN)
    journal.replace()  # vacuumed: the record the cursor names is gone
    journal.messages("app.service", 4, 6)
    async with following(source) as out:
        await eventually(lambda: len(out.messages()) == 4, WITHIN)
    # journalctl --after-cursor would have skipped "message 4" without a word.
    assert out.messages() == ["<notice>", *numbered(4, 6)]
    assert "no longer holds the last record seen" in out.notices[0]


async def test_a_cursor_journalctl_refuses_is_said_and_the_journal_starts_from_its_end(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 12)
    source = journal_source(journal)
    source.loaded, source.cursor = True, "s=not-a-cursor"
    async with following(source) as out:
        await eventually(lambda: len(out.messages()) == 11, WITHIN)
        journal.messages("app.service", 13, 13)
        await eventually(lambda: out.messages()[-1:] == ["message 13"], WITHIN)
    assert out.messages() == ["<notice>", *numbered(3, 13)]
    assert "cannot resume after the last record seen" in out.notices[0]
    assert "starting from the end" in out.notices[0]


async def test_a_kept_cursor_survives_a_new_source_and_is_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.messages("app.service", 1, 3)
    state = tmp_path / "data" / "journal" / "app@local.json"
    query = JournalConfig(directory=str(journal.directory))
    async with following(JournalSource(query, state=state)) as out:
        await eventually(lambda: out.messages() == numbered(1, 3), WITHIN)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert json.loads(state.read_text())["cursor"].startswith("s=")
    journal.messages("app.service", 4, 5)
    async with following(JournalSource(query, state=state)) as out:  # as after a restart
        await eventually(lambda: out.messages()[-1:] == ["message 5"], WITHIN)
    assert out.messages() == ["<notice>", "message 4", "message 5"]
    other = JournalConfig(directory=str(journal.directory), priority="err")
    async with following(JournalSource(other, state=state)) as out:  # other filters: afresh
        await eventually(lambda: out.starts == 1, WITHIN)
        journal.write(record("app.service", "bad", priority=3))
        await eventually(lambda: out.messages() == ["bad"], WITHIN)
    assert not list(state.parent.glob("*.tmp"))


async def test_journalctl_s_own_words_pass_as_text(tmp_path: Path) -> None:
    source = JournalSource(JournalConfig(directory=str(tmp_path / "missing")))
    out = Collect()
    ended = await asyncio.wait_for(source.run(out, asyncio.Event()), WITHIN)
    assert ended.status != 0
    assert out.lines() and not out.messages()  # text, and no record


# -- config ------------------------------------------------------------------------------------


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(text, "perview.toml")
    return str(raised.value).splitlines()


def test_journal_keys_are_read_into_a_query() -> None:
    config = parse(
        "[sources.web]\n"
        'journal = ["nginx.service", "php-fpm.service"]\n'
        'priority = "warning"\nidentifier = "nginx"\nboot = -1\n'
        'journal_directory = "/var/log/journal/remote"\n'
        "[sources.kernel]\njournal = true\nkernel = true\npriority = 3\n"
        '[sources.ranged]\njournal = true\npriority = "error..warn"\nboot = true\n'
    )
    web, kernel, ranged = config.sources
    assert web.kind == "journal"
    assert web.journal == JournalConfig(
        units=("nginx.service", "php-fpm.service"),
        priority="warning",
        identifiers=("nginx",),
        boot="-1",
        directory="/var/log/journal/remote",
    )
    assert kernel.journal == JournalConfig(kernel=True, priority="err")
    assert ranged.journal == JournalConfig(priority="err..warning", boot="0")


def test_bad_journal_keys_name_file_line_and_key() -> None:
    text = (
        "[sources.a]\n"  # 1
        "journal = []\n"  # 2
        'priority = "loud"\n'  # 3
        "boot = 2\n"  # 4
        'journal_directory = "/a"\n'  # 5
        'journal_file = "/b.journal"\n'  # 6
        "\n"
        "[sources.b]\n"  # 8
        'command = "tail -F x"\n'  # 9
        "kernel = true\n"  # 10
        "\n"
        "[sources.c]\n"  # 12
        'file = "/x"\n'  # 13
        "journal = true\n"  # 14
        "[sources.d]\n"  # 15
        "journal = false\n"  # 16
        "identifier = 5\n"  # 17
    )
    assert problems(text) == [
        "perview.toml:2: sources.a.journal: must be true (the whole journal) or a list of unit "
        'names like ["nginx.service"], not []',
        "perview.toml:3: sources.a.priority: must be one of emerg, alert, crit, err, warning, "
        "notice, info, debug (or 0-7), or a range like \"err..warning\", not 'loud'",
        "perview.toml:4: sources.a.boot: must be true (this boot), 0 or a negative number "
        "(-1: the boot before), or a boot ID (32 hex digits), not 2",
        "perview.toml:6: sources.a.journal_file: has both journal_directory and journal_file",
        "perview.toml:10: sources.b.kernel: only applies to a journal source (journal = ...)",
        "perview.toml:12: sources.c: needs exactly one of command, file or journal",
        "perview.toml:16: sources.d.journal: must be true (the whole journal) or a list of "
        'unit names like ["nginx.service"], not false',
        "perview.toml:17: sources.d.identifier: must be a list of strings, not an integer",
    ]


def test_a_journal_source_s_file_paths_are_this_host_s_or_the_far_host_s() -> None:
    here = JournalSource(JournalConfig(directory="~/journal"))
    far = JournalSource(JournalConfig(file="~/j/system.journal"), destination="web1")
    assert f"--directory={os.path.expanduser('~/journal')}" in here.argv()
    assert "--file=j/system.journal" in far.argv()  # relative: in that host's home


def test_check_names_a_journal_directory_that_is_not_there(tmp_path: Path) -> None:
    config = parse(
        f'[sources.j]\njournal = true\njournal_directory = "{tmp_path / "nope"}"\n'
        f'[sources.k]\njournal = true\njournal_directory = "{tmp_path}"\n'
    )
    found = [(f.level, f.key, f.message) for f in preflight.check(config)]
    assert found == [
        (
            "error",
            ("sources", "j", "journal_directory"),
            f"{tmp_path / 'nope'} is not there or not readable",
        )
    ]
