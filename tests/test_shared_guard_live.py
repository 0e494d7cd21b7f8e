"""A source on several hosts, live: its parts share one guard process, and every far side is
gone soon after the last viewer leaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil

from tests.conftest import TOKEN, Server, eventually
from tests.sshd import Sshd


async def test_every_hosts_quiet_far_side_is_gone_soon_after_the_viewer_leaves(
    serve: Callable[..., Server], sshd: Sshd, tmp_path: Path
) -> None:
    log = tmp_path / f"remote-{uuid.uuid4().hex}.log"
    log.write_text("old line\n")
    hosts = ["web1", "web2", "web3"]
    config = tmp_path / "perview.toml"
    config.write_text(
        sshd.hosts_toml(*hosts) + f'[sources.app]\nfile = "{log}"\nhosts = {json.dumps(hosts)}\n'
    )
    server = serve("serve", "-c", str(config))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        url = server.base + "/api/sources/app/text?backlog=10"
        response = await session.get(url, headers=headers)
        lines = [await asyncio.wait_for(response.content.readline(), 10) for _ in hosts]
        assert sorted(lines) == [f"{host}: old line\n".encode() for host in hosts]
        assert len(far_sides(str(log))) >= len(hosts)  # the far-side tails, silent now
        guards = ssh_parents(server.proc.pid, str(log))
        assert len(guards) == 1  # one guard for the three parts
        response.close()
        took = await eventually(lambda: not far_sides(str(log)), within=2, step=0.01)
    assert took < 2
    await eventually(lambda: not any(guard.is_running() for guard in guards), within=3)


def far_sides(pattern: str) -> list[str]:
    """The far side is this machine, so `pgrep -f` sees what sshd started."""
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def ssh_parents(pid: int, marker: str) -> list[psutil.Process]:
    """The parents of the ssh clients below `pid` whose command line names `marker`."""
    parents = {}
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            line = child.cmdline()
            if line[:1] == ["ssh"] and marker in " ".join(line):
                parent = child.parent()
                if parent is not None:
                    parents[parent.pid] = parent
    return list(parents.values())
