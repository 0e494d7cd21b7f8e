"""Lines per level: the windows move with the clock, the totals stay."""

from __future__ import annotations

from perview.classify import ERROR, HEAD, INFO, WARNING
from perview.tally import LevelTally, count_levels


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def marks(*levels: int) -> bytes:
    return bytes(level | HEAD for level in levels)


def test_continuation_lines_count_with_their_level() -> None:
    assert count_levels(bytes([ERROR | HEAD, ERROR, ERROR, INFO | HEAD, 0 | HEAD])) == [
        1, 0, 0, 1, 0, 3, 0
    ]  # fmt: skip


def test_the_minute_and_hour_windows_forget_and_the_total_does_not() -> None:
    clock = Clock()
    tally = LevelTally(clock)
    tally.add(marks(ERROR, ERROR, WARNING))
    assert tally.describe()["error"] == {"minute": 2, "hour": 2, "total": 2}
    clock.now += 61
    tally.add(marks(ERROR))
    assert tally.describe()["error"] == {"minute": 1, "hour": 3, "total": 3}
    assert tally.describe()["warning"] == {"minute": 0, "hour": 1, "total": 1}
    clock.now += 3600
    assert tally.describe()["error"] == {"minute": 0, "hour": 0, "total": 3}


def test_a_quiet_hour_and_a_busy_minute_keep_the_ring_bounded() -> None:
    clock = Clock()
    tally = LevelTally(clock)
    for _ in range(10_000):
        tally.add(marks(INFO))
        clock.now += 1
    assert len(tally._buckets) <= 360
    info = tally.describe()["info"]
    # The windows move in 10 s steps: the last 50 to 60 s, the last 3,590 to 3,600 s.
    assert 50 <= info["minute"] <= 60 and 3590 <= info["hour"] <= 3600
    assert info["total"] == 10_000


def test_totals_are_kept_per_part() -> None:
    tally = LevelTally()
    tally.add(marks(ERROR), "web1")
    tally.add(marks(ERROR, ERROR), "web2")
    assert tally.totals["web1"][ERROR] == 1 and tally.totals["web2"][ERROR] == 2
    assert tally.describe()["error"]["total"] == 3
