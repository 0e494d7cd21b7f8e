"""The served sources: one hub per configured source, and a changed config applied to them
(SIGHUP, or an operator's reload from the page) without a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from perview.config import Config, HostConfig, SourceConfig, data_dir
from perview.hub import Hub
from perview.sources import build_source, describe
from perview.sources.process import GuardPool

log = logging.getLogger(__name__)

REMOVED = "removed from the config"


@dataclass(frozen=True, slots=True)
class Changes:
    """What a reload did: sources by name, the users whose access changed (at once), and the
    tables that changed but wait for the next start."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("restarted", self.changed),
            )
            if names
        ]
        said = "; ".join(parts) or "no source changed"
        if self.users:
            said += f"; users changed: {', '.join(self.users)}"
        if self.waiting:
            said += f"; not applied until the next start: [{'], ['.join(self.waiting)}]"
        return said


class Catalog:
    """Owns the hubs of a config. `hubs` is the one mapping the web application reads, so a
    source added or removed here is added or removed there too."""

    def __init__(self, config: Config, guards: GuardPool) -> None:
        self.guards = guards
        self.config = config
        self.hold = config.server.hold  # a server setting: it takes effect at the next start
        # The sources this run's alert rules watch: alerts are read at start, and their rules
        # follow the ring without being viewers, so these run until the next start, whatever a
        # reload says.
        self.alerted = config.alerted
        self.hubs: dict[str, Hub] = {spec.name: self._build(spec) for spec in config.sources}

    def start_kept(self) -> None:
        for hub in self.hubs.values():
            if hub.keep:
                hub.start()

    async def apply(self, config: Config) -> Changes:
        """Make the served sources those of `config`: new ones appear, removed ones stop (their
        viewers' streams end), changed ones restart in place (their viewers stay, line ids go
        on). Only the sources: the reloader applies the users and says what else waits."""
        old = {spec.name: spec for spec in self.config.sources}
        new = {spec.name: spec for spec in config.sources}
        removed = [name for name in old if name not in new]
        added = [name for name in new if name not in old]
        changed = [
            name
            for name in new
            if name in old
            and _footprint(new[name], config.hosts) != _footprint(old[name], self.config.hosts)
        ]
        self.config = config
        gone = [self.hubs.pop(name) for name in removed]
        await asyncio.gather(*(hub.close(reason=REMOVED) for hub in gone))
        for name in changed:
            spec = new[name]
            await self.hubs[name].reconfigure(
                build_source(spec, config.hosts, self.guards, self._state_dir(spec, config)),
                max_lines=spec.backlog,
                max_bytes=spec.max_bytes,
                keep=self._kept(spec, config),
                linger=spec.linger,
                rerun=spec.rerun,
                meta=describe(spec),
                classify=spec.classify,
            )
        for name in added:
            hub = self.hubs[name] = self._build(new[name])
            if hub.keep:
                hub.start()
        # In place (the application holds this mapping), in the config's order: the page's.
        ordered = {name: self.hubs[name] for name in new}
        self.hubs.clear()
        self.hubs.update(ordered)
        return Changes(tuple(added), tuple(removed), tuple(changed))

    async def close(self) -> None:
        await asyncio.gather(*(hub.close() for hub in self.hubs.values()))

    def _build(self, spec: SourceConfig) -> Hub:
        return Hub(
            spec.name,
            build_source(spec, self.config.hosts, self.guards, self._state_dir(spec, self.config)),
            max_lines=spec.backlog,
            max_bytes=spec.max_bytes,
            keep=self._kept(spec, self.config),
            linger=spec.linger,
            hold=self.hold,
            restartable=not spec.stdin,
            rerun=spec.rerun,
            meta=describe(spec),
            classify=spec.classify,
        )

    def _kept(self, spec: SourceConfig, config: Config) -> bool:
        # Standard input is read whether or not anyone watches; a recorded source runs to be
        # recorded, and what an alert watches runs to be watched.
        alerted = spec.name in self.alerted or spec.name in config.alerted
        return spec.keep or spec.stdin or spec.recorded or alerted

    def _state_dir(self, spec: SourceConfig, config: Config) -> Path | None:
        """Where a source keeps what it needs to resume after a restart: only one that runs
        always (what a viewer starts would replay everything since it last ran to its first
        viewer)."""
        return data_dir(config.server) if self._kept(spec, config) else None


def _footprint(spec: SourceConfig, hosts: Mapping[str, HostConfig]) -> object:
    """Everything that makes a source what it is: its own settings and its hosts' settings."""
    return spec, tuple(hosts.get(name) for name in spec.hosts)
