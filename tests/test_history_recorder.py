"""The recorder and its writer thread: behind its queue, the writer keeps recording and leaves
out only the blocks' term summaries, which searches then do without; what the recorder cannot
hand over is said as a gap."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from perview.history.recorder import Recorder, Writer, _Open, _Sealed
from perview.history.search import Line, Matcher, Query, run
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
