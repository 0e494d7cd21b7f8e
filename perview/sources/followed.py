"""A followed path and the file read for it: opening what is at the path where an earlier run
left it (or at its last lines), finding that file again under another name after a rotation,
and telling a file rewritten under the offset from one that grew."""

from __future__ import annotations

import os
import stat
import time
import zlib
from dataclasses import dataclass

from perview.history.rotation import GZ, rotated
from perview.labels import MAX_PATH, display_name
from perview.sources.resume import (
    RESUME_LIMIT,
    Left,
    amount,
    backlog_start,
    bounded_start,
    moment,
)

# Entries of a directory looked through for a rotated file (by its identity) before giving up.
SIBLINGS_LOOKED_AT = 10_000
# A file left that is no longer anywhere by its identity may live on as a copy among its rotated
# siblings (logrotate's `copytruncate`, or `compress`, which replaces the renamed file with a
# .gz): the newest few generations are looked at, numbered or date-named alike.
COPIES_LOOKED_AT = 3
# A compressed copy is read from its start to the position left, on the loop, once: 30.7 MiB
# of log text (gzip -6) took 26 ms of CPU here (median of 5). Further in, the loss is said.
INFLATE_LIMIT = 32 * 1024 * 1024


@dataclass(slots=True)
class Followed:
    """A followed path, and the file read for it (which may no longer be at the path)."""

    path: str
    part: str | None  # its name among a glob's files; None: not a glob
    backlog: int | None  # lines to start with when it is next opened; None: from the start
    fd: int | None = None
    ident: tuple[int, int] = (0, 0)  # st_dev, st_ino of `fd`
    pos: int = 0  # the next byte to read
    tail: bytes = b""  # the last bytes read, ending at `pos`
    moved: bool = False  # `fd` is no longer the file at `path`
    grew_at: float = 0.0  # when a read last returned data (monotonic)
    problem: str | None = None  # why the path cannot be read, while `fd` is None
    left: Left | None = None  # where an earlier run stopped reading it: resume from there


