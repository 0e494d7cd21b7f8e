"""The hub driven by an in-memory source: fan-out, backlog, resume, gaps, pacing, demand."""

from __future__ import annotations

import asyncio

from perview.classify import Classifier, Options, level_of
from perview.config import parse
from perview.hub import Ended, Gap, Hub, Output, Viewer
from perview.ring import Chunk, State
from tests.conftest import eventually


class ScriptedSource:
    """Writes what the test puts in its queue; `None` ends the run with status 0."""

    kind = "test"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.runs = 0
        self.stopped = 0
        self.writes_done = 0

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        self.runs += 1
        out.started(None)
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                getting = asyncio.create_task(self.queue.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done():
                    getting.cancel()
                    self.stopped += 1
                    return Ended(-15)
                data = getting.result()
                if data is None:
                    return Ended(0)
                await out.write(data)
                self.writes_done += 1
        finally:
            stopping.cancel()


def lines_of(items: list[Chunk | Gap]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, Gap):
            out.append(f"<gap {item.count}>")
        elif item.state is None:
            out += item.data.decode().splitlines()
    return out


def states_of(items: list[Chunk | Gap]) -> list[str]:
    return [i.state.state for i in items if isinstance(i, Chunk) and i.state is not None]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_hub_told_nothing_runs_as_a_source_whose_config_says_nothing() -> None:
    config = parse('[sources.s]\ncommand = "true"\n')
    (spec,) = config.sources
    hub = Hub("t", ScriptedSource())
    assert (hub.ring.max_lines, hub.ring.max_bytes) == (spec.backlog, spec.max_bytes)
    assert (hub.keep, hub.linger, hub.rerun) == (spec.keep, spec.linger, spec.rerun)
    assert hub.hold == config.server.hold


async def lines_written(hub: Hub, n: int) -> None:
    """Wait (up to a second) until the hub has taken `n` lines in all."""
    for _ in range(1000):
        if hub.ring.next_id > n:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"only {hub.ring.next_id - 1} of {n} lines written")


async def collect(viewer: Viewer, n: int) -> list[str]:
    """Read until `n` lines (or markers) have arrived; fail after a second."""
    seen: list[str] = []
    async with asyncio.timeout(1):
        while len(seen) < n:
            seen += lines_of(viewer.read())
            await asyncio.sleep(0.001)
    return seen


async def test_every_viewer_gets_every_line() -> None:
    source = ScriptedSource()
    hub = Hub("t", source)
    with hub.watch() as a, hub.watch() as b:
        for n in range(3):
            source.queue.put_nowait(f"line {n}\n".encode())
        assert await collect(a, 3) == ["line 0", "line 1", "line 2"]
        assert await collect(b, 3) == ["line 0", "line 1", "line 2"]
    assert source.runs == 1


async def test_source_starts_with_first_viewer_and_stops_after_last() -> None:
    source = ScriptedSource()
    hub = Hub("t", source)
    assert not hub.running
    with hub.watch(), hub.watch():
        await settle()
        assert hub.running and source.runs == 1
    await hub.wait_stopped()
    assert source.stopped == 1
    # Stopped for lack of viewers is a normal ending, said as such: not "exited with -15".
    assert hub.state is not None and hub.state.state == "stopped"
    assert hub.state.summary == "stopped (no viewers)"


async def test_linger_keeps_the_source_for_a_returning_viewer() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, linger=0.2)
    with hub.watch():
        await settle()
    await asyncio.sleep(0.05)
    with hub.watch():
        await settle()
        assert hub.running and source.runs == 1
    # Stopped once the linger is over: waited for, since a loaded machine stops it later.
    await asyncio.wait_for(hub.wait_stopped(), 5)
    assert not hub.running and source.runs == 1


