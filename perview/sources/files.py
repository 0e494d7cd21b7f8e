"""Files as a source: followed natively by name, the way a careful `tail -F` would.

A run keeps one `_File` per followed path (the path itself, or each match of a glob) and reads it
with `pread` in blocks (reader.READ_SIZE) at its own offset, passing the bytes on untouched: the
hub frames lines, per part, so a glob's files never split each other's lines. Where a file's
bytes stop following on (it is left for the next one, or truncated) the source says so
(`end_line`), and the hub's framer ends a line the file left unfinished.

When to look comes from inotify events on the containing directories (an append is seen about
0.25 ms later). A directory watch sees appends, truncations, renames, creations and deletions
alike. A poll every `poll_interval` seconds checks everything again, in case an event was missed
or inotify is unavailable (a filesystem without events, exhausted inotify limits); it is also how
a glob with wildcards in its directories finds new directories.

Checking a file:
- Read the open descriptor to its end. If the file shrank below the offset, or the bytes just
  before the offset changed (truncated and already rewritten past it), read again from the start:
  copy-truncate rotation, or `> file`.
- Compare the name with the descriptor. When the name leads to another file (rename-and-create
  rotation, or delete and re-create), keep reading the old descriptor until the new file has data,
  then read the old one to its end once more and switch to the new one from its start. A writer
  that reopens its log (on SIGHUP, or for every line) has finished with the old file once it
  writes to the new one, so no line is lost and the order holds. tail -F switches at once and
  loses what the writer adds to the old file before it reopens.
- A deleted file that nothing replaced is read while it grows (a writer may still hold it), and
  let go once it has been idle for a while, so that its disk space is really freed.
- When nothing can be read (the file is missing, a directory, unreadable), report `waiting` with
  the reason, and `started` again as soon as some file can be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import glob
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from asyncinotify import Event, Inotify, Mask

from perview.config import DEFAULT_FILE_LINES, is_glob
from perview.hub import Ended, Output
from perview.labels import MAX_PATH, display_name
from perview.sources._state import StateFile
from perview.sources.reader import READ_SIZE

log = logging.getLogger(__name__)

# Read at most this much of one file before giving the other files and the event loop a turn:
# `out.write` does not always yield, and a 10 GB file appearing must not freeze everything else.
TURN_BYTES = 1024 * 1024

# The bytes just before the offset that are kept to tell a file truncated and rewritten past the
# offset (its size alone cannot tell) from one that grew. 64 bytes span a timestamp or two.
FINGERPRINT = 64

# A deleted file that no new file replaced is read while it grows; after this long without
# growth it is closed, so that the disk space of a log deleted under a live viewer comes back.
DELETED_IDLE = 60.0

# A viewer returning to a file source gets what was written while nobody watched, read from
# where the last run stopped, up to this much; beyond it, the file starts at its last lines and a
# notice says how much was not followed, and when.
RESUME_LIMIT = 16 * 1024 * 1024

# Entries of a directory looked through for a rotated file (by its identity) before giving up.
SIBLINGS_LOOKED_AT = 10_000

# Names appearing or going away: a glob may match a new file.
RESCAN_EVENTS = Mask.CREATE | Mask.MOVED_TO | Mask.MOVED_FROM | Mask.DELETE
# Plus appends and truncations (MODIFY), a writer closing (CLOSE_WRITE) and permission fixes.
WATCH_MASK = RESCAN_EVENTS | Mask.MODIFY | Mask.CLOSE_WRITE | Mask.ATTRIB | Mask.ONLYDIR


@dataclass(frozen=True, slots=True)
class Left:
    """Where a run stopped reading a file (here or on another host): enough to resume it
    exactly, or to say what was not followed."""

    ident: tuple[int, int]  # st_dev, st_ino of the file that was being read
    pos: int
    tail: bytes  # the bytes before `pos` (to tell a rewritten file from one that grew)
    at: float  # when (epoch seconds)

    def saved(self) -> dict[str, object]:
        """As a state file keeps it (see _state.py)."""
        return {
            "dev": self.ident[0],
            "ino": self.ident[1],
            "pos": self.pos,
            "tail": self.tail.hex(),
            "at": self.at,
        }

    @staticmethod
    def restored(saved: object) -> Left | None:
        """What `saved` made of a Left, or None if `saved` is not that."""
        if not isinstance(saved, dict):
            return None
        dev, ino, pos, at, tail = (saved.get(key) for key in ("dev", "ino", "pos", "at", "tail"))
        if not (_count(dev) and _count(ino) and _count(pos) and isinstance(tail, str)):
            return None
        if not isinstance(at, int | float):
            return None
        try:
            fingerprint = bytes.fromhex(tail)
        except ValueError:
            return None
        if len(fingerprint) > min(pos, FINGERPRINT):
            return None
        return Left((dev, ino), pos, fingerprint, float(at))


@dataclass(slots=True)
class _File:
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


class FileSource:
    """Follows the file at `pattern` by name, or every file that a glob `pattern` matches.

    Files there at the start begin with their last `backlog` lines; files appearing later are
    read from their start. A later run (the next viewer) resumes each file where the last one
    stopped reading it, in its rotated sibling if it was rotated meanwhile, and says in a
    notice what it could not follow; with `state`, a file in the data directory, so does the
    first run after a restart of Perview. A glob tags each file's bytes with its name (relative
    to the pattern's fixed directory), as the part of the source they come from. Runs until
    `stop` is set and closes every descriptor and watch.
    """

    kind = "file"

    def __init__(
        self,
        pattern: str,
        *,
        backlog: int = DEFAULT_FILE_LINES,
        poll_interval: float = 1.0,
        state: Path | None = None,
    ) -> None:
        self.pattern = os.path.abspath(pattern)
        self.backlog = backlog
        self.poll_interval = poll_interval
        self.is_glob = is_glob(self.pattern)
        self.root = os.path.dirname(self.pattern)  # the deepest directory without wildcards
        while is_glob(self.root):
            self.root = os.path.dirname(self.root)
        self.left: dict[str, Left] = {}  # by path: where the last run stopped reading
        # Positions in another file (another pattern) mean nothing to this one.
        self.state = StateFile(state, {"file": self.pattern}) if state else None
        self.loaded = False  # the state file was read (once, at the first run)

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        if not self.loaded:
            self.loaded = True
            self._load()
        follower = _Follower(self, out, stop)
        try:
            await follower.follow()
        finally:
            await follower.close()
        return Ended(0)

    def save(self, left: dict[str, Left], *, force: bool = False) -> None:
        if self.state is not None:
            files = {path: where.saved() for path, where in left.items()}
            self.state.save({"files": files}, force=force)

    def _load(self) -> None:
        if self.state is None or (state := self.state.load()) is None:
            return
        files = state.get("files")
        for path, saved in files.items() if isinstance(files, dict) else ():
            if (left := Left.restored(saved)) is not None:
                self.left.setdefault(path, left)


class _Follower:
    """One run of a FileSource: its files, its inotify watches and the tasks that wake it."""

    def __init__(self, source: FileSource, out: Output, stop: asyncio.Event) -> None:
        self.source = source
        self.out = out
        self.stop = stop
        self.files: dict[str, _File] = {}
        self.dirty: set[str] = set()  # paths to check at the next turn
        self.rescan = False
        self.wake = asyncio.Event()
        self.inotify: Inotify | None = None
        self.watched: set[str] = set()
        self.warned: set[str] = set()  # directories that could not be watched
        self.tasks: set[asyncio.Task[None]] = set()
        self.reported: str | None = None  # the last reason to wait; None: started
        self.has_reported = False
        self.moved_on = False  # some position changed since the state file was last written

    async def follow(self) -> None:
        self._start_inotify()
        self.tasks.add(asyncio.create_task(_set_when(self.stop, self.wake)))
        loop = asyncio.get_running_loop()
        first, next_poll = True, loop.time()
        while not self.stop.is_set():
            if loop.time() >= next_poll:
                self._scan(first)
                self.dirty.update(self.files)
                first, next_poll = False, loop.time() + self.source.poll_interval
            elif self.rescan:
                self._scan(False)
            await self._check_dirty()
            self._report()
            if self.moved_on and self.source.state is not None and self.source.state.due():
                self.moved_on = False
                self.source.save(self._where())
            if self.dirty:  # a file has more to read
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_poll):
                    await self.wake.wait()
            self.wake.clear()

    async def close(self) -> None:
        self.source.left = self._where()
        self.source.save(self.source.left, force=True)
        for file in self.files.values():
            _close(file)
        for task in self.tasks:
            task.cancel()
        try:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            if self.inotify is not None:
                # The kernel may take its time here (synchronize_srcu: up to 20 ms measured),
                # which must not stall every other stream on the loop.
                await asyncio.to_thread(self.inotify.close)

    def _where(self) -> dict[str, Left]:
        """Where the next run should resume each file: where this one is in it, or, for a file
        it has not opened yet, where an earlier run left it."""
        now = time.time()
        where = dict(self.source.left)  # left by an earlier run, not found by this one
        for path, file in self.files.items():
            if file.fd is not None:
                where[path] = Left(file.ident, file.pos, file.tail, now)
            elif file.left is not None:
                where[path] = file.left
        return where

    # -- which files, and when to look ---------------------------------------------------------

    def _start_inotify(self) -> None:
        try:
            self.inotify = Inotify()
        except OSError as exc:
            log.warning("no inotify (%s): polling %s", exc.strerror, _shown(self.source.pattern))
            return
        self.tasks.add(asyncio.create_task(self._read_events(self.inotify)))

    async def _read_events(self, inotify: Inotify) -> None:
        async for event in inotify:
            self._note(event)
            self.wake.set()

    def _note(self, event: Event) -> None:
        watch = event.watch
        if watch is None or Mask.Q_OVERFLOW in event.mask:  # events were lost: check everything
            self.dirty.update(self.files)
            self.rescan = True
            return
        directory = str(watch.path)
        if Mask.IGNORED in event.mask:  # the directory is gone; the poll watches it if it returns
            self.watched.discard(directory)
            return
        if event.name is None:
            return
        path = os.path.join(directory, event.name)
        if path in self.files:
            self.dirty.add(path)
        else:  # perhaps a file still being read under its new name (renamed by a rotation)
            self.dirty.update(
                p for p, f in self.files.items() if f.moved and os.path.dirname(p) == directory
            )
        if self.source.is_glob and event.mask & RESCAN_EVENTS:
            self.rescan = self.rescan or fnmatch.fnmatchcase(path, self.source.pattern)

    def _scan(self, first: bool) -> None:
        """Follow the paths that match now (from their last lines on the `first` scan), and drop
        those that stopped matching and have nothing open."""
        self.rescan = False
        source = self.source
        self._watch_directories()
        if not source.is_glob:
            found = {source.pattern}
        else:
            found = {p for p in glob.glob(source.pattern) if not os.path.isdir(p)}
        for path in found - self.files.keys():
            # A name may hold a newline, invalid UTF-8 or a bidi control: made printable here,
            # once, so the name forges nothing in the text stream, the SSE header or the page.
            part = display_name(os.path.relpath(path, source.root)) if source.is_glob else None
            file = self.files[path] = _File(path, part, source.backlog if first else None)
            if first:
                file.left = source.left.pop(path, None)
            self.dirty.add(path)
        for path in [p for p, f in self.files.items() if p not in found and f.fd is None]:
            del self.files[path]
        self._watch_directories()

    def _watch_directories(self) -> None:
        if self.inotify is None:
            return
        wanted = {self.source.root} | {os.path.dirname(p) for p in self.files}
        for directory in wanted - self.watched:
            try:
                self.inotify.add_watch(directory, WATCH_MASK)
            except OSError as exc:
                # A missing directory is simply waited for; anything else (ENOSPC: the inotify
                # watch limit) is worth saying once. The poll covers the directory either way.
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and directory not in self.warned:
                    log.warning("cannot watch %s (%s): polling it", _shown(directory), exc.strerror)
                    self.warned.add(directory)
                continue
            self.watched.add(directory)

    def _report(self) -> None:
        if any(f.fd is not None for f in self.files.values()):
            reason = None
        else:
            problems = (f.problem for f in self.files.values() if f.problem)
            reason = next(problems, f"waiting for a file matching {_shown(self.source.pattern)}")
        if self.has_reported and reason == self.reported:
            return
        self.reported, self.has_reported = reason, True
        if reason is None:
            self.out.started(None)
        else:
            self.out.waiting(reason)

    # -- reading -------------------------------------------------------------------------------

    async def _check_dirty(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for path in sorted(dirty):
            file = self.files.get(path)
            if file is None or self.stop.is_set():
                continue
            if await self._check(file):
                self.dirty.add(path)

    async def _check(self, file: _File) -> bool:
        """Read what is new in `file` and follow its name; True if it has more to read now."""
        try:
            if (fd := file.fd) is not None:
                if await self._read(file, fd):
                    return True
                if not self._leave(file, fd):
                    return False
                while await self._read(file, fd):  # what it got before the writer moved on
                    pass
                self.out.end_line(file.part)
                _close(file)
                self.moved_on = True
            note = _open(file)
            if file.fd is not None or note:  # opened, or what was left of it said to be lost
                self.moved_on = True
            if file.fd is not None:
                self._report()  # `started` comes before the first bytes
            if note:
                self.out.notice(note, file.part)
            if file.fd is None:
                return False
            return await self._read(file, file.fd)
        except OSError as exc:
            self.moved_on = True
            _close(file)
            file.problem = f"cannot read {_shown(file.path)}: {exc.strerror}"
            return False

    def _leave(self, file: _File, fd: int) -> bool:
        """Whether to let go of `fd` for what is now at the path (see the module docstring)."""
        try:
            now: os.stat_result | None = os.stat(file.path)
        except (FileNotFoundError, NotADirectoryError):
            now = None
        except OSError:
            # The name cannot be looked up now (a directory on the way made unsearchable: EACCES),
            # but the open descriptor still reads: keep it, and look at the name again next time.
            # Closing it would lose what is written meanwhile and re-read the file from its start.
            return False
        if now is not None and (now.st_dev, now.st_ino) == file.ident:
            file.moved = False
            return False
        file.moved = True
        if now is not None and stat.S_ISREG(now.st_mode) and now.st_size > 0:
            return True  # the writer has moved on to the new file
        deleted = os.fstat(fd).st_nlink == 0
        return deleted and time.monotonic() - file.grew_at > DELETED_IDLE

    async def _read(self, file: _File, fd: int) -> bool:
        """Write what `fd` has past the offset; True if it stopped at TURN_BYTES with more left."""
        size = os.fstat(fd).st_size
        if size < file.pos or _rewritten(file, fd, size):
            self.out.end_line(file.part)
            file.pos, file.tail = 0, b""
        budget = TURN_BYTES
        while budget > 0:
            if self.stop.is_set():
                return False
            data = os.pread(fd, READ_SIZE, file.pos)
            if not data:
                return False
            file.pos += len(data)
            file.tail = (file.tail + data if len(data) < FINGERPRINT else data)[-FINGERPRINT:]
            file.grew_at = time.monotonic()
            self.moved_on = True
            budget -= len(data)
            await self.out.write(data, file.part)
        await asyncio.sleep(0)  # a turn for the rest of the loop before more of this file
        return True


def _open(file: _File) -> str | None:
    """Open what is at the path, positioned where an earlier run left it, else at its backlog
    (or start); else set `problem`. Returns a notice for the viewers, if there is one: how the
    file was resumed, or what was not followed."""
    try:
        fd = os.open(file.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
    except (FileNotFoundError, NotADirectoryError):
        file.problem, file.backlog = f"waiting for {_shown(file.path)} to appear", None
        rotated = _resume_rotated(file)  # perhaps renamed away, and nothing new at the path yet
        if rotated is None and (left := file.left) is not None:
            # Neither at the path nor under another name: what it got after `left` is lost, and
            # the file that appears next is a new one, read from its start.
            file.left = None
            return f"was deleted after {moment(left.at)}: what was written to it since is not shown"
        return rotated
    except OSError as exc:
        file.problem = f"cannot read {_shown(file.path)}: {exc.strerror}"
        return None
    note: str | None = None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            file.problem, file.backlog = f"{_shown(file.path)} is {what}", None
            os.close(fd)
            return None
        ident = (info.st_dev, info.st_ino)
        if file.left is not None and file.left.ident != ident:
            note = _resume_rotated(file)
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


def _start(file: _File, fd: int, size: int, ident: tuple[int, int]) -> tuple[int, str | None]:
    """Where to start reading the file just opened at the path, and what to say about it."""
    left, file.left = file.left, None
    if left is not None and left.ident == ident:
        unchanged = size >= left.pos and os.pread(fd, len(left.tail), left.pos - len(left.tail))
        if unchanged == left.tail:
            written = size - left.pos
            if written <= RESUME_LIMIT:
                said = f"resumed where it was left at {moment(left.at)}"
                return left.pos, said if written else None
            start = _backlog_start(fd, size, file.backlog or 0)
            return start, (
                f"{amount(start - left.pos)} written between {moment(left.at)} and now were not "
                f"followed (more than {amount(RESUME_LIMIT)} to catch up): its last lines follow"
            )
        note = (
            f"was truncated or rewritten after {moment(left.at)}: what it held before that "
            "is not shown"
        )
        return _bounded_start(fd, size, file.backlog), note
    if left is not None:  # replaced, and the old file is nowhere to be found
        note = (
            f"was replaced after {moment(left.at)}: what was written to the old file since "
            "is not shown"
        )
        return _bounded_start(fd, size, file.backlog), note
    return (0 if file.backlog is None else _backlog_start(fd, size, file.backlog)), None


def _resume_rotated(file: _File) -> str | None:
    """If an earlier run left this path in a file that has since been renamed (a rotation),
    open that one at the position left, to be read to its end before what is at the path now."""
    left = file.left
    if left is None:
        return None
    old = _find_by_identity(os.path.dirname(file.path), left.ident)
    if old is None:
        return None
    try:
        fd = os.open(old, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    # The bytes before the position too: an inode is reused once its file is deleted, and the
    # longer Perview was away (stopped, not only unwatched), the likelier that is.
    n = len(left.tail)
    if (
        (info.st_dev, info.st_ino) != left.ident
        or info.st_size < left.pos
        or os.pread(fd, n, left.pos - n) != left.tail
    ):
        os.close(fd)
        return None
    file.left = None
    file.fd, file.ident, file.pos, file.tail = fd, left.ident, left.pos, left.tail
    file.moved, file.problem, file.backlog = True, None, None
    file.grew_at = time.monotonic()
    name = os.path.basename(old)
    return f"rotated after {moment(left.at)}: reading the rest of it as {name} first"


def _find_by_identity(directory: str, ident: tuple[int, int]) -> str | None:
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


def _bounded_start(fd: int, size: int, lines: int | None) -> int:
    """A file none of whose lines were followed yet: from its start, unless that is more than
    RESUME_LIMIT (then its last `lines`)."""
    return 0 if size <= RESUME_LIMIT else _backlog_start(fd, size, lines or 0)


def moment(at: float) -> str:
    """A moment as the notices of files, local and remote, write it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def amount(n: int) -> str:
    """A number of bytes as the notices of files write it."""
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _close(file: _File) -> None:
    if file.fd is not None:
        os.close(file.fd)
        file.fd, file.moved = None, False


def _backlog_start(fd: int, size: int, lines: int) -> int:
    """The offset of the first of the last `lines` lines, found reading backwards in blocks."""
    if lines <= 0:
        return size
    # A final newline ends the last line; it does not start one more.
    wanted = lines + 1 if size and os.pread(fd, 1, size - 1) == b"\n" else lines
    end = size
    while end > 0:
        start = max(0, end - READ_SIZE)
        block = os.pread(fd, end - start, start)
        found = block.count(b"\n")
        if found < wanted:
            wanted -= found
            end = start
            continue
        at = len(block)
        for _ in range(wanted):
            at = block.rindex(b"\n", 0, at)
        return start + at + 1
    return 0


def _rewritten(file: _File, fd: int, size: int) -> bool:
    """Whether the bytes before the offset changed: truncated and rewritten past it."""
    n = len(file.tail)
    return size > file.pos and n > 0 and os.pread(fd, n, file.pos - n) != file.tail


def _shown(path: str) -> str:
    """A path as notices and the log show it: a matched name is anyone's choice of bytes."""
    return display_name(path, MAX_PATH)


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


async def _set_when(stop: asyncio.Event, wake: asyncio.Event) -> None:
    await stop.wait()
    wake.set()
