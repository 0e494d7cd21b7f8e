"""The systemd journal as a source: records read with `journalctl -o json --follow`, here or on
another host over ssh, each shown as one line, and resumed exactly by cursor.

A record becomes

    <3>2026-12-03T10:00:00.123 nginx[123]: bind() to 0.0.0.0:80 failed  unit=nginx.service pid=123

- `<3>`: its priority, as syslog and the kernel write it. The classifier reads a leading `<N>`
  before anything else on a line (a `level=` in the message cannot override it), so the line's
  level is the record's priority (3 = err), every time.
- its own time (local, to the millisecond), its identifier and PID as `journalctl` shows them,
  the message; then its unit and PID as `key=value` fields for the page's field filter.
- a message of several lines continues on indented lines, which the classifier keeps in the
  record's entry.

Exact resume: the source keeps the cursor of the last record it passed on, and the next
journalctl (a reconnect, the next viewer, a Perview restart for a `keep` source, which keeps it
in the data directory) starts at that record with `--cursor` and drops it. `--after-cursor`
would be shorter but is not exact: when the journal no longer holds the record (rotated,
vacuumed), journalctl still skips one, and that one was never seen. Here the first record
tells: if it is not the one expected, a notice says that what the journal dropped meanwhile is
lost, and the records after it follow. A cursor journalctl cannot use at all (another journal's,
damaged) is said in a notice too, and the source starts again from the journal's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from perview.config import DEFAULT_FILE_LINES, JournalConfig
from perview.hub import Ended, Forward, Output
from perview.sources._state import StateFile
from perview.sources.process import Guards, ProcessSource
from perview.sources.ssh import SshSource, _Words, ssh_argv

log = logging.getLogger(__name__)

# What journalctl sends of each record (it adds __CURSOR and the timestamps itself). Fewer
# fields, less JSON to parse: about a third of a whole record. `--output-fields` needs systemd
# 236 (2017) on the reading host.
FIELDS = (
    "MESSAGE",
    "PRIORITY",
    "SYSLOG_IDENTIFIER",
    "SYSLOG_PID",
    "_PID",
    "_COMM",
    "_SYSTEMD_UNIT",
)

# A line of journalctl's output longer than this without a newline is not a record being
# received but something else (it is passed on as text, as journalctl's own words are).
MAX_RECORD = 4 * 1024 * 1024

CONTINUATION = "    "  # a message's second and further lines: indented, so in its entry
PLAIN = re.compile(r'[^\s"=]+')  # a field value written as it is (else quoted)


class JournalSource:
    """Follows the journal records `query` selects, on this machine or on `destination` over ssh.

    Starts with the last `lines` records, and every later run (a reconnect, the next viewer)
    after the last record passed on; with `state`, a file in the data directory, so does the
    first run after a restart of Perview. Runs until `stop` is set or journalctl ends."""

    kind = "journal"

    def __init__(
        self,
        query: JournalConfig,
        *,
        destination: str | None = None,
        ssh_args: Sequence[str] = (),
        guards: Guards | None = None,
        state: Path | None = None,
        lines: int = DEFAULT_FILE_LINES,
    ) -> None:
        self.query = query
        self.destination = destination
        self.ssh_args = tuple(ssh_args)
        self.guards = guards
        self.lines = lines
        self.filters = _filters(query, remote=destination is not None)
        # A source whose filters or host changed reads other records: its old cursor means
        # nothing to it (it would not even be among them).
        self.state = StateFile(state, [destination or "", *self.filters]) if state else None
        self.cursor: str | None = None  # the last record passed on
        self.cursor_at = 0.0  # its time (epoch seconds)
        self.loaded = False  # the state file was read (once, at the first run)
        self._resuming: str | None = None  # the cursor the running journalctl started at

    def argv(self) -> list[str]:
        """journalctl's arguments for the next run: after the last record seen, if any."""
        self._resuming = self.cursor
        # `--follow` alone shows only ten records from the cursor on: `--lines=all` all of them.
        start = (
            [f"--cursor={self.cursor}", "--lines=all"] if self.cursor else [f"--lines={self.lines}"]
        )
        return [
            "journalctl",
            "--no-pager",
            "--follow",
            "--output=json",
            "--all",  # long and binary fields too, not `null`
            f"--output-fields={','.join(FIELDS)}",
            *start,
            *self.filters,
        ]

    def command_line(self) -> str:
        return shlex.join(self.argv())

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        if not self.loaded:
            self.loaded = True
            self._load()
        try:
            while True:
                records = _Records(self, out)
                if self.destination is None:
                    source = ProcessSource(self.argv(), guards=self.guards)
                    ended = await source.run(records, stop)
                else:
                    ssh = _Ssh(self, self.destination, ssh_args=self.ssh_args, guards=self.guards)
                    ended = await ssh.run(records, stop)
                await records.close()
                if stop.is_set() or not records.refused(ended):
                    return ended
                out.notice(
                    f"cannot resume after the last record seen ({_when(self.cursor_at)}): "
                    f"journalctl says {records.last_words!r}; starting from the end"
                )
                self.cursor = None
        finally:
            self.save(force=True)

    # -- the cursor, kept across restarts of Perview -------------------------------------------

    def passed(self, cursor: str, at: float) -> None:
        self.cursor, self.cursor_at = cursor, at
        self.save()

    def save(self, *, force: bool = False) -> None:
        """Write the cursor to the state file, at most once a second unless `force`."""
        if self.state is not None and self.cursor is not None and (force or self.state.due()):
            self.state.save({"cursor": self.cursor, "at": self.cursor_at}, force=force)

    def _load(self) -> None:
        if self.state is None or (state := self.state.load()) is None:
            return
        cursor, at = state.get("cursor"), state.get("at")
        if isinstance(cursor, str) and cursor and isinstance(at, int | float):
            self.cursor, self.cursor_at = cursor, float(at)
        else:
            log.warning("%s: not a journal cursor; starting from the end", self.state.path)


