"""Limits on streams: per client address, in total, and viewers per source (over a limit the
client gets a clear 429 or 503 with Retry-After, and the server carries on); and a viewer that
stops reading is cut off rather than holding its connection for ever."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from perview.config import ServerConfig
from perview.hub import Hub
from perview.web.wire import HEARTBEAT_EVERY, Wire

RETRY_AFTER = "5"  # seconds a refused client is asked to wait


_SERVER = ServerConfig()


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What streams are held to: [server] settings (ServerConfig owns their defaults), and the
    heartbeat (the Wire's)."""

    per_client: int = _SERVER.max_streams_per_client  # open streams from one address
    total: int = _SERVER.max_streams  # open streams in all
    per_source: int = _SERVER.max_viewers_per_source  # viewers of one source
    write_timeout: float = _SERVER.write_timeout  # how long a write may wait for a reader
    heartbeat: float = HEARTBEAT_EVERY

    @classmethod
    def of(cls, server: ServerConfig) -> StreamLimits:
        return cls(
            server.max_streams_per_client,
            server.max_streams,
            server.max_viewers_per_source,
            server.write_timeout,
        )


class Streams:
    """Counts open streams; `admit` is held for as long as a stream is open."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self.by_client: Counter[str] = Counter()
        self.open = 0
        self.wires: set[Wire] = set()

    async def tend(self) -> None:
        """Runs for the life of the server: cuts off every stream whose client has taken
        nothing for `write_timeout` seconds, and sends every heartbeat that is due (one task for
        all: a timer per stream would cost more than its writes)."""
        timeout = self.limits.write_timeout
        tick = min(timeout / 4, self.limits.heartbeat / 3)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for wire in list(self.wires):
                if wire.blocked_since is not None:
                    if now - wire.blocked_since > timeout:
                        wire.cut()
                elif wire.heartbeat_due() and not wire.beat_now():
                    wire.wake_for_heartbeat()

    def end_unless(self, allowed: Callable[[web.Request], bool]) -> int:
        """Cut off every open stream whose request `allowed` now refuses (a user a reload
        removed); returns how many. Its client reconnects, and is refused."""
        ended = [wire for wire in self.wires if not allowed(wire.request)]
        for wire in ended:
            wire.cut()
        return len(ended)

    @contextmanager
    def admit(
        self,
        request: web.Request,
        response: web.StreamResponse,
        hubs: Sequence[Hub],
        heartbeat: bool = True,
    ) -> Iterator[Wire]:
        """Count a stream in, or refuse it; `heartbeat`: it sends one when quiet (SSE can, a
        text stream cannot: its every byte is the log's)."""
        client = request.remote or "unknown"
        limits = self.limits
        if self.by_client[client] >= limits.per_client:
            raise _refuse(
                web.HTTPTooManyRequests,
                f"too many streams from {client} (limit {limits.per_client}); close some",
            )
        if self.open >= limits.total:
            raise _refuse(
                web.HTTPServiceUnavailable,
                f"too many streams open (limit {limits.total}); try again later",
            )
        for hub in hubs:
            if len(hub.viewers) >= limits.per_source:
                raise _refuse(
                    web.HTTPServiceUnavailable,
                    f"source {hub.name} has too many viewers (limit {limits.per_source})",
                )
        self.by_client[client] += 1
        self.open += 1
        wire = Wire(request, response, limits.heartbeat if heartbeat else None)
        self.wires.add(wire)
        try:
            yield wire
        finally:
            self.wires.discard(wire)
            self.open -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]


def _refuse(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=f"perview: {message}\n", headers={"Retry-After": RETRY_AFTER})
