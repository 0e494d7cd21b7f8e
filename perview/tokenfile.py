"""The generated access token, kept in the data directory so that it survives a restart: open
tabs and Prometheus scrapes keep working, and so do token logins (their cookies are bound to
the token). It changes only when the user rotates it (`perview token --rotate`, or deleting
the file). A token set by $PERVIEW_TOKEN or the config is never written here."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from pathlib import Path

from perview.private import private_dir

log = logging.getLogger(__name__)

FILE = "token"
TOKEN_BYTES = 18  # 144 bits, 24 characters of base64url
# What a kept token may be: printable ASCII without spaces (a person may write their own in);
# anything else in the file is replaced, with a warning.
USABLE = re.compile(r"[\x21-\x7e]{8,512}")


def kept_token(directory: Path) -> str:
    """The token kept in `directory`, made and kept (mode 0600) on first use. If it cannot be
    kept, a token for this run only, with a warning."""
    path = directory / FILE
    try:
        token = _read(path)
    except OSError as exc:
        log.warning("cannot read the token in %s (%s): using one for this run only", path, exc)
        return _fresh()
    if token is not None:
        return token
    token = _fresh()
    try:
        # Two servers starting at once must agree: only the first one's token is kept.
        if not _create(path, token):
            return _read(path) or token
    except OSError as exc:
        log.warning("cannot keep the token in %s (%s): it changes at every start", path, exc)
    return token


def rotate_token(directory: Path) -> str:
    """Replace the kept token with a new one and return it. A running server keeps the token it
    started with until it restarts."""
    token = _fresh()
    path = private_dir(directory) / FILE
    temporary = _write_temporary(path, token)
    temporary.replace(path)
    return token


def _fresh() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _read(path: Path) -> str | None:
    """The token in `path`; None if there is none (or none usable, which is then replaced)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    if not USABLE.fullmatch(text):
        log.warning("%s holds no usable token: replacing it", path)
        path.unlink()
        return None
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by others; `chmod 600 %s`, then rotate the token", path, path)
    return text


def _create(path: Path, token: str) -> bool:
    """Keep `token` at `path` unless a token is there already; False if one was."""
    private_dir(path.parent)
    temporary = _write_temporary(path, token)
    try:
        os.link(temporary, path)  # fails if `path` exists: no window where it is half written
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return True


def _write_temporary(path: Path, token: str) -> Path:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(token + "\n")
    return temporary