class _Ssh(SshSource):
    """journalctl over ssh: each connection (a retry after the link dropped) starts at the
    cursor as it is then, not at the one the first connection had."""

    def __init__(
        self,
        journal: JournalSource,
        destination: str,
        *,
        ssh_args: Sequence[str],
        guards: Guards | None,
    ) -> None:
        self.journal = journal
        super().__init__(destination, journal.command_line(), ssh_args=ssh_args, guards=guards)

    async def connect(self, out: Output, stop: asyncio.Event, words: _Words) -> Ended:
        self.argv = ssh_argv(self.destination, self.ssh_args, self.journal.command_line())
        return await super().connect(out, stop, words)


class _Records(Forward):
    """One run's output: journalctl's JSON lines become lines to read (see the module
    docstring); anything else it says (its errors, a hint about permissions) passes as text."""

    def __init__(self, source: JournalSource, out: Output) -> None:
        super().__init__(out)
        self.source = source
        self.pending = b""
        self.records = 0  # records read in this run (the resumed one included)
        self.last_words = ""  # journalctl's last line of text, for a refused cursor
        self.first: bool = True  # the next record is the first of a journalctl run
        self.second = False  # the next record is the first after a resumed one
        self._stamp: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    async def write(self, data: bytes, part: str | None = None) -> None:
        data = self.pending + data if self.pending else data
        end = data.rfind(b"\n") + 1
        self.pending = data[end:]
        if len(self.pending) > MAX_RECORD:
            end, self.pending = len(data), b""
        if end:
            await self._lines(data[:end].splitlines(), part)

    def started(self, pid: int | None) -> None:
        # A new journalctl (ssh reconnected): it starts at the cursor as it was just now.
        self.first = True
        self.pending = b""
        super().started(pid)

    async def close(self) -> None:
        pending, self.pending = self.pending, b""
        # Half a record (the link dropped in it) is read again whole by the next run.
        if pending and not pending.startswith(b"{"):
            await self._lines([pending], None)

    def refused(self, ended: Ended) -> bool:
        """Whether journalctl could not start at the cursor it was given."""
        return (
            self.source._resuming is not None
            and self.records == 0
            and ended.status not in (0, None)
            and "cursor" in self.last_words
        )

    async def _lines(self, lines: list[bytes], part: str | None) -> None:
        # Worked on as text, encoded once per block: journalctl's JSON is UTF-8 (a field that is
        # not is sent as an array of bytes).
        parts: list[str] = []
        for line in lines:
            record = _parse(line) if line.startswith(b"{") else None
            if record is None:
                text = line.decode(errors="replace")
                if text.strip():
                    self.last_words = text.strip()
                parts += (text, "\n")
                continue
            self.records += 1
            cursor = record.get("__CURSOR")
            at = _int(record.get("__REALTIME_TIMESTAMP"))
            notice = None
            if self.first:
                self.first = False
                expected = self.source._resuming
                if expected is not None and cursor == expected:
                    self.second = True  # the last record seen: shown already
                    continue
                if expected is not None:
                    notice = (
                        "the journal no longer holds the last record seen "
                        f"({_when(self.source.cursor_at)}): rotated or vacuumed since, so what "
                        "it dropped after that is not shown; the records after it follow"
                    )
            elif self.second:
                self.second = False
                notice = f"resumed after the last record seen ({_when(self.source.cursor_at)})"
            if notice is not None:
                if parts:
                    await self.out.write(_encode(parts), part)
                    parts.clear()
                self.out.notice(notice, part)
            parts.append(self._format(record, at))
            if isinstance(cursor, str):
                self.source.passed(cursor, at / 1e6)
        if parts:
            await self.out.write(_encode(parts), part)

    def _format(self, record: dict[str, object], at: int) -> str:
        seconds = at // 1_000_000
        if seconds != self._stamp[0]:
            self._stamp = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds)))
        get = record.get
        priority = get("PRIORITY")
        who = _text(get("SYSLOG_IDENTIFIER") or get("_COMM") or get("_SYSTEMD_UNIT")) or "journal"
        fields = ""
        if (unit := get("_SYSTEMD_UNIT")) is not None:
            fields += " unit=" + _field(_text(unit))
        if (pid := get("SYSLOG_PID") or get("_PID")) is not None:
            fields += " pid=" + _field(_text(pid))
            who += f"[{_text(pid)}]"
        message = _text(get("MESSAGE")).rstrip("\n")
        first, _, rest = message.partition("\n")
        line = (
            f"{f'<{_text(priority)}>' if priority is not None else ''}{self._stamp[1]}"
            f".{at // 1000 % 1000:03d} {who}: {first}{' ' + fields if fields else ''}\n"
        )
        if rest:
            line += CONTINUATION + rest.replace("\n", "\n" + CONTINUATION) + "\n"
        return line


