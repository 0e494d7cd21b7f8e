"""What a kept source remembers across restarts of Perview (a journal's cursor, where each file
was left): one small JSON file per source in the data directory, 0600 in a 0700 directory,
replaced atomically, so the next start finds the old state or the new, never half of one."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from perview.private import FILE_MODE, private_dir

log = logging.getLogger(__name__)

# A state is written at most this often while the source reads (and at the end of every run):
# a Perview killed outright repeats at most about this much of its sources on its restart.
SAVE_EVERY = 1.0


class StateFile:
    """One source's state at `path`, valid only for the `settings` it was saved with: a source
    whose settings changed (another file, host or filter) reads other things, and its old state
    means nothing to it. `settings` is a JSON value, a state a JSON object without the key
    `settings` (the file holds both, side by side)."""

    def __init__(self, path: Path, settings: object) -> None:
        self.path = path
        self.settings = json.loads(json.dumps(settings))  # as it reads back: tuples are lists
        self._saved: object = None  # the state last written (or read)
        self._saved_when = -math.inf  # when (monotonic)

    def load(self) -> dict[str, Any] | None:
        """The state saved for these settings, or None (none, another source's, unreadable)."""
        try:
            record = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s: not a saved state (%s); starting afresh", self.path, exc)
            return None
        if not isinstance(record, dict) or record.pop("settings", None) != self.settings:
            return None
        self._saved = record
        return record

    def due(self) -> bool:
        """Whether a save now would write (SAVE_EVERY has passed since the last one)."""
        return time.monotonic() - self._saved_when >= SAVE_EVERY

    def save(self, state: dict[str, Any], *, force: bool = False) -> None:
        """Write `state` unless it is the one already written, at most once every SAVE_EVERY
        seconds unless `force`. A failure is logged, never raised: the source reads on."""
        if (not force and not self.due()) or state == self._saved:
            return
        self._saved, self._saved_when = state, time.monotonic()
        data = json.dumps({**state, "settings": self.settings}).encode()
        try:
            private_dir(self.path.parent)
            _write_atomically(self.path, data)
        except OSError as exc:
            log.warning("cannot keep the state of a source in %s: %s", self.path, exc.strerror)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a temporary file left over from before, wider
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(temporary, path)
