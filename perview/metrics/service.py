"""The metrics side of a server: its collectors, its history, started and stopped as one."""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Coroutine
from typing import Any

from perview.config import Config, MetricConfig, data_dir
from perview.metrics import collect
from perview.metrics.history import History
from perview.metrics.hub import MetricsHub
from perview.sources.process import GuardPool, ProcessSource
from perview.sources.ssh import SshSource

log = logging.getLogger(__name__)

FLUSH_EVERY = 5.0  # seconds between batched history writes
EXPIRE_EVERY = 3600.0


class MetricsService:
    """Runs every collector the config asks for, and keeps their samples in history. Owns its
    tasks: `close` cancels them (their commands are stopped by their guards) and flushes."""

    def __init__(self, config: Config, guards: GuardPool) -> None:
        self.config = config
        self.guards = guards
        self.hub = MetricsHub()
        self.history: History | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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
                    self.hub, host.name, host.ssh, host.ssh_args, server.metrics_every, self.guards
                )
                jobs.append((host.name, job))
        for metric in self.config.metrics:
            jobs.append((metric.name, self._custom(metric)))
        if not jobs:
            return
        path = data_dir(server) / "metrics.sqlite"
        try:
            history = History(path, server.retention)
            await history.open()
            self.history = history
            jobs.append(("history", self._keep_history(history)))
        except OSError as exc:
            log.warning("metric history disabled: cannot open %s: %s", path, exc.strerror)
        for name, job in jobs:
            task = asyncio.create_task(job, name=f"metrics {name}")
            task.add_done_callback(self._crashed)
            self._tasks.add(task)

    def _custom(self, metric: MetricConfig) -> Coroutine[Any, Any, None]:
        if metric.scrape is not None:
            assert metric.selector is not None
            return collect.scrape_metric(
                self.hub, metric.name, metric.unit, metric.every, metric.scrape, metric.selector
            )
        self.hub.declare(metric.host or "local", metric.name, metric.unit, metric.warn, metric.crit)
        source: ProcessSource | SshSource
        if metric.host is None:
            source = ProcessSource(metric.command, guards=self.guards)
        else:
            host = self.config.hosts[metric.host]
            line = shlex.join(metric.command)
            source = SshSource(host.ssh, line, ssh_args=host.ssh_args, guards=self.guards)
        return collect.command_metric(
            self.hub, metric.host or "local", metric.name, metric.unit, metric.every, source
        )

    async def _keep_history(self, history: History) -> None:
        since_expiry = 0.0
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await history.write(self.hub.take_pending())
            since_expiry += FLUSH_EVERY
            if since_expiry >= EXPIRE_EVERY:
                await history.expire()
                since_expiry = 0.0

    def _crashed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped: %r", task.get_name(), task.exception())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.history is not None:
            await self.history.write(self.hub.take_pending())
            await self.history.close()
