"""A real `perview run` on a loopback port: streams, curl, --once, signals, and no strays."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.conftest import TOKEN, Server, eventually

Serve = Callable[..., Server]
WITHIN = 5.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def read_text(server: Server, path: str = "/api/sources/run/text") -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + path, headers=AUTH) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.read()


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, str]]:
    """Parse a Server-Sent Events body into {event, id, data} dicts."""
    event: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(": ")
            event[field] = (
                event[field] + "\n" + value if field == "data" and field in event else value
            )


def api_sources(server: Server) -> list[dict[str, object]]:
    import urllib.request

    request = urllib.request.Request(server.base + "/api/sources", headers=AUTH)
    with urllib.request.urlopen(request, timeout=5) as response:
        result: list[dict[str, object]] = json.load(response)
        return result


async def test_every_line_arrives_in_order(serve: Serve) -> None:
    server = serve("run", "--", "seq", "1", "100000")
    body = await read_text(server)
    assert body == b"".join(b"%d\n" % n for n in range(1, 100001))


def test_curl_at_root_gets_the_live_text_stream(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo first; sleep 0.2; echo second")
    result = subprocess.run(
        ["curl", "-sS", "-N", "-H", f"Authorization: Bearer {TOKEN}", server.base + "/"],
        capture_output=True,
        timeout=10,
        check=True,
    )
    assert result.stdout == b"first\nsecond\n"


def test_curl_without_token_is_refused(serve: Serve) -> None:
    server = serve("run", "--", "echo", "secret")
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", server.base + "/"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.stdout == "401"
    assert server.commands() == []  # nothing was started for it


def test_no_auth_serves_plain_curl_on_loopback(serve: Serve) -> None:
    server = serve("run", "--no-auth", "--", "echo", "open")
    result = subprocess.run(["curl", "-sS", server.base + "/"], capture_output=True, timeout=10)
    assert result.stdout == b"open\n"


def test_no_auth_off_loopback_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perview", "run", "--no-auth", "--host", "0.0.0.0", "--", "true"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "--no-auth is only allowed on a loopback address" in result.stderr


def test_port_comes_from_perview_proc_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PERVIEW_PROC_PORT": str(port), "PERVIEW_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "perview", "run", "--once", "--", "echo", "via env"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f":{port}/" in proc.stdout.readline() + proc.stdout.readline()
        result = subprocess.run(
            ["curl", "-sS", "-H", f"Authorization: Bearer {TOKEN}", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            timeout=10,
        )
        assert result.stdout == b"via env\n"
        assert proc.wait(5) == 0  # --once: the viewer left, so the server is done
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_bad_port_variable_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perview", "run", "--", "true"],
        env={"PERVIEW_PROC_PORT": "http", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "PERVIEW_PROC_PORT must be a port number" in result.stderr


async def test_once_kills_the_command_and_exits_when_the_viewer_leaves(serve: Serve) -> None:
    server = serve("run", "--once", "--", "sh", "-c", "echo up; sleep 300")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        assert server.commands()
        response.close()
    assert server.proc.wait(5) == 0
    await eventually(lambda: not server.commands(), within=2)


async def test_silent_command_group_dies_within_milliseconds_of_the_viewer_leaving(
    serve: Serve,
) -> None:
    script = "sleep 300 & sleep 301 & echo up; wait"  # grandchildren, and silent after one line
    server = serve("run", "--", "sh", "-c", script)
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        assert len(server.commands()) >= 3  # sh and two sleeps
        response.close()
        took = await eventually(lambda: not server.commands(), within=2, step=0.001)
    assert took < 0.5  # typically a few ms; the bench measures it properly
    assert server.proc.poll() is None  # without --once the server keeps serving


async def test_chatty_command_dies_as_fast_as_a_silent_one(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo up; exec yes")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        response.close()
        took = await eventually(lambda: not server.commands(), within=2, step=0.001)
    assert took < 0.5


async def test_viewer_arriving_while_the_command_stops_restarts_it(serve: Serve) -> None:
    # The command ignores SIGTERM, so stopping it takes the guard's whole grace period.
    server = serve("run", "--", "sh", "-c", "trap '' TERM; echo up; exec sleep 300")
    async with aiohttp.ClientSession() as session:
        first = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await first.content.readline() == b"up\n"
        first.close()
        await asyncio.sleep(0.05)
        second = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await asyncio.wait_for(second.content.readline(), 5) == b"up\n"
        second.close()
    [info] = api_sources(server)
    assert info["runs"] == 2


async def test_with_rerun_a_command_runs_again_for_the_next_viewer(serve: Serve) -> None:
    server = serve("run", "--rerun", "--", "echo", "again")
    assert await read_text(server) == b"again\n"
    assert await read_text(server) == b"again\n"
    [info] = api_sources(server)
    assert info["runs"] == 2


async def page_load(server: Server) -> list[dict[str, str]]:
    """What a page's event stream gets for source `run`, up to the end of its run."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events?source=run", headers=AUTH) as response,
    ):
        seen: list[dict[str, str]] = []
        async with asyncio.timeout(10):
            async for event in sse_events(response):
                seen.append(event)
                if event.get("event") == "state" and '"exited"' in event["data"]:
                    return seen
    raise AssertionError(f"the run did not end: {seen}")


