"""Sources on other hosts, through the system ssh to a real sshd on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN, Server, eventually
from tests.sshd import Sshd

Serve = Callable[..., Server]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def remote_processes(pattern: str) -> list[str]:
    """The far side is this machine, so `pgrep -f` sees what sshd started."""
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "perview.toml"
    path.write_text(text)
    return path


async def sources(server: Server) -> dict[str, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/sources", headers=AUTH) as response,
    ):
        return {s["name"]: s for s in await response.json()}


async def test_remote_command_streams_and_ends_with_its_status(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    config = sshd.hosts_toml("web1") + (
        '[sources.remote]\ncommand = "sh -c \'echo one; echo two; exit 4\'"\nhost = "web1"\n'
    )
    server = serve("serve", "-c", str(write_config(tmp_path, config)))
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/sources/remote/text", headers=AUTH) as response,
    ):
        assert await asyncio.wait_for(response.read(), 10) == b"one\ntwo\n"
    info = (await sources(server))["remote"]
    assert (info["state"], info["status"]) == ("exited", 4)


async def test_quiet_remote_file_is_gone_within_two_seconds_of_the_viewer_leaving(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / f"remote-{uuid.uuid4().hex}.log"
    log.write_text("old line\n")
    config = sshd.hosts_toml("web1") + f'[sources.app]\nfile = "{log}"\nhost = "web1"\n'
    server = serve("serve", "-c", str(write_config(tmp_path, config)))
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/app/text?backlog=10", headers=AUTH)
        assert await asyncio.wait_for(response.content.readline(), 10) == b"old line\n"
        with log.open("a") as f:
            f.write("new line\n")
        assert await asyncio.wait_for(response.content.readline(), 5) == b"new line\n"
        assert remote_processes(str(log))  # the far-side tail is running, and silent now
        response.close()
        took = await eventually(lambda: not remote_processes(str(log)), within=2, step=0.01)
    assert took < 2


async def test_one_source_on_several_hosts_tags_each_line_with_its_host_as_its_part(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    config = sshd.hosts_toml("web1", "web2") + (
        '[sources.hello]\ncommand = ["echo", "hi"]\nhosts = ["web1", "web2"]\n'
    )
    server = serve("serve", "-c", str(write_config(tmp_path, config)))
    async with aiohttp.ClientSession() as session:
        async with session.get(server.base + "/api/sources/hello/text", headers=AUTH) as text:
            body = await asyncio.wait_for(text.read(), 10)
        assert sorted(body.splitlines()) == [b"web1: hi", b"web2: hi"]
        url = server.base + "/api/events?source=hello"
        async with session.get(url, headers=AUTH) as events:
            hosts = set()
            async for raw in events.content:
                line = raw.decode()
                if line.startswith("data: {") and '"part"' in line:
                    hosts.add(json.loads(line[6:])["part"])
                if hosts == {"web1", "web2"}:
                    break
        assert (await sources(server))["hello"]["parts"] == "hosts"


async def test_unreachable_host_shows_ssh_message_and_retries(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    config = (
        '[hosts.gone]\nssh = "127.0.0.1"\nssh_args = ["-p", "1", "-F", "none"]\n\n'
        '[sources.far]\ncommand = "true"\nhost = "gone"\n'
    )
    server = serve("serve", "-c", str(write_config(tmp_path, config)))
    async with aiohttp.ClientSession() as session:
        response = await session.get(server.base + "/api/sources/far/text", headers=AUTH)
        states: list[dict[str, object]] = []

        async def waiting_with_reason() -> bool:
            info = (await sources(server))["far"]
            states.append(info)
            return info["state"] == "waiting"

        for _ in range(100):
            if await waiting_with_reason():
                break
            await asyncio.sleep(0.05)
        response.close()
    reason = str(states[-1]["reason"])
    assert "Connection refused" in reason and "retrying in" in reason


async def test_local_file_local_command_and_remote_file_in_one_config(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    local = tmp_path / "local.log"
    remote = tmp_path / "remote.log"
    local.write_text("")
    remote.write_text("")
    config = sshd.hosts_toml("web1") + (
        f'[sources.local]\nfile = "{local}"\n\n'
        '[sources.cmd]\ncommand = "echo from a command"\n\n'
        f'[sources.remote]\nfile = "{remote}"\nhost = "web1"\n'
    )
    server = serve("serve", "-c", str(write_config(tmp_path, config)))
    async with aiohttp.ClientSession() as session:
        url = server.base + "/api/events?source=local&source=cmd&source=remote"
        async with session.get(url, headers=AUTH) as response:
            await asyncio.sleep(1.0)  # let the far-side tail start before writing
            local.write_text("from a local file\n")
            remote.write_text("from a remote file\n")
            seen: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: {") and '"id"' in line:
                    source = json.loads(line[6:])["source"]
                elif line.startswith("data: ") and "from a" in line:
                    seen[source] = line[6:]
                if len(seen) == 3:
                    break
    assert seen == {
        "local": "from a local file",
        "cmd": "from a command",
        "remote": "from a remote file",
    }


async def test_a_dropped_ssh_link_is_shown_and_the_stream_resumes(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / "far.log"
    log.write_text("before\n")
    config = sshd.hosts_toml("web1") + f'[sources.far]\nfile = "{log}"\nhost = "web1"\n'
    server = serve("serve", "-c", str(write_config(tmp_path, config)))
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events?source=far", headers=AUTH) as response,
    ):
        states: list[dict[str, object]] = []
        dropped = False
        async with asyncio.timeout(30):
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line == "data: before" and not dropped:
                    assert sshd.drop_sessions() > 0  # the link drops mid-stream
                    dropped = True
                elif line.startswith('data: {"source": "far", "state"'):
                    states.append(json.loads(line[6:]))
                    if states[-1]["state"] == "running" and any(
                        s["state"] == "waiting" for s in states
                    ):
                        with log.open("a") as f:  # reconnected: new lines must flow again
                            f.write("after\n")
                elif line == "data: after":
                    break
    waiting = [s for s in states if s["state"] == "waiting"]
    assert waiting and "retrying in" in str(waiting[0]["reason"])


async def test_remote_children_that_leave_the_group_die_when_the_viewer_leaves(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    """sshd's session group is what the far side kills; a `setsid` child is outside it."""
    pattern = f"sleep 300.{secrets.randbelow(10**6)}"
    command = f"setsid {pattern} & echo up; {pattern}"
    config = sshd.hosts_toml("web1") + (
        f'[sources.far]\ncommand = "{command}"\nshell = true\nhost = "web1"\n'
    )

    def sleeps() -> list[str]:
        return [line for line in remote_processes(pattern) if line.split(" ", 1)[1] == pattern]

    server = serve("serve", "-c", str(write_config(tmp_path, config)))
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.get(server.base + "/api/sources/far/text", headers=AUTH)
            assert await asyncio.wait_for(response.content.readline(), 10) == b"up\n"
            await eventually(lambda: len(sleeps()) == 2, within=5)
            response.close()
            await eventually(lambda: not remote_processes(pattern), within=4, step=0.05)
    finally:
        for line in remote_processes(pattern):  # by pid, whatever the test's outcome
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
