"""The block format: what a block holds comes back as it was, from this version's blocks and
from version 1's."""

from __future__ import annotations

import json
import zlib

import zstandard

from perview.history.block import HEAD_LENGTH, HEADER, MAGIC, Block, decode, encode


def slow(lines: int = 20) -> Block:
    """A slow source's block: a read, and so an arrival time, per line."""
    times = tuple((1, 1_764_748_800.0 + i * 0.1234567) for i in range(lines))
    data = b"".join(b"2026-12-03 10:00:%02d INFO request done\n" % i for i in range(lines))
    return Block("app", "web1", "lines", 7, lines, times[0][1], times[-1][1], data, times)


def version_1(block: Block) -> bytes:
    """`block` as version 1 wrote it: its arrival times in its head."""
    section = zstandard.ZstdCompressor(level=1).compress(block.data)
    head = {
        "source": block.source,
        "part": block.part,
        "kind": block.kind,
        "first": block.first,
        "count": block.count,
        "t0": block.t0,
        "t1": block.t1,
        "times": block.times,
        "events": block.events,
        "sections": [["data", len(section)]],
    }
    head_bytes = json.dumps(head, separators=(",", ":")).encode()
    body = HEAD_LENGTH.pack(len(head_bytes)) + head_bytes + section
    return HEADER.pack(MAGIC, 1, len(body), zlib.crc32(body)) + body


def test_a_block_of_many_reads_comes_back_with_its_arrival_times() -> None:
    block = slow()
    back = decode(encode(block, zstandard.ZstdCompressor()), zstandard.ZstdDecompressor())
    assert (back.data, back.first, back.part) == (block.data, 7, "web1")
    assert [n for n, _ in back.times] == [1] * 20
    assert all(abs(a - b) < 1e-6 for (_, a), (_, b) in zip(back.times, block.times, strict=True))


def test_a_version_1_block_with_its_times_in_its_head_still_reads() -> None:
    block = slow()
    back = decode(version_1(block), zstandard.ZstdDecompressor())
    assert back.data == block.data
    assert back.times == block.times


def test_a_slow_sources_block_is_far_smaller_than_in_version_1() -> None:
    block = slow()
    now = len(encode(block, zstandard.ZstdCompressor(level=1)))
    assert now < len(version_1(block)) * 0.7
