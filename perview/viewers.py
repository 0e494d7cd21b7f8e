"""A hub's viewers: cursors into its ring, and how new output reaches them.

When output enters the ring, a viewer that had read everything before it and whose stream is
idle is written to at once, in the hub's own call (`Viewer.push`), if its socket can take the
data; every other viewer (behind, filtering on a thread, its socket full) is woken and reads
from its cursor as before. Waking a task per viewer cost more than the write itself: at 1,000
viewers about 40% of the server's CPU went to waking, switching and reading.

Idle viewers are kept in groups of streams that write the same bytes for the same lines (one
source's unfiltered event streams, its text streams), and a batch is encoded once per group and
written in one tight loop over the group's sockets. The socket's `send` is most of what is left:
at 1,000 viewers here a batch costs 9.4 to 10.2 µs of CPU per viewer, of which `send` alone
takes 6 to 7; calling a push per viewer (five Python calls around the send) cost 15.5.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from perview.ring import Chunk, Ring, skip_lines

if TYPE_CHECKING:
    from perview.hub import Hub

log = logging.getLogger(__name__)

# Direct writes (the module's docstring). PERVIEW_DIRECT_WRITES=0 gives the fan-out as it was
# before them, a task woken per viewer within the budget below, for bench/fanout.py to compare.
DIRECT = os.environ.get("PERVIEW_DIRECT_WRITES", "1") != "0"

# Viewers are told at once of the first output after a quiet spell; while output keeps coming
# they are told at most once per window (or per FLUSH_BYTES). The window grows with the number
# of viewers, so that a source costs at most about WAKE_BUDGET viewer-writes a second: a lone
# viewer waits at most 25 µs, 200 viewers of a 1,000 lines/s source are written to every 5 ms
# and 1,000 every 25 ms: within the 10 ms and 50 ms that issue 17 asks of them, with room for
# the writes themselves. Measured with bench/fanout.py at 200 viewers, all the server's CPU
# came to 5 to 6 µs per direct write (reading and classifying the source's lines included), so
# the budget is about a fifth of a core; a woken task cost 18 µs per write, and had a budget
# of 20,000.
WAKE_BUDGET = 40_000 if DIRECT else 20_000
BATCH_WINDOW = 0.025 if DIRECT else 0.010  # the longest a line waits, however many viewers
FLUSH_BYTES = 16 * 1024

# How much one viewer takes from the ring per write. It bounds what a stalled client can hold in
# its socket buffer (one budget), whatever the ring size; a batch larger than this is not
# pushed, so a direct write holds no more than a read would.
READ_BUDGET = 256 * 1024


@dataclass(frozen=True, slots=True)
class Gap:
    """Lines a viewer missed because the ring dropped them before it read them."""

    first: int
    count: int


class Wake(Protocol):
    """What a follower gives the hub to be told of new output: an `asyncio.Event` (the alerts
    engine's cursor), or an object that reads at once, in the hub's own call (a recorder)."""

    def set(self) -> None: ...


class Batch:
    """Lines that entered the ring since viewers were last woken: the same for every viewer
    that had read all before them."""

    __slots__ = ("chunks", "end", "next_id", "seq")

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        self.seq = chunks[0].seq  # where a viewer must be to take it
        self.end = chunks[-1].seq + 1  # where it is after
        self.next_id = chunks[-1].first + chunks[-1].count


class Counted(Protocol):
    output_size: int  # bytes written, as the access log says


class Outlet(Protocol):
    """A stream's way out as the hub writes to it (perview.web.wire.Wire). `transport` is None
    until the stream's own first write (the response's headers go out with it)."""

    @property
    def transport(self) -> asyncio.WriteTransport | None: ...

    @property
    def writer(self) -> Counted | None: ...  # set with `transport`

    last_write: float  # time.monotonic() of the last write, for the heartbeat


class Push(Protocol):
    """What a stream that waits with nothing to write offers the hub (`Viewer.push`), so that
    new lines go to its client at once, without waking it.

    Pushes with equal `key`s write the same bytes for a batch (`encode` is called for one of
    them, and its bytes written to all); a push whose bytes are its own has a key of its own."""

    @property
    def outlet(self) -> Outlet: ...

    @property
    def key(self) -> Hashable: ...

    def encode(self, viewer: Viewer, batch: Batch) -> bytes:
        """`batch` as the stream would write it after all it wrote before, framed for the
        outlet's transport."""
        ...


