"""Bytes to lines: whole blocks of complete, valid UTF-8 lines, never one object per line."""

from __future__ import annotations

# A line longer than this is cut into pieces. 64 KiB is far beyond any sane log line and keeps a
# single line (and so a single block) small enough that nothing downstream holds much memory.
MAX_LINE = 64 * 1024

# Appended to every piece of a cut line except the last, so the cut is visible in the page and in
# a plain-text download. U+2026 keeps it one glyph wide; the words make it greppable.
CUT_MARK = "\u2026[cut]".encode()


class LineFramer:
    """Splits a byte stream into blocks of whole lines.

    `feed` returns the complete lines seen so far as one `bytes` object in which every line ends
    with a newline, together with the number of lines. Invalid UTF-8 becomes U+FFFD, and a line
    longer than `max_line` bytes is cut into marked pieces, so memory is bounded by one line.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        if max_line < 4:
            raise ValueError("max_line must leave room for one UTF-8 character")
        self._max_line = max_line
        self._pending = b""

    def feed(self, data: bytes) -> tuple[bytes, int]:
        end = data.rfind(b"\n") + 1
        if end:
            # One copy at most: a full slice of bytes is the object itself.
            complete, rest = self._pending + data[:end], data[end:]
        else:
            complete, rest = b"", self._pending + data
        if len(complete) > self._max_line:
            complete = self._cut_long_lines(complete)
        if len(rest) > self._max_line:
            head, rest = self._cut_pending(rest)
            complete += head
        self._pending = rest
        if not complete:
            return b"", 0
        return _valid_utf8(complete), complete.count(b"\n")

    def flush(self) -> tuple[bytes, int]:
        """Return the final line that had no newline (with one added), if any."""
        rest, self._pending = self._pending, b""
        if not rest:
            return b"", 0
        return _valid_utf8(rest + b"\n"), 1

    def _cut_long_lines(self, buf: bytes) -> bytes:
        # Jump from newline to newline a whole window at a time: with short lines this costs one
        # `rfind` per `max_line` bytes, not one Python step per line.
        limit = self._max_line
        pieces: list[bytes] = []
        start = pos = 0
        while len(buf) - pos > limit:
            nl = buf.rfind(b"\n", pos, pos + limit + 1)
            if nl >= 0:
                pos = nl + 1
                continue
            cut = _char_boundary(buf, pos + limit)
            pieces += (buf[start:cut], CUT_MARK, b"\n")
            start = pos = cut
        if not pieces:
            return buf
        pieces.append(buf[start:])
        return b"".join(pieces)

    def _cut_pending(self, rest: bytes) -> tuple[bytes, bytes]:
        limit = self._max_line
        pieces: list[bytes] = []
        start = 0
        while len(rest) - start > limit:
            cut = _char_boundary(rest, start + limit)
            pieces += (rest[start:cut], CUT_MARK, b"\n")
            start = cut
        return b"".join(pieces), rest[start:]


def _char_boundary(buf: bytes, index: int) -> int:
    """Move `index` back (at most 3 bytes) so it does not split a UTF-8 sequence."""
    for back in range(4):
        if buf[index - back] & 0xC0 != 0x80:
            return index - back
    return index


def _valid_utf8(block: bytes) -> bytes:
    if block.isascii():
        return block
    try:
        block.decode()
    except UnicodeDecodeError:
        return block.decode(errors="replace").encode()
    return block
