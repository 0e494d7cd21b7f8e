"""What Perview keeps for itself (metric history, the session key, logged-out sessions) is for
its own user only: the data directory 0700, its files 0600, whatever the umask says."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
_warned: set[Path] = set()  # a directory we may not narrow is said once, not at every write


def private_dir(path: Path) -> Path:
    """Make `path` a directory only our user may use (missing parents get the usual modes).

    An existing one open to others (made by an older Perview, or by hand) is narrowed if it is
    ours and not shared by design (sticky, like /tmp); otherwise a warning says so."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    status = path.stat()
    current = stat.S_IMODE(status.st_mode)
    if not current & 0o077:
        return path
    if status.st_uid == os.geteuid() and not current & stat.S_ISVTX:
        try:
            path.chmod(DIRECTORY_MODE)
        except OSError:
            pass
        else:
            log.warning("%s: open to other users (%04o), now %04o", path, current, DIRECTORY_MODE)
            return path
    if path not in _warned:
        _warned.add(path)
        log.warning(
            "%s: open to other users (%04o); keep Perview's data where only its user can read it",
            path,
            current,
        )
    return path


def private_file(path: Path) -> None:
    """Create `path` empty as 0600 if it is missing; narrow it to 0600 if it is ours and wider."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, FILE_MODE)
    try:
        status = os.fstat(fd)
        if stat.S_IMODE(status.st_mode) & 0o077 and status.st_uid == os.geteuid():
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