class Viewer:
    """A cursor into a hub's ring. `read` returns what is new; nothing is queued per viewer.

    `push` is set by a stream while it waits with nothing to write: the hub then writes new
    output to its client directly instead of waking it."""

    __slots__ = (
        "_push",
        "_push_key",
        "first_run",
        "hub",
        "live_from",
        "next_id",
        "seq",
        "skip",
        "wake",
    )

    def __init__(self, hub: Hub, next_id: int, wake: asyncio.Event) -> None:
        self.hub = hub
        self.next_id = next_id  # the line this viewer expects next
        self.seq, self.skip = hub.ring.find(next_id)  # where that line is (or would be)
        self.live_from = hub.ring.next_seq  # chunks before this are history
        self.first_run = hub.runs  # the run this viewer came for (set by the hub)
        self.wake = wake
        self._push: Push | None = None
        self._push_key: Hashable = None  # its key when it was offered (the group it is in)

    @property
    def push(self) -> Push | None:
        return self._push

    @push.setter
    def push(self, push: Push | None) -> None:
        self.hub.fanout.offer(self, push)

    def read(self, budget: int = READ_BUDGET) -> list[Chunk | Gap]:
        """Everything new since the last read (up to about `budget` bytes), gaps included."""
        ring = self.hub.ring
        items: list[Chunk | Gap] = []
        if self.seq < ring.oldest_seq:  # the ring dropped what this viewer had not read
            self.seq, self.skip = ring.oldest_seq, 0
        upcoming = ring.get(self.seq)
        first = upcoming.first + self.skip if upcoming else ring.next_id
        if first > self.next_id:
            items.append(Gap(self.next_id, first - self.next_id))
            self.hub.gaps += first - self.next_id
            self.next_id = first
        size = 0
        while size < budget and (chunk := ring.get(self.seq)) is not None:
            if self.skip:
                data = skip_lines(chunk.data, self.skip)
                chunk = replace(
                    chunk,
                    first=chunk.first + self.skip,
                    count=chunk.count - self.skip,
                    data=data,
                    offset=chunk.offset + len(chunk.data) - len(data),
                    cache=None,
                    marks=None if chunk.marks is None else chunk.marks[self.skip :],
                )
                self.skip = 0
            items.append(chunk)
            size += len(chunk.data)
            self.seq += 1
            self.next_id = chunk.first + chunk.count
        if items:
            self.hub.fanout.advanced(self.seq)
        return items

    async def wait(self, limit: float | None = None) -> bool:
        """Wait until the hub has news; False if `limit` seconds passed first. Streams wait
        without a limit (their heartbeat comes from one timer for all, `Streams.tend`)."""
        if limit is None:
            await self.wake.wait()
        else:
            try:
                async with asyncio.timeout(limit):
                    await self.wake.wait()
            except TimeoutError:
                return False
        self.wake.clear()
        return True