def _filters(query: JournalConfig, *, remote: bool) -> list[str]:
    """journalctl's arguments for what `query` selects (the same at every run)."""
    args: list[str] = []
    if query.directory is not None:
        args.append(f"--directory={_path(query.directory, remote)}")
    if query.file is not None:
        args.append(f"--file={_path(query.file, remote)}")
    args += [f"--unit={unit}" for unit in query.units]
    args += [f"--identifier={name}" for name in query.identifiers]
    if query.priority is not None:
        args.append(f"--priority={query.priority}")
    if query.boot is not None:
        args.append(f"--boot={query.boot}")
    if query.kernel:
        args.append("--dmesg")
    return args


def _path(path: str, remote: bool) -> str:
    # On another host `~` is that host's home, which only its shell knows: left to journalctl
    # there, it would be taken literally, so a relative path (its home) is what is sent.
    if remote:
        return path[2:] if path.startswith("~/") else path
    return os.path.expanduser(path)


def _parse(line: bytes) -> dict[str, object] | None:
    try:
        record = json.loads(line.decode(errors="replace"))
    except ValueError:
        return None
    return record if isinstance(record, dict) and "__CURSOR" in record else None


def _text(value: object) -> str:
    """A field's value as journalctl's JSON gives it: a string, an array of bytes (binary, or
    not UTF-8), or an array of those for a field the record has several times."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if all(isinstance(b, int) for b in value):
            with contextlib.suppress(ValueError):
                return bytes(value).decode(errors="replace")
        return _text(value[0])
    return "" if value is None else str(value)


def _field(value: str) -> str:
    # Unit names and PIDs are plain; anything else is quoted so that it stays one field.
    return value if PLAIN.fullmatch(value) else json.dumps(value)


def _encode(parts: list[str]) -> bytes:
    return "".join(parts).encode(errors="replace")  # a lone surrogate: JSON allows "\\ud800"


def _int(value: object) -> int:
    if isinstance(value, str) and value.isdigit():  # journalctl's JSON gives numbers as strings
        return int(value)
    return value if isinstance(value, int) else 0


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "an unknown time"
