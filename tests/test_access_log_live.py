"""The access log `-v` turns on, in a live server: every request, and never the token."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TOKEN, Server, wait_until

Serve = Callable[..., Server]


def test_verbose_logs_every_request_without_its_token(serve: Serve, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    server = serve("tail", "-v", str(log))
    request = urllib.request.Request(
        f"{server.base}/api/sources?token={TOKEN}",
        # ?token= is no credential for the API any more (the page trades it for a session), but
        # an old link or a script may still send it: it must not be logged either way.
        headers={
            "Referer": f"{server.base}/?token={TOKEN}",
            "User-Agent": "the-test",
            "Authorization": f"Bearer {TOKEN}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    wait_until(lambda: "the-test" in "".join(server.output), timeout=10)
    logged = [line for line in server.output if "the-test" in line]
    assert len(logged) == 1
    assert '"GET /api/sources?token=… HTTP/1.1" 200' in logged[0]
    assert f'"{server.base}/?token=…"' in logged[0]
    # The only place the token may appear is what is printed at start, for the user.
    announced = ("Perview ", "  open ", "  curl ")
    assert [
        line for line in server.output if TOKEN in line and not line.startswith(announced)
    ] == []