async def test_new_viewer_gets_backlog_and_ids_survive_restart() -> None:
    source = ScriptedSource()
    hub = Hub("t", source)
    with hub.watch() as first:
        source.queue.put_nowait(b"a\nb\nc\n")
        assert await collect(first, 3) == ["a", "b", "c"]
    await hub.wait_stopped()
    with hub.watch(backlog=2) as late:
        source.queue.put_nowait(b"d\n")
        await lines_written(hub, 4)
        items = late.read()
        assert lines_of(items) == ["b", "c", "d"]
        assert states_of(items) == ["stopped", "running"]  # the old run's end, the new start
    assert hub.ring.next_id == 5  # ids 1..4, counted across both runs


async def test_resume_from_line_id_inside_a_chunk() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, keep=True)
    hub.start()
    source.queue.put_nowait(b"1\n2\n3\n4\n")
    await lines_written(hub, 4)
    with hub.watch(since=3) as viewer:
        items = viewer.read()
        assert lines_of(items) == ["3", "4"]
        assert viewer.next_id == 5
    await hub.close()


async def test_slow_viewer_gets_exact_gap_and_fast_viewer_loses_nothing() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_lines=10)
    with hub.watch() as fast, hub.watch() as slow:
        seen: list[str] = []
        for n in range(50):
            source.queue.put_nowait(f"{n}\n".encode())
            seen += await collect(fast, 1)
        assert seen == [str(n) for n in range(50)]
        got = lines_of(slow.read())
        assert got[0] == "<gap 40>"
        assert got[1:] == [str(n) for n in range(40, 50)]


async def test_a_backlog_beyond_the_ring_begins_with_a_gap_saying_how_many_are_gone() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_lines=10, keep=True)
    hub.start()
    for n in range(1, 51):  # a chunk each, so the ring can drop the oldest
        source.queue.put_nowait(b"%d\n" % n)
    await lines_written(hub, 50)
    with hub.watch(backlog=30) as late:  # 30 asked for, 10 held
        got = lines_of(late.read())
    assert got == ["<gap 20>"] + [str(n) for n in range(41, 51)]
    with hub.watch(backlog=None) as everything:  # all that is held: nothing is missing
        assert lines_of(everything.read()) == [str(n) for n in range(41, 51)]
    with hub.watch(backlog=500) as more_than_ever:  # only 50 lines ever existed
        assert lines_of(more_than_ever.read())[0] == "<gap 40>"
    await hub.close()


async def test_lone_viewer_paces_the_source_and_loses_nothing() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_lines=10)
    with hub.watch() as viewer:
        for n in range(100):
            source.queue.put_nowait(f"{n}\n".encode())
        await settle()
        # The source may be at most one ring ahead of the only viewer: it is waiting now.
        assert source.writes_done <= 11
        assert await collect(viewer, 100) == [str(n) for n in range(100)]
        assert hub.ring.lines <= 11


async def test_a_viewer_joining_ahead_of_a_stalled_one_gets_lines_at_once_not_after_hold() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_lines=10, hold=30)
    with hub.watch():  # never reads: the source waits for it, up to `hold`
        for n in range(100):
            source.queue.put_nowait(f"{n}\n".encode())
        await eventually(lambda: hub.ring.lines >= 10, within=1)  # a ring ahead: held
        await settle()
        assert source.writes_done <= 11
        # A viewer at the ring's end is now the fastest: the source writes on for it.
        with hub.watch(backlog=0) as fresh:
            seen = await collect(fresh, 10)  # within a second, where `hold` is 30
        first = int(seen[0])
        assert seen == [str(n) for n in range(first, first + 10)]


async def test_a_viewer_that_stops_reading_holds_the_source_back_only_for_hold() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_lines=10, hold=0.05)
    with hub.watch() as viewer:
        for n in range(100):
            source.queue.put_nowait(f"{n}\n".encode())
        # Held for `hold`, then free to write on.
        await eventually(lambda: source.writes_done == 100, within=1)
        seen = await collect(viewer, 11)
        # An exact gap, then what the ring still holds, up to the last line.
        skipped = int(seen[0].removeprefix("<gap ").removesuffix(">"))
        assert seen[1:] == [str(n) for n in range(skipped, 100)]
        assert hub.ring.lines <= 11


