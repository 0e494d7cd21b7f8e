"""Each block's term summary: which byte trigrams its text holds, folded into a small bitset,
so that a substring search skips every block that cannot hold the substring without reading it.

A line holding the needle holds each of the needle's trigrams, so a block whose summary lacks
one of them cannot match: skipping it is exact. A block whose summary has them all may still
not match (two trigrams share a bit, or sit in different lines): that costs a scan, never a
result. A block without a summary (written before summaries, or re-indexed after a crash) is
always scanned.

The summary is a bitset of 2**k bits, MSB first: bit h of trigram code c (bytes b0 b1 b2 read
as b0 | b1 << 8 | b2 << 16) is the top k bits of (c * HASH) mod 2**32. It is sized to the
block's distinct trigrams (DENSITY bits each, up to 2**LARGEST bits) so that about a fifth
of its bits are set (a quarter to a half at the largest).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

HASH = 0x9E3779B1  # Knuth's multiplicative hash (2**32 / golden ratio): spreads similar codes
# Trigrams are first counted into 2**WIDE bins (a 256 KiB table) to learn how many distinct
# ones a block holds, then the table is folded down to the summary's size.
WIDE = 18
# About 4 bits a distinct trigram sets a fifth of them (where the summary is not at its
# largest): a block lacking a 3-byte needle is skipped 4 times in 5, one lacking a 16-byte
# needle (14 trigrams) all but never scanned.
DENSITY = 4
# No summary for a block under 16 KiB (a slow source's, sealed after 2 s): scanning it costs
# about 20 us, and a summary worth having would be a large share of its size. Above that, at
# most 1/32 of the text.
LEAST = 16 * 1024
SHARE = 32
# 128 bytes to 4 KiB a summary. A 256 KiB block of the corpus replayed with fresh times and ids
# holds over 8,000 distinct trigrams: at most 4 KiB (1.6% of its text, against zstd's 17%)
# sets about a quarter of the bits, where 8 KiB (3.1%) set 14%.
SMALLEST, LARGEST = 10, 15


def _c_summaries() -> Callable[[bytes, int, int, int, int, int], bytes] | None:
    """The summary in C (perview/history/_terms.c), which releases the GIL while it works: with
    numpy a block holds it about 1.6 ms, and the event loop relaying a flood waits. None where
    it was not built (no compiler where Perview was installed), or with PERVIEW_NO_C=1."""
    if os.environ.get("PERVIEW_NO_C") == "1":
        return None
    try:
        from perview.history import _terms
    except ImportError:
        return None
    return _terms.summarize


C = _c_summaries()  # C(data, HASH, WIDE, DENSITY, SMALLEST, bits at most): summarize's bytes


def summarize(data: bytes, least: int = LEAST) -> bytes | None:
    """The summary of `data`, or None for text under `least` bytes."""
    most = (len(data) * 8 // SHARE).bit_length() - 1  # log2 of the most bits it may have
    if len(data) < max(least, 3) or most < SMALLEST:
        return None
    if C is not None:
        return C(data, HASH, WIDE, DENSITY, SMALLEST, min(LARGEST, most))
    # Each byte's code read at once: a little-endian u32 view at every byte offset (the last
    # one reads a pad byte) whose top byte is masked off. One pass where assembling the code
    # from three shifted copies took four: 1.6 against 2.1 ms a 256 KiB block, the same bits.
    words = np.ndarray((len(data) - 2,), "<u4", data + b"\0", 0, (1,))
    codes = words & np.uint32(0xFFFFFF)
    codes *= np.uint32(HASH)  # wraps mod 2**32, as the needle's side does by masking
    codes >>= np.uint32(32 - WIDE)
    seen = np.zeros(1 << WIDE, np.bool_)
    seen[codes] = True
    wanted = int(np.count_nonzero(seen)) * DENSITY
    bits = min(LARGEST, most, max(SMALLEST, (wanted - 1).bit_length()))
    folded = seen.reshape(1 << bits, -1).any(axis=1)  # bins sharing their top `bits` bits
    return bytes(np.packbits(folded).tobytes())


def hashes(needle: bytes) -> frozenset[int]:
    """The WIDE-bit hashes of `needle`'s trigrams (empty: too short to rule out any block)."""
    return frozenset(
        ((needle[i] | needle[i + 1] << 8 | needle[i + 2] << 16) * HASH & 0xFFFFFFFF) >> (32 - WIDE)
        for i in range(len(needle) - 2)
    )


def may_hold(summary: bytes | None, wanted: Iterable[int]) -> bool:
    """False only if a block with this summary cannot hold a needle with these hashes."""
    if summary is None:
        return True
    bits = len(summary).bit_length() + 2  # log2 of its bits, for a power-of-two length
    if len(summary) << 3 != 1 << bits or not SMALLEST <= bits <= WIDE:
        return True  # not one of ours: scan rather than guess
    shift = WIDE - bits
    for h in wanted:
        bit = h >> shift
        if not summary[bit >> 3] & (0x80 >> (bit & 7)):
            return False
    return True
