"""The index of recorded blocks (SQLite): which source, part and kind each block is, its time
range and line numbers, and where it lies (segment, offset, length). Search narrows by it, then
reads only the blocks it must."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from perview.history.block import Block

PAGE_SIZE = 1024
SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    t0 REAL,
    t1 REAL
);
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    part TEXT,
    kind TEXT NOT NULL,
    t0 REAL NOT NULL,
    t1 REAL NOT NULL,
    first INTEGER NOT NULL,
    count INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    terms BLOB
);
CREATE INDEX IF NOT EXISTS blocks_by_time ON blocks (source, t1);
CREATE INDEX IF NOT EXISTS blocks_by_place ON blocks (segment, offset);
"""


@dataclass(frozen=True, slots=True)
class Row:
    """Where one block lies and what the index knows of it."""

    id: int
    source: str
    part: str | None
    kind: str
    t0: float
    t1: float
    first: int
    count: int
    segment: int
    offset: int
    length: int


@dataclass(slots=True)
class Segment:
    id: int
    source: str
    bytes: int
    t0: float | None
    t1: float | None


_ROW = "id, source, part, kind, t0, t1, first, count, segment, offset, length"


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the index at `path`, made if missing. WAL: readers (searches, on their
    own threads) never wait for the writer, nor it for them."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # 1 KiB pages (for a new index; an existing one keeps its own): a store of a few blocks is
    # 5 KiB of index, not 20 KiB of mostly empty 4 KiB pages.
    db.execute(f"PRAGMA page_size={PAGE_SIZE}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    columns = {name for _, name, *_ in db.execute("PRAGMA table_info(blocks)")}
    if "terms" not in columns:  # an index from before summaries: its blocks are scanned
        db.execute("ALTER TABLE blocks ADD COLUMN terms BLOB")
    return db


def segments(db: sqlite3.Connection) -> list[Segment]:
    return [Segment(*r) for r in db.execute("SELECT id, source, bytes, t0, t1 FROM segments")]


def add_segment(db: sqlite3.Connection, source: str) -> Segment:
    cursor = db.execute("INSERT INTO segments (source) VALUES (?)", (source,))
    assert cursor.lastrowid is not None
    return Segment(cursor.lastrowid, source, 0, None, None)


def forget_segment(db: sqlite3.Connection, segment: int) -> None:
    db.execute("DELETE FROM blocks WHERE segment = ?", (segment,))
    db.execute("DELETE FROM segments WHERE id = ?", (segment,))


def add_blocks(
    db: sqlite3.Connection,
    segment: Segment,
    placed: Sequence[tuple[Block, int, int]],
    summaries: Sequence[bytes | None] = (),
) -> None:
    """Index `placed` (block, offset, length) in `segment`, each with its term summary where
    given, and keep the segment's totals; in the caller's transaction."""
    terms = list(summaries) + [None] * (len(placed) - len(summaries))
    db.executemany(
        "INSERT INTO blocks"
        " (source, part, kind, t0, t1, first, count, segment, offset, length, terms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (b.source, b.part, b.kind, b.t0, b.t1, b.first, b.count, segment.id, o, n, t)
            for (b, o, n), t in zip(placed, terms, strict=True)
        ],
    )
    db.execute(
        "UPDATE segments SET bytes = ?, t0 = ?, t1 = ? WHERE id = ?",
        (segment.bytes, segment.t0, segment.t1, segment.id),
    )


def repair_end_times(db: sqlite3.Connection) -> int:
    """Give each block indexed with an end before its start (a block of state changes alone was
    written with an end of 0 until 2026-12-04, which hid it from every range and let retention
    take a segment of nothing else) its start as its end, and its segment the end of its last
    block. Returns how many blocks it repaired."""
    (count,) = db.execute("SELECT COUNT(*) FROM blocks WHERE t1 < t0").fetchone()
    if count:
        db.execute("BEGIN")
        db.execute(
            "UPDATE segments SET t1 = (SELECT MAX(MAX(t0, t1)) FROM blocks WHERE segment = id)"
            " WHERE id IN (SELECT segment FROM blocks WHERE t1 < t0)"
        )
        db.execute("UPDATE blocks SET t1 = t0 WHERE t1 < t0")
        db.execute("COMMIT")
    return int(count)


def end_of(db: sqlite3.Connection, segment: int) -> int:
    """Where the last indexed block of `segment` ends (0 if none)."""
    (end,) = db.execute(
        "SELECT COALESCE(MAX(offset + length), 0) FROM blocks WHERE segment = ?", (segment,)
    ).fetchone()
    return int(end)


def next_line(db: sqlite3.Connection, source: str) -> int:
    """The number the next recorded line of `source` gets: one past the last ever indexed."""
    (end,) = db.execute(
        "SELECT COALESCE(MAX(first + count), 1) FROM blocks WHERE source = ?", (source,)
    ).fetchone()
    return int(end)


def rows(
    db: sqlite3.Connection,
    sources: Iterable[tuple[str, float]],
    until: float,
    newest_first: bool,
) -> list[Row]:
    """The blocks of each (source, since) that overlap [since, until], in time order."""
    found: list[Row] = []
    for source, since in sources:
        found += [
            Row(*r)
            for r in db.execute(
                f"SELECT {_ROW} FROM blocks WHERE source = ? AND t1 >= ? AND t0 <= ?",
                (source, since, until),
            )
        ]
    found.sort(key=lambda r: (r.t0, r.id), reverse=newest_first)
    return found


def last_row(db: sqlite3.Connection, source: str) -> Row | None:
    """The block of `source` written last (the highest id), if any."""
    found = db.execute(
        f"SELECT {_ROW} FROM blocks WHERE source = ? ORDER BY id DESC LIMIT 1", (source,)
    ).fetchone()
    return None if found is None else Row(*found)


def summaries(db: sqlite3.Connection, ids: Sequence[int]) -> dict[int, bytes | None]:
    """The term summaries of the blocks `ids` (None where a block has none)."""
    marks = ",".join("?" * len(ids))
    query = f"SELECT id, terms FROM blocks WHERE id IN ({marks})"
    return {int(i): t for i, t in db.execute(query, tuple(ids))}


def recorded(db: sqlite3.Connection) -> list[str]:
    return [s for (s,) in db.execute("SELECT DISTINCT source FROM segments ORDER BY source")]
