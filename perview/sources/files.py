"""Files as a source: followed natively by name, the way a careful `tail -F` would.

A run keeps one `Followed` per followed path (the path itself, or each match of a glob) and reads it
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

This module is the loop (which files, when to look, reading, letting go); `followed.py` opens a
path where to start and finds a rotated file again, and `resume.py` keeps where a run left off.
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
from pathlib import Path

from asyncinotify import Event, Inotify, Mask

from perview.config import DEFAULT_FILE_LINES, is_glob
from perview.hub import Ended, Output
from perview.labels import display_name
from perview.sources._state import StateFile
from perview.sources.followed import Followed, close, open_path, rewritten, shown
from perview.sources.reader import READ_SIZE
from perview.sources.resume import FINGERPRINT, Left

log = logging.getLogger(__name__)

# Read at most this much of one file before giving the other files and the event loop a turn:
# `out.write` does not always yield, and a 10 GB file appearing must not freeze everything else.
TURN_BYTES = 1024 * 1024

# A deleted file that no new file replaced is read while it grows; after this long without
# growth it is closed, so that the disk space of a log deleted under a live viewer comes back.
DELETED_IDLE = 60.0

# Names appearing or going away: a glob may match a new file.
RESCAN_EVENTS = Mask.CREATE | Mask.MOVED_TO | Mask.MOVED_FROM | Mask.DELETE
# Plus appends and truncations (MODIFY), a writer closing (CLOSE_WRITE) and permission fixes.
WATCH_MASK = RESCAN_EVENTS | Mask.MODIFY | Mask.CLOSE_WRITE | Mask.ATTRIB | Mask.ONLYDIR


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
        self.files: dict[str, Followed] = {}
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
            close(file)
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
            log.warning("no inotify (%s): polling %s", exc.strerror, shown(self.source.pattern))
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
            file = self.files[path] = Followed(path, part, source.backlog if first else None)
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
                    log.warning("cannot watch %s (%s): polling it", shown(directory), exc.strerror)
                    self.warned.add(directory)
                continue
            self.watched.add(directory)

    def _report(self) -> None:
        if any(f.fd is not None for f in self.files.values()):
            reason = None
        else:
            problems = (f.problem for f in self.files.values() if f.problem)
            reason = next(problems, f"waiting for a file matching {shown(self.source.pattern)}")
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

    async def _check(self, file: Followed) -> bool:
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
                close(file)
                self.moved_on = True
            note = open_path(file)
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
            close(file)
            file.problem = f"cannot read {shown(file.path)}: {exc.strerror}"
            return False

    def _leave(self, file: Followed, fd: int) -> bool:
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

    async def _read(self, file: Followed, fd: int) -> bool:
        """Write what `fd` has past the offset; True if it stopped at TURN_BYTES with more left."""
        size = os.fstat(fd).st_size
        if size < file.pos or rewritten(file, fd, size):
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


async def _set_when(stop: asyncio.Event, wake: asyncio.Event) -> None:
    await stop.wait()
    wake.set()
