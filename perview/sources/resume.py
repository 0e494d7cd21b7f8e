"""Where a run stopped reading a file (here or on another host), kept for the next run and
across restarts, and how far back the next one reads: to where it was left, or at most
RESUME_LIMIT back, else the file's last lines with a notice of what was not followed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TypeGuard

from perview.sources.reader import READ_SIZE

# The bytes just before the offset that are kept to tell a file truncated and rewritten past the
# offset (its size alone cannot tell) from one that grew. 64 bytes span a timestamp or two.
FINGERPRINT = 64

# A viewer returning to a file source gets what was written while nobody watched, read from
# where the last run stopped, up to this much; beyond it, the file starts at its last lines and a
# notice says how much was not followed, and when.
RESUME_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Left:
    """Where a run stopped reading a file (here or on another host): enough to resume it
    exactly, or to say what was not followed."""

    ident: tuple[int, int]  # st_dev, st_ino of the file that was being read
    pos: int
    tail: bytes  # the bytes before `pos` (to tell a rewritten file from one that grew)
    at: float  # when (epoch seconds)

    def saved(self) -> dict[str, object]:
        """As a state file keeps it (see _state.py)."""
        return {
            "dev": self.ident[0],
            "ino": self.ident[1],
            "pos": self.pos,
            "tail": self.tail.hex(),
            "at": self.at,
        }

    @staticmethod
    def restored(saved: object) -> Left | None:
        """What `saved` made of a Left, or None if `saved` is not that."""
        if not isinstance(saved, dict):
            return None
        dev, ino, pos, at, tail = (saved.get(key) for key in ("dev", "ino", "pos", "at", "tail"))
        if not (_count(dev) and _count(ino) and _count(pos) and isinstance(tail, str)):
            return None
        if not isinstance(at, int | float):
            return None
        try:
            fingerprint = bytes.fromhex(tail)
        except ValueError:
            return None
        if len(fingerprint) > min(pos, FINGERPRINT):
            return None
        return Left((dev, ino), pos, fingerprint, float(at))


def bounded_start(fd: int, size: int, lines: int | None) -> int:
    """A file none of whose lines were followed yet: from its start, unless that is more than
    RESUME_LIMIT (then its last `lines`)."""
    return 0 if size <= RESUME_LIMIT else backlog_start(fd, size, lines or 0)


def moment(at: float) -> str:
    """A moment as the notices of files, local and remote, write it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def amount(n: int) -> str:
    """A number of bytes as the notices of files write it."""
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def backlog_start(fd: int, size: int, lines: int) -> int:
    """The offset of the first of the last `lines` lines, found reading backwards in blocks."""
    if lines <= 0:
        return size
    # A final newline ends the last line; it does not start one more.
    wanted = lines + 1 if size and os.pread(fd, 1, size - 1) == b"\n" else lines
    end = size
    while end > 0:
        start = max(0, end - READ_SIZE)
        block = os.pread(fd, end - start, start)
        found = block.count(b"\n")
        if found < wanted:
            wanted -= found
            end = start
            continue
        at = len(block)
        for _ in range(wanted):
            at = block.rindex(b"\n", 0, at)
        return start + at + 1
    return 0


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