async def test_a_released_viewer_paces_the_source_again_once_it_reads() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_lines=10, hold=0.2)
    with hub.watch() as viewer:
        for n in range(30):
            source.queue.put_nowait(f"{n}\n".encode())
        await eventually(lambda: source.writes_done == 30, within=2)
        assert lines_of(viewer.read())[0] == "<gap 20>"
        for n in range(30, 130):
            source.queue.put_nowait(f"{n}\n".encode())
        await settle()
        assert source.writes_done <= 41  # held by the viewer again: one ring ahead of it
        seen = await collect(viewer, 100)
        assert seen == [str(n) for n in range(30, 130)]  # and it lost nothing while it read


async def test_ring_is_bounded_in_bytes_without_viewers() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_bytes=1000, keep=True)
    hub.start()
    for _ in range(100):
        source.queue.put_nowait(b"x" * 99 + b"\n")
    await settle()
    await asyncio.sleep(0.01)
    assert hub.ring.bytes <= 1000
    await hub.close()


async def test_stop_releases_a_source_waiting_for_space() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, max_lines=2)
    with hub.watch():
        for n in range(10):
            source.queue.put_nowait(f"{n}\n".encode())
        await settle()
        assert hub.running
        hub.stop()
        await asyncio.wait_for(hub.wait_stopped(), 1)


async def test_close_wakes_viewers_and_refuses_new_ones() -> None:
    source = ScriptedSource()
    hub = Hub("t", source)
    with hub.watch() as viewer:
        waiting = asyncio.create_task(viewer.wait(10))
        await settle()
        await hub.close()
        assert await asyncio.wait_for(waiting, 1)
    assert hub.closed


async def test_viewer_arriving_while_the_last_run_stops_gets_a_new_run() -> None:
    source = SlowToStop()
    hub = Hub("t", source)
    with hub.watch():
        await settle()
    assert hub.running  # stopping, not yet stopped
    with hub.watch():
        await source.stopped.wait()
        await lines_written(hub, 0)
        for _ in range(100):
            if source.runs == 2 and hub.running:
                break
            await asyncio.sleep(0.001)
        assert source.runs == 2 and hub.running
    await hub.close()


async def test_a_viewer_arriving_before_a_stopped_run_began_waits_for_the_next() -> None:
    # The first viewer starts a run and leaves before its task has run at all; the next viewer
    # belongs to the run started for it, not to the one already stopping (whose end would
    # otherwise end its text stream at once, before any output).
    source = ScriptedSource()
    hub = Hub("t", source)
    with hub.watch():
        pass
    with hub.watch() as viewer:
        assert viewer.first_run == 2
        for _ in range(100):
            if source.runs == 2 and hub.running:
                break
            await asyncio.sleep(0.001)
        assert source.runs == 2
        source.queue.put_nowait(b"for the second viewer\n")
        await lines_written(hub, 1)
        items = viewer.read()
        assert lines_of(items) == ["for the second viewer"]
        assert [s.run for s in _states(items)] == [1, 1, 2]  # run 1 starts and stops, then 2
    await hub.close()


def _states(items: list[Chunk | Gap]) -> list[State]:
    return [i.state for i in items if isinstance(i, Chunk) and i.state is not None]


async def test_an_operator_stop_is_not_undone_by_viewers() -> None:
    source = ScriptedSource()
    hub = Hub("t", source)
    with hub.watch():
        await settle()
        hub.stop(by="alice")
        await hub.wait_stopped()
        await asyncio.sleep(0.01)
        assert not hub.running and source.runs == 1
        assert hub.state is not None and hub.state.summary == "stopped by alice"
    await hub.close()


