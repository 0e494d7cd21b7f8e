"""Lines per level of one source: since Perview started, per part (host), and over the last minute
and hour, counted block-wise from the classifier's marks (no work per line in Python)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from perview.classify import HEAD, LEVEL_MASK, LEVEL_NAMES

# The windows move in steps of BUCKET seconds: "the last minute" is the last six buckets, the
# current one included. A ring of 360 buckets covers the hour for 360 x 7 counts, whatever the
# rate; per-second buckets would cost ten times that for a precision nobody reads in a sidebar.
BUCKET = 10.0
MINUTE_BUCKETS = 6
HOUR_BUCKETS = 360

# The levels reported, most severe first (what a person looks for first); `none` is left out:
# it is every line that is not one of these (the source's line count says how many).
REPORTED = tuple(reversed(range(1, len(LEVEL_NAMES))))

_LEVEL_ONLY = bytes(m & LEVEL_MASK for m in range(256))
_BYTE = [bytes([level]) for level in range(len(LEVEL_NAMES))]
# A block of plain lines (`seq`, text without a level word) is all heads without a level: telling
# so by comparing with such marks made afresh (a memset and a memcmp, 0.9 us for a 256 KiB block
# of `seq`) spares translating the marks (as much as the classifier's own test for such a block).
_HEAD = bytes([HEAD])


def count_levels(marks: bytes) -> list[int]:
    """Lines per level (indexed by level, `none` first) in a block's marks."""
    counts = [0] * len(LEVEL_NAMES)
    if marks == _HEAD * len(marks):
        counts[0] = len(marks)
        return counts
    levels = marks.translate(_LEVEL_ONLY)
    counts[0] = levels.count(_BYTE[0])
    if counts[0] < len(levels):
        for level in REPORTED:
            counts[level] = levels.count(_BYTE[level])
    return counts


class LevelTally:
    """Counts of a source's lines by level: totals by part (a host, a file) and a
    ring of recent buckets for the windows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.totals: dict[str | None, list[int]] = {}
        self._buckets: deque[tuple[int, list[int]]] = deque(maxlen=HOUR_BUCKETS)

    def add(self, marks: bytes, part: str | None = None) -> None:
        counts = count_levels(marks)
        total = self.totals.get(part)
        if total is None:
            total = self.totals[part] = [0] * len(LEVEL_NAMES)
        step = int(self._clock() // BUCKET)
        if not self._buckets or self._buckets[-1][0] != step:
            self._buckets.append((step, [0] * len(LEVEL_NAMES)))
        recent = self._buckets[-1][1]
        for level, n in enumerate(counts):
            total[level] += n
            recent[level] += n

    def describe(self) -> dict[str, dict[str, int]]:
        """`{"fatal": {"minute": N, "hour": N, "total": N}, ... "trace": {...}}`."""
        step = int(self._clock() // BUCKET)
        minute = [0] * len(LEVEL_NAMES)
        hour = [0] * len(LEVEL_NAMES)
        for at, counts in self._buckets:
            if at > step - HOUR_BUCKETS:
                for level in REPORTED:
                    hour[level] += counts[level]
                    if at > step - MINUTE_BUCKETS:
                        minute[level] += counts[level]
        return {
            LEVEL_NAMES[level]: {
                "minute": minute[level],
                "hour": hour[level],
                "total": sum(t[level] for t in self.totals.values()),
            }
            for level in REPORTED
        }
