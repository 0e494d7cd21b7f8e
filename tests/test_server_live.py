"""The server's lifecycle against a live one: --once, SIGTERM with streams open or a group that
ignores it, a full disk under its own state, SIGHUP's reload, and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from perview.sources.process import GRACE
from tests.conftest import Server, eventually, fill
from tests.test_accounts import ALICE, BOB, bearer
from tests.test_process_live import STUBBORN
from tests.viewer import AUTH, api_sources, sse_events

Serve = Callable[..., Server]
WITHIN = 5.0


async def test_once_kills_the_command_and_exits_when_the_viewer_leaves(serve: Serve) -> None:
    server = serve("run", "--once", "--", "sh", "-c", "echo up; sleep 300")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        assert server.commands()
        response.close()
    assert server.proc.wait(5) == 0
    await eventually(lambda: not server.commands(), within=2)


async def test_sigterm_with_an_open_stream_stops_everything_within_two_seconds(
    serve: Serve,
) -> None:
    server = serve("run", "--", "sh", "-c", "echo up; sleep 300")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/events", headers=AUTH)
        async for event in sse_events(response):
            if event.get("event") == "lines":
                break
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(response.read(), 3)  # the stream ends, it is not cut
        assert server.proc.wait(3) == 0
        assert time.monotonic() - started < 2
        assert isinstance(rest, bytes)
    assert server.descendants() == []


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1, and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_tls_serves_https_with_hsts(serve: Serve, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server = serve("run", "--certfile", str(cert), "--keyfile", str(key), "--", "echo", "secure")
    assert "open  https://127.0.0.1:" in "".join(server.output)
    trusted = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{server.port}/api/sources/run/text"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=AUTH, ssl=trusted) as response,
    ):
        assert await response.read() == b"secure\n"
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = aiohttp.ClientTimeout(total=3)
    with pytest.raises((aiohttp.ClientError, TimeoutError)):
        async with aiohttp.ClientSession(timeout=plain) as session:
            await session.get(f"http://127.0.0.1:{server.port}/healthz")


def test_tls_needs_both_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perview", "run", "--certfile", "/nonexistent", "--", "true"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "TLS needs both a certificate (--certfile) and a key (--keyfile)" in result.stderr


async def test_sighup_reloads_the_config_and_keeps_it_when_invalid(
    serve: Serve, tmp_path: Path
) -> None:
    path = tmp_path / "perview.toml"
    path.write_text('[sources.a]\ncommand = "sleep 60"\n[sources.b]\ncommand = "sleep 60"\n')
    server = serve("serve", "-c", str(path))

    def names() -> list[object]:
        return [s["name"] for s in api_sources(server)]

    path.write_text('[sources.b]\ncommand = "sleep 60"\n[sources.c]\ncommand = "true"\n')
    server.proc.send_signal(signal.SIGHUP)
    await eventually(lambda: names() == ["b", "c"], within=WITHIN)
    await eventually(lambda: "added c; removed a" in "".join(server.output), within=WITHIN)

    path.write_text('[sources.b]\ncommand = "sleep 60"\n\n[sources.d]\ncomand = "x"\n')
    server.proc.send_signal(signal.SIGHUP)
    await eventually(lambda: "not reloaded" in "".join(server.output), within=WITHIN)
    assert f"{path}:5: sources.d.comand: unknown key" in "".join(server.output)
    assert server.proc.poll() is None and names() == ["b", "c"]  # still serving the old one

    async with aiohttp.ClientSession() as session:
        async with session.post(server.base + "/api/reload", headers=AUTH) as refused:
            assert refused.status == 400
            assert "sources.d.comand: unknown key" in await refused.text()
        path.write_text('[sources.b]\ncommand = "sleep 60"\n')
        async with session.post(server.base + "/api/reload", headers=AUTH) as done:
            assert done.status == 200
            assert (await done.json())["removed"] == ["c"]
    assert names() == ["b"]


def get_json(server: Server, path: str) -> Any:
    request = urllib.request.Request(server.base + path, headers=AUTH)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


async def test_a_full_disk_under_perview_s_own_state_does_not_break_its_shutdown(
    small_disk: Path, serve: Serve
) -> None:
    state = small_disk / "state"  # metric history, session key: where XDG_STATE_HOME says
    state.mkdir()
    log = small_disk / "app.log"
    log.write_text("one\n")
    server = serve("tail", str(log), env={"XDG_STATE_HOME": str(state)})
    assert (state / "perview" / "metrics.sqlite").exists()
    fill(small_disk)

    # Samples taken (at start, then every 2 s) but not yet written (every 5 s): shutdown writes them
    await eventually(
        lambda: any(s["value"] is not None for s in get_json(server, "/api/metrics")),
        WITHIN,
        step=0.05,
    )
    server.proc.send_signal(signal.SIGTERM)
    status = await asyncio.to_thread(server.proc.wait, 10)
    await eventually(lambda: not server.descendants(), WITHIN)  # guards see their lifelines close
    assert status == 0
    assert server.drain is not None
    server.drain.join(5)
    assert "Traceback" not in "".join(server.output)


async def test_shutdown_with_a_group_ignoring_sigterm_is_bounded_and_leaves_nothing(
    serve: Serve,
) -> None:
    server = serve("run", "--", "sh", "-c", STUBBORN)
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        queued = RunQueue(server.proc.pid)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(response.read(), GRACE + 3)  # the stream ends, not cut
        while server.proc.poll() is None and time.monotonic() - started < GRACE + 6:
            queued.read()
            await asyncio.sleep(0.005)
        assert await asyncio.to_thread(server.proc.wait, GRACE + 3) == 0
        took = time.monotonic() - started
    assert rest == b""
    # The grace, then the server's own cleanup: 0.2 to 0.75 s measured on this busy 2-core box.
    # Less the time its loop's thread waited for a CPU: what a loaded machine adds (1.5 s and
    # more at load 20), and no part of shutting down.
    assert took - queued.waited < GRACE + 1.5, (took, queued.waited)
    assert server.descendants() == []


class RunQueue:
    """How long a process's main thread has waited for a CPU since this was made, as last read
    while it lived (/proc/PID/schedstat: on-CPU ns, waiting-to-run ns, time slices)."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/schedstat")
        self.start = self._waiting()
        self.waited = 0.0

    def _waiting(self) -> int:
        return int(self.path.read_text().split()[1])

    def read(self) -> None:
        with contextlib.suppress(OSError, IndexError, ValueError):  # it may have just exited
            self.waited = (self._waiting() - self.start) / 1e9


