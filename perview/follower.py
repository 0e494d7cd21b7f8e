"""A follower: a cursor into a hub's ring that the hub never waits for (`Hub.followers`).

Unlike a viewer it neither paces the source nor counts as one, nor starts or keeps a source
running: what reads for Perview's own sake (the alerts engine) must never hold back what people
watch. So it can fall behind: where the ring rolled past it, `read` returns a Gap that says how
many lines it did not get, never fewer lines silently.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from perview.hub import READ_BUDGET, Gap, Hub
from perview.ring import Chunk


class Follower:
    """Follows `hub` from the oldest line its ring holds now; woken with the viewers while it is
    entered (`with Follower(hub) as cursor:`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.seq = hub.ring.oldest_seq
        self.next_id = hub.ring.oldest_id  # the line expected next
        self.wake = asyncio.Event()

    def __enter__(self) -> Follower:
        self.hub.followers.add(self.wake)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.hub.followers.discard(self.wake)

    def read(self, budget: int = READ_BUDGET) -> list[Chunk | Gap]:
        """What is new since the last read (up to about `budget` bytes), gaps first."""
        ring = self.hub.ring
        items: list[Chunk | Gap] = []
        self.seq = max(self.seq, ring.oldest_seq)
        upcoming = ring.get(self.seq)
        first = upcoming.first if upcoming is not None else ring.next_id
        if first > self.next_id:
            items.append(Gap(self.next_id, first - self.next_id))
            self.next_id = first
        size = 0
        while size < budget and (chunk := ring.get(self.seq)) is not None:
            items.append(chunk)
            size += len(chunk.data)
            self.seq += 1
            self.next_id = chunk.first + chunk.count
        return items

    async def wait(self) -> None:
        """Until the hub has news (or closes)."""
        await self.wake.wait()
        self.wake.clear()