async def test_a_command_that_ran_to_completion_is_not_run_again_by_a_new_viewer(
    serve: Serve, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    server = serve("run", "--", "sh", "-c", f"echo ran >> {shlex.quote(str(ran))}; echo done")
    for _ in range(2):  # the first page load runs it; a reload shows what it printed
        events = await page_load(server)
        assert [e["data"].split("\n")[1:] for e in events if e.get("event") == "lines"] == [
            ["done"]
        ]
    assert await read_text(server) == b"done\n"  # curl: the held output, then the end
    assert ran.read_text() == "ran\n"
    [info] = api_sources(server)
    assert (info["state"], info["status"], info["runs"]) == ("exited", 0, 1)
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.base + "/api/sources/run/restart", headers=AUTH) as response,
    ):
        assert response.status == 200
    await eventually(lambda: ran.read_text() == "ran\nran\n", 5)


async def test_exit_status_is_visible_in_the_api(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo bye; exit 3")
    assert await read_text(server) == b"bye\n"
    [info] = api_sources(server)
    assert (info["state"], info["status"]) == ("exited", 3)
    assert "exited with status 3" in "".join(server.output)


async def test_a_file_not_there_yet_is_waiting_in_the_api_and_the_events(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve("tail", str(tmp_path / "later.log"))
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events", headers=AUTH) as response,
    ):
        async for event in sse_events(response):
            if event.get("event") == "state" and json.loads(event["data"])["state"] == "waiting":
                break
        [info] = api_sources(server)
        assert info["state"] == "waiting"  # not a green "running" while nothing can be read
        assert str(info["summary"]).startswith("waiting: ")
        assert info["kind"] == "file"


async def test_a_stop_for_lack_of_viewers_is_not_an_exit(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "echo up; exec sleep 60")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        response.close()
    await eventually(lambda: api_sources(server)[0]["state"] == "stopped", within=5.0)
    [info] = api_sources(server)
    assert info["summary"] == "stopped (no viewers)"
    assert info["status"] == -signal.SIGTERM  # kept, for whoever wants it


async def test_command_that_does_not_exist_says_why(serve: Serve) -> None:
    server = serve("run", "--", "perview-no-such-command")
    body = await read_text(server)
    assert body == b"[perview] failed to start: perview-no-such-command: command not found\n"
    [info] = api_sources(server)
    assert info["state"] == "failed"
    assert info["reason"] == "perview-no-such-command: command not found"


async def test_invalid_utf8_is_replaced_not_fatal(serve: Serve) -> None:
    server = serve("run", "--", "printf", "caf\\351 \\377\\nnext\\n")
    assert (await read_text(server)).decode() == "caf\ufffd \ufffd\nnext\n"


async def test_many_viewers_each_get_every_line(serve: Serve) -> None:
    # The command waits so that every viewer is subscribed before the first line.
    server = serve("run", "--", "sh", "-c", "sleep 1; seq 1 20000")
    expected = b"".join(b"%d\n" % n for n in range(1, 20001))
    bodies = await asyncio.gather(*(read_text(server) for _ in range(20)))
    assert all(body == expected for body in bodies)
    [info] = api_sources(server)
    assert info["runs"] == 1


async def test_stalled_viewer_neither_blocks_nor_slows_another(serve: Serve) -> None:
    server = serve("run", "--backlog", "1000", "--", "sh", "-c", "sleep 0.5; seq 1 1000000")
    stalled = socket.create_connection(("127.0.0.1", server.port))
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            f"GET /api/sources/run/text HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )  # and never read a byte
        body = await asyncio.wait_for(read_text(server), 30)
    finally:
        stalled.close()
    assert body == b"".join(b"%d\n" % n for n in range(1, 1000001))


async def test_huge_line_without_newline_keeps_memory_bounded(serve: Serve) -> None:
    command = "head -c 300000000 /dev/zero | tr '\\0' x"  # one 300 MB line, no newline
    server = serve("run", "--", "sh", "-c", command)
    process = psutil.Process(server.proc.pid)
    peak = 0
    received = 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/sources/run/text", headers=AUTH) as response,
    ):
        async for block in response.content.iter_chunked(1 << 20):
            received += len(block)
            peak = max(peak, process.memory_info().rss)
    assert received >= 300_000_000  # nothing lost: cut into marked pieces, not dropped
    assert peak < 150 * 1024 * 1024, f"server RSS reached {peak / 2**20:.0f} MiB"


