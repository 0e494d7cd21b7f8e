"""History as the server runs it: the store, its writer thread, and a recorder per recorded
source, kept in step with the served sources across reloads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from perview.config import Config, SourceConfig
from perview.history.recorder import CLOSED, Recorder, Writer
from perview.history.store import Retention, Store
from perview.hub import Hub

log = logging.getLogger(__name__)

DIRECTORY = "history"  # under the data directory


def retention(config: Config) -> Retention:
    recorded = [s for s in config.sources if s.recorded]
    return Retention(
        ages={s.name: s.record for s in recorded},
        sizes={s.name: s.record_size for s in recorded},
        total=config.server.record_limit,
    )


class History:
    """Owns the store, the writer and the recorders; `close` seals and writes what they hold."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = Writer(store)
        self.recorders: dict[str, Recorder] = {}

    @classmethod
    async def open(cls, data_dir: Path, config: Config) -> History:
        """Open (and recover) the store off the loop; what recovery dropped goes to the log.
        Raises OSError if it cannot be made."""
        store = await asyncio.to_thread(Store, data_dir / DIRECTORY, retention(config))
        for line in store.report:
            log.warning("history: %s", line)
        return cls(store)

    def sync(
        self, hubs: Mapping[str, Hub], sources: Sequence[SourceConfig], config: Config
    ) -> None:
        """Record exactly the recorded sources among `hubs` (call after each reload). A source
        no longer recorded keeps what it recorded, within the total limit."""
        self.store.retention = retention(config)
        wanted = {s.name for s in sources if s.recorded and s.name in hubs}
        for name in list(self.recorders):
            recorder = self.recorders[name]
            if name not in wanted or hubs.get(name) is not recorder.hub:
                del self.recorders[name]
                recorder.detach()
        for name in wanted - set(self.recorders):
            self.recorders[name] = Recorder(
                hubs[name], self.writer, self.store.next_line(name), cut_off=self.cut_off(name)
            )

    def cut_off(self, source: str) -> float | None:
        """When the history of `source` ends, if its last recorder did not close it (CLOSED)."""
        return self.store.cut_off(source, CLOSED)

    async def close(self) -> None:
        for recorder in self.recorders.values():
            await recorder.close()
        self.recorders.clear()
        await self.writer.close()
