"""The C term summary (perview/history/_terms.c) is byte for byte the one numpy makes
(perview/history/terms.py), at every size a summary may take, and lets go of the GIL while it
works. CI sets PERVIEW_REQUIRE_C=1, so there it is what is tested."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perview.history import terms

CORPUS = Path(__file__).parent / "data" / "levels"

if terms.C is None and os.environ.get("PERVIEW_REQUIRE_C") != "1":
    pytest.skip("no C summary: not built (no compiler), or PERVIEW_NO_C=1", allow_module_level=True)


def numpy_summary(data: bytes, least: int = terms.LEAST) -> bytes | None:
    c, terms.C = terms.C, None
    try:
        return terms.summarize(data, least)
    finally:
        terms.C = c


def test_the_c_summary_is_built_and_used() -> None:
    assert terms.C is not None


def corpus() -> bytes:
    return b"".join(p.read_bytes() for p in sorted(CORPUS.glob("*.log")))


@pytest.mark.parametrize("size", [16 * 1024, 40_000, 64 * 1024, 256 * 1024, 1024 * 1024])
def test_log_text_gets_the_summary_numpy_gives(size: int) -> None:
    text = corpus()
    data = (text * (size // len(text) + 1))[:size]
    assert terms.summarize(data) == numpy_summary(data)


def test_random_bytes_at_every_summary_size_get_the_summary_numpy_gives() -> None:
    rng = random.Random(7)
    # From a few distinct trigrams (the smallest summary) to as many as bytes (the largest).
    for size in (3, 100, 5000, 20_000, 70_000, 300_000):
        for alphabet in (b"ab", b"abcdefgh", bytes(range(256))):
            data = bytes(rng.choice(alphabet) for _ in range(size))
            assert terms.summarize(data, least=3) == numpy_summary(data, least=3), (
                size,
                len(alphabet),
            )


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=3, max_size=3000))
def test_any_text_gets_the_summary_numpy_gives(data: bytes) -> None:
    assert terms.summarize(data, least=3) == numpy_summary(data, least=3)


def test_the_summary_lets_the_gil_go_while_it_works() -> None:
    # Another thread keeps running while a summary is made (the event loop, while the writer
    # summarizes): were the GIL held for the work, it would stop for the whole call.
    assert terms.C is not None
    data = corpus() * 4000  # about 40 MB: one call of tens of ms
    counts = 0
    done = threading.Event()

    def count() -> None:
        nonlocal counts
        while not done.is_set():
            counts += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.05)
        before, started = counts, time.perf_counter()
        time.sleep(0.05)
        alone = (counts - before) / (time.perf_counter() - started)  # counts a second
        before, started = counts, time.perf_counter()
        terms.C(data, terms.HASH, terms.WIDE, terms.DENSITY, 10, 15)
        took = time.perf_counter() - started
        during = (counts - before) / took
    finally:
        done.set()
        counter.join()
    assert took > 0.02, took
    assert during > alone / 2, (during, alone, took)


def test_sizes_out_of_range_are_refused() -> None:
    assert terms.C is not None
    with pytest.raises(ValueError):
        terms.C(b"ab", terms.HASH, terms.WIDE, terms.DENSITY, 10, 15)
    with pytest.raises(ValueError):
        terms.C(b"abcdef", terms.HASH, 40, terms.DENSITY, 10, 15)
