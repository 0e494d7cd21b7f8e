"""Recorders: one per recorded source, a cursor of its own into the hub's ring (like a viewer,
but one the hub never waits for), and one writer thread that compresses and writes every
recorder's blocks in batches.

Nothing here awaits the disk. A recorder hands sealed blocks to the writer; when the writer is
MAX_PENDING behind (FLOOD_PENDING, for a source writing faster than any writer keeps up with),
the recorder stops reading the ring (in a flood, until the writer is down to a quarter of that),
so it is its own cursor that falls behind (and, once the ring rolls past it, records a gap),
never the hub or a viewer. A disk that refuses a write (full) costs those lines, recorded as a
gap once the disk takes writes again.

The event loop's part is kept to taking references: a recorder reads the ring in the hub's own
call when output enters it (no task is woken per read), and sealed blocks reach the writer
thread a batch at a time (one wake a MB, or HANDOFF_DELAY after the first), so that a source
writing flat out wakes the writer, and contends with it for the GIL, as seldom as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

from perview.history import terms
from perview.history.block import Block
from perview.history.store import Store
from perview.hub import Hub
from perview.ring import Chunk
from perview.sources.resume import moment

log = logging.getLogger(__name__)

# A block is sealed at BLOCK_BYTES of text (zstd's ratio on log lines gains little past 256 KiB,
# and a search reads a block as one) or FLUSH_AGE seconds after its first line: what a `kill -9`
# can cost, and how soon a line is searchable.
BLOCK_BYTES = 256 * 1024
FLUSH_AGE = 2.0
# Text handed to the writer and not yet written, over all recorders: 64 MB is more than a second
# at the 50 MB/s a recorder must sustain, and bounds memory when the disk is slow.
MAX_PENDING = 64 * 1024 * 1024
# ... but a recorder whose source writes faster than FLOOD_RATE (three times that 50 MB/s, and
# more than the writer keeps up with) stops at FLOOD_PENDING: room only delays its gap, and what
# it holds is what the flood costs the loop. Flat out, the writer (nice 10, waiting for the GIL)
# wrote next to nothing until the source stopped (it lost all but the first 69 MB of 200 in
# every run), so the recorder filled MAX_PENDING and yielded, and the loop paid for every chunk
# held (each kept past the ring's MB, the loop's reads went to fresh memory).
# Measured (bench/history.py --only ingest, 5 runs alternated with 64 MB held in a flood, load
# 3.6-7): the loop's CPU a MB unrecorded / recorded 0.85-0.99 (median 0.87) at 64 MB, 0.94-1.07
# (median 1.04) at 16 MB. Held to 16 MB whatever the rate, a writer stalled for a third of a
# second lost lines of a source paced at 50 MB/s on that busy machine, so a slower source keeps
# MAX_PENDING. The rate is the source's over its last RATE_BYTES (a flood is told in ms).
FLOOD_RATE = 150e6
FLOOD_PENDING = 16 * 1024 * 1024
RATE_BYTES = 4 * 1024 * 1024
RATE_AGE = 0.25  # a window this old without RATE_BYTES: the source is slower than a flood
# A recorder held by a full writer during a flood reads on only once the writer is down to this
# share of FLOOD_PENDING: it then hands over 12 MB at once rather than a block each time a write
# ends, and the writer wakes (and takes the GIL from the loop) for fewer, larger batches.
RESUME_SHARE = 0.25
NEVER = 1 << 62  # a pending level never reached: not held
# The last event of a source's history when its recorder let go of it in order (Perview
# stopped, the source no longer recorded). A history that ends otherwise was cut off (`kill -9`,
# a power cut): the lines its recorder held then, read up to FLUSH_AGE before, were lost with it,
# and the next recorder says so where it begins. It cannot count them: a source that resumes (a
# file, a journal) starts again from where its state file says, written at most a second
# before: lines read before that save and not recorded are lost, lines recorded after it come
# again.
CLOSED = "recording stopped"
GAP_COST = 256  # what a gap is counted as against MAX_PENDING
# Past this much text waiting, blocks are written without their term summaries (numpy's cost
# four times their compression: 1.6 against 0.4 ms a 256 KiB block on a loaded machine; the C
# summary's about as much: 0.34 against 0.30, quiet) until the writer has caught up: searches
# scan those blocks, and fewer lines become gaps.
SUMMARY_PENDING = 8 * 1024 * 1024
# Sealed blocks go to the writer thread together, once HANDOFF_BYTES of them are waiting or
# HANDOFF_DELAY after the first: each hand-over wakes the thread, which then takes the GIL from
# the loop. A MB is four 256 KiB blocks, about 2 ms of a flood; 5 ms is nothing next to
# FLUSH_AGE, the time a line may wait to be searchable.
HANDOFF_BYTES = 1024 * 1024
HANDOFF_DELAY = 0.005
# Retention is enforced after a write at most this often: it sorts every segment, on the
# writer's thread but holding the GIL, and once a second is as continuous as a user can tell.
ENFORCE_EVERY = 1.0
# The writer thread runs at a lower priority than the event loop, so that on a busy machine
# the live path gets the cores first and the writer what is left (it falls behind into its
# queue, then into gaps, rather than slowing the stream). Measured (bench/history.py, 50 MB
# flat out, load average 5): relay recorded / unrecorded 0.44 and 0.45 at nice 0, 0.75 and
# 1.00 at nice 10.
WRITER_NICE = 10


@dataclass(slots=True)
class _Open:
    """A block being filled: one part of one source."""

    started: float
    parts: list[bytes] = field(default_factory=list)
    marks: list[bytes] | None = field(default_factory=list)  # None: some chunk had none
    times: list[tuple[int, float]] = field(default_factory=list)
    events: list[tuple[int, float, str]] = field(default_factory=list)
    count: int = 0
    size: int = 0
    t0: float = 0.0
    t1: float = 0.0


@dataclass(slots=True)
class _Sealed:
    """A block handed to the writer; its text is joined on the writer's thread, not the loop's."""

    source: str
    part: str | None
    first: int
    block: _Open | None  # None: a gap
    count: int
    t0: float
    t1: float
    flood: bool = False  # sealed while its source flooded: no term summary (see _write)

    def build(self) -> Block:
        if self.block is None:
            return Block(self.source, self.part, "gap", self.first, self.count, self.t0, self.t1)
        b = self.block
        return Block(
            self.source,
            self.part,
            "lines",
            self.first,
            b.count,
            self.t0,
            self.t1,
            data=b"".join(b.parts),
            marks=None if b.marks is None else b"".join(b.marks),
            times=tuple(b.times),
            events=tuple(b.events),
        )

    @property
    def cost(self) -> int:
        return GAP_COST if self.block is None else self.block.size


class Writer:
    """The one thread that writes to the store: takes what recorders seal, writes it in batches,
    enforces retention after each, and turns what a full disk refused into gaps."""

    def __init__(
        self,
        store: Store,
        max_pending: int = MAX_PENDING,
        summary_pending: int = SUMMARY_PENDING,
        flood_pending: int = FLOOD_PENDING,
    ) -> None:
        self.store = store
        self.max_pending = max_pending
        self.flood_pending = min(flood_pending, max_pending)
        self.summary_pending = summary_pending
        self.pending = 0  # bytes sealed and not yet written
        self.written = 0  # lines written, in all (not counting gaps)
        self.failing = False  # the last write failed (a full disk); said once per spell
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[list[_Sealed] | None] = queue.SimpleQueue()
        self._outbox: list[_Sealed] = []  # sealed on the loop, not handed over yet
        self._outbox_bytes = 0
        self._handoff: asyncio.TimerHandle | None = None
        self._refused: dict[tuple[str, str | None], _Sealed] = {}  # gaps not yet written
        self._enforced = 0.0  # when retention last ran
        self._thread = threading.Thread(target=self._run, name="perview-history", daemon=True)
        self._thread.start()

    def room(self, flooding: bool = False) -> bool:
        """Whether a recorder may hand over more (one whose source floods: less)."""
        return self.pending < (self.flood_pending if flooding else self.max_pending)

    def submit(self, sealed: _Sealed) -> None:
        """Take `sealed` for writing: handed to the thread with others (HANDOFF_BYTES)."""
        with self._lock:
            self.pending += sealed.cost
        self._outbox.append(sealed)
        self._outbox_bytes += sealed.cost
        if self._outbox_bytes >= HANDOFF_BYTES:
            self.hand_over()
        elif self._handoff is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait on (a script, a test): at once
                self.hand_over()
            else:
                self._handoff = loop.call_later(HANDOFF_DELAY, self.hand_over)

    def hand_over(self) -> None:
        """Give the thread what was submitted since the last hand-over."""
        if self._handoff is not None:
            self._handoff.cancel()
            self._handoff = None
        if self._outbox:
            self._queue.put(self._outbox)
            self._outbox, self._outbox_bytes = [], 0

    async def close(self) -> None:
        """Write what is queued, then stop the thread and close the store."""
        self.hand_over()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self.store.close()

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # a thread's own niceness: Linux's setpriority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
        while True:
            first = self._queue.get()
            batch = [first]
            while True:  # whatever came meanwhile goes in the same write
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [s for group in batch if group is not None for s in group]
            if items:
                self._write(items)
            if None in batch:
                self._enforce()
                return

    def _write(self, items: list[_Sealed]) -> None:
        refused = list(self._refused.values())
        try:
            # numpy's summary holds the GIL (1.6 ms a block) that the loop relaying a flood
            # wants: without the C summary (terms.C), which lets it go, a flood's blocks are
            # scanned by searches instead, like a writer's behind. With it, a flood's relay was
            # no slower with summaries (0.86 with, 0.84-0.85 without, in one process).
            flood = terms.C is None and any(s.flood for s in items)
            behind = self.pending > self.summary_pending or flood
            self.store.write([s.build() for s in refused + items], summaries=not behind)
        except Exception as exc:
            # A full disk (OSError) is expected; anything else is a bug, logged with where it
            # happened. Either way those lines become a gap and the thread goes on: a writer
            # that ended here would leave every recorder waiting for room, recording nothing
            # and saying nothing.
            if not self.failing:
                if isinstance(exc, OSError):
                    log.warning("history: cannot record (%s); what does not fit is a gap", exc)
                else:
                    log.exception("history: a write failed; its lines are a gap")
            self.failing = True
            for sealed in items:
                self._refuse(sealed)
        else:
            if self.failing:
                log.warning("history: recording again")
            self.failing = False
            self._refused.clear()
            self.written += sum(s.count for s in items if s.block is not None)
        finally:
            with self._lock:
                self.pending -= sum(s.cost for s in items)
        if time.monotonic() - self._enforced >= ENFORCE_EVERY:
            self._enforce()

    def _enforce(self) -> None:
        self._enforced = time.monotonic()
        try:
            for gone in self.store.enforce():
                log.info("history: retention removed %s", gone)
        except OSError as exc:
            log.warning("history: retention: %s", exc)
        except Exception:  # a bug: said, and the writer goes on (see _write)
            log.exception("history: retention failed")

    def _refuse(self, sealed: _Sealed) -> None:
        key = (sealed.source, sealed.part)
        gap = self._refused.get(key)
        if gap is None:
            self._refused[key] = _Sealed(
                sealed.source, sealed.part, sealed.first, None, sealed.count, sealed.t0, sealed.t1
            )
        else:
            gap.count += sealed.count
            gap.t0, gap.t1 = min(gap.t0, sealed.t0), max(gap.t1, sealed.t1)


class Recorder:
    """Records one hub's output from the oldest line its ring holds now. Owns its task; `close`
    seals and hands over what it holds."""

    def __init__(
        self,
        hub: Hub,
        writer: Writer,
        next_line: int,
        flood_rate: float = FLOOD_RATE,
        cut_off: float | None = None,
    ) -> None:
        """`cut_off`: when the source's history ends, if it ends cut off (see CLOSED)."""
        self.hub = hub
        self.writer = writer
        self.next_line = next_line  # the store's number for the next line
        self.flood_rate = flood_rate
        self.flooding = False  # the source wrote its last RATE_BYTES faster than flood_rate
        ring = hub.ring
        self._window = (ring.next_offset, time.monotonic())  # where the rate is measured from
        self.seq = ring.oldest_seq
        self.next_id = ring.oldest_id  # the hub's id of the line expected next
        self.gaps = 0  # lines the ring dropped before this recorder read them
        self.last_at = time.time()
        self._open: dict[str | None, _Open] = {}
        self._resume = NEVER  # held until the writer's pending falls below this
        self._recheck = 0  # ... or the ring's offset reaches this (the rate is measured again)
        if cut_off is not None:
            self._note(
                f"Perview stopped without closing this history: lines read in the"
                f" {FLUSH_AGE:g} s after {moment(cut_off)} may be missing, or repeated below"
            )
        hub.followers.add(self)
        self._task = asyncio.create_task(self._run(), name=f"recorder {hub.name}")

    def set(self) -> None:
        """The hub's news (as a follower): read it now, in the hub's call. A task woken per
        read made the loop's CPU a MB 1.23 times a bare relay's, flat out; reading here, 0.96
        to 1.14 in five runs (the recorder alone, its writer a stub: medians of 5, load 9-19).
        While it is held (below), a read costs two comparisons: in a flood that is most reads.
        It looks again once the source wrote RATE_BYTES more, which tells whether it still floods
        (a paced source that caught up in a burst must not wait as long as a flood)."""
        if self.writer.pending >= self._resume and self.hub.ring.next_offset < self._recheck:
            return
        try:
            self.take()
        except Exception:  # the recorder's fault must not reach the source that called us
            log.exception("history: recording %s", self.hub.name)

    async def close(self) -> None:
        """Stop, after handing over everything the ring holds that was not recorded yet."""
        self.hub.followers.discard(self)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.take(always=True)
        self._let_go()

    def detach(self) -> None:
        """Stop at once (the source was removed or no longer recorded), sealing what it holds."""
        self.hub.followers.discard(self)
        self._task.cancel()
        self._let_go()
        self.writer.hand_over()

    def _let_go(self) -> None:
        """Seal what it holds, the last block ending with CLOSED."""
        for part in [p for p in self._open if p is not None]:
            self._seal(part)
        self._note(CLOSED)
        self._seal(None)

    def _note(self, text: str) -> None:
        """An event of the recorder's own, after what it read so far."""
        at = time.time()
        block = self._open.get(None)
        if block is None:
            block = self._open[None] = _Open(at, t0=at, t1=at)
        block.t1 = max(block.t1, at)
        block.events.append((block.count, at, text))

    async def _run(self) -> None:
        """Seal blocks that aged, and read on where the writer had no room when output came."""
        while True:
            await asyncio.sleep(FLUSH_AGE / 4)
            self.take()
            now = time.time()
            for part, block in list(self._open.items()):
                if now - block.started >= FLUSH_AGE:
                    self._seal(part)

    def take(self, always: bool = False) -> None:
        """Read what is new in the ring while the writer has room (`always`: all of it, at
        shutdown); a gap for what the ring dropped before it was read."""
        writer = self.writer
        ring = self.hub.ring
        self._pace(ring.next_offset)
        if not always:
            if self._resume != NEVER:
                self._hold()  # held by a flood that may have ended (told by _pace, just now)
            if writer.pending >= self._resume:
                return
            self._resume = NEVER
            if not writer.room(self.flooding):
                # The gap is said once the writer has room again, as one gap for the whole
                # spell: one per read (each logged) cost the loop more than the lines it relayed.
                self._hold()
                return
        if self.seq < ring.oldest_seq:
            self.seq = ring.oldest_seq
            first = ring.oldest_id
            if first > self.next_id:
                self._gap(first - self.next_id)
                self.next_id = first
        while (always or writer.room(self.flooding)) and (chunk := ring.get(self.seq)) is not None:
            self.seq += 1
            self._add(chunk)
            self.next_id = chunk.first + chunk.count
        if not (always or writer.room(self.flooding)):
            self._hold()

    def _hold(self) -> None:
        """Read no more until the writer is down to RESUME_SHARE of its room (a flood) or has
        room at all (a slower source, whose lines must not wait)."""
        writer = self.writer
        self._recheck = self._window[0] + RATE_BYTES
        if self.flooding:
            self._resume = int(writer.flood_pending * RESUME_SHARE)
        else:
            self._resume = writer.max_pending

    def _pace(self, offset: int) -> None:
        """Measure the source's rate over its last RATE_BYTES (or RATE_AGE, if slower)."""
        start, since = self._window
        written = offset - start
        if written >= RATE_BYTES:
            now = time.monotonic()
            self.flooding = written > self.flood_rate * (now - since)
            self._window = (offset, now)
        elif written < 0 or time.monotonic() - since >= RATE_AGE:
            self.flooding = False
            self._window = (offset, time.monotonic())

    def _add(self, chunk: Chunk) -> None:
        at = chunk.at or time.time()
        self.last_at = at
        block = self._open.get(chunk.part)
        if block is None:
            block = self._open[chunk.part] = _Open(time.time(), t0=at, t1=at)
        block.t1 = max(block.t1, at)  # its last line's or event's (never before t0: a clock step)
        if chunk.state is not None or chunk.note is not None:
            text = chunk.state.summary if chunk.state is not None else str(chunk.note)
            block.events.append((block.count, at, text))
            return
        block.parts.append(chunk.data)
        if block.marks is not None:
            if chunk.marks is None:
                block.marks = None
            else:
                block.marks.append(chunk.marks)
        block.count += chunk.count
        block.size += len(chunk.data)
        if block.times and block.times[-1][1] == at:
            block.times[-1] = (block.times[-1][0] + chunk.count, at)
        else:
            block.times.append((chunk.count, at))
        if block.size >= BLOCK_BYTES:
            self._seal(chunk.part)

    def _seal(self, part: str | None) -> None:
        block = self._open.pop(part)
        if not block.count and not block.events:
            return
        first = self.next_line
        self.next_line += block.count
        self.writer.submit(
            _Sealed(
                self.hub.name, part, first, block, block.count, block.t0, block.t1, self.flooding
            )
        )

    def _gap(self, count: int) -> None:
        now = time.time()
        log.warning(
            "history: %s: %d lines went by before they could be recorded", self.hub.name, count
        )
        self.gaps += count
        # Blocks already open hold lines from before the gap: they go first, in order.
        for part in list(self._open):
            self._seal(part)
        first = self.next_line
        self.next_line += count
        self.writer.submit(_Sealed(self.hub.name, None, first, None, count, self.last_at, now))
