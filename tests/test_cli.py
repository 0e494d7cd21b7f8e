"""The command line in-process: which port it serves on. The commands themselves, run as
processes, are in test_cli_live.py."""

from __future__ import annotations

import pytest

from perview.cli import resolve_port
from perview.errors import PerviewError


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (None, {}, 9999),
        (None, {"PERVIEW_PORT": "8001"}, 8001),
        (None, {"PERVIEW_PROC_PORT": "8002", "PERVIEW_PORT": "8001"}, 8002),
        (8003, {"PERVIEW_PROC_PORT": "8002"}, 8003),
    ],
)
def test_port_precedence(flag: int | None, environ: dict[str, str], expected: int) -> None:
    assert resolve_port(flag, environ, 9999) == expected


def test_port_out_of_range_is_refused() -> None:
    with pytest.raises(PerviewError, match="PERVIEW_PORT must be between 0 and 65535"):
        resolve_port(None, {"PERVIEW_PORT": "70000"}, 9999)
