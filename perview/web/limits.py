"""Limits on streams: per client address, in total, and viewers per source. Over a limit the
client gets a clear 429 or 503 (with Retry-After) and the server carries on."""

from __future__ import annotations

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


class Streams:
    """Counts open streams; `admit` is held for as long as a stream is open."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self.by_client: Counter[str] = Counter()
        self.open = 0

    @contextmanager
    def admit(self, request: web.Request, hubs: Sequence[Hub]) -> Iterator[None]:
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
        try:
            yield
        finally:
            self.open -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]


def _refuse(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=f"perview: {message}\n", headers={"Retry-After": RETRY_AFTER})
