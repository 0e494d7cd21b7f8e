"""How output reaches a hub's viewers: pushed at once to idle viewers that take it, a wake-up
for every other (perview/viewers.py), driven by writing to the hub directly."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from perview.hub import Ended, Hub, Output
from perview.viewers import READ_BUDGET, Batch, Viewer


class Silent:
    """A source that never runs: the tests write to the hub themselves."""

    kind = "test"

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        await stop.wait()
        return Ended(0)


class Transport:
    """A client's socket as the hub writes to it: it takes everything, or (`full`) has bytes
    still waiting in its buffer."""

    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.written: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return 1 if self.full else 0

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(data)


@dataclass
class Counted:
    output_size: int = 0


@dataclass
class Outlet:
    transport: Transport
    writer: Counted = field(default_factory=Counted)
    last_write: float = 0.0


class Recorder:
    """A push that records the batches it encoded (each as its lines) and what was written to
    its socket; its socket takes everything, or (`takes=False`) is full. Recorders given the
    same `key` share an encoding."""

    def __init__(self, takes: bool = True, key: object = None) -> None:
        self.outlet = Outlet(Transport(full=not takes))
        self.key = self if key is None else key
        self.batches: list[Batch] = []

    def encode(self, viewer: Viewer, batch: Batch) -> bytes:
        self.batches.append(batch)
        return b"".join(chunk.data for chunk in batch.chunks)

    @property
    def data(self) -> bytes:
        return b"".join(self.outlet.transport.written)


def lines(viewer: Viewer) -> bytes:
    return b"".join(getattr(item, "data", b"") for item in viewer.read())


async def test_an_idle_viewer_is_written_to_at_once_and_not_woken() -> None:
    hub = Hub("t", Silent())
    with hub.watch(start=False) as viewer:
        viewer.push = push = Recorder()
        await hub.write(b"one\ntwo\n")
        assert push.data == b"one\ntwo\n"
        assert not viewer.wake.is_set()
        assert viewer.next_id == 3 and lines(viewer) == b""  # its cursor moved past them


async def test_a_viewer_whose_push_declines_is_woken_and_reads_the_lines_itself() -> None:
    hub = Hub("t", Silent())
    with hub.watch(start=False) as viewer:
        viewer.push = push = Recorder(takes=False)
        await hub.write(b"one\n")
        assert push.data == b""
        assert viewer.wake.is_set()
        assert lines(viewer) == b"one\n"


async def test_a_viewer_behind_is_woken_and_never_handed_lines_out_of_order() -> None:
    hub = Hub("t", Silent())
    with hub.watch(start=False) as viewer:
        await hub.write(b"one\n")  # woken, and not read yet
        viewer.push = push = Recorder()
        await asyncio.sleep(0.001)  # past the wake window
        await hub.write(b"two\n")
        assert push.batches == []
        assert lines(viewer) == b"one\ntwo\n"


async def test_viewers_at_the_same_place_share_one_batch_and_its_encodings() -> None:
    hub = Hub("t", Silent())
    with hub.watch(start=False) as a, hub.watch(start=False) as b:
        pa, pb = Recorder(key="same"), Recorder(key="same")
        a.push, b.push = pa, pb
        await hub.write(b"one\n")
        assert len(pa.batches + pb.batches) == 1  # encoded once
        assert pa.outlet.transport.written == pb.outlet.transport.written == [b"one\n"]
        assert pa.outlet.transport.written[0] is pb.outlet.transport.written[0]


async def test_states_and_notices_wake_every_viewer_instead() -> None:
    hub = Hub("t", Silent())
    with hub.watch(start=False) as viewer:
        viewer.push = push = Recorder()
        hub.notice("file truncated")
        hub.started(1234)
        assert push.batches == []
        assert viewer.wake.is_set()


async def test_more_than_one_read_s_budget_is_read_by_the_viewer_not_pushed() -> None:
    hub = Hub("t", Silent())
    with hub.watch(start=False) as viewer:
        viewer.push = push = Recorder()
        await hub.write(b"x" * READ_BUDGET + b"\n")
        assert push.batches == []
        assert viewer.wake.is_set()


async def test_lines_pushed_count_as_read_so_a_pushed_viewer_never_holds_the_source() -> None:
    hub = Hub("t", Silent(), max_lines=10, hold=30.0)
    with hub.watch(start=False) as viewer:
        viewer.push = push = Recorder()
        async with asyncio.timeout(5):  # would wait for `hold` if pushes did not move the cursor
            for n in range(100):
                await hub.write(b"%d\n" % n)
                await asyncio.sleep(0.0002)  # past the window, so each is told apart
        assert push.data == b"".join(b"%d\n" % n for n in range(100))


async def test_a_push_that_fails_is_logged_and_its_viewer_woken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Recorder):
        def encode(self, viewer: Viewer, batch: Batch) -> bytes:
            raise RuntimeError("a bug in a stream")

    hub = Hub("t", Silent())
    with hub.watch(start=False) as viewer, hub.watch(start=False) as other:
        fine = Recorder()
        viewer.push, other.push = Broken(), fine
        with caplog.at_level(logging.ERROR, logger="perview.viewers"):
            await hub.write(b"one\n")
        assert "writing to a viewer of t" in caplog.text
        assert viewer.wake.is_set() and lines(viewer) == b"one\n"
        assert fine.data == b"one\n"