def open_path(file: Followed) -> str | None:
    """Open what is at the path, positioned where an earlier run left it, else at its backlog
    (or start); else set `problem`. Returns a notice for the viewers, if there is one: how the
    file was resumed, or what was not followed."""
    try:
        fd = os.open(file.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
    except (FileNotFoundError, NotADirectoryError):
        file.problem, file.backlog = f"waiting for {shown(file.path)} to appear", None
        rotated = resume_rotated(file)  # perhaps renamed away, and nothing new at the path yet
        if rotated is None and (left := file.left) is not None:
            # Neither at the path nor under another name: what it got after `left` is lost, and
            # the file that appears next is a new one, read from its start.
            file.left = None
            return f"was deleted after {moment(left.at)}: what was written to it since is not shown"
        return rotated
    except OSError as exc:
        file.problem = f"cannot read {shown(file.path)}: {exc.strerror}"
        return None
    note: str | None = None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            file.problem, file.backlog = f"{shown(file.path)} is {what}", None
            os.close(fd)
            return None
        ident = (info.st_dev, info.st_ino)
        if file.left is not None and (
            file.left.ident != ident or not _holds(fd, info.st_size, file.left)
        ):
            note = resume_rotated(file)  # renamed, or (copied and truncated) in place
            if file.fd is not None:  # the old file, found under another name: read it first
                os.close(fd)
                return note
        file.pos, resumed = _start(file, fd, info.st_size, ident)
        note = resumed or note
    except BaseException:
        os.close(fd)
        raise
    file.fd, file.ident = fd, ident
    file.tail, file.moved, file.problem, file.backlog = b"", False, None, None
    file.grew_at = time.monotonic()
    return note


def _start(file: Followed, fd: int, size: int, ident: tuple[int, int]) -> tuple[int, str | None]:
    """Where to start reading the file just opened at the path, and what to say about it."""
    left, file.left = file.left, None
    if left is not None and left.ident == ident:
        unchanged = size >= left.pos and os.pread(fd, len(left.tail), left.pos - len(left.tail))
        if unchanged == left.tail:
            written = size - left.pos
            if written <= RESUME_LIMIT:
                said = f"resumed where it was left at {moment(left.at)}"
                return left.pos, said if written else None
            start = backlog_start(fd, size, file.backlog or 0)
            return start, (
                f"{amount(start - left.pos)} written between {moment(left.at)} and now were not "
                f"followed (more than {amount(RESUME_LIMIT)} to catch up): its last lines follow"
            )
        note = (
            f"was truncated or rewritten after {moment(left.at)}: what it held before that "
            "is not shown"
        )
        return bounded_start(fd, size, file.backlog), note
    if left is not None:  # replaced, and the old file is nowhere to be found
        note = (
            f"was replaced after {moment(left.at)}: what was written to the old file since "
            "is not shown"
        )
        return bounded_start(fd, size, file.backlog), note
    return (0 if file.backlog is None else backlog_start(fd, size, file.backlog)), None


def _renamed(old: str, left: Left) -> int | None:
    """`old` opened, if it is the file left (found by its identity) with the same bytes before
    the position: an inode is reused once its file is deleted (gzip's copy of a rotated file
    may get it), and the longer Perview was away, the likelier that is."""
    try:
        fd = os.open(old, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) == left.ident and _holds(fd, info.st_size, left):
        return fd
    os.close(fd)
    return None


def _holds(fd: int, size: int, left: Left) -> bool:
    """Whether the file still has the bytes before the position left (grown, not rewritten)."""
    n = len(left.tail)
    return size >= left.pos and os.pread(fd, n, left.pos - n) == left.tail


def resume_rotated(file: Followed) -> str | None:
    """If an earlier run left this path in a file that has since been renamed (a rotation),
    open that one at the position left, to be read to its end before what is at the path now;
    failing that, a rotated copy of it (see COPIES_LOOKED_AT)."""
    left = file.left
    if left is None:
        return None
    old = find_by_identity(os.path.dirname(file.path), left.ident)
    if old is None or old == file.path or (fd := _renamed(old, left)) is None:
        return resume_copied(file, left)
    return _resume_in(file, left, fd, old)


def _resume_in(file: Followed, left: Left, fd: int, name: str) -> str:
    """Go on reading the file left in `fd` (found as `name`) at the position left; the notice
    that says so."""
    info = os.fstat(fd)
    file.left = None
    file.fd, file.ident = fd, (info.st_dev, info.st_ino)
    file.pos, file.tail = left.pos, left.tail
    file.moved, file.problem, file.backlog = True, None, None
    file.grew_at = time.monotonic()
    name = os.path.basename(name)
    return f"rotated after {moment(left.at)}: reading the rest of it as {name} first"


def resume_copied(file: Followed, left: Left) -> str | None:
    """Open the newest rotated sibling that holds the file left, the same bytes before the
    position left, at that position (a compressed one inflated into memory from a little before
    it), to be read to its end before what is at the path now."""
    # The path itself is first only while it is there (`nocreate` leaves none).
    for name in [n for n in rotated(file.path) if n != file.path][:COPIES_LOOKED_AT]:
        try:
            fd = _inflated(name, left) if name.endswith(GZ) else _opened(name, left)
        except (OSError, zlib.error, EOFError):
            continue
        if fd is not None:
            return _resume_in(file, left, fd, name)
    return None


def _opened(name: str, left: Left) -> int | None:
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and _holds(fd, info.st_size, left):
        return fd
    os.close(fd)
    return None


def _inflated(name: str, left: Left) -> int | None:
    """A memory file holding `name` (gzip) inflated from just before the position left to its
    end (a hole before that), if those bytes are the file left's and the whole rest is there;
    else None."""
    n = len(left.tail)
    start = left.pos - n
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
    out = os.memfd_create("perview-rotated", os.MFD_CLOEXEC)
    at = 0  # inflated bytes so far
    try:
        with open(name, "rb") as packed:
            while not inflate.eof and at <= min(left.pos + RESUME_LIMIT, INFLATE_LIMIT):
                packed_bytes = packed.read(1 << 16)
                if not packed_bytes:
                    break
                data = inflate.decompress(packed_bytes)
                if at + len(data) > start:
                    skip = max(0, start - at)
                    os.pwrite(out, data[skip:], at + skip)
                at += len(data)
        if inflate.eof and at >= left.pos and os.pread(out, n, start) == left.tail:
            return out
    except BaseException:
        os.close(out)
        raise
    os.close(out)
    return None


def find_by_identity(directory: str, ident: tuple[int, int]) -> str | None:
    """The regular file in `directory` that is `ident` (a rotated log keeps its inode)."""
    try:
        with os.scandir(directory) as entries:
            for n, entry in enumerate(entries):
                if n >= SIBLINGS_LOOKED_AT:
                    return None
                if entry.inode() != ident[1]:
                    continue
                found = entry.stat(follow_symlinks=False)
                if found.st_dev == ident[0] and stat.S_ISREG(found.st_mode):
                    return entry.path
    except OSError:
        return None
    return None


def close(file: Followed) -> None:
    if file.fd is not None:
        os.close(file.fd)
        file.fd, file.moved = None, False


def rewritten(file: Followed, fd: int, size: int) -> bool:
    """Whether the bytes before the offset changed: truncated and rewritten past it."""
    n = len(file.tail)
    return size > file.pos and n > 0 and os.pread(fd, n, file.pos - n) != file.tail


def shown(path: str) -> str:
    """A path as notices and the log show it: a matched name is anyone's choice of bytes."""
    return display_name(path, MAX_PATH)
