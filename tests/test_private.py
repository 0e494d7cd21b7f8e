"""The data directory and what Perview keeps in it are readable by Perview's user only."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from perview.accounts import SessionKeys
from perview.metrics.history import History
from tests.conftest import Server, wait_until

Serve = Callable[..., Server]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_live_server_makes_its_data_directory_and_history_private(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo up; sleep 300")
    assert server.state is not None
    data = Path(server.state) / "perview"
    wait_until(lambda: (data / "metrics.sqlite").exists(), timeout=10)
    assert mode(data) == 0o700
    assert mode(data / "metrics.sqlite") == 0o600
    assert mode(data / "session.key") == 0o600


async def test_history_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "state" / "perview"
    old = os.umask(0o022)
    try:
        history = History(data / "metrics.sqlite", retention=3600)
        await history.open()
        await history.write([("cpu", 1.0, 2.0)])
        files = {p.name: mode(p) for p in data.iterdir()}  # the WAL files exist while it is open
        await history.close()
    finally:
        os.umask(old)
    assert mode(data) == 0o700
    assert files == dict.fromkeys(
        ["metrics.sqlite", "metrics.sqlite-wal", "metrics.sqlite-shm"], 0o600
    )


async def test_an_existing_wide_data_directory_and_database_are_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "perview"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "metrics.sqlite").touch(mode=0o644)
    (data / "metrics.sqlite").chmod(0o644)
    with caplog.at_level(logging.WARNING):
        history = History(data / "metrics.sqlite", retention=3600)
        await history.open()
        await history.close()
    assert (mode(data), mode(data / "metrics.sqlite")) == (0o700, 0o600)
    assert f"{data}: open to other users (0755), now 0700" in caplog.text


def test_the_session_key_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "perview"
    old = os.umask(0o022)
    try:
        SessionKeys(data, 3600.0)
    finally:
        os.umask(old)
    assert (mode(data), mode(data / "session.key")) == (0o700, 0o600)


def test_a_shared_directory_is_left_alone_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sticky, world-writable directory (like /tmp) is shared by design: never narrowed."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with caplog.at_level(logging.WARNING):
        SessionKeys(shared, 3600.0)
    assert mode(shared) == 0o1777
    assert mode(shared / "session.key") == 0o600
    assert f"{shared}: open to other users (1777)" in caplog.text


def test_a_live_server_narrows_a_data_directory_an_older_perview_left_open(
    serve: Serve, tmp_path: Path
) -> None:
    data = tmp_path / "perview"
    data.mkdir()
    data.chmod(0o755)
    server = serve("run", "--", "true", token=None, env={"XDG_STATE_HOME": str(tmp_path)})
    assert mode(data) == 0o700
    assert mode(data / "token") == 0o600
    assert "open to other users (0755), now 0700" in "".join(server.output)
