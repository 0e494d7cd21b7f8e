"""A real sshd on 127.0.0.1 with throwaway host and client keys, and an ssh_config naming it
by aliases, so that a test or a benchmark can reach "many hosts" that are all this machine."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

HOST = "127.0.0.1"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
STOP_TIMEOUT = 5.0
DEFAULT_OPTIONS = "MaxStartups 200\nMaxSessions 200\nLogLevel ERROR\n"


class LoopbackSshd:
    """sshd on 127.0.0.1 with its keys and logs in `home`; `config` is an ssh_config defining
    the aliases `{prefix}1` .. `{prefix}N` of it. `sshd_options` are more sshd_config lines;
    `client_config(name, extra)` writes another ssh_config for the same aliases with more
    options (ControlMaster, say). Raises RuntimeError if it cannot be reached."""

    def __init__(
        self,
        home: Path,
        aliases: int,
        sshd_options: str = DEFAULT_OPTIONS,
        prefix: str = "pv-h",
    ) -> None:
        if not os.path.exists(SSHD):
            raise RuntimeError("sshd is missing: run scripts/install-test-deps (openssh-server)")
        self.home = home
        self.prefix = prefix
        self.aliases = [f"{prefix}{n}" for n in range(1, aliases + 1)]
        self.log = home / "sshd.log"
        for key in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True
            )
        (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
        self.port = free_port()
        (home / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress {HOST}\nHostKey {home}/host_key\n"
            f"PidFile {home}/sshd.pid\nAuthorizedKeysFile {home}/authorized_keys\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n" + sshd_options
        )
        kind, key = (home / "host_key.pub").read_text().split()[:2]
        (home / "known_hosts").write_text(f"[{HOST}]:{self.port} {kind} {key}\n")
        self.config = self.client_config("ssh_config", "")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(home / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.pid = self.proc.pid  # the listener; its children are the sessions
        self.ps = psutil.Process(self.pid)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def alias(self, n: int = 1) -> str:
        return f"{self.prefix}{n}"

    def hosts_toml(self, *names: str) -> str:
        """`[hosts.NAME]` tables for these names, each an alias of this sshd."""
        return "".join(
            f'[hosts.{name}]\nssh = "{self.alias(i + 1)}"\nssh_args = ["-F", "{self.config}"]\n\n'
            for i, name in enumerate(names)
        )

    def client_config(self, name: str, extra: str) -> Path:
        path = self.home / name
        path.write_text(
            "".join(f"Host {alias}\n" for alias in self.aliases)
            + f"Host {self.prefix}*\n  HostName {HOST}\n  Port {self.port}\n"
            f"  User {getpass.getuser()}\n"
            f"  IdentityFile {self.home}/client_key\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.home}/known_hosts\n  StrictHostKeyChecking yes\n"
            "  LogLevel ERROR\n" + extra
        )
        return path

    def sessions(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return list(self.ps.children(recursive=True))
        return []

    def drop_sessions(self) -> int:
        """Kill every session this sshd serves (as if the network dropped); returns how many."""
        sessions = self.sessions()
        for session in sessions:
            with contextlib.suppress(psutil.Error):
                session.kill()
        return len(sessions)

    def wait_no_sessions(self, limit: float) -> bool:
        """Wait (bounded) for every session below this sshd to end; kill what is left."""
        deadline = time.monotonic() + limit
        while self.sessions() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.sessions()
        kill_all(left)
        return not left

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def drops(self) -> int:
        """Connections sshd dropped so far for MaxStartups (logged at LogLevel VERBOSE)."""
        return self.log_text().count("past MaxStartups")

    def stop(self) -> None:
        """The listener, then any session it started (they outlive it otherwise)."""
        sessions = self.sessions()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        kill_all(sessions)

    def _wait_ready(self) -> None:
        argv = ["ssh", "-F", str(self.config), "-o", "BatchMode=yes", self.aliases[0], "true"]
        message = ""
        for _ in range(100):
            probe = subprocess.run(argv, capture_output=True, timeout=10)
            if probe.returncode == 0:
                return
            message = probe.stderr.decode(errors="replace")
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"cannot ssh to the loopback sshd: {message}{self.log_text()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def kill_all(procs: list[psutil.Process]) -> None:
    """SIGTERM these processes, then SIGKILL what is still there after STOP_TIMEOUT."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=STOP_TIMEOUT)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT)
