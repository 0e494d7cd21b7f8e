"""Term summaries of recorded blocks: a search skips the blocks that cannot hold its substring,
and never one that does."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from perview.history.block import Block
from perview.history.search import Line, Matcher, Query, Total, run
from perview.history.store import Retention, Store
from perview.history.terms import LARGEST, SMALLEST, hashes, may_hold, summarize

WORDS = [b"GET", b"POST", b"/api/users", b"status=200", b"INFO", b"WARN", b"took", b"ms"]


def text(seed: int, lines: int = 1000) -> bytes:  # about 25 KB: worth a summary
    rng = random.Random(seed)
    return b"".join(
        b"%s %s req=%d\n" % (rng.choice(WORDS), rng.choice(WORDS), rng.getrandbits(20))
        for _ in range(lines)
    )


def write(store: Store, chunks: list[bytes]) -> None:
    first = 1
    for n, data in enumerate(chunks):
        count = data.count(b"\n")
        at = 1000.0 + n
        store.write([Block("app", None, "lines", first, count, at, at, data, ((count, at),))])
        first += count


def search(store: Store, q: str) -> tuple[list[Line], Total]:
    items = list(run(store, Query(("app",), 0, 2e9, Matcher(q), limit=10**6)))
    total = items[-1]
    assert isinstance(total, Total)
    return [i for i in items if isinstance(i, Line)], total


def test_a_term_in_one_block_among_many_is_found_and_the_others_are_not_read(
    tmp_path: Path,
) -> None:
    chunks = [text(n) for n in range(200)]
    chunks[60] = chunks[60].replace(b"\n", b"\nERROR the-rare-term-42 here\n", 1)
    store = Store(tmp_path / "h", Retention())
    write(store, chunks)
    found, total = search(store, "the-rare-term-42")
    assert [line.text for line in found] == ["ERROR the-rare-term-42 here"]
    assert total.blocks < 10  # of 200: the rest were ruled out by their summaries
    store.close()


def test_a_false_positive_costs_a_scan_not_a_result(tmp_path: Path) -> None:
    # Every trigram of the needle is in the block, but never the needle in one line.
    store = Store(tmp_path / "h", Retention())
    write(store, [b"xx wxyz-0 yy\nzz yz-0q1 zz\n", text(1)])
    found, total = search(store, "wxyz-0q1")
    assert found == []
    assert total.blocks == 1
    store.close()


def test_blocks_without_a_summary_are_scanned(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    write(store, [text(1), b"the-needle\n", text(2)])
    store.close()
    # An index from before summaries: the column is missing, then added empty on open.
    db = sqlite3.connect(tmp_path / "h" / "index.sqlite")
    db.execute("ALTER TABLE blocks DROP COLUMN terms")
    db.commit()
    db.close()
    again = Store(tmp_path / "h", Retention())
    found, total = search(again, "the-needle")
    assert [line.text for line in found] == ["the-needle"]
    assert total.blocks == 3
    again.close()


def test_short_needles_and_patterns_scan_every_block(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    write(store, [text(1), text(2), b"q7\n"])
    assert search(store, "q7")[1].blocks == 3
    assert [line.text for line in search(store, "re:q[0-9]")[0]] == ["q7"]
    store.close()


@given(st.binary(min_size=3, max_size=3000), st.data())
def test_a_summary_never_rules_out_a_substring_of_its_block(
    data: bytes, draw: st.DataObject
) -> None:
    start = draw.draw(st.integers(0, len(data) - 3))
    end = draw.draw(st.integers(start + 3, min(len(data), start + 40)))
    assert may_hold(summarize(data), hashes(data[start:end]))


def test_a_summary_rules_out_what_its_block_lacks() -> None:
    summary = summarize(text(1))
    assert summary is not None
    assert SMALLEST <= (len(summary) * 8).bit_length() - 1 <= LARGEST
    assert not may_hold(summary, hashes(b"segfault"))
    assert may_hold(summary, hashes(b"status=2"))
    assert may_hold(None, hashes(b"segfault"))  # no summary: always scanned


def test_a_small_block_has_no_summary_and_a_summary_is_a_small_share_of_its_block() -> None:
    assert summarize(text(1, lines=100)) is None  # 2.5 KB: a scan is cheaper
    for lines in (1000, 2000, 10_000):
        data = text(1, lines)
        summary = summarize(data)
        assert summary is not None
        assert len(summary) <= len(data) / 32
