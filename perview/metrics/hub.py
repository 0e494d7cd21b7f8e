"""Where samples go: every series' latest value, recent points and state, for the API, the event
stream and history. Collectors publish; viewers read from a cursor, as with logs.

The hub is also the one place a series gets its settings: a configured metric's unit and
thresholds are looked up here, from its MetricConfig, when its first series appears. Collectors
hand over values only."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from perview.config import LOCAL, MetricConfig

RECENT = 1800  # points kept in memory per series (an hour at 2 s); older ones are in history
BATCHES = 512  # published batches kept for event-stream viewers that fall behind


@dataclass(slots=True)
class Series:
    id: str  # "host/name", e.g. "local/cpu", "web1/disk.used:/"
    host: str
    name: str
    unit: str = ""
    warn: float | None = None
    crit: float | None = None
    state: str = "ok"  # "ok" or "failing"
    reason: str | None = None  # why it is failing
    value: float | None = None
    at: float | None = None  # wall-clock time of `value`
    oldest: float | None = None  # wall-clock time of the oldest sample held (history included)
    recent: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=RECENT))

    def describe(self) -> dict[str, object]:
        level = "ok"
        if self.value is not None and self.crit is not None and self.value >= self.crit:
            level = "crit"
        elif self.value is not None and self.warn is not None and self.value >= self.warn:
            level = "warn"
        return {
            "id": self.id,
            "host": self.host,
            "name": self.name,
            "unit": self.unit,
            "value": self.value,
            "at": self.at,
            "oldest": self.oldest,
            "state": self.state,
            "reason": self.reason,
            "warn": self.warn,
            "crit": self.crit,
            "level": level,
        }


class MetricsHub:
    def __init__(self, metrics: Iterable[MetricConfig] = ()) -> None:
        self.series: dict[str, Series] = {}
        self.settings = {(m.host or LOCAL, m.name): m for m in metrics}
        # A table with no command or scrape only sets the limits of series Perview publishes
        # itself (lines per level): without a host, on each host the series appears on.
        self.anywhere = {m.name: m for m in metrics if m.host is None and m.settings_only}
        self.held: dict[str, float] = {}  # series id: its oldest sample in history
        self.batches: deque[tuple[int, list[tuple[str, float, float]]]] = deque(maxlen=BATCHES)
        self.next_batch = 0
        self.changed = asyncio.Event()
        self.pending: list[tuple[str, float, float]] = []  # not yet in history
        self.samples = 0

    def metric_of(self, host: str, name: str) -> MetricConfig | None:
        """The configured metric a series belongs to: `queue` for `queue` and for `queue.active`
        (a command's `key value` lines), the longest configured name when several match."""
        while True:
            metric = self.settings.get((host, name)) or self.anywhere.get(name)
            if metric is not None:
                return metric
            name, dot, _ = name.rpartition(".")
            if not dot:
                return None

    def _declare(self, host: str, name: str, unit: str = "") -> Series:
        key = f"{host}/{name}"
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(key, host, name, unit, oldest=self.held.get(key))
            metric = self.metric_of(host, name)
            if metric is not None:
                series.unit = metric.unit or unit
                series.warn, series.crit = metric.warn, metric.crit
        return series

    def publish(
        self,
        host: str,
        values: dict[str, float],
        units: dict[str, str] | None = None,
        at: float | None = None,
    ) -> None:
        """New values from one collector, taken at one moment. `units` is for series no
        [metrics] table configures (the system's); a configured metric's unit is its config's."""
        at = time.time() if at is None else at
        batch = []
        for name, value in values.items():
            series = self._declare(host, name, (units or {}).get(name, ""))
            series.value, series.at, series.state, series.reason = value, at, "ok", None
            if series.oldest is None:
                series.oldest = at
            series.recent.append((at, value))
            batch.append((series.id, at, value))
        if batch:
            self.batches.append((self.next_batch, batch))
            self.next_batch += 1
            self.pending += batch
            self.samples += len(batch)
            self.changed.set()
            self.changed = asyncio.Event()

    def fail(self, host: str, names: list[str], reason: str) -> None:
        for name in names:
            series = self._declare(host, name)
            series.state, series.reason = "failing", reason
        self.changed.set()
        self.changed = asyncio.Event()

    def fail_metric(self, host: str, name: str, reason: str) -> None:
        """Mark every series of metric `name` failing (the metric's own, before it has any)."""
        names = [
            s.name
            for s in self.series.values()
            if s.host == host and (s.name == name or s.name.startswith(name + "."))
        ]
        self.fail(host, names or [name], reason)

    def since(self, cursor: int) -> tuple[list[tuple[str, float, float]], int]:
        """Samples published from batch `cursor` on (as many as are still held), and the next
        cursor."""
        out: list[tuple[str, float, float]] = []
        for number, batch in self.batches:
            if number >= cursor:
                out += batch
        return out, self.next_batch

    def take_pending(self) -> list[tuple[str, float, float]]:
        pending, self.pending = self.pending, []
        return pending
