"""One recorded block on disk: a fixed header (magic, version, length, CRC-32) and a body.

    header  b"PVb" | version (1 byte) | body length (u32 LE) | CRC-32 of the body (u32 LE)
    body    head length (u32 LE) | head (JSON) | sections, each zstd-compressed, in head order

The head says what the block is (source, part, kind, line numbers, time range, in-band events)
and lists its sections by name and length, so a later version can add one (the classifier's
`marks`, say) without breaking older segments; a reader skips names it does not know.
Version 2 moved the arrival-time runs from the head (JSON) into a `times` section (pairs of
little-endian 64-bit integers: lines, microseconds after t0): a slow source has a run per line,
and a 2 KB block of 20 reads held 440 bytes of them. The length and checksum let a reader tell
a complete block from one cut off by a crash, and a damaged one from a sound one, without
trusting anything else in the file.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import zstandard

MAGIC = b"PVb"
VERSION = 2
TIMES = struct.Struct("<Qq")
HEADER = struct.Struct("<3sBII")
HEAD_LENGTH = struct.Struct("<I")
MAX_BODY = 64 * 1024 * 1024  # far above any block we write: a larger length is damage
# zstd level 1, measured on the corpus's lines with varying fields in 256 KiB blocks: ratio
# 0.12 at 930 MB/s (level 3: 0.14 at 570 MB/s; zlib level 1: 0.19 at 220 MB/s, and it
# decompresses at 450 MB/s against zstd's 1,180), so search scans and ingest both gain.
LEVEL = 1

Kind = Literal["lines", "gap"]


class Damaged(Exception):
    """A block that cannot be read: bad magic, length, checksum or content; says which."""


@dataclass(frozen=True, slots=True)
class Block:
    """Lines of one part of one source (`kind` "lines"), or lines that were not recorded
    ("gap": `count` lines between `t0` and `t1`, no data)."""

    source: str
    part: str | None
    kind: Kind
    first: int  # the store's number of the first line (per source, never reused)
    count: int
    t0: float  # arrival of the first line (epoch seconds)
    t1: float  # arrival of the last
    data: bytes = b""
    times: tuple[tuple[int, float], ...] = ()  # runs of (lines, arrival time), in order
    events: tuple[tuple[int, float, str], ...] = ()  # (lines before it, time, what happened)
    marks: bytes | None = None  # one byte per line (level | entry head), where classified
    sections: tuple[str, ...] = field(default=(), compare=False)  # as read: what it held


def encode(block: Block, compressor: zstandard.ZstdCompressor) -> bytes:
    """The block as bytes to append to a segment."""
    return encode_all([block], compressor)[0]


def encode_all(blocks: Sequence[Block], compressor: zstandard.ZstdCompressor) -> list[bytes]:
    """The blocks as bytes to append to a segment, every section of every block compressed in
    one call (the same frames as one call each): the writer thread releases the GIL once for a
    batch rather than three times a block, and each time it takes it back it can hold up the
    event loop."""
    raw: list[list[tuple[str, bytes]]] = []
    for block in blocks:
        sections = [("data", block.data)] if block.kind == "lines" else []
        if block.marks is not None:
            sections.append(("marks", block.marks))
        if block.times:
            sections.append(("times", _pack_times(block)))
        raw.append(sections)
    flat: list[bytes | bytearray | memoryview] = [body for sections in raw for _, body in sections]
    # zstd's batch call refuses a batch whose every section is empty (a block holding a state
    # change alone): such a batch is compressed section by section.
    if any(flat):
        done = iter(compressor.multi_compress_to_buffer(flat, threads=0))
        frames = [next(done).tobytes() for _ in flat]
    else:
        frames = [compressor.compress(body) for body in flat]
    framed = iter(frames)
    return [
        _record(block, [(name, next(framed)) for name, _ in sections])
        for block, sections in zip(blocks, raw, strict=True)
    ]


def _record(block: Block, sections: list[tuple[str, bytes]]) -> bytes:
    head = {
        "source": block.source,
        "part": block.part,
        "kind": block.kind,
        "first": block.first,
        "count": block.count,
        "t0": block.t0,
        "t1": block.t1,
        "events": block.events,
        "sections": [[name, len(body)] for name, body in sections],
    }
    head_bytes = json.dumps(head, separators=(",", ":")).encode()
    body = b"".join(
        [HEAD_LENGTH.pack(len(head_bytes)), head_bytes, *(body for _, body in sections)]
    )
    return HEADER.pack(MAGIC, VERSION, len(body), zlib.crc32(body)) + body


def read_header(header: bytes) -> int:
    """The body length a header announces; Damaged if it is not one of ours."""
    if len(header) < HEADER.size:
        raise Damaged("cut off in its header")
    magic, version, length, _ = HEADER.unpack(header)
    if magic != MAGIC:
        raise Damaged("no block starts here")
    if version > VERSION:
        raise Damaged(f"written by a newer Perview (block version {version})")
    if length > MAX_BODY:
        raise Damaged(f"announces {length:,} bytes")
    return int(length)


def decode(record: bytes, decompressor: zstandard.ZstdDecompressor, content: bool = True) -> Block:
    """The block in `record` (header and body); without `content`, its head alone.
    Raises Damaged for anything but a whole, sound block."""
    length = read_header(record[: HEADER.size])
    body = record[HEADER.size :]
    if len(body) < length:
        raise Damaged(f"cut off: {len(body):,} of {length:,} bytes")
    body = body[:length]
    if zlib.crc32(body) != HEADER.unpack(record[: HEADER.size])[3]:
        raise Damaged("checksum mismatch")
    try:
        (head_length,) = HEAD_LENGTH.unpack_from(body)
        head = json.loads(body[HEAD_LENGTH.size : HEAD_LENGTH.size + head_length])
        pos = HEAD_LENGTH.size + head_length
        found: dict[str, bytes] = {}
        for name, size in head["sections"]:
            if content and name in ("data", "marks", "times"):
                found[name] = decompressor.decompress(body[pos : pos + size])
            pos += size
        times = tuple((int(n), float(t)) for n, t in head.get("times", ()))  # version 1
        if "times" in found:
            times = _unpack_times(found["times"], head["t0"])
        return Block(
            source=head["source"],
            part=head["part"],
            kind=head["kind"],
            first=head["first"],
            count=head["count"],
            t0=head["t0"],
            t1=head["t1"],
            data=found.get("data", b""),
            times=times,
            events=tuple((int(n), float(t), str(s)) for n, t, s in head["events"]),
            marks=found.get("marks"),
            sections=tuple(name for name, _ in head["sections"]),
        )
    except (ValueError, KeyError, TypeError, struct.error, zstandard.ZstdError) as exc:
        raise Damaged(f"unreadable content ({exc})") from None


def _pack_times(block: Block) -> bytes:
    return b"".join(TIMES.pack(n, round((t - block.t0) * 1e6)) for n, t in block.times)


def _unpack_times(data: bytes, t0: float) -> tuple[tuple[int, float], ...]:
    return tuple((int(n), t0 + us / 1e6) for n, us in TIMES.iter_unpack(data))
