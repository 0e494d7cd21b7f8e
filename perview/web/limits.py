"""Limits on streams: per client address, in total, and viewers per source (over a limit the
client gets a clear 429 or 503 with Retry-After, and the server carries on); and a viewer that
stops reading is cut off rather than holding its connection for ever."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

from perview.hub import Hub

RETRY_AFTER = "5"  # seconds a refused client is asked to wait


@dataclass(frozen=True, slots=True)
class StreamLimits:
    per_client: int = 200  # open streams from one address (a browser tab uses one)
    total: int = 5000  # open streams in all
    per_source: int = 2000  # viewers of one source
    write_timeout: float = 60.0  # seconds a write may wait for a viewer that reads nothing
    # A quiet event stream writes a comment about this often (up to a third later), so proxies
    # and the browser see it is alive, and a vanished client shows up as a write that fails.
    heartbeat: float = 15.0


class Wire:
    """One stream's way out. It notes when a write starts waiting for the client, and when the
    stream last wrote; one task per server (`Streams.tend`) then cuts off clients that stopped
    reading and wakes quiet streams for their heartbeat. A timer per write or per wait would
    cost more than the write itself on a busy stream with many viewers."""

    __slots__ = ("blocked_since", "heartbeat", "last_write", "request", "response", "wake")

    def __init__(
        self, request: web.Request, response: web.StreamResponse, heartbeat: float
    ) -> None:
        self.request = request
        self.response = response
        self.heartbeat = heartbeat
        self.blocked_since: float | None = None
        _probe_when_silent(request)
        self.last_write = time.monotonic()
        self.wake: asyncio.Event | None = None  # what the stream's relay waits on

    async def write(self, data: bytes) -> None:
        self.last_write = self.blocked_since = time.monotonic()
        await self.response.write(data)
        self.blocked_since = None

    def heartbeat_due(self) -> bool:
        return time.monotonic() - self.last_write >= self.heartbeat

    def cut(self) -> None:
        """Drop the connection; the pending write fails as if the client had gone."""
        if self.request.transport is not None:
            self.request.transport.abort()


# A stream's peer can vanish without a word (a laptop closed, a network gone): TCP keep-alive
# probes it after KEEPALIVE_IDLE quiet seconds, and the connection ends after KEEPALIVE_COUNT
# unanswered probes, about 90 s in all instead of the system's default two hours and more.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 10, 3


def _probe_when_silent(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)


class Streams:
    """Counts open streams; `admit` is held for as long as a stream is open."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self.by_client: Counter[str] = Counter()
        self.open = 0
        self.wires: set[Wire] = set()

    async def tend(self) -> None:
        """Runs for the life of the server: cuts off every stream whose client has taken
        nothing for `write_timeout` seconds, and wakes every stream whose heartbeat is due."""
        timeout = self.limits.write_timeout
        tick = min(timeout / 4, self.limits.heartbeat / 3)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for wire in list(self.wires):
                if wire.blocked_since is not None:
                    if now - wire.blocked_since > timeout:
                        wire.cut()
                elif wire.wake is not None and wire.heartbeat_due():
                    wire.wake.set()

    @contextmanager
    def admit(
        self, request: web.Request, response: web.StreamResponse, hubs: Sequence[Hub]
    ) -> Iterator[Wire]:
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
        wire = Wire(request, response, limits.heartbeat)
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