async def test_a_run_that_ends_by_itself_has_exited_with_its_status() -> None:
    source = ScriptedSource()
    hub = Hub("t", source)
    with hub.watch():
        await settle()
        source.queue.put_nowait(None)
        await hub.wait_stopped()
        assert hub.state is not None and hub.state.state == "exited"
        assert hub.state.summary == "exited with status 0"
    await hub.close()


class WaitsForever(ScriptedSource):
    """Up, but waiting for something that never comes (a file not there yet)."""

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        self.runs += 1
        out.waiting("for /nowhere to appear")
        await stop.wait()
        return Ended(0)


async def test_a_waiting_source_is_described_as_waiting_not_running() -> None:
    hub = Hub("t", WaitsForever())
    assert hub.describe()["state"] == "idle"
    with hub.watch():
        assert hub.describe()["state"] == "starting"
        await settle()
        info = hub.describe()
        assert (info["state"], info["summary"]) == ("waiting", "waiting: for /nowhere to appear")
        await hub.close()
        assert hub.describe()["summary"] == "stopped (Perview is shutting down)"


async def test_the_kind_described_is_the_running_sources_own() -> None:
    hub = Hub("t", ScriptedSource(), meta={"hosts": []})
    assert hub.describe()["kind"] == "test"


class SlowToStop(ScriptedSource):
    """Takes a while to end after `stop`, like a command that ignores SIGTERM for a bit."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped = asyncio.Event()

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        self.runs += 1
        out.started(None)
        await stop.wait()
        await asyncio.sleep(0.05)
        self.stopped.set()
        return Ended(-15)


async def test_without_rerun_a_run_that_ended_by_itself_waits_for_a_restart() -> None:
    source = ScriptedSource()
    hub = Hub("t", source, rerun=False)
    with hub.watch():
        source.queue.put_nowait(b"deployed\n")
        source.queue.put_nowait(None)  # the command exits by itself, status 0
        await settle()
        await hub.wait_stopped()
    with hub.watch(backlog=10) as late:
        await settle()
        assert source.runs == 1 and not hub.running and hub.finished
        items = late.read()  # what it printed, and how it ended
        assert lines_of(items) == ["deployed"]
        assert states_of(items)[-1] == "exited"
    await hub.restart()  # the operator's restart runs it again
    await settle()
    assert source.runs == 2 and hub.running and not hub.finished
    await hub.close()


async def test_without_rerun_a_run_stopped_for_lack_of_viewers_starts_again() -> None:
    source = ScriptedSource()  # like `tail -F`: it never ends by itself
    hub = Hub("t", source, rerun=False)
    with hub.watch():
        await settle()
    await hub.wait_stopped()
    assert source.stopped == 1 and not hub.finished
    with hub.watch():
        await settle()
        assert hub.running and source.runs == 2
    await hub.close()


async def test_by_default_a_run_that_ended_by_itself_runs_again_for_a_new_viewer() -> None:
    source = ScriptedSource()  # a configured `command = "df -h"`: fresh figures each visit
    hub = Hub("t", source)
    with hub.watch():
        source.queue.put_nowait(None)
        await settle()
        await hub.wait_stopped()
    with hub.watch():
        await settle()
        assert source.runs == 2
    await hub.close()


# -- levels ----------------------------------------------------------------------------------

MIXED = (
    b"INFO starting\n"
    b"ERROR query failed\n"
    b"Traceback (most recent call last):\n"
    b'  File "db.py", line 42, in run\n'
    b"KeyError: 'users'\n"
    b"WARNING slow\n"
)


def levels_of(marks: bytes | None) -> list[str]:
    assert marks is not None
    return [level_of(m) + ("+" if m & 0x80 else ".") for m in marks]


def line_chunks(items: list[Chunk | Gap]) -> list[Chunk]:
    return [i for i in items if isinstance(i, Chunk) and i.state is None and i.note is None]


async def test_a_block_is_classified_once_and_its_marks_shared_by_every_viewer() -> None:
    source = ScriptedSource()
    hub = Hub("t", source)
    with hub.watch() as a, hub.watch() as b:
        source.queue.put_nowait(MIXED)
        await lines_written(hub, 6)
        [chunk] = line_chunks(a.read())
        assert line_chunks(b.read()) == [chunk]  # the same object, not a copy
        assert chunk.marks == Classifier().classify(MIXED)[0]
        assert levels_of(chunk.marks) == [
            "info+", "error+", "error.", "error.", "error.", "warning+"
        ]  # fmt: skip
    await hub.close()


async def test_an_entry_cut_between_writes_goes_on_in_its_own_part_only() -> None:
    hub = Hub("t", ScriptedSource())
    with hub.watch(start=False) as viewer:
        await hub.write(b"ERROR boom\nTraceback (most recent call last):\n", "web1")
        await hub.write(b"  indented on web2\nINFO ok\n", "web2")
        await hub.write(b'  File "x.py", line 1\nKeyError: 1\nINFO next\n', "web1")
        chunks = line_chunks(viewer.read())
    assert [c.part for c in chunks] == ["web1", "web2", "web1"]
    assert levels_of(chunks[0].marks) == ["error+", "error."]
    # web1's open traceback would have made web2's indented line an error line
    assert levels_of(chunks[1].marks) == ["none.", "info+"]
    assert levels_of(chunks[2].marks) == ["error.", "error.", "info+"]
    await hub.close()


async def test_a_viewer_starting_inside_a_block_gets_the_marks_of_its_lines_only() -> None:
    hub = Hub("t", ScriptedSource())
    await hub.write(MIXED)
    with hub.watch(since=3, start=False) as viewer:
        [chunk] = line_chunks(viewer.read())
    assert chunk.first == 3 and chunk.count == 4
    assert levels_of(chunk.marks) == ["error.", "error.", "error.", "warning+"]
    await hub.close()


async def test_lines_are_counted_per_level_and_per_part() -> None:
    hub = Hub("t", ScriptedSource())
    await hub.write(MIXED, "web1")
    await hub.write(b"ERROR disk full\nFATAL gone\n", "web2")
    assert hub.leveller.tally.totals["web1"][1:] == [0, 0, 1, 1, 4, 0]  # trace ... fatal
    assert hub.leveller.tally.totals["web2"][1:] == [0, 0, 0, 0, 1, 1]
    counts = hub.describe()["levels"]
    assert isinstance(counts, dict)
    assert list(counts) == ["fatal", "error", "warning", "info", "debug", "trace"]
    assert counts["error"] == {"minute": 5, "hour": 5, "total": 5}
    assert counts["trace"] == {"minute": 0, "hour": 0, "total": 0}
    await hub.close()


async def test_a_source_of_format_raw_is_not_classified() -> None:
    hub = Hub("t", ScriptedSource(), classify=None)
    await hub.write(MIXED)
    with hub.watch(backlog=None, start=False) as viewer:
        [chunk] = line_chunks(viewer.read())
    assert chunk.marks is None and not hub.classified
    assert hub.leveller.tally.totals == {}
    await hub.close()


async def test_a_source_s_own_level_rule_decides_its_levels() -> None:
    hub = Hub("t", ScriptedSource(), classify=Options(level=r"^<(?P<level>[a-z]+)>"))
    await hub.write(b"<warn> ERROR in the message\n<err> x\n")
    with hub.watch(backlog=None, start=False) as viewer:
        [chunk] = line_chunks(viewer.read())
    assert levels_of(chunk.marks) == ["warning+", "error+"]
    await hub.close()


async def test_a_viewer_of_all_that_is_held_gets_a_notice_no_line_has_followed() -> None:
    hub = Hub("t", ScriptedSource())
    hub.notice("was deleted after 10:00:00: what was written to it since is not shown")
    with hub.watch(backlog=None) as viewer:
        notes = [i.note for i in viewer.read() if isinstance(i, Chunk) and i.note]
    assert notes == ["was deleted after 10:00:00: what was written to it since is not shown"]
