"""The history store on a real disk: segments, index, retention, and what a crash or damage
leaves behind."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from perview.history.block import Block, Damaged
from perview.history.store import SEGMENT_BYTES, Retention, Store


def lines(first: int, count: int, width: int = 60) -> bytes:
    return b"".join(b"line %d %s\n" % (i, b"x" * width) for i in range(first, first + count))


def block(source: str, first: int, count: int, at: float, part: str | None = None) -> Block:
    return Block(source, part, "lines", first, count, at, at, lines(first, count), ((count, at),))


def read_all(store: Store, source: str) -> list[Block]:
    with store.reader() as reader:
        return [reader.load(r) for r in reader.rows([source], 0, 2e9, newest_first=False)]


def test_blocks_written_are_read_back_after_a_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    store.write([block("app", 1, 100, 1000.0), block("app", 101, 50, 1001.0, "web1")])
    store.close()
    again = Store(tmp_path / "h", Retention())
    found = read_all(again, "app")
    assert [(b.first, b.count, b.part) for b in found] == [(1, 100, None), (101, 50, "web1")]
    assert found[0].data == lines(1, 100)
    assert again.next_line("app") == 151
    assert again.report == []
    again.close()


def test_a_batch_of_state_changes_alone_is_written(tmp_path: Path) -> None:
    # A source that exits after its last lines were sealed leaves a block holding the change
    # alone: every section of such a batch is empty, which zstd's batch call refused, and the
    # error ended the writer's thread (nothing recorded after it).
    store = Store(tmp_path / "h", Retention())
    store.write([block("app", 1, 10, 1000.0)])
    exited = Block("app", None, "lines", 11, 0, 1002.0, 1002.0, events=((0, 1002.0, "exited"),))
    store.write([exited])
    store.write([block("app", 11, 10, 1003.0)])
    found = read_all(store, "app")
    assert [(b.first, b.count, b.events) for b in found] == [
        (1, 10, ()),
        (11, 0, ((0, 1002.0, "exited"),)),
        (11, 10, ()),
    ]
    store.close()


def test_blocks_of_state_changes_indexed_without_an_end_are_repaired_on_open(
    tmp_path: Path,
) -> None:
    # Until 2026-12-04 the recorder wrote a block of state changes alone with an end time of 0:
    # no range found it, and retention took a segment holding nothing else for one older than
    # any age. Opening such a store gives each its start as its end, and says so.
    now = time.time()
    ages = Retention(ages={"app": 7 * 86400.0})
    store = Store(tmp_path / "h", ages)
    store.write([block("app", 1, 10, now - 60)])
    store.close()
    store = Store(tmp_path / "h", ages)  # a run that only started and stopped: a segment of its own
    started = Block("app", None, "lines", 11, 0, now - 30, 0.0, events=((0, now - 30, "started"),))
    store.write([started])
    store.close()
    again = Store(tmp_path / "h", ages)
    try:
        assert again.report == ["blocks of state changes written without an end time: 1, fixed"]
        assert again.enforce(now) == []
        with again.reader() as reader:
            rows = reader.rows(["app"], now - 45, now, newest_first=False)
            assert [(r.first, r.count, r.t0, r.t1) for r in rows] == [(11, 0, now - 30, now - 30)]
    finally:
        again.close()


def test_the_store_is_private_to_its_user(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "h", Retention())
        store.write([block("app", 1, 10, 1000.0)])
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "h").stat().st_mode) == 0o700
    for path in (tmp_path / "h").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_retention_by_size_drops_the_oldest_segments_first(tmp_path: Path) -> None:
    limit = SEGMENT_BYTES[0] * 16 * 2  # segments of 64 KiB, 2 MiB at most
    store = Store(tmp_path / "h", Retention(sizes={"app": limit}))
    first = 1
    for i in range(400):  # about 6 MB of text, compressible to far less: vary it
        data = os.urandom(8000).hex().encode() + b"\n"
        store.write([Block("app", None, "lines", first, 1, 1000.0 + i, 1000.0 + i, data)])
        store.enforce(now=1400.0)
        first += 1
    assert sum(store.held().values()) <= limit
    kept = read_all(store, "app")
    assert kept[-1].first == 400  # the newest is kept ...
    assert kept[0].first > 1  # ... the oldest went
    assert [b.first for b in kept] == list(range(kept[0].first, 401))  # and nothing between
    store.close()


def test_retention_by_age_drops_what_is_older_and_hides_it_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention(ages={"app": 160.0}))  # segments of 10 s
    base = time.time() - 300  # 100 blocks 3 s apart, the last 3 s ago
    for i in range(100):
        store.write([block("app", 1 + i * 10, 10, base + i * 3)])
    store.enforce()
    ages = [b.t0 for b in read_all(store, "app")]
    assert ages[-1] == base + 99 * 3
    assert min(ages) >= time.time() - 160  # what is older is not searched, even if still held
    assert len(list((tmp_path / "h").glob("*.seg"))) <= 160 // 10 + 2
    # Far in the future, everything is past its age: searches see nothing, files go.
    assert store.enforce(now=1e10)
    assert read_all(store, "app") == []
    assert list((tmp_path / "h").glob("*.seg")) == []
    store.close()


def test_the_total_limit_holds_over_every_source(tmp_path: Path) -> None:
    total = SEGMENT_BYTES[0] * 16 * 2
    store = Store(tmp_path / "h", Retention(total=total))
    for i in range(300):
        for source in ("a", "b"):
            data = os.urandom(4000).hex().encode() + b"\n"
            store.write([Block(source, None, "lines", i + 1, 1, 1000.0 + i, 1000.0 + i, data)])
        store.enforce()
    assert sum(store.held().values()) <= total
    assert read_all(store, "a")[-1].first == 300
    assert read_all(store, "b")[-1].first == 300
    store.close()


def test_a_block_cut_off_at_the_end_is_dropped_and_said(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    store.write([block("app", 1, 100, 1000.0)])
    store.close()
    (segment,) = (tmp_path / "h").glob("*.seg")
    whole = segment.stat().st_size
    with segment.open("ab") as file:  # half a block, as a write killed midway leaves it
        file.write(Path(segment).read_bytes()[: whole // 2])
    again = Store(tmp_path / "h", Retention())
    assert [b.count for b in read_all(again, "app")] == [100]
    assert segment.stat().st_size == whole
    assert any("dropped" in line and "cut off" in line for line in again.report), again.report
    again.close()


def test_complete_blocks_not_yet_indexed_are_indexed_on_open(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    store.write([block("app", 1, 10, 1000.0)])
    store.close()
    (segment,) = (tmp_path / "h").glob("*.seg")
    record = segment.read_bytes()
    # The same bytes again as the next block (numbered as one would be): as if the process died
    # between writing the segment and committing the index.
    store = Store(tmp_path / "h", Retention())
    store.write([block("app", 11, 10, 1001.0)])
    store.close()
    tail = segment.read_bytes()[len(record) :]
    index = tmp_path / "h" / "index.sqlite"
    db = sqlite3.connect(index)
    db.execute("DELETE FROM blocks WHERE first = 11")
    db.commit()
    db.close()
    assert segment.read_bytes().endswith(tail)
    again = Store(tmp_path / "h", Retention())
    assert [b.first for b in read_all(again, "app")] == [1, 11]
    assert any("indexed now" in line for line in again.report)
    again.close()


def test_a_damaged_block_is_named_and_the_others_still_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    store.write([block("app", 1, 100, 1000.0)])
    store.write([block("app", 101, 100, 1001.0)])
    store.write([block("app", 201, 100, 1002.0)])
    store.close()
    (segment,) = (tmp_path / "h").glob("*.seg")
    data = bytearray(segment.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\xff" * 8
    segment.write_bytes(bytes(data))
    again = Store(tmp_path / "h", Retention())
    good, bad = [], []
    with again.reader() as reader:
        for row in reader.rows(["app"], 0, 2e9, newest_first=False):
            try:
                good.append(reader.load(row).first)
            except Damaged as exc:
                bad.append((row.first, str(exc)))
    assert good == [1, 201]
    assert bad == [(101, "checksum mismatch")]
    again.close()


def test_a_history_ends_cut_off_unless_its_last_block_ends_with_the_closing_event(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "h", Retention())
    assert store.cut_off("app", "closed") is None  # no history: nothing to say
    closed = Block("app", None, "lines", 101, 0, 1002.0, 1002.0, events=((0, 1002.0, "closed"),))
    store.write([block("app", 1, 100, 1000.0), closed])
    assert store.cut_off("app", "closed") is None
    store.write([block("app", 101, 100, 1003.0)])
    assert store.cut_off("app", "closed") == 1003.0
    store.write([Block("app", None, "lines", 201, 0, 1004.0, 1004.0, events=closed.events)])
    store.close()
    # A last block that cannot be read cannot tell it was closed: it is said to be cut off.
    (segment,) = (tmp_path / "h").glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-8:] = b"\xff" * 8
    segment.write_bytes(bytes(data))
    again = Store(tmp_path / "h", Retention())
    try:
        assert again.cut_off("app", "closed") == 1004.0
    finally:
        again.close()


def test_an_unreadable_index_is_made_again_from_the_segments(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    store.write([block("app", 1, 10, 1000.0), block("app", 11, 10, 1001.0)])
    store.close()
    (tmp_path / "h" / "index.sqlite").write_bytes(b"not a database" * 100)
    again = Store(tmp_path / "h", Retention())
    assert [b.first for b in read_all(again, "app")] == [1, 11]
    assert any("unreadable" in line for line in again.report)
    again.close()


@pytest.mark.parametrize("newest_first", [True, False])
def test_rows_come_in_time_order_over_sources(tmp_path: Path, newest_first: bool) -> None:
    store = Store(tmp_path / "h", Retention())
    store.write([block("a", 1, 1, 1000.0), block("b", 1, 1, 1001.0), block("a", 2, 1, 1002.0)])
    with store.reader() as reader:
        rows = reader.rows(["a", "b"], 0, 2e9, newest_first)
    order = [(r.source, r.first) for r in rows]
    expected = [("a", 1), ("b", 1), ("a", 2)]
    assert order == (expected[::-1] if newest_first else expected)
    store.close()
