"""Reading a config's tables: where each key is written (tomllib keeps no positions), values
taken by type, and every problem kept with its line and key rather than raised at the first."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from perview.config.values import parse_duration, parse_size


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    key: str
    message: str


class KeyLines:
    """Where each table and key is written. tomllib keeps no positions, so this reads the
    text for `[table]` headers and `key =` lines; good enough to point a person at a line.
    `[a.b]` and `a.b = 1` also define table `a`, so every prefix is placed where it first
    appears (a misspelled `[sourcse.b]` is named at its header, not at line 1)."""

    HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-"' ]+?)\s*=""")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            if header := self.HEADER.match(line):
                table = _split_key(header[1])
                self._place(table, number)
            elif key := self.KEY.match(line):
                self._place(table + _split_key(key[1]), number)

    def _place(self, path: tuple[str, ...], number: int) -> None:
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], number)

    def of(self, *path: str) -> int:
        """The line of `path`, or of its closest enclosing table, or 1."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.]+)\s*(?:\.|$)""", key)
    return tuple(part.strip().strip("\"'") for part in parts)


class Checker:
    """Takes values out of tables by type; what is wrong with one is kept in `problems`, and
    a default stands in for it, so that one reading finds every problem."""

    def __init__(self, lines: KeyLines) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def problem(self, path: tuple[str, ...], message: str) -> None:
        self.problems.append(Problem(self.lines.of(*path), ".".join(path), message))

    def table(
        self, value: Any, path: tuple[str, ...], allowed: frozenset[str] | None
    ) -> dict[str, Any]:
        """`value` as a table; with `allowed`, every other key is reported as unknown."""
        if not isinstance(value, dict):
            self.problem(path, f"must be a table, not {described(value)}")
            return {}
        for key, item in value.items():
            if allowed is not None and key not in allowed:
                what = "table" if isinstance(item, dict) else "key"
                expected = ", ".join(sorted(allowed))
                self.problem((*path, key), f"unknown {what} (expected one of: {expected})")
        return value

    def get(
        self, table: dict[str, Any], path: tuple[str, ...], key: str, kind: type, default: Any
    ) -> Any:
        if key not in table:
            return default
        value = table[key]
        # bool is an int in Python; a port of `true` is still a mistake.
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            self.problem((*path, key), f"must be {_article(kind)}, not {described(value)}")
            return default
        return value

    def strings(self, table: dict[str, Any], path: tuple[str, ...], key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem((*path, key), f"must be a list of strings, not {described(value)}")
            return ()
        return tuple(value)

    def limit(self, table: dict[str, Any], path: tuple[str, ...], key: str, default: int) -> int:
        value: int = self.get(table, path, key, int, default)
        if value < 1:
            self.problem((*path, key), "must be at least 1")
            return default
        return value

    def record(
        self, table: dict[str, Any], path: tuple[str, ...], default: float | None
    ) -> float | None:
        """`record = "7d"` (how long history is kept), or `false` (none, whatever the default)."""
        if table.get("record") is False:
            return None
        if "record" not in table:
            return default
        return self.duration(table, path, "record", 7 * 86400.0)

    def size(
        self, table: dict[str, Any], path: tuple[str, ...], key: str, default: int | None
    ) -> int | None:
        if key not in table:
            return default
        value = table[key]
        found = parse_size(value)
        if found is None or found < 1:
            self.problem(
                (*path, key), f'must be a size like "500MB", "2GB" (or bytes), not {value!r}'
            )
            return default
        return found

    def duration(
        self, table: dict[str, Any], path: tuple[str, ...], key: str, default: float
    ) -> float:
        value = table.get(key, default)
        seconds = parse_duration(value)
        if seconds is None or seconds <= 0:
            self.problem(
                (*path, key),
                f'must be a duration like "10s", "5m", "7d" (or seconds), not {value!r}',
            )
            return default
        return seconds

    def command(self, value: Any, path: tuple[str, ...], shell: bool) -> tuple[str, ...]:
        if isinstance(value, str):
            if shell:
                return ("/bin/sh", "-c", value)
            try:
                argv = tuple(shlex.split(value))
            except ValueError as exc:
                self.problem(path, f"cannot be split into arguments: {exc}")
                return ()
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            if shell:
                self.problem(path, "shell = true needs the command as one string")
            argv = tuple(value)
        else:
            self.problem(path, f"must be a string or a list of strings, not {described(value)}")
            return ()
        if not argv:
            self.problem(path, "is empty")
        return argv


def described(value: Any) -> str:
    """A value as a message names what it is: "an integer", "a table"."""
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _article(kind: type) -> str:
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a table",
    }.get(kind, kind.__name__)
