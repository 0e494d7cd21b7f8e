"""The recorder and its writer thread: behind its queue, the writer keeps recording and leaves
out only the blocks' term summaries, which searches then do without; what the recorder cannot
hand over is said as a gap."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from perview.history import terms
from perview.history.block import Block
from perview.history.recorder import CLOSED, RATE_BYTES, Recorder, Writer, _Open, _Sealed
from perview.history.search import Line, Matcher, Query, run
from perview.history.service import History
from perview.history.store import Retention, Store
from perview.hub import Ended, Hub, Output
from tests.conftest import eventually


def sealed(first: int, data: bytes, at: float) -> _Sealed:
    count = data.count(b"\n")
    block = _Open(at, [data], None, [(count, at)], [], count, len(data), at, at)
    return _Sealed("app", None, first, block, count, at, at)


def summaries(directory: Path) -> list[bytes | None]:
    db = sqlite3.connect(directory / "index.sqlite")
    try:
        return [t for (t,) in db.execute("SELECT terms FROM blocks ORDER BY first")]
    finally:
        db.close()


def filler(seed: int) -> bytes:
    return b"".join(b"GET /api/items/%d took %d ms\n" % (seed * 10_000 + i, i) for i in range(2000))


async def test_a_writer_behind_writes_blocks_without_summaries_that_searches_still_read(
    tmp_path: Path,
) -> None:
    for behind, directory in ((False, tmp_path / "a"), (True, tmp_path / "b")):
        writer = Writer(Store(directory, Retention()), summary_pending=-1 if behind else 2**40)
        first = 1
        for n, data in enumerate([filler(1), filler(2) + b"ERROR the-needle\n", filler(3)]):
            writer.submit(sealed(first, data, 1000.0 + n))
            first += data.count(b"\n")
        await writer.close()
        found = summaries(directory)
        assert len(found) == 3
        assert all((t is None) == behind for t in found), (behind, [t is None for t in found])
        store = Store(directory, Retention())
        lines = [
            i
            for i in run(store, Query(("app",), 0, 2e9, Matcher("the-needle")))
            if isinstance(i, Line)
        ]
        assert [line.text for line in lines] == ["ERROR the-needle"]
        store.close()


async def test_a_lone_sealed_block_is_written_without_waiting_for_more(tmp_path: Path) -> None:
    # Blocks are handed to the writer a batch at a time: one with nothing after it must still go
    # (HANDOFF_DELAY later), not wait for a MB more or for the server to stop.
    writer = Writer(Store(tmp_path, Retention()))
    data = filler(1)
    writer.submit(sealed(1, data, 1000.0))
    await eventually(lambda: writer.written == data.count(b"\n"), within=5.0, step=0.01)
    await writer.close()


class Faulty(Store):
    """A store whose first write fails with an error that is not a full disk's: a bug."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, Retention())
        self.failed = False

    def write(self, blocks: Sequence[Block], summaries: bool = True) -> None:
        if not self.failed:
            self.failed = True
            raise ValueError("a bug in the store")
        super().write(blocks, summaries)


async def test_a_write_that_fails_for_any_reason_is_a_gap_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    # Only a full disk's OSError was caught: any other error ended the writer's thread, and with
    # it every recording, silently (its pending bytes never came back, so recorders held).
    writer = Writer(Faulty(tmp_path))
    first, second = filler(1), filler(2)
    writer.submit(sealed(1, first, 1000.0))
    await eventually(lambda: writer.failing, within=5.0, step=0.01)
    writer.submit(sealed(1 + first.count(b"\n"), second, 1001.0))
    await eventually(lambda: writer.written == second.count(b"\n"), within=5.0, step=0.01)
    await writer.close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    try:
        rows = db.execute("SELECT kind, first, count FROM blocks ORDER BY first").fetchall()
    finally:
        db.close()
    assert rows == [("gap", 1, 2000), ("lines", 2001, 2000)]


class Writes:
    """A source that writes `lines` lines, ten a write, then ends."""

    kind = "test"

    def __init__(self, lines: int) -> None:
        self.lines = lines

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        out.started(None)
        for n in range(0, self.lines, 10):
            await out.write(b"".join(b"line %d\n" % i for i in range(n, n + 10)))
        return Ended(0)