class Fanout:
    """A ring's viewers and followers (recorders, woken but never waited for): where the fastest
    viewer is, which paces the source, and telling them all of new output: when, by the wake
    budget above, and how, by a push where a viewer offers one."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self.viewers: set[Viewer] = set()
        self.followers: set[Wake] = set()
        self.space = asyncio.Event()  # set when the fastest viewer moves on (or leaves)
        # The viewers offering a push, by its key (see Push); the others are woken for news.
        self._pushes: dict[Hashable, dict[Viewer, Push]] = {}
        self._woken: set[Viewer] = set()
        self._fastest = -1  # the largest seq any viewer has reached (or -1 with no viewers)
        self._released: int | None = None  # _fastest when it held the source back too long
        self._told = ring.next_seq  # chunks from here on are news
        self._last_wake = 0.0
        self._unflushed = 0
        self._handle: asyncio.TimerHandle | None = None

    def join(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        self._woken.add(viewer)
        # One that arrives ahead of the rest paces the source from now on: a source waiting
        # for a slower one must look again, or the newcomer gets nothing until `hold` runs out.
        self.advanced(viewer.seq)

    def leave(self, viewer: Viewer) -> None:
        self.offer(viewer, None)
        self.viewers.discard(viewer)
        self._woken.discard(viewer)
        # Only when no viewer left is as far: a scan per leaving viewer would be quadratic when
        # a thousand viewers at the same place leave together.
        fastest = self._fastest
        if viewer.seq >= fastest and not any(v.seq >= fastest for v in self.viewers):
            self._fastest = max((v.seq for v in self.viewers), default=-1)
        self.space.set()

    def offer(self, viewer: Viewer, push: Push | None) -> None:
        """`viewer`'s stream takes new lines through `push` from now on (None: it is woken)."""
        if viewer._push is not None:
            group = self._pushes[viewer._push_key]
            del group[viewer]
            if not group:  # a key of its own (a stream of several sources) is gone with it
                del self._pushes[viewer._push_key]
        viewer._push = push
        if push is None:
            if viewer in self.viewers:
                self._woken.add(viewer)
            return
        self._woken.discard(viewer)
        viewer._push_key = key = push.key
        self._pushes.setdefault(key, {})[viewer] = push

    def advanced(self, seq: int) -> None:
        """A viewer reached chunk `seq`."""
        if seq > self._fastest:
            self._fastest = seq
            self.space.set()

    def too_far_ahead(self) -> bool:
        """The ring holds a whole ring's worth the fastest viewer has not read. With no viewer
        (a `keep` source, or one lingering) the ring simply rolls over; so it does under a
        viewer that held the source back too long (`release`), until that viewer moves."""
        if self._fastest < 0 or self._fastest == self._released:
            return False
        ring = self.ring
        lines, size = ring.ahead(self._fastest)
        return lines >= ring.max_lines or size >= ring.max_bytes

    def release(self) -> None:
        """The fastest viewer held the source back too long: the ring rolls over under it."""
        self._released = self._fastest
        self.trim()

    def trim(self) -> None:
        """Trim the ring, keeping what the fastest viewer (unless released) has not read."""
        held = self._fastest >= 0 and self._fastest != self._released
        self.ring.trim(self._fastest if held else None)

    def added(self, size: int) -> None:
        """`size` bytes of lines entered the ring: tell everyone now, or within the window."""
        self._unflushed += size
        loop = asyncio.get_running_loop()
        window = min(BATCH_WINDOW, len(self.viewers) / WAKE_BUDGET)
        due = self._last_wake + window
        if loop.time() >= due or self._unflushed >= FLUSH_BYTES:
            self.tell()
        elif self._handle is None:
            self._handle = loop.call_at(due, self.tell, due)

    def tell(self, due: float | None = None) -> None:
        """Push what is new to every viewer that takes it, and wake the others. A timed call
        counts from when it was due, not from when the timer fired: timers fire up to a
        millisecond late (epoll's resolution), and counting from then would make each window
        start later and lines wait longer and longer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._last_wake = asyncio.get_running_loop().time() if due is None else due
        self._unflushed = 0
        batch = self._batch() if self._pushes else None
        self._told = self.ring.next_seq
        if batch is None:
            for viewer in self.viewers:
                viewer.wake.set()
        else:
            for viewer in self._woken:
                viewer.wake.set()
            self._push(batch)
        for wake in self.followers:
            wake.set()

    def _push(self, batch: Batch) -> None:
        """Write `batch` to each viewer offering a push that had read all before it (the batch
        is then exactly what it would read next) and whose socket buffer is empty (so the
        kernel takes it at once, and a client that stopped reading is never handed more than
        one read's budget); wake every other."""
        seq, end, next_id = batch.seq, batch.end, batch.next_id
        now = time.monotonic()
        pushed = False
        # Nothing in this loop runs a callback that could change the groups: a transport's
        # write reports a failure with call_soon, and pausing a protocol only sets its flag.
        for group in self._pushes.values():
            data: bytes | None = None
            for viewer, push in group.items():
                try:
                    outlet = push.outlet
                    transport, writer = outlet.transport, outlet.writer
                    if (
                        viewer.seq != seq
                        or viewer.skip
                        or transport is None
                        or writer is None
                        or transport.get_write_buffer_size()
                        or transport.is_closing()
                    ):
                        viewer.wake.set()
                        continue
                    if data is None:
                        data = push.encode(viewer, batch)
                    transport.write(data)
                    outlet.last_write = now
                    writer.output_size += len(data)
                    viewer.seq, viewer.next_id, pushed = end, next_id, True
                except Exception:  # one viewer's fault must not reach the source that called us
                    log.exception("writing to a viewer of %s", viewer.hub.name)
                    viewer.wake.set()
        if pushed:
            self.advanced(end)

    def _batch(self) -> Batch | None:
        """What is new, if it can be pushed: lines only (a state or a notice wakes every
        viewer, which handles them as it always has), within one read's budget."""
        ring = self.ring
        if self._told < ring.oldest_seq or self._told >= ring.next_seq or not self.viewers:
            return None
        chunks: list[Chunk] = []
        size = 0
        for seq in range(self._told, ring.next_seq):
            chunk = ring.get(seq)
            if chunk is None or chunk.state is not None or chunk.note is not None:
                return None
            size += len(chunk.data)
            chunks.append(chunk)
        return Batch(chunks) if size <= READ_BUDGET else None