async def test_events_resume_from_last_event_id_without_duplicates(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "seq 1 50; sleep 300")
    async with aiohttp.ClientSession() as session:
        seen: list[str] = []
        last_id = ""
        async with session.get(server.base + "/api/events?source=run", headers=AUTH) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert response.headers["Cache-Control"] == "no-cache"
            async for event in sse_events(response):
                if event.get("event") == "lines":
                    header, _, text = event["data"].partition("\n")
                    assert json.loads(header)["source"] == "run"
                    seen += text.split("\n")
                    last_id = event["id"]
                if len(seen) >= 20:
                    break
        epoch, _, cursor = last_id.partition("/")
        assert epoch and cursor == f"run:{len(seen) + 1}"
        resumed: list[str] = []
        headers = {**AUTH, "Last-Event-ID": last_id}
        async with session.get(server.base + "/api/events?source=run", headers=headers) as response:
            async for event in sse_events(response):
                if event.get("event") == "lines":
                    resumed += event["data"].partition("\n")[2].split("\n")
                if len(seen) + len(resumed) >= 50:
                    break
    assert seen + resumed == [str(n) for n in range(1, 51)]


async def test_events_report_a_gap_when_the_ring_no_longer_holds_the_lines(
    serve: Serve,
) -> None:
    # Fifty separate writes, so the output lands in many chunks and old ones can be dropped.
    script = "for i in $(seq 0 49); do seq $((i*100+1)) $((i*100+100)); sleep 0.01; done; sleep 300"
    server = serve("run", "--backlog", "100", "--", "sh", "-c", script)
    everything = b"".join(b"%d\n" % n for n in range(1, 5001))
    async with aiohttp.ClientSession() as session:
        first = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await first.content.readexactly(len(everything)) == everything
        kinds: list[str] = []
        lines: list[str] = []
        url = server.base + "/api/events?source=run&since=run:10"
        async with session.get(url, headers=AUTH) as response:
            async for event in sse_events(response):
                kinds.append(event.get("event", ""))
                if event.get("event") == "gap":
                    gap = json.loads(event["data"])
                elif event.get("event") == "lines":
                    header, _, text = event["data"].partition("\n")
                    if not lines:
                        first_id = json.loads(header)["id"]
                    lines += text.split("\n")
                    if lines[-1] == "5000":
                        break
        first.close()
    assert kinds[:2] == ["source", "gap"]
    assert gap["id"] == 10 and gap["count"] > 0
    assert first_id == 10 + gap["count"]  # the lines resume exactly after the gap
    assert lines == [str(n) for n in range(first_id, 5001)]


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


async def test_sigkilled_server_leaves_no_process_behind(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "sleep 300 & echo up; sleep 301")
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        assert await response.content.readline() == b"up\n"
        assert len(server.commands()) >= 3
        server.proc.kill()
        server.proc.wait()
        took = await eventually(lambda: not server.descendants(), within=3)
        response.close()
    assert took < 1


@pytest.mark.parametrize("path", ["/api/sources/run/text", "/api/events"])
async def test_streams_disable_proxy_buffering(serve: Serve, path: str) -> None:
    server = serve("run", "--", "echo", "x")
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + path, headers=AUTH) as response,
    ):
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["Cache-Control"] == "no-cache"


async def test_a_cursor_from_an_earlier_server_is_ignored(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "seq 1 5; sleep 300")
    async with aiohttp.ClientSession() as session:
        headers = {**AUTH, "Last-Event-ID": "0ldepoch/run:4"}
        async with session.get(server.base + "/api/events", headers=headers) as response:
            lines: list[str] = []
            async for event in sse_events(response):
                if event.get("event") == "source":
                    assert json.loads(event["data"])["epoch"] != "0ldepoch"
                if event.get("event") == "lines":
                    lines += event["data"].partition("\n")[2].split("\n")
                if len(lines) >= 5:
                    break
    assert lines == ["1", "2", "3", "4", "5"]  # from the start, not from line 4