async def test_a_writer_without_room_costs_one_gap_for_the_spell_not_one_per_read(
    tmp_path: Path,
) -> None:
    # A writer with no room (a slow disk, a flood) leaves the recorder's cursor behind while the
    # ring rolls on: one gap says all it missed, when it reads again, rather than a gap (and a
    # warning in the log) for every read while it waited.
    hub = Hub("app", Writes(2000), max_lines=50, keep=True)
    writer = Writer(Store(tmp_path, Retention()), max_pending=0)
    recorder = Recorder(hub, writer, 1)
    hub.start()
    await hub.wait_stopped()
    await recorder.close()
    await writer.close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    try:
        gaps = db.execute("SELECT count FROM blocks WHERE kind = 'gap'").fetchall()
        (recorded,) = db.execute("SELECT SUM(count) FROM blocks WHERE kind = 'lines'").fetchone()
    finally:
        db.close()
    assert len(gaps) == 1, gaps
    assert gaps[0][0] + recorded == 2000


class Stalled(Store):
    """A store whose writes wait until `go` is set: a disk (or a writer thread) that stalls."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, Retention())
        self.go = threading.Event()

    def write(self, blocks: Sequence[Block], summaries: bool = True) -> None:
        self.go.wait(timeout=60)
        super().write(blocks, summaries)


class Flat:
    """A source that writes `size` bytes of lines in 64 KiB writes as fast as it can."""

    kind = "test"

    def __init__(self, size: int) -> None:
        self.size = size

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        out.started(None)
        line = b"GET /api/items/12345 took 17 ms and returned 200 OK to the client\n"
        chunk = line * (65536 // len(line))
        for _ in range(self.size // len(chunk)):
            await out.write(chunk)
        return Ended(0)


async def test_a_source_faster_than_the_flood_rate_holds_less_for_the_writer(
    tmp_path: Path,
) -> None:
    # While the writer is stalled, a recorder fills what it may hand over and then yields (its
    # gap is said either way): a source slower than the flood rate may fill MAX_PENDING, to
    # ride out a stall, but a flood only delays its gap by it and costs the loop what it holds.
    held = {}
    for name, flood_rate in (("flood", 0.0), ("calm", float("inf"))):
        store = Stalled(tmp_path / name)
        writer = Writer(store, max_pending=12 * 2**20, flood_pending=2**20)
        hub = Hub("app", Flat(24 * 2**20), keep=True)
        recorder = Recorder(hub, writer, 1, flood_rate=flood_rate)
        hub.start()
        await hub.wait_stopped()
        held[name] = writer.pending
        store.go.set()
        await recorder.close()
        await writer.close()
        assert recorder.gaps > 0, name
    assert held["calm"] >= 12 * 2**20, held
    # The rate is told after RATE_BYTES of the source; from then on it hands over nothing more.
    assert held["flood"] <= RATE_BYTES + 2**20, held


async def test_a_flooding_sources_blocks_are_written_without_numpys_summaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # numpy's summary holds the GIL that the loop relaying the flood needs (about 1.6 ms a
    # block): once a source is told to flood, its blocks go without, and searches scan them.
    monkeypatch.setattr(terms, "C", None)
    for name, flood_rate in (("flood", 0.0), ("calm", float("inf"))):
        found = await flood_summaries(tmp_path / name, flood_rate)
        if name == "calm":
            assert all(t is not None for t in found), [t is None for t in found]
        else:
            # The rate is told after RATE_BYTES; every block sealed after that has none.
            assert sum(t is None for t in found) >= len(found) - RATE_BYTES // 2**18 - 1, [
                t is None for t in found
            ]


async def test_a_flooding_sources_blocks_keep_their_c_summaries(tmp_path: Path) -> None:
    # The C summary lets the GIL go: a flood costs nothing to summarize, and searches skip.
    if terms.C is None:
        pytest.skip("no C summary: not built, or PERVIEW_NO_C=1")
    found = await flood_summaries(tmp_path, 0.0)
    assert all(t is not None for t in found), [t is None for t in found]


async def flood_summaries(directory: Path, flood_rate: float) -> list[bytes | None]:
    """The summaries of 12 MB recorded from a source told to flood above `flood_rate`."""
    writer = Writer(Store(directory, Retention()), summary_pending=2**40)
    hub = Hub("app", Flat(12 * 2**20), keep=True)
    recorder = Recorder(hub, writer, 1, flood_rate=flood_rate)
    hub.start()
    await hub.wait_stopped()
    await recorder.close()
    await writer.close()
    assert recorder.gaps == 0
    return summaries(directory)


async def test_a_block_of_state_changes_alone_has_their_time_and_outlives_retention(
    tmp_path: Path,
) -> None:
    # Lines that fill a block are sealed with it; the "exited" after them is a block of its own
    # with no lines. It is found by a range that holds its moment, and a segment holding only
    # such blocks (a run that wrote nothing) is not taken for one older than any age.
    hub = Hub("app", Flat(256 * 1024 + 65536 - (256 * 1024) % 65536), keep=True)
    writer = Writer(Store(tmp_path, Retention(ages={"app": 7 * 86400.0})))
    recorder = Recorder(hub, writer, 1)
    began = time.time()
    hub.start()
    await hub.wait_stopped()
    await recorder.close()
    await writer.close()
    ended = time.time()
    store = Store(tmp_path, Retention(ages={"app": 7 * 86400.0}))
    try:
        with store.reader() as reader:
            rows = reader.rows(["app"], began, ended, newest_first=False)
            blocks = [reader.load(row) for row in rows]
        alone = [b for b in blocks if b.count == 0]
        assert any(text.startswith("exited") for b in alone for _, _, text in b.events), blocks
        assert all(began <= b.t0 <= b.t1 <= ended for b in blocks), [(b.t0, b.t1) for b in blocks]
        assert all(began <= r.t0 <= r.t1 <= ended for r in rows)
        assert store.enforce() == []
    finally:
        store.close()


async def record_flat(directory: Path, size: int, close: bool) -> None:
    """Record a Flat source of `size` bytes into `directory`; without `close`, as if Perview
    were killed: the writer ends, the recorder never seals what it holds."""
    hub = Hub("app", Flat(size), keep=True)
    history = History(Store(directory, Retention()))
    history.recorders["app"] = recorder = Recorder(hub, history.writer, 1)
    hub.start()
    await hub.wait_stopped()
    if close:
        await history.close()
    else:
        recorder.hub.followers.discard(recorder)
        recorder._task.cancel()
        await history.writer.close()


async def test_a_history_closed_in_order_ends_with_its_mark_and_says_nothing_more(
    tmp_path: Path,
) -> None:
    await record_flat(tmp_path, 300 * 1024, close=True)
    store = Store(tmp_path, Retention())
    try:
        with store.reader() as reader:
            rows = reader.rows(["app"], 0, 2e9, newest_first=False)
            assert reader.load(rows[-1]).events[-1][2] == CLOSED
        history = History(store)
        assert history.cut_off("app") is None
    finally:
        await history.writer.close()


async def test_a_history_cut_off_is_said_where_the_next_run_begins(tmp_path: Path) -> None:
    # Killed outright, Perview loses what its recorder held (the lines of the open block): the
    # next run cannot count them, but says where history has a hole, at its start.
    await record_flat(tmp_path, 600 * 1024, close=False)
    store = Store(tmp_path, Retention())
    history = History(store)
    ended = history.cut_off("app")
    with store.reader() as reader:
        last = reader.rows(["app"], 0, 2e9, newest_first=False)[-1]
    assert ended == last.t1 and last.count > 0
    hub = Hub("app", Flat(65536), keep=True)
    history.recorders["app"] = Recorder(hub, history.writer, store.next_line("app"), cut_off=ended)
    hub.start()
    await hub.wait_stopped()
    await history.close()
    store = Store(tmp_path, Retention())
    try:
        with store.reader() as reader:
            rows = reader.rows(["app"], 0, 2e9, newest_first=False)
            events = [text for row in rows for _, _, text in reader.load(row).events]
        said = [text for text in events if text.startswith("Perview stopped without closing")]
        assert len(said) == 1 and "may be missing" in said[0], events
        assert events.index(said[0]) < events.index(next(e for e in events if "exited" in e))
        assert events[-1] == CLOSED
    finally:
        store.close()
