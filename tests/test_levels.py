"""Levels within a time budget: a source too fast to classify still relays, and says so."""

from __future__ import annotations

from pathlib import Path

from perview.classify import DEFAULTS, HEAD
from perview.levels import BURST, Leveller

CORPUS = Path(__file__).parent / "data" / "levels"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_past_its_share_of_time_a_source_goes_unclassified_and_is_told_how_many() -> None:
    clock = Clock()  # stands still: no credit comes back until the test moves it
    leveller = Leveller(DEFAULTS, clock)
    text = (CORPUS / "nginx_access.log").read_bytes()
    block = text * max(1, 65536 // len(text))
    lines = block.count(b"\n")
    marked = skipped = 0
    for _ in range(2000):  # bounded: the share is spent long before
        marks, notice = leveller.mark(block, lines, None)
        assert notice is None
        if marks is None:
            skipped += lines
            break
        marked += lines
    assert skipped, f"{marked} lines classified in {BURST} s of credit and still going"
    assert leveller.unclassified == lines
    clock.now += 1.0  # a second later: BURST to spend again
    marks, notice = leveller.mark(b"INFO back\n", 1, None)
    assert marks == bytes([3 | HEAD])
    assert notice is not None and notice.startswith(f"levels not found for {lines:,} lines (")


def test_raw_is_never_classified() -> None:
    assert Leveller(None).mark(b"ERROR x\n", 1, None) == (None, None)
