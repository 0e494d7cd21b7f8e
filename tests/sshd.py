"""A real sshd on 127.0.0.1 for the tests, with throwaway keys and an ssh_config of aliases."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ALIASES = 3  # perview-test-1 .. perview-test-3, all this sshd


@dataclass(frozen=True)
class Sshd:
    port: int
    config: Path  # an ssh_config defining the aliases: pass ["-F", config] to ssh
    pid: int  # the listening sshd; its children are the sessions

    def drop_sessions(self) -> int:
        """Kill every session this sshd serves (as if the network dropped); returns how many."""
        sessions = psutil.Process(self.pid).children(recursive=True)
        for session in sessions:
            with contextlib.suppress(psutil.NoSuchProcess):
                session.kill()
        return len(sessions)

    def alias(self, n: int = 1) -> str:
        return f"perview-test-{n}"

    def hosts_toml(self, *names: str) -> str:
        """`[hosts.NAME]` tables for these names, each an alias of this sshd."""
        return "".join(
            f'[hosts.{name}]\nssh = "{self.alias(i + 1)}"\nssh_args = ["-F", "{self.config}"]\n\n'
            for i, name in enumerate(names)
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        pytest.fail("sshd is missing: run scripts/install-test-deps (openssh-server)")
    home = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True
        )
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    port = _free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home}/host_key\n"
        f"PidFile {home}/sshd.pid\nAuthorizedKeysFile {home}/authorized_keys\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nMaxStartups 200\nMaxSessions 200\nLogLevel ERROR\n"
    )
    aliases = "".join(
        f"Host perview-test-{n}\n  HostName 127.0.0.1\n  Port {port}\n"
        for n in range(1, ALIASES + 1)
    )
    client = home / "ssh_config"
    client.write_text(
        aliases + f"Host perview-test-*\n  User {getpass.getuser()}\n"
        f"  IdentityFile {home}/client_key\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {home}/known_hosts\n  StrictHostKeyChecking accept-new\n"
        "  LogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")])
    try:
        server = Sshd(port, client, proc.pid)
        for _ in range(100):
            probe = subprocess.run(
                ["ssh", "-F", str(client), "-o", "BatchMode=yes", server.alias(), "true"],
                capture_output=True,
                timeout=10,
            )
            if probe.returncode == 0:
                break
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {proc.returncode}")
            time.sleep(0.05)
        else:
            pytest.fail(f"cannot ssh to the test sshd: {probe.stderr.decode()}")
        yield server
    finally:
        proc.terminate()
        proc.wait(5)