async def test_follow_0_returns_the_history_and_ends_without_starting_anything(
    serve: Serve,
) -> None:
    server = serve("run", "--", "sh", "-c", "seq 1 3; sleep 300")
    async with aiohttp.ClientSession() as session:
        empty = await session.get(
            server.base + "/api/sources/run/text?follow=0&backlog=100", headers=AUTH
        )
        assert await empty.read() == b""
        assert api_sources(server)[0]["runs"] == 0
        live = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
        for _ in range(3):
            await live.content.readline()
        history = await session.get(
            server.base + "/api/sources/run/text?follow=0&backlog=100", headers=AUTH
        )
        assert await asyncio.wait_for(history.read(), 5) == b"1\n2\n3\n"
        live.close()


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


async def test_a_hostile_grep_cannot_pin_the_server(serve: Serve) -> None:
    # (a+)+$ on a long run of a's takes Python's regex engine exponential time; RE2 is linear.
    server = serve(
        "run", "--", "sh", "-c", "printf 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\\nkeep aaa\\n'"
    )
    started = time.monotonic()
    body = await read_text(server, "/api/sources/run/text?grep=(a%2B)%2B%24")
    assert body == b"keep aaa\n"
    assert time.monotonic() - started < 5


async def test_grep_matches_utf8_text(serve: Serve) -> None:
    server = serve("run", "--", "printf", "café ok\\nplain\\nnaïve\\n")
    body = await read_text(server, "/api/sources/run/text?grep=%5B%C3%A9%C3%AF%5D")  # [éï]
    assert body.decode() == "café ok\nnaïve\n"


async def test_connect_disconnect_cycles_leak_nothing(serve: Serve) -> None:
    server = serve("run", "--", "sh", "-c", "while :; do echo tick; sleep 0.01; done")
    process = psutil.Process(server.proc.pid)
    async with aiohttp.ClientSession() as session:

        async def cycle(read_line: bool) -> None:
            response = await session.get(server.base + "/api/sources/run/text", headers=AUTH)
            if read_line:
                await response.content.readline()
            response.close()

        def settled() -> bool:
            # No command left, and the spare guard (started 0.25 s after the last start, and
            # holding two fds of the server) is there: the same state before and after.
            return not server.commands() and len(server.descendants()) == 1

        await cycle(True)
        await eventually(settled, within=5)
        before = (process.num_fds(), process.num_threads())
        for n in range(300):  # each starts the command, reads (or not), leaves, stops it
            await cycle(read_line=n % 2 == 0)
        await eventually(settled, within=5)
        await eventually(lambda: process.num_fds() <= before[0], within=5)
    assert process.num_threads() <= before[1] + 1  # asyncio's child watcher threads come and go


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


async def test_a_returning_viewer_of_a_file_gets_what_was_written_meanwhile(
    serve: Serve, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 11)))
    server = serve("tail", str(log))
    url = server.base + "/api/sources/app.log/text"
    async with aiohttp.ClientSession() as session:
        first = await session.get(url, headers=AUTH)
        assert await first.content.readline() == b"line 1\n"
        first.close()
        await eventually(lambda: api_sources(server)[0]["state"] == "stopped", within=WITHIN)
        with log.open("a") as f:  # 70 lines while nobody watches
            f.write("".join(f"line {n}\n" for n in range(11, 81)))
        async with session.get(url, headers=AUTH) as second:
            notice = await second.content.readline()
            assert notice.startswith(b"[perview] resumed where it was left at ")
            got = [await second.content.readline() for _ in range(70)]
    assert got == [f"line {n}\n".encode() for n in range(11, 81)]


async def test_an_event_stream_of_metrics_alone_streams_samples(
    serve: Serve, tmp_path: Path
) -> None:
    path = tmp_path / "perview.toml"
    path.write_text(
        '[server]\nsystem_metrics = false\n[metrics.q]\ncommand = "echo 5"\nevery = "1s"\n'
    )
    server = serve("serve", "-c", str(path))
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events?metrics=1", headers=AUTH) as response,
    ):
        async with asyncio.timeout(WITHIN):
            async for event in sse_events(response):
                if event.get("event") == "metric":
                    break
    samples = json.loads(event["data"])["samples"]
    assert [name for name, _, value in samples if value == 5.0] == ["local/q"]
