"""The ring: a bounded history of one source's output, stored as chunks of many lines each."""

from __future__ import annotations

import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

# The one vocabulary of a source's life, shared by the hub, the API, the streams and the page.
# A run is `running` or `waiting` (up, but its file or host is not there yet), and ends in one
# of three ways: `stopped` (Perview ended it: no viewers, an operator, shutdown), `exited` (the
# command ended by itself) or `failed` (it could not start). `idle` and `starting` are what
# the API says before the first run and between a start and the source's first word.
StateName = Literal["idle", "starting", "running", "waiting", "stopped", "exited", "failed"]
ENDINGS: frozenset[StateName] = frozenset({"stopped", "exited", "failed"})


@dataclass(frozen=True, slots=True)
class State:
    """A change in a source's life, kept in the ring in order with its lines."""

    state: StateName
    status: int | None = None  # exit status; negative: killed by that signal
    reason: str | None = None  # what it waits for, why it failed or was stopped ("no viewers")
    pid: int | None = None
    run: int = 0  # which run of the source (1, 2, ...) this is about
    at: float = field(default_factory=time.time)
    by: str | None = None  # who stopped it: a user's name, or "an operator" for the token

    @property
    def summary(self) -> str:
        """The state as a person reads it, the same in the page, the API and the text stream."""
        match self.state:
            case "running":
                return "started" + (f" (pid {self.pid})" if self.pid else "")
            case "waiting":
                return f"waiting: {self.reason}"
            case "stopped":
                if self.by:
                    return f"stopped by {self.by}"
                return f"stopped ({self.reason})" if self.reason else "stopped"
            case "exited":
                return _ending(self.status) + (f": {self.reason}" if self.reason else "")
            case "failed":
                return f"failed to start: {self.reason}"
        return self.state


def _ending(status: int | None) -> str:
    if status is None:
        return "exited"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited with status {status}"


@dataclass(slots=True, eq=False)
class Chunk:
    """Consecutive lines (`data`, each ending in a newline), a single state change, or a notice
    (`note`: something the source has to say about its output, such as what it did not read)."""

    seq: int  # position in the ring, one per chunk
    first: int  # id of the first line (for a state: of the next line to come)
    count: int  # lines in `data`
    data: bytes
    offset: int  # bytes written to the ring before this chunk
    state: State | None = None
    part: str | None = None  # the part of the source the lines come from (a host, a file)
    cache: dict[str, bytes] | None = None  # encodings shared by all viewers, made on demand
    at: float = 0.0  # when the lines arrived (the server's clock, epoch seconds)
    note: str | None = None
    # One byte per line, `level | HEAD` (perview.classify), given once as the lines enter the
    # ring and shared by every viewer; None where nothing was classified (format "raw", and
    # states and notices, which have no lines).
    marks: bytes | None = None


class Ring:
    """Chunks in order, trimmed from the oldest end to `max_lines` and `max_bytes`.

    Line ids and chunk seqs only ever grow. Trimming keeps at least `max_lines` lines, never
    drops a chunk at or after `protect` (the fastest viewer's position), and so holds at most
    the bounds plus the chunk being added.
    """

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._chunks: deque[Chunk] = deque()
        self.next_seq = 0
        self.next_id = 1
        self.next_offset = 0
        self.lines = 0  # lines held
        self.bytes = 0  # bytes held

    @property
    def oldest_seq(self) -> int:
        return self.next_seq - len(self._chunks)

    @property
    def oldest_id(self) -> int:
        return self._chunks[0].first if self._chunks else self.next_id

    def append(
        self,
        data: bytes,
        count: int,
        state: State | None = None,
        part: str | None = None,
        note: str | None = None,
        marks: bytes | None = None,
    ) -> Chunk:
        chunk = Chunk(
            self.next_seq,
            self.next_id,
            count,
            data,
            self.next_offset,
            state,
            part,
            at=time.time(),
            note=note,
            marks=marks,
        )
        self._chunks.append(chunk)
        self.next_seq += 1
        self.next_id += count
        self.next_offset += len(data)
        self.lines += count
        self.bytes += len(data)
        return chunk

    def get(self, seq: int) -> Chunk | None:
        # Indexing a deque is cheap near either end, which is where viewers read.
        index = seq - self.oldest_seq
        if 0 <= index < len(self._chunks):
            return self._chunks[index]
        return None

    def trim(self, protect: int | None) -> None:
        chunks = self._chunks
        while chunks:
            oldest = chunks[0]
            over_lines = self.lines - oldest.count >= self.max_lines
            if not (over_lines or self.bytes > self.max_bytes):
                break
            if protect is not None and oldest.seq >= protect:
                break
            chunks.popleft()
            self.lines -= oldest.count
            self.bytes -= len(oldest.data)

    def ahead(self, seq: int) -> tuple[int, int]:
        """Lines and bytes held from chunk `seq` to the newest."""
        chunk = self.get(seq)
        if chunk is None:
            return (0, 0) if seq >= self.next_seq else (self.lines, self.bytes)
        return self.next_id - chunk.first, self.next_offset - chunk.offset

    def find(self, line_id: int) -> tuple[int, int]:
        """The seq of the chunk holding `line_id` and how many lines of it come before it.

        An id older than the ring gives the oldest chunk; one not yet written gives `next_seq`.
        """
        if line_id >= self.next_id:
            return self.next_seq, 0
        lo, hi = 0, len(self._chunks)
        if lo == hi or line_id <= self._chunks[lo].first:
            return self.oldest_seq, 0
        while hi - lo > 1:  # the last chunk whose first line is at or before line_id
            mid = (lo + hi) // 2
            if self._chunks[mid].first <= line_id:
                lo = mid
            else:
                hi = mid
        chunk = self._chunks[lo]
        return chunk.seq, line_id - chunk.first


def skip_lines(data: bytes, n: int) -> bytes:
    """`data` without its first `n` lines."""
    pos = 0
    for _ in range(n):
        pos = data.index(b"\n", pos) + 1
    return data[pos:]
