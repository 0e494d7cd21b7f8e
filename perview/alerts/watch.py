"""One source the alert rules watch: a follower of its hub's ring (never a viewer: it neither
paces the source nor counts among its viewers), and its blocks scanned by the source's rules on
a thread of their own (RE2 lets go of the GIL while it matches), levels found once per block for
every rule of the source.

Taking and scanning are apart. The reader takes the ring's new blocks as soon as the hub wakes
it, a cheap step on the loop; the scanner works through them on the thread. Blocks taken and not
yet scanned are held up to PENDING_BYTES, so a scanner that a busy machine stalls for a moment
loses nothing; past that the reader stops taking, the ring rolls past it, and the lines it did
not look at are counted on every rule of the source and logged: never silently.

A stalled scanner must not make a rule speak of lines it has not seen: a line rule is "ok" again
only once every line that arrived within its cooldown is scanned (`unscanned`), and a silence
rule hears the source print as the reader takes its lines, without waiting for a scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from perview.alerts.rules import LinesRule, SilenceRule
from perview.alerts.scan import Hits
from perview.classify import Classifier
from perview.follower import Follower
from perview.hub import READ_BUDGET, Gap, Hub
from perview.ring import Chunk

log = logging.getLogger(__name__)

# Blocks taken from the ring and not yet scanned, per source: one default ring's bytes again. It
# bounds what a stalled scanner holds on to, and is what it may fall behind before it misses lines.
PENDING_BYTES = 16 * 1024 * 1024
# Lines not looked at are told (logged, and counted on each rule, which the page shows) at most
# this often: a scanner that cannot keep up falls behind at every read, and telling each of
# those would cost the loop an event and a state write per rule per read.
MISSED_EVERY = 1.0
# Matching runs here, never on the loop. One thread: the other core stays with the loop, and
# sources take turns, a batch (a few blocks) each.
_scanner = ThreadPoolExecutor(1, thread_name_prefix="perview-alerts")


class Watch:
    """The rules of one source over its hub, from the oldest line the ring holds now until the
    hub closes. `run` owns its two tasks."""

    def __init__(self, hub: Hub, rules: list[LinesRule | SilenceRule]) -> None:
        self.hub = hub
        self.rules = rules
        self.lines = [rule for rule in rules if isinstance(rule, LinesRule)]
        self.silences = [rule for rule in rules if isinstance(rule, SilenceRule)]
        self.levels = Levels() if any(r.config.level is not None for r in self.lines) else None
        self.cursor = Follower(hub)
        self.pending: deque[Chunk] = deque()
        self.pending_bytes = 0
        self.missed = 0  # lines not looked at and not told yet
        self.told_at = 0.0  # when missed lines were last told (monotonic)
        self._taken = asyncio.Event()
        self._room = asyncio.Event()
        self._done = False  # the hub closed and everything in it was taken
        self._scanning: float | None = None  # the arrival of the oldest line on the thread now
        for rule in self.lines:
            rule.unscanned.append(self.unscanned)

    def unscanned(self) -> float | None:
        """When the oldest line not scanned yet arrived (on the thread, taken, or still in the
        ring); None once every line the ring got is scanned."""
        if self._scanning is not None:
            return self._scanning
        if self.pending:
            return self.pending[0].at
        ring = self.hub.ring
        upcoming = ring.get(max(self.cursor.seq, ring.oldest_seq))
        return upcoming.at if upcoming is not None else None

    async def run(self) -> None:
        with self.cursor:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._take())
                group.create_task(self._scan())

    async def _take(self) -> None:
        while True:
            while self.pending_bytes >= PENDING_BYTES:
                await self._room.wait()
                self._room.clear()
            items = self.cursor.read()
            heard: float | None = None
            for item in items:
                if isinstance(item, Gap):
                    self.missed += item.count
                elif item.state is None and item.note is None and item.count:
                    self.pending.append(item)
                    self.pending_bytes += len(item.data)
                    heard = item.at
            if heard is not None:
                # The source printed: a silence rule needs no scan to know, and must not wait
                # for a stalled scanner to hear it.
                now = time.time()
                for silence in self.silences:
                    silence.output(heard, now)
            if items:
                self._taken.set()
                continue
            if self.hub.closed:
                self._done = True
                self._taken.set()
                return
            await self.cursor.wait()

    async def _scan(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._tell_missed(force=self._done and not self.pending)
            if not self.pending:
                now = time.time()
                for rule in self.lines:
                    rule.scanned(now)  # what was taken last may have held no lines to scan
                if self._done:
                    return
                # With lines still to tell, no longer than until they are due.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(MISSED_EVERY if self.missed else None):
                        await self._taken.wait()
                self._taken.clear()
                continue
            chunks: list[Chunk] = []
            size = 0
            while self.pending and size < READ_BUDGET:
                chunks.append(chunk := self.pending.popleft())
                size += len(chunk.data)
            self.pending_bytes -= size
            self._room.set()
            self._scanning = chunks[0].at
            try:
                found = await loop.run_in_executor(_scanner, _scan, self.lines, chunks, self.levels)
            finally:
                self._scanning = None
            now = time.time()
            for chunk, hits in zip(chunks, found, strict=True):
                for rule, hit in zip(self.lines, hits, strict=True):
                    if hit is not None and (
                        not rule.config.hosts or chunk.part in rule.config.hosts
                    ):
                        rule.lines(self.hub.name, chunk.first, chunk.part, chunk.at, hit, now)
            for rule in self.lines:
                rule.scanned(now)

    def _tell_missed(self, force: bool) -> None:
        if not self.missed:
            return
        now = time.monotonic()
        if not force and now - self.told_at < MISSED_EVERY:
            return
        log.warning("alerts fell behind %s: %d lines not looked at", self.hub.name, self.missed)
        for rule in self.rules:
            rule.missed(self.missed)
        self.missed, self.told_at = 0, now


class Levels:
    """Levels of a source's blocks for its level rules: the marks the hub gave each chunk as it
    entered the ring, or, where it gave none (a source with `format = "raw"`, or blocks past the
    hub's classifying budget), found here on the scanner thread, one classifier per part (host,
    file) with its carry."""

    def __init__(self) -> None:
        self.classifier = Classifier()
        self.carry: dict[str | None, bytes] = {}

    def marks(self, chunk: Chunk) -> bytes:
        if chunk.marks is not None:
            return chunk.marks
        marks, self.carry[chunk.part] = self.classifier.classify(
            chunk.data, self.carry.get(chunk.part, b""), chunk.count
        )
        return marks


def _scan(
    rules: list[LinesRule], chunks: list[Chunk], levels: Levels | None
) -> list[list[Hits | None]]:
    """Each rule's hits in each chunk (on the scanner thread)."""
    found = []
    for chunk in chunks:
        marks = levels.marks(chunk) if levels is not None else None
        found.append([rule.matcher.scan(chunk.data, marks) for rule in rules])
    return found
