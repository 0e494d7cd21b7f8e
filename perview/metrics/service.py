"""The metrics side of a server: its collectors, its history, started and stopped as one."""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Coroutine, Mapping
from typing import Any

from perview.config import LOCAL, Config, MetricConfig, data_dir
from perview.hub import Hub
from perview.metrics import collect
from perview.metrics.history import History
from perview.metrics.hub import MetricsHub
from perview.metrics.logrates import LogRates, publish_every
from perview.metrics.selector import parse as parse_selector
from perview.sources.process import GuardPool, ProcessSource
from perview.sources.shared_guard import SharedGuard
from perview.sources.ssh import SshSource
from perview.tasks import Tasks

log = logging.getLogger(__name__)

FLUSH_EVERY = 5.0  # seconds between batched history writes
EXPIRE_EVERY = 3600.0


class MetricsService:
    """Runs every collector the config asks for, and the lines per level of `hubs` (read live:
    the catalog's mapping), and keeps their samples in history. Owns its tasks: `close` cancels
    them (their commands are stopped by their guards) and flushes."""

    def __init__(
        self, config: Config, guards: GuardPool, hubs: Mapping[str, Hub] | None = None
    ) -> None:
        self.config = config
        self.guards = guards
        # One guard process for every host's sampling session (which it also gives a stdin:
        # their clock), not one interpreter each.
        self.remote_guards = SharedGuard(guards)
        self.hubs = hubs
        self.hub = MetricsHub(config.metrics)
        self.history: History | None = None
        self._tasks = Tasks()

    @property
    def enabled(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        server = self.config.server
        jobs: list[tuple[str, Coroutine[Any, Any, None]]] = []
        if server.system_metrics:
            jobs.append(("local", collect.local_system(self.hub, server.metrics_every)))
        for host in self.config.hosts.values():
            if host.metrics:
                job = collect.remote_system(
                    self.hub,
                    host.name,
                    host.ssh,
                    host.ssh_args,
                    server.metrics_every,
                    self.remote_guards,
                )
                jobs.append((host.name, job))
        for metric in self.config.metrics:
            if not metric.settings_only:
                jobs.append((metric.name, self._custom(metric)))
        if self.hubs is not None:  # even with none yet: a reload may add sources
            rates = LogRates(self.hubs, self.hub)
            jobs.append(("lines per level", publish_every(rates, server.metrics_every)))
        if not jobs:
            return
        path = data_dir(server) / "metrics.sqlite"
        try:
            history = History(path, server.retention)
            await history.open()
            self.hub.held = await history.oldest()
            self.history = history
            jobs.append(("history", self._keep_history(history)))
        except OSError as exc:
            log.warning("metric history disabled: cannot open %s: %s", path, exc.strerror)
        for name, job in jobs:
            self._tasks.spawn(job, f"metrics {name}")

    def _custom(self, metric: MetricConfig) -> Coroutine[Any, Any, None]:
        """The collector of a [metrics.NAME] table. Its unit and thresholds are not handed
        over: the hub has them from the config."""
        host = metric.host or LOCAL
        if metric.scrape is not None:
            assert metric.selector is not None  # the config requires one
            chosen = parse_selector(metric.selector)
            if metric.host is None:
                return collect.scrape_metric(
                    self.hub, metric.name, metric.every, metric.scrape, chosen
                )
            remote = collect.remote_scrape(metric.scrape, metric.every)
            return collect.command_metric(
                self.hub,
                host,
                metric.name,
                metric.every,
                self._ssh(metric.host, remote),
                read=lambda text: {metric.name: chosen.select(text)},
                max_output=collect.MAX_SCRAPE,
            )
        source: ProcessSource | SshSource
        if metric.host is None:
            source = ProcessSource(metric.command, guards=self.guards)
        else:
            source = self._ssh(metric.host, shlex.join(metric.command))
        return collect.command_metric(self.hub, host, metric.name, metric.every, source)

    def _ssh(self, name: str, line: str) -> SshSource:
        host = self.config.hosts[name]
        return SshSource(host.ssh, line, ssh_args=host.ssh_args, guards=self.guards)

    async def _keep_history(self, history: History) -> None:
        since_expiry = 0.0
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await history.write(self.hub.take_pending())
            since_expiry += FLUSH_EVERY
            if since_expiry >= EXPIRE_EVERY:
                await history.expire()
                since_expiry = 0.0

    async def close(self) -> None:
        await self._tasks.close()
        if self.history is not None:
            await self.history.write(self.hub.take_pending())
            await self.history.close()
