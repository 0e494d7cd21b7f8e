"""The store: append-only segment files of compressed blocks, one source per segment, and their
index. One writer thread appends; any number of readers read. Cut off mid-write, it opens again
with every complete block and says what it dropped; a damaged block is skipped and named."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from perview.history import index
from perview.history.block import HEADER, Block, Damaged, decode, encode_all, read_header
from perview.history.index import Row, Segment
from perview.history.terms import may_hold, summarize
from perview.private import FILE_MODE, private_dir, private_file

log = logging.getLogger(__name__)

INDEX = "index.sqlite"
SUFFIX = ".seg"
# A segment is the unit retention deletes, so it is kept to a sixteenth of what its source may
# hold (by size and by age): retention then overshoots by at most about 6%. Within bounds that
# keep the number of files sane (a 2 GB limit: 128 MB segments are capped at 64 MB, 32 files).
SHARE = 16
SEGMENT_BYTES = (64 * 1024, 64 * 1024 * 1024)
SEGMENT_AGE = (1.0, 3600.0)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history to keep: per source by age (seconds) and size (bytes), and in all."""

    ages: Mapping[str, float | None] = field(default_factory=dict)
    sizes: Mapping[str, int | None] = field(default_factory=dict)
    total: int = 4 * 1000**3

    def segment_bytes(self, source: str) -> int:
        size = min(self.sizes.get(source) or self.total, self.total)
        return max(SEGMENT_BYTES[0], min(SEGMENT_BYTES[1], size // SHARE))

    def segment_age(self, source: str) -> float:
        age = self.ages.get(source)
        if age is None:
            return SEGMENT_AGE[1]
        return max(SEGMENT_AGE[0], min(SEGMENT_AGE[1], age / SHARE))


class Store:
    """Segments and index under `directory` (0700, files 0600). `open` recovers what a crash
    left; `write` and `enforce` belong to one writer thread; `reader` serves any other."""

    def __init__(self, directory: Path, retention: Retention) -> None:
        self.directory = private_dir(directory)
        self.retention = retention
        self.report: list[str] = []  # what opening found and dropped, for the log
        self._compressor = zstandard.ZstdCompressor(level=1)
        self._lock = threading.Lock()  # guards _segments and the totals for readers
        self._db = self._open_index()
        self._segments: dict[int, Segment] = {s.id: s for s in index.segments(self._db)}
        self._open: dict[str, tuple[Segment, int]] = {}  # source -> its current segment and fd
        self._recover()
        repaired = index.repair_end_times(self._db)
        if repaired:
            said = f"blocks of state changes written without an end time: {repaired}, fixed"
            self.report.append(said)
            self._segments = {s.id: s for s in index.segments(self._db)}

    # -- opening -------------------------------------------------------------------------------

    def _open_index(self) -> sqlite3.Connection:
        path = self.directory / INDEX
        private_file(path)
        try:
            db = index.connect(path)
            db.execute("SELECT COUNT(*) FROM blocks").fetchone()
            return db
        except sqlite3.DatabaseError as exc:
            # The segments hold every block's head: the index can be made again from them.
            aside = path.with_name(f"{INDEX}.damaged-{int(time.time())}")
            path.rename(aside)
            self.report.append(f"the index was unreadable ({exc}): set aside as {aside.name}")
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    path.with_name(INDEX + suffix).unlink()
            private_file(path)
            return index.connect(path)

    def _recover(self) -> None:
        files = {
            int(p.stem): p
            for p in self.directory.glob(f"*{SUFFIX}")
            if p.stem.isdigit() and p.is_file()
        }
        for segment in list(self._segments.values()):
            if segment.id not in files:
                self._db.execute("BEGIN")
                index.forget_segment(self._db, segment.id)
                self._db.execute("COMMIT")
                del self._segments[segment.id]
                self.report.append(f"segment {segment.id} of {segment.source} is missing")
        for number, path in sorted(files.items()):
            self._recover_segment(number, path)

    def _recover_segment(self, number: int, path: Path) -> None:
        segment = self._segments.get(number)
        end = index.end_of(self._db, number) if segment else 0
        size = path.stat().st_size
        db = self._db
        if size < end:  # indexed blocks that never reached the disk (a power cut)
            db.execute("BEGIN")
            (lost,) = db.execute(
                "SELECT COUNT(*) FROM blocks WHERE segment = ? AND offset + length > ?",
                (number, size),
            ).fetchone()
            db.execute(
                "DELETE FROM blocks WHERE segment = ? AND offset + length > ?", (number, size)
            )
            db.execute("COMMIT")
            self.report.append(f"segment {number}: {lost} indexed blocks were not on disk")
            end = index.end_of(db, number)
        found: list[tuple[Block, int, int]] = []
        good = end
        if size > end:
            decompressor = zstandard.ZstdDecompressor()
            with path.open("rb") as file:
                file.seek(end)
                tail = file.read()
            pos = 0
            while pos < len(tail):
                try:
                    length = read_header(tail[pos : pos + HEADER.size])
                    record = tail[pos : pos + HEADER.size + length]
                    block = decode(record, decompressor, content=False)
                except Damaged as exc:
                    dropped = len(tail) - pos
                    self.report.append(
                        f"segment {number}: dropped {dropped:,} bytes at its end ({exc}: "
                        "a write cut off)"
                    )
                    break
                found.append((block, end + pos, len(record)))
                pos += len(record)
            good = end + pos
        if segment is None:
            if not found:
                path.unlink()
                if size:
                    self.report.append(f"segment {number}: nothing readable, removed")
                return
            db.execute(
                "INSERT INTO segments (id, source) VALUES (?, ?)", (number, found[0][0].source)
            )
            segment = self._segments[number] = Segment(number, found[0][0].source, 0, None, None)
        if good < size:
            with path.open("r+b") as file:
                file.truncate(good)
        if found:
            self.report.append(
                f"segment {number}: {len(found)} complete blocks were not indexed yet: indexed now"
            )
        segment.bytes = good
        for block, _, _ in found:
            segment.t0 = block.t0 if segment.t0 is None else min(segment.t0, block.t0)
            segment.t1 = block.t1 if segment.t1 is None else max(segment.t1, block.t1)
        db.execute("BEGIN")
        index.add_blocks(
            db, segment, [(b, o, n) for b, o, n in found if b.source == segment.source]
        )
        db.execute("COMMIT")

    # -- writing (the writer thread) -------------------------------------------------------------

    def next_line(self, source: str) -> int:
        with self._lock:
            return index.next_line(self._db, source)

    def write(self, blocks: Sequence[Block], summaries: bool = True) -> None:
        """Append `blocks` and index them, durably, with term summaries unless told not to
        (then every search scans them). On any OSError (a full disk) nothing of them stays:
        the segment is cut back to where it was, and the error is raised."""
        by_source: dict[str, list[Block]] = {}
        for block in blocks:
            by_source.setdefault(block.source, []).append(block)
        for source, group in by_source.items():
            segment, fd = self._segment_for(source, group[0].t0)
            records = encode_all(group, self._compressor)
            terms = [summarize(b.data) if summaries and b.kind == "lines" else None for b in group]
            start = segment.bytes
            placed = []
            offset = start
            for block, record in zip(group, records, strict=True):
                placed.append((block, offset, len(record)))
                offset += len(record)
            try:
                _write_all(fd, b"".join(records))
                os.fdatasync(fd)  # the index must never name bytes a power cut could lose
                with self._lock:
                    self._db.execute("BEGIN")
                    try:
                        segment.bytes = offset
                        segment.t0 = min(segment.t0 or group[0].t0, *(b.t0 for b in group))
                        segment.t1 = max(segment.t1 or 0.0, *(b.t1 for b in group))
                        index.add_blocks(self._db, segment, placed, terms)
                        self._db.execute("COMMIT")
                    except sqlite3.Error:
                        self._db.execute("ROLLBACK")
                        segment.bytes = start
                        raise
            except (OSError, sqlite3.Error) as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                if isinstance(exc, OSError):
                    raise
                raise OSError(str(exc)) from exc

    def _segment_for(self, source: str, at: float) -> tuple[Segment, int]:
        current = self._open.get(source)
        if current is not None:
            segment, fd = current
            full = segment.bytes >= self.retention.segment_bytes(source)
            old = segment.t0 is not None and at - segment.t0 >= self.retention.segment_age(source)
            if not (full or old):
                return current
            os.close(fd)
            del self._open[source]
        with self._lock:
            segment = index.add_segment(self._db, source)
            self._segments[segment.id] = segment
        fd = os.open(self._path(segment.id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        self._open[source] = (segment, fd)
        return segment, fd

    def enforce(self, now: float | None = None) -> list[str]:
        """Delete the oldest segments beyond each source's age and size and the total; returns
        what went, for the log."""
        now = time.time() if now is None else now
        gone: list[str] = []
        with self._lock:
            segments = sorted(self._segments.values(), key=lambda s: (s.t1 or 0.0, s.id))
        by_source: dict[str, list[Segment]] = {}
        for segment in segments:
            by_source.setdefault(segment.source, []).append(segment)
        doomed: set[int] = set()
        for source, owned in by_source.items():
            age = self.retention.ages.get(source)
            size = self.retention.sizes.get(source)
            held = sum(s.bytes for s in owned)
            for segment in owned:
                expired = age is not None and segment.t1 is not None and segment.t1 < now - age
                if expired or (size is not None and held > size):
                    doomed.add(segment.id)
                    held -= segment.bytes
        total = sum(s.bytes for s in segments if s.id not in doomed)
        for segment in segments:
            if total <= self.retention.total:
                break
            if segment.id not in doomed:
                doomed.add(segment.id)
                total -= segment.bytes
        for segment in segments:
            if segment.id in doomed:
                self._delete(segment)
                gone.append(f"{segment.source}: segment {segment.id} ({segment.bytes:,} bytes)")
        return gone

    def _delete(self, segment: Segment) -> None:
        current = self._open.get(segment.source)
        if current is not None and current[0].id == segment.id:
            os.close(current[1])
            del self._open[segment.source]
        with self._lock:
            self._db.execute("BEGIN")
            index.forget_segment(self._db, segment.id)
            self._db.execute("COMMIT")
            del self._segments[segment.id]
        with contextlib.suppress(FileNotFoundError):
            self._path(segment.id).unlink()

    def close(self) -> None:
        for _, fd in self._open.values():
            os.close(fd)
        self._open.clear()
        self._db.close()

    # -- reading ---------------------------------------------------------------------------------

    def reader(self) -> Reader:
        return Reader(self)

    def cut_off(self, source: str, closed: str) -> float | None:
        """When the history of `source` ends, unless its last block ends with the event `closed`
        (None too if it has none)."""
        with self.reader() as reader:
            return reader.cut_off(source, closed)

    def held(self) -> dict[str, int]:
        """Bytes held per source."""
        with self._lock:
            totals: dict[str, int] = {}
            for segment in self._segments.values():
                totals[segment.source] = totals.get(segment.source, 0) + segment.bytes
            return totals

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment}{SUFFIX}"


class Reader:
    """Reads blocks for one search or range, on whatever thread it runs: its own connection
    and its own open segment files. Close it (or use it as a context manager)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._db = index.connect(store.directory / INDEX)
        self._decompressor = zstandard.ZstdDecompressor()
        self._files: dict[int, int] = {}

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def sources(self) -> list[str]:
        return index.recorded(self._db)

    def rows(
        self, sources: Iterable[str], since: float, until: float, newest_first: bool
    ) -> list[Row]:
        """The blocks of `sources` in [since, until] (within each source's age), in time order."""
        now = time.time()
        ages = self.store.retention.ages
        bounded = [
            (s, max(since, now - age) if (age := ages.get(s)) is not None else since)
            for s in sources
        ]
        return index.rows(self._db, bounded, until, newest_first)

    def ruled_out(self, rows: Sequence[Row], wanted: Iterable[int]) -> set[int]:
        """The ids of those of `rows` whose term summary rules out a needle with the trigram
        hashes `wanted` (terms.py): they cannot hold it. A block gone meanwhile is not."""
        found = index.summaries(self._db, [r.id for r in rows])
        return {i for i, summary in found.items() if not may_hold(summary, wanted)}

    def cut_off(self, source: str, closed: str) -> float | None:
        """See Store.cut_off. A last block that cannot be read cannot tell it was closed."""
        row = index.last_row(self._db, source)
        if row is None:
            return None
        try:
            events = self.load(row, content=False).events
        except Damaged:
            events = ()
        return None if events and events[-1][2] == closed else row.t1

    def load(self, row: Row, content: bool = True) -> Block:
        """The block `row` names, decompressed; Damaged if it cannot be read (the segment was
        deleted by retention meanwhile, or its bytes are damaged)."""
        fd = self._files.get(row.segment)
        if fd is None:
            try:
                fd = os.open(self.store._path(row.segment), os.O_RDONLY)
            except FileNotFoundError:
                raise Damaged("deleted by retention meanwhile") from None
            self._files[row.segment] = fd
        record = os.pread(fd, row.length, row.offset)
        block = decode(record, self._decompressor, content)
        if (block.source, block.first, block.count) != (row.source, row.first, row.count):
            raise Damaged("holds another block than the index says")
        return block

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        self._db.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
