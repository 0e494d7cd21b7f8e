"""Lines per minute at the levels a person watches, per classified source (and host), published
as metric series `HOST/log.SOURCE.LEVEL` every metrics interval: charted, kept in history, and
held to thresholds (`[metrics."log.SOURCE.LEVEL"] warn = 5`) like any other series.

Read from each hub's level tally (totals since Perview started, per part), so nothing here is
done per line. `/metrics` does not export these series again: `perview_log_lines_total` holds the
same counts, and Prometheus takes its own rates."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping

from perview.classify import LEVEL_NAMES
from perview.config import LOCAL, LOG_LEVELS
from perview.hub import Hub
from perview.metrics.hub import MetricsHub

PREFIX = "log."  # the names of these series, and of the [metrics] tables that set their limits
UNIT = "lines/min"
# "Per minute" is the lines of the last minute, not one interval's count scaled up: a single
# error would read 30/min for 2 s and then 0, and a threshold of 5 would fire on every burst.
WINDOW = 60.0
# Fatal lines count as errors: a limit on errors per minute is meant to catch them too, and a
# fatal series of its own would be an empty chart nearly always (/metrics keeps them apart).
FOLDED = {"error": ("error", "fatal")}
WATCHED = {
    name: tuple(LEVEL_NAMES.index(level) for level in FOLDED.get(name, (name,)))
    for name in LOG_LEVELS
}

Counts = dict[tuple[str, str], list[int]]  # (host, source): lines at each WATCHED level


def series_name(source: str, level: str) -> str:
    return f"{PREFIX}{source}.{level}"


def is_log_series(name: str) -> bool:
    return name.startswith(PREFIX)


def levels_by_host(hub: Hub) -> dict[str, list[int]]:
    """A classified source's counts per level by host: each of its hosts from the start (at 0),
    so a rate has a first point; parts that are not hosts (a glob's files) add up under the
    source's host."""
    if not hub.classified:
        return {}
    named = hub.meta.get("hosts")
    hosts = [str(h) for h in named] if isinstance(named, list) else []
    single = hosts[0] if len(hosts) == 1 else LOCAL
    found = {host: [0] * len(LEVEL_NAMES) for host in (hosts if len(hosts) > 1 else [single])}
    for part, counts in hub.leveller.tally.totals.items():
        host = part if part is not None and part in hosts else single
        total = found.setdefault(host, [0] * len(LEVEL_NAMES))
        for level, n in enumerate(counts):
            total[level] += n
    return found


class LogRates:
    """Publishes the watched levels' lines of the last minute of every classified hub in `hubs`
    (read at each call: the catalog's mapping, which a reload changes in place)."""

    def __init__(
        self,
        hubs: Mapping[str, Hub],
        metrics: MetricsHub,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hubs, self.metrics, self._clock = hubs, metrics, clock
        # Totals as they were at each publication of the last minute, and the newest one from
        # before it: the start, with nothing counted, until a minute has passed.
        self._seen: deque[tuple[float, Counts]] = deque([(clock(), {})])

    def counts(self) -> Counts:
        found: Counts = {}
        for hub in self.hubs.values():
            for host, totals in levels_by_host(hub).items():
                found[(host, hub.name)] = [
                    sum(totals[level] for level in levels) for levels in WATCHED.values()
                ]
        return found

    def publish(self) -> None:
        now = self._clock()
        counts = self.counts()
        while len(self._seen) > 1 and self._seen[1][0] <= now - WINDOW:
            self._seen.popleft()
        before = self._seen[0][1]
        self._seen.append((now, counts))
        values: dict[str, dict[str, float]] = {}
        for (host, source), totals in counts.items():
            old = before.get((host, source), [0] * len(WATCHED))
            if any(n < o for n, o in zip(totals, old, strict=True)):
                old = [0] * len(WATCHED)  # counted again from 0: a reload made its hub anew
            for level, n, o in zip(WATCHED, totals, old, strict=True):
                values.setdefault(host, {})[series_name(source, level)] = float(n - o)
        for host, named in values.items():
            self.metrics.publish(host, named, dict.fromkeys(named, UNIT))


async def publish_every(rates: LogRates, every: float) -> None:
    """Runs until cancelled."""
    while True:
        rates.publish()
        await asyncio.sleep(every)
