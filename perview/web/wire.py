"""One stream's way out to its client: writing, noticing a client that stopped reading or
vanished, and the heartbeat of a quiet stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

# A quiet event stream writes a comment about this often (up to a third later), so proxies and
# the browser see it is alive, and a vanished client shows up as a write that fails.
HEARTBEAT_EVERY = 15.0
HEARTBEAT = b": keep-alive\n\n"  # an SSE comment: every client ignores it

# A stream's peer can vanish without a word (a laptop closed, a network gone): TCP keep-alive
# probes it after KEEPALIVE_IDLE quiet seconds, and the connection ends after KEEPALIVE_COUNT
# unanswered probes, about 90 s in all instead of the system's default two hours and more. It is
# all a text stream has, since it can send no heartbeat of its own.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 10, 3


class Wire:
    """One stream's way out. It notes when a write starts waiting for the client, and when the
    stream last wrote; one task per server (`Streams.tend`) then cuts off clients that stopped
    reading and writes the heartbeat of quiet streams (`beat_now`; a stream is woken for it only
    if its socket is not empty). A timer per write or per wait would cost more than the write
    itself on a busy stream with many viewers, and a task woken per heartbeat more than the
    heartbeat.

    `heartbeat`: seconds of quiet after which the stream's relay is woken to send HEARTBEAT;
    None for a stream that has no way to send one (text).

    Besides `write`, which waits for the client as long as it takes, the hub writes to an idle
    stream's `transport` in its own call (perview.viewers), without a task switch, and only
    into an empty socket buffer, so that it never holds more than it wrote."""

    __slots__ = (
        "blocked_since",
        "chunked",
        "heartbeat",
        "last_write",
        "request",
        "response",
        "transport",
        "wake",
        "writer",
    )

    def __init__(
        self, request: web.Request, response: web.StreamResponse, heartbeat: float | None
    ) -> None:
        self.request = request
        self.response = response
        self.heartbeat = heartbeat
        self.blocked_since: float | None = None
        _probe_when_silent(request)
        self.last_write = time.monotonic()
        self.wake: asyncio.Event | None = None  # what the stream's relay waits on
        # Set by the first `write`: from then on the headers are out (aiohttp holds them back to
        # send with the first bytes of the body) and the hub may write past aiohttp.
        self.transport: asyncio.Transport | None = None
        self.writer: AbstractStreamWriter | None = None
        self.chunked = False

    async def write(self, data: bytes) -> None:
        self.last_write = self.blocked_since = time.monotonic()
        await self.response.write(data)
        self.blocked_since = None
        if self.transport is None:
            self.chunked = self.response.headers.get(hdrs.TRANSFER_ENCODING) == "chunked"
            self.transport, self.writer = self.request.transport, self.request.writer

    def frame(self, data: bytes) -> bytes:
        """`data` as the hub writes it to `transport` directly (perview.viewers): an HTTP/1.1
        chunk, or as it is (HTTP/1.0). It depends on nothing else of the stream, so streams
        alike in `chunked` share one framing."""
        return b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data

    def heartbeat_due(self) -> bool:
        if self.heartbeat is None:
            return False
        return time.monotonic() - self.last_write >= self.heartbeat

    def wake_for_heartbeat(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def beat_now(self) -> bool:
        """Write the heartbeat without waking the stream, if the socket's buffer is empty: the
        stream's every write goes to the transport whole, in one call, so the comment falls
        between two events. False, writing nothing, if it cannot."""
        transport, writer = self.transport, self.writer
        if (
            transport is None
            or writer is None
            or transport.get_write_buffer_size()
            or transport.is_closing()
        ):
            return False
        data = self.frame(HEARTBEAT)
        transport.write(data)
        writer.output_size += len(data)
        self.last_write = time.monotonic()
        return True

    async def beat(self) -> None:
        """Send the heartbeat if it is due (the relay calls this when it wakes with nothing to
        say)."""
        if self.heartbeat_due():
            await self.write(HEARTBEAT)

    def cut(self) -> None:
        """Drop the connection; the pending write fails as if the client had gone."""
        if self.request.transport is not None:
            self.request.transport.abort()


def _probe_when_silent(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
