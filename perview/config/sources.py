"""The `[sources.NAME]` tables: a command, a file or a journal, where it runs, how its lines are
classified and recorded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from perview.classify import FORMATS, Format, Options
from perview.classify import check as check_classify
from perview.config.checker import Checker, described
from perview.config.records import (
    LOCAL,
    NAME,
    HostConfig,
    JournalConfig,
    ServerConfig,
    SourceConfig,
    keys,
)
from perview.config.values import is_glob

# journalctl's priority names, most severe first (their index is the number); a few common
# spellings journalctl does not take are accepted as the name it does.
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
PRIORITY_ALIASES = {"emergency": "emerg", "critical": "crit", "error": "err", "warn": "warning"}
BOOT_ID = re.compile(r"[0-9a-f]{32}([+-]\d+)?")

# The keys that refine a journal source, meaningless without `journal` (JournalConfig's fields
# under journalctl's names).
JOURNAL_KEYS = frozenset(
    {"priority", "identifier", "boot", "kernel", "journal_directory", "journal_file"}
)
# Besides its record's fields, a source says `shell` (how its command is read), `host` (one of
# `hosts`) and the journal's keys.
SOURCE_KEYS = keys(SourceConfig) | {"shell", "host"} | JOURNAL_KEYS
# What a key that is not written reads as.
_SOURCE, _JOURNAL = SourceConfig(""), JournalConfig()


def source(
    check: Checker, name: str, raw: Any, hosts: Mapping[str, HostConfig], server: ServerConfig
) -> SourceConfig:
    path = ("sources", name)
    if not NAME.fullmatch(name):
        check.problem(path, f"{name!r} is not a usable source name (letters, digits, _ . -)")
    table = check.table(raw, path, SOURCE_KEYS)
    has_command, has_file = "command" in table, "file" in table
    if has_command + has_file + ("journal" in table) != 1:
        check.problem(path, "needs exactly one of command, file or journal")
    journal = _journal(check, table, path)
    shell = check.get(table, path, "shell", bool, False)
    command: tuple[str, ...] = ()
    if has_command:
        command = check.command(table["command"], (*path, "command"), shell)
    elif shell:
        check.problem((*path, "shell"), "only applies to a command")
    file = check.get(table, path, "file", str, _SOURCE.file)
    names = _source_hosts(check, table, path, hosts)
    if file is not None and any(h != LOCAL for h in names) and is_glob(file):
        check.problem((*path, "file"), "a glob can only be followed on this machine")
    backlog = check.get(table, path, "backlog", int, _SOURCE.backlog)
    if backlog < 1:
        check.problem((*path, "backlog"), "must be at least 1")
    linger = check.get(table, path, "linger", float, _SOURCE.linger)
    if linger < 0:
        check.problem((*path, "linger"), "must not be negative")
    env = check.get(table, path, "env", dict, _SOURCE.env)
    for key, value in env.items():
        if not isinstance(value, str):
            check.problem((*path, "env", key), f"must be a string, not {described(value)}")
    format, level, entry_start = _classify(check, table, path)
    return SourceConfig(
        name=name,
        command=command,
        file=file,
        hosts=names,
        backlog=max(backlog, 1),
        keep=check.get(table, path, "keep", bool, _SOURCE.keep),
        linger=max(linger, 0.0),
        rerun=check.get(table, path, "rerun", bool, _SOURCE.rerun),
        env={k: v for k, v in env.items() if isinstance(v, str)},
        cwd=check.get(table, path, "cwd", str, _SOURCE.cwd),
        title=check.get(table, path, "title", str, _SOURCE.title),
        group=check.get(table, path, "group", str, _SOURCE.group),
        format=format,
        level=level,
        entry_start=entry_start,
        journal=journal,
        **_recording(check, table, path, server),
    )


def _classify(
    check: Checker, table: dict[str, Any], path: tuple[str, ...]
) -> tuple[Format | Literal["raw"], str | None, str | None]:
    """A source's `format`, `level` and `entry_start`, checked as the classifier will use
    them (a `level` or `entry_start` that RE2 refuses is a problem here, not at start)."""
    format = check.get(table, path, "format", str, _SOURCE.format)
    level = check.get(table, path, "level", str, _SOURCE.level)
    entry_start = check.get(table, path, "entry_start", str, _SOURCE.entry_start)
    if format == "raw":
        for key in ("level", "entry_start"):
            if key in table:
                check.problem((*path, key), 'does nothing with format = "raw" (no levels)')
        return "raw", None, None
    if format not in FORMATS:
        choices = ", ".join(FORMATS) + ", raw"
        check.problem((*path, "format"), f"must be one of {choices}, not {format!r}")
        format = "auto"
    problems = check_classify(Options(format, level, entry_start))
    for problem in problems:
        key, _, message = problem.partition(": ")
        check.problem((*path, key), message)
    if problems:
        return format, None, None
    return format, level, entry_start


def _journal(check: Checker, table: dict[str, Any], path: tuple[str, ...]) -> JournalConfig | None:
    """The `journal` key and the keys that refine it; None when the source is not one."""
    if "journal" not in table:
        for key in sorted(JOURNAL_KEYS & table.keys()):
            check.problem((*path, key), "only applies to a journal source (journal = ...)")
        return None
    value = table["journal"]
    units: tuple[str, ...] = ()
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        units = tuple(value)
    elif value is not True:
        shown = "false" if value is False else "[]" if value == [] else described(value)
        check.problem(
            (*path, "journal"),
            'must be true (the whole journal) or a list of unit names like ["nginx.service"], '
            f"not {shown}",
        )
    identifiers: tuple[str, ...] = ()
    if isinstance(table.get("identifier"), str):
        identifiers = (table["identifier"],)
    elif "identifier" in table:
        identifiers = check.strings(table, path, "identifier")
    directory = check.get(table, path, "journal_directory", str, _JOURNAL.directory)
    file = check.get(table, path, "journal_file", str, _JOURNAL.file)
    if directory is not None and file is not None:
        check.problem((*path, "journal_file"), "has both journal_directory and journal_file")
    return JournalConfig(
        units=units,
        priority=_journal_priority(check, table, path),
        identifiers=identifiers,
        boot=_boot(check, table, path),
        kernel=check.get(table, path, "kernel", bool, _JOURNAL.kernel),
        directory=directory,
        file=file,
    )


def _journal_priority(check: Checker, table: dict[str, Any], path: tuple[str, ...]) -> str | None:
    if "priority" not in table:
        return None
    value = table["priority"]
    words = value.split("..") if isinstance(value, str) else [value]
    found = [_priority(word) for word in words]
    if len(found) > 2 or None in found:
        check.problem(
            (*path, "priority"),
            f"must be one of {', '.join(PRIORITIES)} (or 0-7), or a range like "
            f'"err..warning", not {value!r}',
        )
        return None
    return "..".join(f for f in found if f is not None)


def _boot(check: Checker, table: dict[str, Any], path: tuple[str, ...]) -> str | None:
    if "boot" not in table:
        return None
    value = table["boot"]
    if value is True:
        return "0"
    if value is False:
        return None
    if isinstance(value, int) and value <= 0:
        return str(value)
    if isinstance(value, str) and BOOT_ID.fullmatch(value):
        return value
    check.problem(
        (*path, "boot"),
        "must be true (this boot), 0 or a negative number (-1: the boot before), "
        f"or a boot ID (32 hex digits), not {value!r}",
    )
    return None


def _recording(
    check: Checker, table: dict[str, Any], path: tuple[str, ...], server: ServerConfig
) -> dict[str, Any]:
    """A source's record and record_size: its own, else the server's defaults; `record =
    false` turns both off."""
    if table.get("record") is False:
        if "record_size" in table:
            check.problem((*path, "record_size"), "cannot be set with record = false")
        return {"record": None, "record_size": None}
    own = "record" in table or "record_size" in table
    return {
        "record": check.record(table, path, None if own else server.record),
        "record_size": check.size(table, path, "record_size", None if own else server.record_size),
    }


def _source_hosts(
    check: Checker, table: dict[str, Any], path: tuple[str, ...], hosts: Mapping[str, HostConfig]
) -> tuple[str, ...]:
    if "host" in table and "hosts" in table:
        check.problem(path, "has both host and hosts; use one")
    if "host" in table:
        names: tuple[str, ...] = (check.get(table, path, "host", str, LOCAL),)
        key = "host"
    else:
        names = check.strings(table, path, "hosts")
        key = "hosts"
    for host in names:
        if host != LOCAL and host not in hosts:
            defined = ", ".join(sorted(hosts)) or "none"
            check.problem(
                (*path, key),
                f"host {host!r} is not defined in [hosts] "
                f"(defined: {defined}; {LOCAL!r} is this machine)",
            )
    if len(set(names)) != len(names):
        check.problem((*path, key), "names a host twice")
    return () if names == (LOCAL,) else names


def _priority(value: object) -> str | None:
    """journalctl's name for a priority given as a name, an alias or a number 0-7."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(PRIORITIES):
        return PRIORITIES[value]
    if isinstance(value, str):
        word = value.strip().lower()
        if word.isdigit():
            return _priority(int(word))
        word = PRIORITY_ALIASES.get(word, word)
        return word if word in PRIORITIES else None
    return None
