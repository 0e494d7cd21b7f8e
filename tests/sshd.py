"""The `sshd` fixture: a real sshd on 127.0.0.1 for the tests (testbed/sshd.py, which the
benchmarks use too), with aliases perview-test-1 .. perview-test-3 of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.sshd import LoopbackSshd

ALIASES = 3
Sshd = LoopbackSshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    try:
        server = LoopbackSshd(tmp_path_factory.mktemp("sshd"), ALIASES, prefix="perview-test-")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