async def test_a_reload_applies_users_at_once_and_says_what_waits_for_a_restart(
    serve: Serve, tmp_path: Path
) -> None:
    def config(users: str, hold: int = 10) -> str:
        return f'[server]\nhold = {hold}\n[sources.a]\ncommand = "sleep 60"\n{users}'

    path = tmp_path / "perview.toml"
    alice = f'[users.alice]\npassword = "{ALICE}"\nrole = "operator"\n'
    path.write_text(config(alice + f'[users.bob]\npassword = "{BOB}"\n'))
    server = serve("serve", "-c", str(path))
    async with aiohttp.ClientSession() as session:

        async def log_in(user: str, password: str) -> dict[str, str]:
            form = {"user": user, "password": password, "next": "/"}
            async with session.post(
                server.base + "/login", data=form, allow_redirects=False
            ) as answer:
                assert answer.status == 303, await answer.text()
                return bearer(answer)

        async def status(method: str, path: str, headers: dict[str, str]) -> int:
            async with session.request(method, server.base + path, headers=headers) as answer:
                return answer.status

        as_alice, as_bob = await log_in("alice", "alice-pw"), await log_in("bob", "bob-pw")
        assert await status("GET", "/api/sources", as_bob) == 200
        # The command line's --port is not a change of [server].
        async with session.post(server.base + "/api/reload", headers=as_alice) as unchanged:
            assert (await unchanged.json())["summary"] == "no source changed"

        bobs = await session.get(server.base + "/api/sources/a/text", headers=as_bob)
        tokens = await session.get(server.base + "/api/sources/a/text", headers=AUTH)
        assert bobs.status == tokens.status == 200

        # Bob leaves; Alice's password is now Bob's old one, and she becomes a viewer.
        path.write_text(config(f'[users.alice]\npassword = "{BOB}"\nrole = "viewer"\n', hold=20))
        async with session.post(server.base + "/api/reload", headers=as_alice) as reloaded:
            assert reloaded.status == 200
            changes = await reloaded.json()
        assert changes["users"] == ["alice", "bob"]
        assert changes["waiting"] == ["server"]
        assert "not applied until the next start: [server]" in changes["summary"]

        assert await status("GET", "/api/sources", as_bob) == 401  # his session ended
        assert await status("GET", "/api/sources", as_alice) == 401  # bound to the old password
        as_alice = await log_in("alice", "bob-pw")
        assert await status("GET", "/api/sources", as_alice) == 200
        assert await status("POST", "/api/reload", as_alice) == 403  # a viewer now

        # The stream Bob had open ends too; the token's goes on.
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(bobs.read(), WITHIN)
        assert tokens.connection is not None and not tokens.content.at_eof()
        tokens.close()
