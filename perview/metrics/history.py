"""Metric history in SQLite (the standard library's sqlite3), so charts survive a restart.

Raw samples are kept for a day; one-minute averages for the whole retention (7 days by default),
so a week of 20 series is about 200,000 rows, not 6 million. All database work happens on one
thread of its own, in batches: the event loop (and so streaming) never waits for the disk.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from perview.private import private_dir, private_file

log = logging.getLogger(__name__)

T = TypeVar("T")

RAW_FOR = 24 * 3600.0  # seconds raw samples are kept
ROLLUP = 60.0  # seconds per averaged point kept for the whole retention

# Queries read (series, t, v) in order: the index covers all three and the rollup is stored in
# its key's order, so a query never looks rows up one by one (measured by
# bench/metrics_overhead.py: 7 days of 20 series in 58 ms instead of 133 ms).
SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (series TEXT NOT NULL, t REAL NOT NULL, v REAL NOT NULL);
CREATE INDEX IF NOT EXISTS samples_by_series ON samples (series, t, v);
CREATE TABLE IF NOT EXISTS rollup (
    series TEXT NOT NULL, t REAL NOT NULL, v REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
"""


class History:
    """Opens (or creates) `path`; `close` flushes and closes it."""

    def __init__(self, path: Path, retention: float) -> None:
        self.path = path
        self.retention = retention
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perview-history")
        self._db: sqlite3.Connection | None = None
        self._failing = False  # the last write failed (said once, not every 5 s)

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        private_dir(self.path.parent)
        # SQLite creates its files with the umask's modes, and its -wal and -shm files with the
        # database's: so the database is made 0600 first.
        private_file(self.path)
        for companion in ("-wal", "-shm"):
            companion_path = self.path.with_name(self.path.name + companion)
            if companion_path.exists():
                private_file(companion_path)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def write(self, samples: list[tuple[str, float, float]]) -> None:
        """Keep `samples`. A database that cannot take them (a full disk, say) costs this batch
        and a warning, not the history: later batches are tried as usual."""
        if not samples:
            return
        try:
            await self._run(self._write, samples)
        except sqlite3.Error as exc:
            if not self._failing:
                log.warning(
                    "metric history: %d samples not kept (%s); will retry", len(samples), exc
                )
            self._failing = True
        else:
            if self._failing:
                log.info("metric history: writing again")
            self._failing = False

    def _write(self, samples: list[tuple[str, float, float]]) -> None:
        assert self._db is not None
        with self._db:
            self._db.executemany("INSERT INTO samples VALUES (?, ?, ?)", samples)
            self._db.executemany(
                "INSERT INTO rollup VALUES (?, ?, ?, 1) ON CONFLICT (series, t) DO UPDATE SET "
                "v = (rollup.v * rollup.n + excluded.v) / (rollup.n + 1), n = rollup.n + 1",
                [(s, t - t % ROLLUP, v) for s, t, v in samples],
            )

    async def expire(self) -> None:
        try:
            await self._run(self._expire, time.time())
        except sqlite3.Error as exc:
            log.warning("metric history: old samples not removed (%s); will retry", exc)

    def _expire(self, now: float) -> None:
        assert self._db is not None
        with self._db:
            self._db.execute("DELETE FROM samples WHERE t < ?", (now - RAW_FOR,))
            self._db.execute("DELETE FROM rollup WHERE t < ?", (now - self.retention,))

    async def oldest(self) -> dict[str, float]:
        """Each series' oldest sample held: what the page's charts can show at most."""
        return await self._run(self._oldest)

    def _oldest(self) -> dict[str, float]:
        assert self._db is not None
        # Raw samples are exact; the rollup (kept longer) is rounded down to its minute, so it
        # only counts where it reaches further back than that rounding.
        found = dict(self._db.execute("SELECT series, min(t) FROM samples GROUP BY series"))
        for series, t in self._db.execute("SELECT series, min(t) FROM rollup GROUP BY series"):
            if series not in found or t < found[series] - ROLLUP:
                found[series] = t
        return {str(k): float(v) for k, v in found.items()}

    async def query(self, series: str, since: float, step: float) -> list[tuple[float, float]]:
        """Averages over `step`-second buckets from `since` on (raw samples within the last day
        and for fine steps; the one-minute rollup otherwise)."""
        return await self._run(self._query, series, since, step)

    def _query(self, series: str, since: float, step: float) -> list[tuple[float, float]]:
        assert self._db is not None
        table = "samples" if step < ROLLUP and since >= time.time() - RAW_FOR else "rollup"
        step = max(step, 0.001)
        cursor = self._db.execute(
            f"SELECT CAST(t / ? AS INTEGER) * ? AS b, avg(v) FROM {table} "  # one of two names
            "WHERE series = ? AND t >= ? GROUP BY b ORDER BY b",
            (step, step, series, since),
        )
        return [(float(b), float(v)) for b, v in cursor]

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
        self._thread.shutdown(wait=True)
